import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultPartitioner } from "@platformatic/kafka";
import { type Click, clicksPerUser } from "../../examples/clicks-per-user.ts";
import {
  clicksPerMinute,
  type GoldenOutput,
  laggingClicks,
  seededRandom,
} from "../../examples/golden.ts";
import { type Job, job, kafkaSink, kafkaSource, logSink, type Stage } from "../api/job.ts";
import { TaskState } from "../state/keyed-state.ts";
import { decodeRepartition } from "./element-codec.ts";
import {
  compile,
  createTask,
  type InputRecord,
  type OutputRecord,
  type StepResult,
  type TaskPipeline,
} from "./pipeline.ts";
import { NO_WATERMARK, session, sliding, tumbling } from "./time.ts";

let offset = 0n;
function rec(
  value: string | null,
  timestamp: number,
  partition = 0,
  key: string | null = null,
): InputRecord {
  return {
    key: key === null ? null : Buffer.from(key),
    value: value === null ? null : Buffer.from(value),
    timestamp,
    partition,
    offset: offset++,
  };
}

const json = (value: unknown, ts: number, partition = 0) =>
  rec(JSON.stringify(value), ts, partition);

/** Outputs as comparable plain data (JSON values decoded). */
function show(outputs: readonly OutputRecord[]): unknown[] {
  return outputs.map((o) => ({
    topic: o.topic,
    key: o.key?.toString() ?? null,
    value: JSON.parse(o.value.toString()),
    timestamp: o.timestamp,
  }));
}

function task(j: Job, stage = 0, state = new TaskState(), partitions = [0]): TaskPipeline {
  const s = compile(j).stages[stage];
  assert.ok(s, `stage ${stage}`);
  return createTask(s, state, { partitions, now: 0 });
}

/** Internal repartition records as the next stage reads them (one partition here). */
function asInput(outputs: readonly OutputRecord[], partition = 0): InputRecord[] {
  return outputs.map((o) => ({
    key: o.key,
    value: o.value,
    timestamp: o.timestamp,
    partition,
    offset: offset++,
  }));
}

const clicks = () =>
  kafkaSource<{ user: string; ts: number }>({
    topic: "clicks",
    value: "json",
    timestamp: (r) => r.value.ts,
  }).withWatermarks({ maxOutOfOrdernessMs: 0 });

describe("stateless steps and sinks", () => {
  test("map, filter, flatMap and sink encodings", () => {
    const j = job("words")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .flatMap((line) => line.split(" "))
      .filter((w) => w !== "skip")
      .map((w) => ({ w, n: w.length }))
      .sink(kafkaSink({ topic: "out", key: (o) => o.w }), logSink());
    const t = task(j);
    const out = t.process([rec("a bb skip", 7)], 100);
    assert.deepEqual(show(out), [
      { topic: "out", key: "a", value: { w: "a", n: 1 }, timestamp: 7 },
      { topic: "out", key: "bb", value: { w: "bb", n: 2 }, timestamp: 7 },
    ]);
    assert.deepEqual(out.logs, [
      { value: { w: "a", n: 1 }, timestamp: 7 },
      { value: { w: "bb", n: 2 }, timestamp: 7 },
    ]);
    assert.deepEqual(t.metrics(), {
      recordsIn: 1,
      recordsOut: 2,
      logRecords: 2,
      failures: 0,
      lateRecords: 0,
      lateDropped: 0,
    });
  });

  test("string and bytes sink formats check their outputs", () => {
    const j = job("fmt")
      .source(kafkaSource({ topic: "in", value: "bytes" }))
      .map((b) => (b.length > 1 ? b : b.length))
      .sink(kafkaSink({ topic: "out", value: "bytes" }));
    const out = task(j).process([rec("xy", 1), rec("z", 2)], 0);
    assert.deepEqual(
      out.map((o) => o.value.toString()),
      ["xy"],
    );
    assert.match(out.failures[0]?.error.message ?? "", /bytes/);
    assert.equal(out.failures[0]?.operator, "sink");
  });
});

describe("failures are returned, never lost", () => {
  test("undecodable records and throwing user code", () => {
    const j = job("f")
      .source(kafkaSource<{ n: number }>({ topic: "in", value: "json" }))
      .flatMap((e) => [e.n, e.n * 10])
      .map((n) => {
        if (n === 20) throw new Error("twenty");
        return n;
      })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j);
    const bad = rec("{not json", 1);
    const throws = json({ n: 2 }, 2);
    const tomb = rec(null, 3);
    const out = t.process([json({ n: 1 }, 1), bad, throws, tomb, json({ n: 3 }, 4)], 0);
    assert.deepEqual(
      show(out).map((o) => (o as { value: number }).value),
      [1, 10, 3, 30],
    );
    // The record whose second output threw produced nothing (not even its first output, 2).
    assert.deepEqual(
      out.failures.map((f) => [f.record, f.operator, f.stage]),
      [
        [bad, "source", 0],
        [throws, "map", 0],
        [tomb, "source", 0],
      ],
    );
    assert.equal(out.failures[1]?.error.message, "twenty");
    assert.deepEqual(t.metrics(), {
      recordsIn: 5,
      recordsOut: 4,
      logRecords: 0,
      failures: 3,
      lateRecords: 0,
      lateDropped: 0,
    });
  });

  test("a throwing keyed operator is named", () => {
    const j = job("g")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .keyBy(() => "k", { repartition: false })
      .reduce("concat", (a, b) => {
        if (b === "boom") throw new TypeError("no");
        return a + b;
      })
      .sink(kafkaSink({ topic: "out" }));
    const out = task(j).process([rec("a", 1), rec("boom", 2)], 0);
    assert.equal(out.length, 1);
    assert.equal(out.failures[0]?.operator, "concat");
    assert.ok(out.failures[0]?.error instanceof TypeError);
  });
});

