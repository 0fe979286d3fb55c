import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  isLate,
  isWindowComplete,
  maxTimestamp,
  NO_WATERMARK,
  requireTimestamp,
  SessionWindows,
  session,
  sliding,
  tumbling,
  UpstreamWatermarks,
  WatermarkAnnouncements,
  WatermarkTracker,
} from "./time.ts";

describe("tumbling", () => {
  const minute = tumbling(60_000);

  test("one window, aligned to the epoch, end exclusive", () => {
    assert.equal(minute.kind, "tumbling");
    assert.deepEqual(minute.assign(0), [{ start: 0, end: 60_000 }]);
    assert.deepEqual(minute.assign(59_999), [{ start: 0, end: 60_000 }]);
    assert.deepEqual(minute.assign(60_000), [{ start: 60_000, end: 120_000 }]);
    assert.deepEqual(minute.assign(125_000), [{ start: 120_000, end: 180_000 }]);
  });

  test("timestamps before the epoch line up too", () => {
    assert.deepEqual(minute.assign(-1), [{ start: -60_000, end: 0 }]);
    assert.deepEqual(minute.assign(-60_000), [{ start: -60_000, end: 0 }]);
    assert.deepEqual(minute.assign(-60_001), [{ start: -120_000, end: -60_000 }]);
  });

  test("rejects bad sizes and timestamps", () => {
    assert.throws(() => tumbling(0), /tumbling window size must be a positive integer/);
    assert.throws(() => tumbling(-5), /positive integer/);
    assert.throws(() => tumbling(1.5), /positive integer/);
    assert.throws(() => minute.assign(Number.NaN), /event timestamp must be a finite number/);
  });
});

describe("sliding", () => {
  test("an event belongs to size/slide windows, ascending", () => {
    const w = sliding(10, 5);
    assert.equal(w.kind, "sliding");
    assert.deepEqual(w.assign(12), [
      { start: 5, end: 15 },
      { start: 10, end: 20 },
    ]);
    // On a boundary: the window ending there does not contain it.
    assert.deepEqual(w.assign(10), [
      { start: 5, end: 15 },
      { start: 10, end: 20 },
    ]);
    assert.deepEqual(w.assign(9), [
      { start: 0, end: 10 },
      { start: 5, end: 15 },
    ]);
  });

  test("size not a multiple of the slide", () => {
    const w = sliding(10, 3);
    const windows = w.assign(10);
    assert.deepEqual(windows, [
      { start: 3, end: 13 },
      { start: 6, end: 16 },
      { start: 9, end: 19 },
    ]);
    for (const window of windows) assert.ok(window.start <= 10 && 10 < window.end);
  });

  test("every containing window and no other", () => {
    const w = sliding(7, 2);
    for (let t = -20; t <= 20; t++) {
      const windows = w.assign(t);
      const expected = [];
      for (let start = -40; start <= 40; start += 2) {
        if (start <= t && t < start + 7) expected.push({ start, end: start + 7 });
      }
      assert.deepEqual(windows, expected, `t=${t}`);
    }
  });

  test("slide equal to size is tumbling", () => {
    assert.deepEqual(sliding(5, 5).assign(7), tumbling(5).assign(7));
  });

  test("a slide larger than the size leaves gaps", () => {
    const w = sliding(5, 10);
    assert.deepEqual(w.assign(3), [{ start: 0, end: 5 }]);
    assert.deepEqual(w.assign(7), []);
  });

  test("rejects a bad slide", () => {
    assert.throws(() => sliding(10, 0), /sliding window slide must be a positive integer/);
  });
});

describe("session", () => {
  test("the assigner opens [t, t + gap)", () => {
    const s = session(30);
    assert.equal(s.kind, "session");
    assert.equal(s.gapMs, 30);
    assert.deepEqual(s.assign(100), [{ start: 100, end: 130 }]);
    assert.throws(() => session(0), /session gap must be a positive integer/);
  });
});

