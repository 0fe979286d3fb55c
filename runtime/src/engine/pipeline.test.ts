import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Job, job, kafkaSink, kafkaSource, logSink } from "../api/job.ts";
import { TaskState } from "../state/keyed-state.ts";
import {
  compile,
  createTask,
  type InputRecord,
  type OutputRecord,
  type StepResult,
  type TaskPipeline,
} from "./pipeline.ts";
import { session, sliding, tumbling } from "./time.ts";

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
    assert.equal(input.length, 3);
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