describe("keyed running operators", () => {
  test("reduce and aggregate emit the running result per key", () => {
    const j = job("sum")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .map((s) => Number(s))
      .keyBy((n) => (n % 2 === 0 ? "even" : "odd"), { repartition: false })
      .reduce("sums", (a, b) => a + b)
      .keyBy((r) => r.key, { repartition: false })
      .aggregate("avg", {
        init: () => ({ n: 0, sum: 0 }),
        add: (acc, r) => ({ n: acc.n + 1, sum: acc.sum + r.value }),
        result: (acc) => acc.sum / acc.n,
      })
      .sink(kafkaSink({ topic: "out" }));
    const out = task(j).process(
      ["1", "2", "3", "4"].map((v, i) => rec(v, i)),
      0,
    );
    assert.deepEqual(
      show(out).map((o) => (o as { value: unknown }).value),
      [
        { key: "odd", value: 1 },
        { key: "even", value: 2 },
        { key: "odd", value: 2.5 }, // sums 1, 4 → average 2.5
        { key: "even", value: 4 }, // sums 2, 6
      ],
    );
    assert.deepEqual(compile(j).operatorNames, ["sums", "avg"]);
  });
});

describe("process functions with state and timers", () => {
  // Emits the count of a key's records 1 s of event time after its first one, and a
  // "timeout" 5 s of processing time after its last one.
  const timersJob = job("timers")
    .source(clicks())
    .keyBy((c) => c.user)
    .process<string>("sessionize", {
      process(_click, ctx) {
        const count = ctx.state.value<number>("count");
        const n = (count.get(ctx.key, ctx.now) ?? 0) + 1;
        count.set(ctx.key, n, ctx.now);
        if (n === 1) ctx.timers.registerEventTime(ctx.timestamp + 1000);
        ctx.timers.registerProcessingTime(ctx.now + 5000);
      },
      onTimer(at, ctx) {
        const n = ctx.state.value<number>("count").get(ctx.key, ctx.now);
        ctx.emit(`${ctx.timeDomain} ${ctx.key} ${at} ${String(n)}`);
      },
    })
    .sink(logSink());

  test("event-time and processing-time timers fire in time order", () => {
    const s0 = task(timersJob);
    const s1 = task(timersJob, 1);
    const input = asInput(
      s0.process(
        [
          json({ user: "a", ts: 1000 }, 0),
          json({ user: "b", ts: 1500 }, 0),
          json({ user: "a", ts: 1800 }, 0),
        ],
        0,
      ),
    );
    assert.equal(input.length, 4, "three clicks, then the watermark they moved");
    const first = s1.process(input, 100);
    // Watermark 1799: a's timer at 2000 is not due yet.
    assert.deepEqual(first.logs, []);
    assert.deepEqual([...first], []);
    const second = s1.process(asInput(s0.process([json({ user: "c", ts: 2600 }, 0)], 0)), 200);
    assert.deepEqual(
      second.logs.map((l) => l.value),
      ["event-time a 2000 2", "event-time b 2500 1"],
    );
    assert.deepEqual(second.logs[0]?.timestamp, 2000);
    const third = s1.advanceTime(5200);
    assert.deepEqual(
      third.logs.map((l) => l.value),
      ["processing-time a 5100 2", "processing-time b 5100 1", "processing-time c 5200 1"],
    );
    assert.deepEqual(s1.advanceTime(100_000).logs, []);
  });

  test("many timers, registered again and again, fire once each in time order across restores", () => {
    // Timers are found through an index rebuilt from state on restore: each registered
    // (key, time) fires exactly once, in (time, key) order, however often it was registered,
    // whether or not the task was restored in between, and a timer due at once (registered
    // from onTimer) fires in the same advance.
    const random = seededRandom(16);
    const many = job("many-timers")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .process<string>("remind", {
        process(click, ctx) {
          ctx.timers.registerEventTime((click as unknown as { at: number }).at);
        },
        onTimer(at, ctx) {
          ctx.emit(`${at} ${ctx.key}`);
          if (at % 700 === 0) ctx.timers.registerEventTime(at + 1);
        },
      })
      .sink(logSink());
    const registered = new Set<string>();
    const batches = Array.from({ length: 30 }, (_, b) =>
      Array.from({ length: 40 }, (_, i) => {
        const ts = b * 1000 + i * 20;
        const user = `u${Math.floor(random() * 25)}`;
        const at = ts + 100 * Math.floor(random() * 40);
        registered.add(`${at} ${user}`);
        if (at % 700 === 0) registered.add(`${at + 1} ${user}`);
        return json({ user, ts, at }, 0);
      }),
    );
    const fired = (cuts: Set<number>) => {
      let state = new TaskState();
      let t = task(many, 0, state);
      const logs: string[] = [];
      for (const [i, batch] of batches.entries()) {
        for (const log of t.process(batch, i).logs) logs.push(log.value as string);
        if (cuts.has(i)) {
          state = TaskState.restore(state.snapshot(i));
          t = task(many, 0, state);
        }
      }
      const last = t.advanceTime(batches.length, Number.POSITIVE_INFINITY);
      for (const log of last.logs) logs.push(log.value as string);
      return logs;
    };
    const byTime = (a: string, b: string) => {
      const [atA, keyA] = a.split(" ");
      const [atB, keyB] = b.split(" ");
      return Number(atA) - Number(atB) || ((keyA ?? "") < (keyB ?? "") ? -1 : 1);
    };
    const whole = fired(new Set());
    assert.ok(registered.size > 900, `enough timers (${registered.size})`);
    assert.equal(new Set(whole).size, whole.length, "no timer fires twice");
    assert.deepEqual([...whole].sort(byTime), [...registered].sort(byTime), "every timer fires");
    // Timers registered from onTimer come in a later round of the same advance.
    const first = whole.filter((t) => Number(t.split(" ")[0]) % 700 !== 1);
    assert.deepEqual(first, [...first].sort(byTime), "in (time, key) order");
    for (const t of whole.filter((t) => Number(t.split(" ")[0]) % 700 === 1)) {
      const [at, key] = t.split(" ");
      assert.ok(
        whole.indexOf(`${Number(at) - 1} ${key}`) < whole.indexOf(t),
        `${t} after its cause`,
      );
    }
    assert.deepEqual(fired(new Set([0, 7, 8, 19, 28])), whole, "restored in between: the same");
  });

  test("reserved state names and timers without onTimer are refused", () => {
    const j = job("bad")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .keyBy((s) => s, { repartition: false })
      .process("p", (v, ctx) => {
        if (v === "reserved") ctx.state.value("_acc");
        else ctx.timers.registerEventTime(1);
      })
      .sink(logSink());
    const out = task(j).process([rec("reserved", 1), rec("timer", 1)], 0);
    assert.match(out.failures[0]?.error.message ?? "", /reserved/);
    assert.match(out.failures[1]?.error.message ?? "", /no onTimer/);
  });

  test("state TTL applies to process state", () => {
    const j = job("ttl")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .keyBy((s) => s, { repartition: false })
      .process<number>("seen", (_v, ctx) => {
        const seen = ctx.state.value<number>("n", { ttlMs: 1000 });
        const n = (seen.get(ctx.key, ctx.now) ?? 0) + 1;
        seen.set(ctx.key, n, ctx.now);
        ctx.emit(n);
      })
      .sink(logSink());
    const t = task(j);
    const values = [0, 500, 1600].flatMap((now) =>
      t.process([rec("k", 1)], now).logs.map((l) => l.value),
    );
    assert.deepEqual(values, [1, 2, 1]);
  });
});