describe("SessionWindows", () => {
  test("events within the gap extend one session", () => {
    const s = new SessionWindows(10);
    assert.deepEqual(s.add(0), { window: { start: 0, end: 10 }, merged: [] });
    assert.deepEqual(s.add(5), { window: { start: 0, end: 15 }, merged: [{ start: 0, end: 10 }] });
    assert.deepEqual(s.windows(), [{ start: 0, end: 15 }]);
  });

  test("an event inside a session without extending it merges nothing", () => {
    const s = new SessionWindows(10);
    s.add(0);
    s.add(8);
    assert.deepEqual(s.add(2), { window: { start: 0, end: 18 }, merged: [] });
    assert.equal(s.size, 1);
  });

  test("a gap longer than gapMs starts a new session; exactly gapMs continues it", () => {
    const s = new SessionWindows(10);
    s.add(0);
    assert.deepEqual(s.add(11).merged, []);
    assert.deepEqual(s.windows(), [
      { start: 0, end: 10 },
      { start: 11, end: 21 },
    ]);
    const t = new SessionWindows(10);
    t.add(0);
    assert.deepEqual(t.add(10).window, { start: 0, end: 20 });
    assert.equal(t.size, 1);
  });

  test("an out-of-order event bridges two sessions into one", () => {
    const s = new SessionWindows(10);
    s.add(0);
    s.add(25);
    s.add(100);
    // [12, 22) touches neither [0, 10) nor [25, 35): a session of its own.
    assert.deepEqual(s.add(12), { window: { start: 12, end: 22 }, merged: [] });
    assert.equal(s.size, 4);
    // [8, 18) overlaps [0, 10) and [12, 22), and [15, 25) then touches [25, 35).
    s.add(8);
    const result = s.add(15);
    assert.deepEqual(result.window, { start: 0, end: 35 });
    assert.deepEqual(result.merged, [
      { start: 0, end: 22 },
      { start: 25, end: 35 },
    ]);
    assert.deepEqual(s.windows(), [
      { start: 0, end: 35 },
      { start: 100, end: 110 },
    ]);
  });

  test("an earlier event opens a session before the others, kept sorted", () => {
    const s = new SessionWindows(5);
    s.add(100);
    s.add(50);
    s.add(0);
    assert.deepEqual(
      s.windows().map((w) => w.start),
      [0, 50, 100],
    );
  });

  test("restores from windows, merging overlaps; rejects empty windows", () => {
    const s = new SessionWindows(10, [
      { start: 30, end: 40 },
      { start: 0, end: 10 },
      { start: 5, end: 20 },
    ]);
    assert.deepEqual(s.windows(), [
      { start: 0, end: 20 },
      { start: 30, end: 40 },
    ]);
    assert.throws(
      () => new SessionWindows(10, [{ start: 5, end: 5 }]),
      /session window \[5, 5\) is empty/,
    );
  });

  test("windows() returns copies", () => {
    const s = new SessionWindows(10);
    s.add(0);
    const [first] = s.windows();
    assert.ok(first);
    (first as { end: number }).end = 999;
    assert.deepEqual(s.windows(), [{ start: 0, end: 10 }]);
  });

  test("takeComplete removes sessions whose end passed the watermark, honouring lateness", () => {
    const s = new SessionWindows(10);
    s.add(0); // [0, 10)
    s.add(50); // [50, 60)
    assert.deepEqual(s.takeComplete(8), []);
    assert.deepEqual(s.takeComplete(9), [{ start: 0, end: 10 }]);
    assert.deepEqual(s.takeComplete(60, 5), []);
    assert.deepEqual(s.takeComplete(64, 5), [{ start: 50, end: 60 }]);
    assert.equal(s.size, 0);
    assert.deepEqual(s.takeComplete(NO_WATERMARK), []);
  });
});

describe("lateness", () => {
  const window = { start: 0, end: 10 };

  test("a window is complete once its last instant is at or below the watermark", () => {
    assert.equal(maxTimestamp(window), 9);
    assert.equal(isWindowComplete(window, 8), false);
    assert.equal(isWindowComplete(window, 9), true);
    assert.equal(isWindowComplete(window, NO_WATERMARK), false);
  });

  test("without a window: late when timestamp + lateness <= watermark", () => {
    assert.equal(isLate(5, 0, undefined, 4), false);
    assert.equal(isLate(5, 0, undefined, 5), true);
    assert.equal(isLate(5, 3, undefined, 7), false);
    assert.equal(isLate(5, 3, undefined, 8), true);
    assert.equal(isLate(5, 0, undefined, NO_WATERMARK), false);
  });

  test("with a window: late once the window's cleanup time passed", () => {
    // The event is behind the watermark, but its window is still open.
    assert.equal(isLate(2, 0, window, 8), false);
    assert.equal(isLate(2, 0, window, 9), true);
    assert.equal(isLate(2, 100, window, 108), false);
    assert.equal(isLate(2, 100, window, 109), true);
  });

  test("rejects negative lateness", () => {
    assert.throws(() => isLate(0, -1, undefined, 0), /allowed lateness must be >= 0/);
  });
});