describe("windows", () => {
  const count = { init: () => 0, add: (n: number) => n + 1 };

  function windowJob(options: {
    allowedLatenessMs?: number;
    lateRecords?: "drop" | "side-output";
  }) {
    return job("w")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .window("per-10s", tumbling(10_000), { aggregate: count, ...options })
      .sink(kafkaSink({ topic: "out" }));
  }

  test("tumbling windows fire when the watermark passes their end", () => {
    const t = task(windowJob({}));
    const a = t.process(
      [
        json({ user: "a", ts: 1000 }, 0),
        json({ user: "b", ts: 5000 }, 0),
        json({ user: "a", ts: 9999 }, 0),
      ],
      0,
    );
    assert.deepEqual([...a], []); // watermark 9998
    const b = t.process([json({ user: "a", ts: 10_000 }, 0)], 0);
    assert.deepEqual(show(b), [
      {
        topic: "out",
        key: null,
        value: { key: "a", window: { start: 0, end: 10_000 }, value: 2 },
        timestamp: 9999,
      },
      {
        topic: "out",
        key: null,
        value: { key: "b", window: { start: 0, end: 10_000 }, value: 1 },
        timestamp: 9999,
      },
    ]);
    // Flushing at the end of input: an explicit watermark.
    const c = t.advanceTime(0, Number.POSITIVE_INFINITY);
    assert.deepEqual(
      show(c).map((o) => (o as { value: unknown }).value),
      [{ key: "a", window: { start: 10_000, end: 20_000 }, value: 1 }],
    );
  });

  test("late records: dropped and counted, or side output", () => {
    for (const lateRecords of ["drop", "side-output"] as const) {
      const t = task(windowJob({ lateRecords }));
      t.process([json({ user: "a", ts: 25_000 }, 0)], 0);
      const out = t.process([json({ user: "a", ts: 3000 }, 0)], 0);
      assert.equal(t.metrics().lateRecords, 1);
      assert.equal(t.metrics().lateDropped, lateRecords === "drop" ? 1 : 0);
      assert.deepEqual(
        show(out),
        lateRecords === "drop"
          ? []
          : [
              {
                topic: "w-per-10s-late",
                key: "a",
                value: { user: "a", ts: 3000 },
                timestamp: 3000,
              },
            ],
      );
    }
    assert.deepEqual(compile(windowJob({ lateRecords: "side-output" })).stages[0]?.sinkTopics, [
      "out",
      "w-per-10s-late",
    ]);
  });

  test("allowed lateness updates a fired window, then cleans it up", () => {
    const t = task(windowJob({ allowedLatenessMs: 5000 }));
    t.process([json({ user: "a", ts: 1000 }, 0)], 0);
    const fired = t.process([json({ user: "a", ts: 12_000 }, 0)], 0); // watermark 11999
    assert.equal(show(fired).length, 1);
    const update = t.process([json({ user: "a", ts: 2000 }, 0)], 0);
    assert.deepEqual(
      show(update).map((o) => (o as { value: { value: number } }).value.value),
      [2],
    );
    t.process([json({ user: "a", ts: 15_000 }, 0)], 0); // watermark 14999: cleanup time passed
    const late = t.process([json({ user: "a", ts: 3000 }, 0)], 0);
    assert.deepEqual([...late], []);
    assert.equal(t.metrics().lateRecords, 1);
  });

  test("sliding windows", () => {
    const j = job("s")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .window("slide", sliding(10_000, 5000), { aggregate: count })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j);
    const out = [
      ...t.process([json({ user: "a", ts: 7000 }, 0), json({ user: "a", ts: 12_000 }, 0)], 0),
      ...t.advanceTime(0, Number.POSITIVE_INFINITY),
    ];
    assert.deepEqual(
      show(out).map((o) => {
        const v = (o as { value: { window: { start: number }; value: number } }).value;
        return [v.window.start, v.value];
      }),
      [
        [0, 1],
        [5000, 2],
        [10_000, 1],
      ],
    );
  });

  test("session windows merge, with merge()", () => {
    const j = job("sess")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .window("sessions", session(1000), {
        aggregate: { ...count, merge: (a: number, b: number) => a + b },
      })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j);
    const first = t.process(
      [
        json({ user: "a", ts: 0 }, 0),
        json({ user: "a", ts: 1500 }, 0),
        json({ user: "a", ts: 800 }, 0), // bridges [0,1000) and [1500,2500)
        json({ user: "a", ts: 5000 }, 0),
      ],
      0,
    );
    const out = [...first, ...t.advanceTime(0, Number.POSITIVE_INFINITY)];
    assert.deepEqual(
      show(out).map((o) => (o as { value: unknown }).value),
      [
        { key: "a", window: { start: 0, end: 2500 }, value: 3 },
        { key: "a", window: { start: 5000, end: 6000 }, value: 1 },
      ],
    );
  });

  test("an idle partition does not hold the watermark back; a silent one does", () => {
    const j = job("idle")
      .source(
        kafkaSource<{ user: string; ts: number }>({
          topic: "clicks",
          value: "json",
          timestamp: (r) => r.value.ts,
        }).withWatermarks({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 1000 }),
      )
      .keyBy((c) => c.user, { repartition: false })
      .window("win", tumbling(10_000), { aggregate: count })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j, 0, new TaskState(), [0, 1]);
    assert.deepEqual(
      [...t.process([json({ user: "a", ts: 15_000 }, 0), json({ user: "a", ts: 1 }, 0)], 500)],
      [],
    );
    // Partition 1 had no record for more than 1 s: it stops holding the watermark back.
    const out = t.process([json({ user: "a", ts: 16_000 }, 0)], 1600);
    assert.equal(show(out).length, 1);
    assert.equal(t.watermark, 15_999);
  });

  test("a partition whose records are late in coming (the source busy) is not idle", () => {
    const j = job("busy")
      .source(
        kafkaSource<{ user: string; ts: number }>({
          topic: "clicks",
          value: "json",
          timestamp: (r) => r.value.ts,
        }).withWatermarks({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 1000 }),
      )
      .keyBy((c) => c.user, { repartition: false })
      .window("win", tumbling(10_000), { aggregate: count })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j, 0, new TaskState(), [0, 1]);
    t.process([json({ user: "a", ts: 15_000 }, 0), json({ user: "a", ts: 1 }, 0, 1)], 0);
    // The task is behind its source's end, or its broker is away, for 5 s: partition 1's
    // silence is no idleness, and its clicks (behind partition 0's) are not late once they come.
    for (let now = 500; now <= 5000; now += 500) t.sourceBusy(now);
    assert.deepEqual(show(t.process([json({ user: "a", ts: 16_000 }, 0)], 5000)), []);
    assert.equal(t.watermark, 0);
    t.process([json({ user: "a", ts: 2 }, 0, 1)], 5100);
    assert.equal(t.metrics().lateRecords, 0);
    // At its end, the silence counts: idle once the timeout has passed since its last click.
    const fired = show(t.process([json({ user: "a", ts: 17_000 }, 0)], 6200));
    assert.deepEqual(fired, [
      {
        topic: "out",
        key: null,
        value: { key: "a", window: { start: 0, end: 10_000 }, value: 2 },
        timestamp: 9999,
      },
    ]);
    assert.equal(t.watermark, 16_999);
  });
});

describe("snapshot and restore", () => {
  /** Runs `batches` through stage `stage` of `j`, snapshotting and restoring after `cut`. */
  function run(j: Job, stage: number, batches: InputRecord[][], cut?: number): unknown[] {
    let state = new TaskState();
    let t = task(j, stage, state);
    const seen: unknown[] = [];
    const collect = (r: StepResult) => {
      seen.push(...show(r));
      seen.push(...r.logs);
    };
    for (const [i, batch] of batches.entries()) {
      const now = 1000 * (i + 1);
      collect(t.process(batch, now));
      if (i === cut) {
        const snapshot = state.snapshot(now);
        state = TaskState.restore(snapshot);
        t = task(j, stage, state);
      }
    }
    collect(t.advanceTime(1000 * (batches.length + 10)));
    collect(t.advanceTime(1000 * (batches.length + 11), Number.POSITIVE_INFINITY));
    return seen;
  }

  const windowed = job("restore")
    .source(
      kafkaSource<{ user: string; ts: number }>({
        topic: "clicks",
        value: "json",
        timestamp: (r) => r.value.ts,
      }).withWatermarks({ maxOutOfOrdernessMs: 2000 }),
    )
    .keyBy((c) => c.user, { repartition: false })
    .window("win", tumbling(5000), {
      aggregate: { init: () => [] as number[], add: (acc, c) => [...acc, c.ts] },
      allowedLatenessMs: 3000,
    })
    .keyBy((w) => w.key, { repartition: false })
    .process<string>("echo", {
      process(w, ctx) {
        ctx.timers.registerEventTime(w.window.end + 4000);
        ctx.timers.registerProcessingTime(ctx.now + 2500);
        ctx.emit(`window ${w.window.start} ${w.value.join(",")}`);
      },
      onTimer(at, ctx) {
        ctx.emit(`${ctx.timeDomain} ${at}`);
      },
    })
    .sink(logSink());

  const users = ["a", "b", "c"];
  const batches = Array.from({ length: 8 }, (_, b) =>
    Array.from({ length: 5 }, (_, i) => {
      const n = b * 5 + i;
      // Out of order by up to 4 s: some records are late-but-allowed, some too late.
      const ts = n * 700 - (n % 3 === 0 ? 4000 : 0);
      return json({ user: users[n % 3], ts: Math.max(0, ts) }, 0);
    }),
  );

  test("a restored task produces what an uninterrupted one does", () => {
    const whole = run(windowed, 0, batches);
    assert.ok(whole.length > 20, `enough outputs to compare (${whole.length})`);
    for (const cut of [0, 2, 3, 5])
      assert.deepEqual(run(windowed, 0, batches, cut), whole, `cut ${cut}`);
  });

  test("window contents, timers and the watermark are in the snapshot", () => {
    const state = new TaskState();
    const t = task(windowed, 0, state);
    for (const batch of batches.slice(0, 4)) t.process(batch, 1000);
    const restored = TaskState.restore(state.snapshot(1000));
    assert.deepEqual(restored.operatorNames(), ["echo", "win"]);
    assert.deepEqual(restored.operator("win").stateNames(), ["_time", "_windows"]);
    assert.deepEqual(restored.operator("echo").stateNames(), ["_time", "_timers"]);
    const fresh = task(windowed, 0, restored);
    assert.equal(fresh.watermark, t.watermark);
    assert.ok(t.watermark > 0);
  });

  test("a restored task judges lateness by the watermark it had", () => {
    // Without the saved clock, the restored task would take the too-late record at 2000 as on
    // time and fire window [0, 5000) a second time.
    const late = [
      [json({ user: "a", ts: 1000 }, 0), json({ user: "a", ts: 20_000 }, 0)],
      [json({ user: "a", ts: 2000 }, 0)],
      [json({ user: "a", ts: 21_000 }, 0)],
    ];
    const whole = run(windowed, 0, late);
    assert.equal(
      whole.filter((o) => String((o as { value: unknown }).value).startsWith("window 0")).length,
      1,
    );
    assert.deepEqual(run(windowed, 0, late, 0), whole);
  });
});