describe("WatermarkTracker", () => {
  test("no partitions, no events: no watermark", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 5 });
    assert.equal(w.watermark(0), NO_WATERMARK);
    assert.equal(w.current, NO_WATERMARK);
  });

  test("one partition: max seen - bound - 1, out-of-order events do not move it back", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 5 });
    w.observe("p0", 100, 0);
    assert.equal(w.watermark(0), 94);
    w.observe("p0", 90, 1);
    assert.equal(w.watermark(1), 94);
    w.observe("p0", 120, 2);
    assert.equal(w.watermark(2), 114);
    // An event within the bound is not late; one beyond it is.
    assert.equal(w.isLate(115), false);
    assert.equal(w.isLate(114), true);
  });

  test("zero bound: watermark is just below the newest event", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0 });
    w.observe("p0", 100, 0);
    assert.equal(w.watermark(0), 99);
    assert.equal(w.isLate(100), false);
  });

  test("minimum over partitions", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 10 });
    w.observe("a", 500, 0);
    w.observe("b", 200, 0);
    assert.equal(w.watermark(0), 189);
    w.observe("b", 800, 1);
    assert.equal(w.watermark(1), 489);
    assert.deepEqual(w.partitions().sort(), ["a", "b"]);
  });

  test("a registered partition without events holds the watermark until it idles", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 1000 });
    w.register("a", 0);
    w.register("b", 0);
    w.observe("a", 500, 100);
    assert.equal(w.watermark(100), NO_WATERMARK);
    assert.equal(w.watermark(1000), NO_WATERMARK);
    assert.equal(w.isIdle("b", 1000), false);
    // Idle only after *more* than the timeout.
    assert.equal(w.isIdle("b", 1001), true);
    assert.equal(w.watermark(1001), 499);
  });

  test("an idle partition stops holding the watermark back; an event reactivates it", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 1000 });
    w.observe("fast", 10_000, 0);
    w.observe("slow", 100, 0);
    assert.equal(w.watermark(500), 99);
    w.observe("fast", 20_000, 1500);
    assert.equal(w.isIdle("slow", 1500), true);
    assert.equal(w.watermark(1500), 19_999);
    // Back with an event behind the watermark: the watermark holds (never decreases)...
    w.observe("slow", 5000, 1600);
    assert.equal(w.isIdle("slow", 1600), false);
    assert.equal(w.watermark(1600), 19_999);
    assert.equal(w.isLate(5000), true);
    // ...and the slow partition holds it back again until it catches up.
    w.observe("fast", 30_000, 1700);
    assert.equal(w.watermark(1700), 19_999);
    w.observe("slow", 25_000, 1800);
    assert.equal(w.watermark(1800), 24_999);
  });

  test("held (records still to come), a silent partition is not idle; the timeout counts from then", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 1000 });
    w.observe("fast", 10_000, 0);
    w.observe("slow", 100, 0);
    w.hold(5000);
    w.observe("fast", 20_000, 5000);
    assert.equal(w.isIdle("slow", 5000), false);
    assert.equal(w.watermark(6000), 99);
    w.observe("fast", 21_000, 6001);
    assert.equal(w.isIdle("slow", 6001), true);
    assert.equal(w.watermark(6001), 20_999);
  });

  test("all partitions idle: the watermark holds", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 10 });
    w.observe("a", 100, 0);
    w.observe("b", 50, 0);
    assert.equal(w.watermark(5), 49);
    assert.equal(w.watermark(100), 49);
  });

  test("without idleTimeoutMs a partition never idles", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0 });
    w.observe("a", 100, 0);
    w.observe("b", 50, 0);
    assert.equal(w.isIdle("b", Number.MAX_SAFE_INTEGER), false);
    assert.equal(w.watermark(Number.MAX_SAFE_INTEGER), 49);
  });

  test("unregistering a partition releases the watermark", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0 });
    w.observe("a", 100, 0);
    w.register("b", 0);
    assert.equal(w.watermark(0), NO_WATERMARK);
    assert.equal(w.unregister("b"), true);
    assert.equal(w.unregister("b"), false);
    assert.equal(w.watermark(0), 99);
  });

  test("isLate with a window uses the current watermark", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0 });
    w.observe("a", 20, 0);
    w.watermark(0); // 19
    assert.equal(w.isLate(5, 0, { start: 0, end: 20 }), true);
    assert.equal(w.isLate(5, 0, { start: 0, end: 21 }), false);
    assert.equal(w.isLate(5, 1, { start: 0, end: 20 }), false);
  });

  test("rejects bad options and inputs", () => {
    assert.throws(
      () => new WatermarkTracker({ maxOutOfOrdernessMs: -1 }),
      /maxOutOfOrdernessMs must be >= 0/,
    );
    assert.throws(
      () => new WatermarkTracker({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 0 }),
      /idleTimeoutMs must be > 0/,
    );
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0 });
    assert.throws(() => w.observe("a", Number.NaN, 0), /event timestamp must be a finite number/);
    assert.throws(() => w.observe("a", 0, Number.NaN), /now must be a finite number/);
    assert.throws(() => w.isIdle("nope", 0), /partition nope is not tracked/);
  });
});