describe("units of work: a failure takes nothing else with it", () => {
  const count = { init: () => 0, add: (n: number) => n + 1 };

  test("a window whose result throws: the other windows fire, it is one Failure, reported once", () => {
    const j = job("wf")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .window("per-10s", tumbling(10_000), {
        aggregate: {
          ...count,
          result: (n) => {
            if (n === 2) throw new Error("two is bad");
            return n;
          },
        },
      })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j);
    t.process(
      [
        json({ user: "a", ts: 1000 }, 0),
        json({ user: "b", ts: 2000 }, 0),
        json({ user: "b", ts: 3000 }, 0),
        json({ user: "c", ts: 4000 }, 0),
      ],
      0,
    );
    const out = t.process([json({ user: "a", ts: 20_000 }, 0)], 0);
    assert.deepEqual(
      show(out).map((o) => (o as { value: { key: string } }).value.key),
      ["a", "c"],
    );
    assert.equal(out.failures.length, 1);
    assert.deepEqual(
      [out.failures[0]?.record, out.failures[0]?.operator, out.failures[0]?.error.message],
      [null, "per-10s", "two is bad"],
    );
    assert.deepEqual(t.metrics().failures, 1);
    const later = t.process([json({ user: "a", ts: 30_000 }, 0)], 0);
    assert.deepEqual(
      later.failures.length,
      0,
      "the failed window counts as fired: not again at every advance",
    );
    assert.deepEqual(show(later).length, 1, "[10000, 20000) of a");
  });

  test("a window firing into a throwing stateful step: that step's writes are rolled back", () => {
    const j = job("wp")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .window("per-10s", tumbling(10_000), { aggregate: count })
      .keyBy((w) => w.key, { repartition: false })
      .process<string>("total", (w, ctx) => {
        const total = ctx.state.value<number>("total");
        const sum = (total.get(ctx.key, ctx.now) ?? 0) + w.value;
        total.set(ctx.key, sum, ctx.now);
        if (w.key === "b") throw new Error("not b");
        ctx.emit(`${w.key} ${sum}`);
      })
      .sink(logSink());
    const state = new TaskState();
    const t = task(j, 0, state);
    t.process([json({ user: "a", ts: 1000 }, 0), json({ user: "b", ts: 2000 }, 0)], 0);
    const out = t.process([json({ user: "c", ts: 15_000 }, 0)], 0);
    assert.deepEqual(
      out.logs.map((l) => l.value),
      ["a 1"],
    );
    assert.equal(out.failures[0]?.operator, "total");
    const totals = state.operator("total").value<number>("total");
    assert.deepEqual(totals.entries(0), [["a", 1]], "b's total was rolled back");
  });

  test("a throwing timer: the other timers fire; its state writes and timers are rolled back", () => {
    const j = job("tf")
      .source(clicks())
      .keyBy((c) => c.user)
      .process<string>("alarm", {
        process(_click, ctx) {
          ctx.timers.registerEventTime(ctx.timestamp + 1000);
        },
        onTimer(at, ctx) {
          ctx.state.value<number>("fired").set(ctx.key, at, ctx.now);
          ctx.timers.registerEventTime(at + 100_000);
          if (ctx.key === "b") throw new Error("b's timer");
          ctx.emit(`${ctx.key} ${at}`);
        },
      })
      .sink(logSink());
    const state = new TaskState();
    const s0 = task(j);
    const s1 = task(j, 1, state);
    const clicksAt = (...users: [string, number][]) =>
      asInput(
        s0.process(
          users.map(([user, ts]) => json({ user, ts }, 0)),
          0,
        ),
      );
    s1.process(clicksAt(["a", 100], ["b", 200], ["c", 300]), 0);
    const out = s1.process(clicksAt(["d", 1400]), 0);
    assert.deepEqual(
      out.logs.map((l) => l.value),
      ["a 1100", "c 1300"],
    );
    assert.deepEqual(
      out.failures.map((f) => [f.record, f.operator, f.error.message]),
      [[null, "alarm", "b's timer"]],
    );
    const alarm = state.operator("alarm");
    assert.deepEqual(alarm.value<number>("fired").keys(0), ["a", "c"]);
    // b's timer is gone (reported once, not at every advance), and so is the one it registered.
    assert.deepEqual(alarm.map("_timers").keys(0).sort(), ["a", "c", "d"]);
    assert.deepEqual(s1.process(clicksAt(["d", 1500]), 0).failures, []);
  });

  test("a record failing after an aggregate, in a map or a sink, leaves the count as it was", () => {
    for (const failAt of ["map", "sink"] as const) {
      const j = job("agg")
        .source(kafkaSource({ topic: "in", value: "string" }))
        .keyBy(() => "k", { repartition: false })
        .aggregate("count", {
          init: () => ({ n: 0, last: "" }),
          add: (acc, s: string) => ({ n: acc.n + 1, last: s }),
        })
        .map(({ value }) => {
          if (value.last !== "bad") return String(value.n);
          if (failAt === "map") throw new Error("bad record");
          return value; // not a string: the string sink refuses it
        })
        .sink(kafkaSink({ topic: "out", value: "string" }));
      const out = task(j).process([rec("good", 1), rec("bad", 2), rec("good", 3)], 0);
      assert.deepEqual(
        out.failures.map((f) => f.operator),
        [failAt],
      );
      assert.deepEqual(
        out.map((o) => o.value.toString()),
        ["1", "2"],
        `${failAt}: the failed record did not count`,
      );
    }
  });

  test("a record failing after a process step leaves neither its state nor its timers", () => {
    const j = job("pf")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .keyBy((s) => s, { repartition: false })
      .process<string>("remember", {
        process(v, ctx) {
          ctx.state.value<string>("seen").set(ctx.key, v, ctx.now);
          ctx.timers.registerProcessingTime(ctx.now + 10);
          ctx.emit(v);
        },
        onTimer(_at, ctx) {
          ctx.emit(`timer ${ctx.key}`);
        },
      })
      .map((v) => {
        if (v === "bad") throw new Error("bad");
        return v;
      })
      .sink(logSink());
    const state = new TaskState();
    const t = task(j, 0, state);
    const out = t.process([rec("good", 1), rec("bad", 2)], 0);
    assert.equal(out.failures[0]?.operator, "map");
    assert.deepEqual(state.operator("remember").value<string>("seen").keys(0), ["good"]);
    assert.deepEqual(
      t.advanceTime(100).logs.map((l) => l.value),
      ["timer good"],
    );
  });

  test("a record failing in its second window leaves its first window as it was", () => {
    const j = job("ww")
      .source(clicks())
      .keyBy((c) => c.user, { repartition: false })
      .window("slide", sliding(10_000, 5000), { aggregate: count, allowedLatenessMs: 60_000 })
      .map((w) => {
        if (w.window.start === 0) throw new Error("not this window");
        return w;
      })
      .sink(kafkaSink({ topic: "out" }));
    const state = new TaskState();
    const t = task(j, 0, state);
    t.process([json({ user: "x", ts: 30_000 }, 0)], 0);
    // Late within lateness: [-5000, 5000) and [0, 10000) fire at once, the second throws.
    const out = t.process([json({ user: "bad", ts: 1000 }, 0)], 0);
    assert.equal(out.length, 0);
    assert.equal(out.failures.length, 1);
    assert.deepEqual(state.operator("slide").map("_windows").keys(0), ["x"]);
  });

  test("a record failing after a late element of it leaves the late counts as they were", () => {
    const j = job("lc")
      .source(clicks())
      .flatMap((c) => [1, 2].map((n) => ({ ...c, n })))
      .map((c) => {
        if (c.n === 2 && c.user === "bad") throw new Error("second copy");
        return c;
      })
      .keyBy((c) => c.user, { repartition: false })
      .window("win", tumbling(10_000), { aggregate: count, lateRecords: "side-output" })
      .sink(kafkaSink({ topic: "out" }));
    const t = task(j);
    t.process([json({ user: "x", ts: 30_000 }, 0)], 0);
    const out = t.process([json({ user: "bad", ts: 1000 }, 0)], 0);
    assert.deepEqual([out.length, out.failures.length], [0, 1]);
    assert.deepEqual([t.metrics().lateRecords, t.metrics().lateDropped], [0, 0]);
  });

  test("a failed record does not move event time", () => {
    const j = job("wm")
      .source(clicks())
      .map((c) => {
        if (c.user === "poison") throw new Error("poison");
        return c;
      })
      .keyBy((c) => c.user, { repartition: false })
      .window("per-10s", tumbling(10_000), { aggregate: count })
      .sink(kafkaSink({ topic: "out" }));
    const state = new TaskState();
    const t = task(j, 0, state);
    const out = t.process(
      [json({ user: "a", ts: 1000 }, 0), json({ user: "poison", ts: 900_000 }, 0)],
      0,
    );
    assert.equal(out.failures.length, 1);
    assert.equal(t.watermark, 999);
    // Nor does a restored task: the saved clock has not seen it either.
    assert.equal(task(j, 0, TaskState.restore(state.snapshot(0))).watermark, 999);
  });
});