test("event timestamps are whole milliseconds", () => {
  assert.doesNotThrow(() => requireTimestamp("event timestamp", -5));
  for (const bad of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    assert.throws(
      () => requireTimestamp("event timestamp", bad),
      /event timestamp must be an integer of milliseconds \(Kafka timestamps are int64\), got/,
    );
  }
});

describe("WatermarkTracker.allIdle", () => {
  test("true once every partition is idle, false again with an event", () => {
    const w = new WatermarkTracker({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 100 });
    w.register("a", 0);
    w.register("b", 0);
    w.observe("a", 5, 50);
    assert.equal(w.allIdle(120), false);
    assert.equal(w.allIdle(151), true);
    w.observe("b", 5, 160);
    assert.equal(w.allIdle(160), false);
  });
});

describe("UpstreamWatermarks", () => {
  test("the minimum over upstream tasks, held until each has been heard from", () => {
    const w = new UpstreamWatermarks(3, 0);
    w.heard(0, 50_000, false, 10);
    w.heard(2, 30_000, false, 10);
    assert.equal(w.watermark(10), NO_WATERMARK, "task 1 not heard from yet");
    w.heard(1, 10_000, false, 20);
    assert.equal(w.watermark(20), 10_000);
    // A task's watermark never goes back (a restarted upstream task recomputing its own).
    w.heard(1, 5000, false, 30);
    w.heard(1, 40_000, false, 30);
    assert.equal(w.watermark(30), 30_000);
  });

  test("a task never heard from, or silent however long, holds the watermark", () => {
    const w = new UpstreamWatermarks(2, 0);
    w.heard(0, 7000, false, 500);
    assert.equal(w.watermark(3_600_000), NO_WATERMARK, "task 1 not heard from in an hour");
    w.heard(1, 5000, false, 3_600_000);
    w.heard(0, 9000, false, 7_200_000);
    assert.equal(w.watermark(7_200_000), 5000, "task 1 silent for an hour: down, not idle");
    assert.equal(w.allIdle(7_200_000), false);
  });

  test("announced idle: left out; heard from again: back in, never going back", () => {
    const w = new UpstreamWatermarks(2, 0);
    w.heard(0, 20_000, false, 0);
    w.heard(1, 10_000, true, 0);
    assert.equal(w.watermark(0), 20_000, "task 1 announced itself idle");
    w.heard(1, 12_000, false, 100);
    assert.equal(w.watermark(100), 20_000, "back, behind: the watermark holds");
    w.heard(0, 40_000, false, 200);
    w.heard(1, 35_000, false, 200);
    assert.equal(w.watermark(200), 35_000);
    assert.equal(w.allIdle(200), false);
    w.heard(0, 45_000, true, 300);
    w.heard(1, 35_000, true, 300);
    assert.equal(w.allIdle(300), true);
    assert.equal(w.watermark(300), 35_000, "nobody active: the watermark holds");
  });

  test("restored, each task's last watermark counts from the restore, as if just heard", () => {
    const before = new UpstreamWatermarks(3, 0);
    before.heard(0, 50_000, false, 0);
    before.heard(1, 20_000, false, 0);
    before.heard(2, 9000, true, 0);
    const saved = before.saved();
    assert.deepEqual(saved, [
      [0, 50_000, false],
      [1, 20_000, false],
      [2, 9000, true],
    ]);
    // Restored long after: no jump past the slow task 1, which still counts (task 2 is idle).
    const after = new UpstreamWatermarks(3, 100_000, saved);
    assert.equal(after.watermark(100_000), 20_000);
    after.heard(0, 60_000, false, 100_100);
    assert.equal(after.watermark(200_000), 20_000);
    assert.deepEqual(new UpstreamWatermarks(2, 0).saved(), []);
    assert.throws(
      () => new UpstreamWatermarks(0, 0),
      /upstream tasks must be a positive integer, got 0/,
    );
  });
});

describe("WatermarkAnnouncements", () => {
  test("each partition once at first, then where the watermark moved past what it was told", () => {
    const a = new WatermarkAnnouncements(3);
    assert.deepEqual(a.due(NO_WATERMARK, false), [0, 1, 2]);
    assert.deepEqual(a.due(NO_WATERMARK, false), []);
    a.sent(1, 500);
    assert.deepEqual(a.due(500, false), [0, 2], "a data record told partition 1");
    assert.deepEqual(a.due(500, false), []);
  });

  test("going idle and coming back are told; nothing else, however long", () => {
    const a = new WatermarkAnnouncements(2);
    a.due(100, false);
    assert.deepEqual(a.due(100, false), []);
    assert.deepEqual(a.due(100, true), [0, 1], "idle");
    assert.deepEqual(a.due(100, true), []);
    assert.deepEqual(a.due(100, false), [0, 1], "back");
    assert.throws(
      () => new WatermarkAnnouncements(0),
      /repartition partitions must be a positive integer, got 0/,
    );
  });
});