describe("timestamps are whole milliseconds", () => {
  test("an extractor's fractional, NaN or infinite timestamp fails the record, clearly", () => {
    const j = job("ts")
      .source(
        kafkaSource<{ ts: number }>({
          topic: "in",
          value: "json",
          timestamp: (r) => Number(r.value.ts),
        }),
      )
      .sink(logSink());
    const t = task(j);
    const out = t.process(
      [rec('{"ts": 1.5}', 0), rec('{"ts": "x"}', 0), rec('{"ts": 1e400}', 0), rec('{"ts": 7}', 0)],
      0,
    );
    assert.deepEqual(
      out.logs.map((l) => l.timestamp),
      [7],
    );
    assert.deepEqual(
      out.failures.map((f) => [f.operator, f.error.message]),
      [
        [
          "source",
          "event timestamp must be an integer of milliseconds (Kafka timestamps are int64), got 1.5",
        ],
        [
          "source",
          "event timestamp must be an integer of milliseconds (Kafka timestamps are int64), got NaN",
        ],
        [
          "source",
          "event timestamp must be an integer of milliseconds (Kafka timestamps are int64), got Infinity",
        ],
      ],
    );
  });

  test("emitting at or registering a timer for a fractional time fails the record", () => {
    const j = job("tt")
      .source(kafkaSource({ topic: "in", value: "string" }))
      .keyBy((s) => s, { repartition: false })
      .process<string>("p", {
        process(v, ctx) {
          if (v === "emit") ctx.emit(v, 2.5);
          else if (v === "timer") ctx.timers.registerEventTime(Number.NaN);
          else ctx.timers.registerProcessingTime(ctx.now + 0.1);
        },
        onTimer() {},
      })
      .sink(kafkaSink({ topic: "out" }));
    const out = task(j).process([rec("emit", 1), rec("timer", 1), rec("later", 1)], 0);
    assert.equal(out.length, 0);
    assert.deepEqual(
      out.failures.map((f) => f.error.message.replace(/ \(Kafka.*/, "")),
      [
        "emit timestamp must be an integer of milliseconds",
        "timer time must be an integer of milliseconds",
        "timer time must be an integer of milliseconds",
      ],
    );
  });
});

/**
 * A two-stage job at `tasks` tasks per stage, in memory, connected as Kafka connects them:
 * stage-0 task p reads source partition p; each record it writes to the repartition topic is
 * queued, in order, for the stage-1 task of the record's partition, which reads its queue when
 * told. Stage-1 tasks can be restarted from a snapshot of their state.
 */
class TwoStages {
  readonly tasks: number;
  readonly upstream: TaskPipeline[];
  downstream: TaskPipeline[];
  readonly states: TaskState[];
  readonly queues: InputRecord[][];
  /** What stage 1 produced (the job's outputs). */
  readonly output: OutputRecord[] = [];
  readonly #stages: readonly [Stage, Stage];

  constructor(j: Job, tasks: number, now = 0) {
    this.tasks = tasks;
    const [first, second] = compile(j).stages;
    assert.ok(first && second);
    this.#stages = [first, second];
    const each = <T>(make: (p: number) => T) => Array.from({ length: tasks }, (_, p) => make(p));
    this.upstream = each((p) => this.#task(0, p, new TaskState(), now));
    this.states = each(() => new TaskState());
    this.downstream = each((p) => this.#task(1, p, this.#state(p), now));
    this.queues = each(() => []);
  }

  #task(stage: 0 | 1, p: number, state: TaskState, now: number): TaskPipeline {
    return createTask(this.#stages[stage], state, {
      partitions: [p],
      now,
      tasksPerStage: this.tasks,
    });
  }

  #state(p: number): TaskState {
    const state = this.states[p];
    assert.ok(state);
    return state;
  }

  #route(outputs: readonly OutputRecord[]): void {
    for (const o of outputs) {
      assert.equal(o.topic, this.#stages[1].sourceTopic, "stage 0 writes to the repartition topic");
      assert.ok(o.partition !== undefined && o.partition < this.tasks, "addressed to a partition");
      this.queues[o.partition]?.push({
        key: o.key,
        value: o.value,
        timestamp: o.timestamp,
        partition: o.partition,
        offset: offset++,
      });
    }
  }

  /** Stage-0 task `p` reads `batch` of clicks at `now`. */
  source(p: number, batch: readonly Click[], now: number): void {
    const out = this.upstream[p]?.process(
      batch.map((c) => json(c, 0, p)),
      now,
    );
    assert.deepEqual(out?.failures, []);
    this.#route(out ?? []);
  }

  /** Stage-0 task `p` advances to `now` (to `watermark`: the end of input). */
  advanceSource(p: number, now: number, watermark?: number): void {
    this.#route(this.upstream[p]?.advanceTime(now, watermark) ?? []);
  }

  /** Stage-1 task `p` reads up to `count` records of its queue at `now`. */
  deliver(p: number, now: number, count = Number.POSITIVE_INFINITY): void {
    const batch = this.queues[p]?.splice(0, count) ?? [];
    const out = this.downstream[p]?.process(batch, now);
    assert.deepEqual(out?.failures, []);
    this.output.push(...(out ?? []));
  }

  /** Stage-1 task `p` restarts at `now` from a snapshot of its state (taken at `now`). */
  restart(p: number, now: number): void {
    this.states[p] = TaskState.restore(this.#state(p).snapshot(now));
    this.downstream[p] = this.#task(1, p, this.#state(p), now);
  }

  /** Ends the input: every stage-0 task's watermark to infinity, every queue read. */
  finish(now: number): void {
    for (let p = 0; p < this.tasks; p++) this.advanceSource(p, now, Number.POSITIVE_INFINITY);
    for (let p = 0; p < this.tasks; p++) this.deliver(p, now);
  }

  lateRecords(): number {
    return this.downstream.reduce((sum, t) => sum + t.metrics().lateRecords, 0);
  }

  /** The job's outputs as the golden outputs are written, sorted like clicksPerMinute's. */
  results(): GoldenOutput[] {
    return this.output
      .map((o) => ({
        topic: o.topic,
        key: o.key?.toString() ?? null,
        value: JSON.parse(o.value.toString()) as { user: string; start: number },
        timestamp: o.timestamp,
      }))
      .sort((a, b) => a.value.start - b.value.start || (a.key ?? "").localeCompare(b.key ?? ""));
  }
}

describe("event time through a repartition topic", () => {
  const lagging = (tasks: number, seed: number) =>
    laggingClicks({
      partitions: tasks,
      rounds: 30,
      clicksPerRound: 4,
      start: 1_000_000,
      lagMs: 20_000,
      lagging: tasks - 1,
      seed,
    });

  test("one partition 20 s behind: no click late, windows equal the batch answer, at 1, 2, 3", () => {
    for (const tasks of [1, 2, 3]) {
      const input = lagging(tasks, tasks);
      const job = new TwoStages(clicksPerUser(), tasks);
      for (let round = 0; round < 30; round++) {
        const now = round * 100;
        for (let p = 0; p < tasks; p++) job.source(p, input[p]?.[round] ?? [], now);
        for (let p = 0; p < tasks; p++) job.deliver(p, now);
      }
      job.finish(3000);
      assert.equal(job.lateRecords(), 0, `${tasks} tasks: no click late`);
      assert.deepEqual(job.results(), clicksPerMinute(input.flat(2)), `${tasks} tasks`);
    }
  });

  test("any interleaving of upstream outputs, reads and restarts gives the batch answer", () => {
    for (const [seed, tasks] of [
      [1, 2],
      [2, 3],
      [3, 3],
      [4, 3],
      [5, 6],
    ] as const) {
      const input = lagging(tasks, seed);
      const random = seededRandom(seed);
      const pick = (n: number) => Math.floor(random() * n);
      const job = new TwoStages(clicksPerUser(), tasks);
      const nextRound = input.map(() => 0);
      let now = 0;
      // Processing time moves by a few ms a step: never past the 30 s idle timeout.
      while (nextRound.some((r) => r < 30)) {
        now += pick(5);
        const p = pick(tasks);
        const action = pick(10);
        if (action < 4) {
          // A source task reads a batch of its partition: part of a round, or several.
          const round = nextRound[p] ?? 30;
          const batches = 1 + pick(2);
          job.source(p, (input[p] ?? []).slice(round, round + batches).flat(), now);
          nextRound[p] = round + batches;
        } else if (action < 8) {
          job.deliver(p, now, pick((job.queues[p]?.length ?? 0) + 1));
        } else if (action < 9) {
          job.advanceSource(p, now);
        } else {
          job.restart(p, now);
        }
      }
      job.finish(now + 1);
      assert.equal(job.lateRecords(), 0, `seed ${seed}: no click late`);
      assert.deepEqual(job.results(), clicksPerMinute(input.flat(2)), `seed ${seed}`);
    }
  });

  test("the stage-1 watermark is the minimum over upstream tasks, not the fastest one's", () => {
    const job = new TwoStages(clicksPerUser(), 2);
    job.source(0, [{ user: "a", url: "/", ts: 100_000 }], 0);
    job.source(1, [{ user: "a", url: "/", ts: 60_000 }], 0);
    for (const p of [0, 1]) job.deliver(p, 0);
    const expected = 60_000 - 5001;
    assert.deepEqual(
      job.downstream.map((t) => t.watermark),
      [expected, expected],
    );
  });

  test("watermark-only records: to every partition when the watermark moved, once a batch", () => {
    const j = clicksPerUser();
    const [first] = compile(j).stages;
    assert.ok(first);
    const t = createTask(first, new TaskState(), { partitions: [4], now: 0, tasksPerStage: 3 });
    const users = Array.from({ length: 10 }, (_, i) => ({ user: `u${i}`, url: "/", ts: 50_000 }));
    const out = t.process(
      users.map((c) => json(c, 0, 4)),
      0,
    );
    const decoded = out.map((o) => ({ o, r: decodeRepartition(o.value) }));
    const data = decoded.filter(({ r }) => r.kind === "element");
    const marks = decoded.filter(({ r }) => r.kind === "watermark");
    assert.equal(data.length, 10);
    for (const { o } of data) {
      assert.equal(o.partition, defaultPartitioner(undefined as never, o.key ?? undefined) % 3);
    }
    assert.deepEqual(
      data.map(({ r }) => r.kind === "element" && r.clock),
      users.map(() => ({ upstream: 4, watermark: NO_WATERMARK, idle: false })),
      "records carry the watermark of the batch's start",
    );
    assert.deepEqual(
      marks.map(({ o, r }) => [o.partition, o.key, r.kind === "watermark" && r.clock]),
      [0, 1, 2].map((p) => [p, null, { upstream: 4, watermark: 44_999, idle: false }]),
      "then the watermark the batch moved to, after its records",
    );
    const still = t.process([json({ user: "x", url: "/", ts: 49_000 }, 0, 4)], 10);
    assert.equal(still.length, 1, "the watermark did not move: no watermark-only record");
  });

  test("an idle upstream task says so and drops out at once; with data it is back", () => {
    const j = job("idle")
      .source(
        kafkaSource<{ user: string; ts: number }>({
          topic: "clicks",
          value: "json",
          timestamp: (r) => r.value.ts,
        }).withWatermarks({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 1000 }),
      )
      .keyBy((c) => c.user)
      .window("win", tumbling(10_000), { aggregate: { init: () => 0, add: (n) => n + 1 } })
      .sink(kafkaSink({ topic: "out" }));
    const stages = new TwoStages(j, 2);
    const click = (ts: number) => [{ user: "a", url: "/", ts }];
    stages.source(0, click(5000), 0);
    stages.source(1, click(2000), 0);
    stages.deliver(0, 0);
    assert.equal(stages.downstream[0]?.watermark, 1999);
    // Task 1 has no input for more than its idle timeout: it announces itself idle, and the
    // downstream task leaves it out at once, though it heard from it just now.
    stages.source(0, click(30_000), 1200);
    stages.advanceSource(1, 1200);
    stages.deliver(0, 1200);
    assert.equal(stages.downstream[0]?.watermark, 29_999);
    assert.equal(stages.output.length, 1, "[0, 10000) fired");
    // Back with data: it holds the watermark again (behind it, its click is late).
    stages.source(1, click(31_000), 1300);
    stages.source(0, click(50_000), 1300);
    stages.deliver(0, 1300);
    assert.equal(stages.downstream[0]?.watermark, 30_999);
  });

  test("a restarted stage-1 task keeps what each upstream task told it: no jump, no regress", () => {
    const stages = new TwoStages(clicksPerUser(), 2);
    stages.source(0, [{ user: "a", url: "/", ts: 100_000 }], 0);
    stages.source(1, [{ user: "a", url: "/", ts: 60_000 }], 0);
    stages.deliver(0, 0);
    assert.equal(stages.downstream[0]?.watermark, 54_999);
    // Restarted long after (more than the idle timeout): upstream task 1 still counts.
    stages.restart(0, 100_000);
    assert.equal(stages.downstream[0]?.watermark, 54_999);
    stages.source(0, [{ user: "a", url: "/", ts: 200_000 }], 100_000);
    stages.deliver(0, 100_000);
    assert.equal(stages.downstream[0]?.watermark, 54_999, "no jump past the slow task");
  });

  test("an upstream task silent past the idle timeout (its pod down) still holds the watermark", () => {
    const stages = new TwoStages(clicksPerUser(), 2);
    stages.source(0, [{ user: "a", url: "/", ts: 100_000 }], 0);
    stages.source(1, [{ user: "a", url: "/", ts: 80_000 }], 0);
    const deliver = (now: number) => {
      for (const p of [0, 1]) stages.deliver(p, now);
    };
    deliver(0);
    assert.equal(stages.downstream[0]?.watermark, 74_999);
    // Task 1 says nothing for 60 s (twice the idle timeout) while task 0 moves on...
    for (const now of [20_000, 40_000, 60_000]) {
      stages.source(0, [{ user: "a", url: "/", ts: 100_000 + now }], now);
      deliver(now);
    }
    assert.deepEqual(
      stages.downstream.map((t) => t.watermark),
      [74_999, 74_999],
      "task 1 still counts",
    );
    // ...then comes back with the click it owes: it is not late.
    stages.source(1, [{ user: "a", url: "/", ts: 81_000 }], 61_000);
    deliver(61_000);
    assert.deepEqual(
      stages.downstream.map((t) => t.metrics().lateRecords),
      [0, 0],
    );
  });
});
