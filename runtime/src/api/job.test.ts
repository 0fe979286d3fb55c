import assert from "node:assert/strict";
import { test } from "node:test";
import { session, tumbling } from "../engine/time.ts";
import { job, kafkaSink, kafkaSource, logSink } from "./job.ts";

const lines = () => kafkaSource({ topic: "lines", value: "string" });
const count = { init: () => 0, add: (n: number) => n + 1 };

test("duplicate operator names are refused at build time", () => {
  const build = () =>
    job("dup")
      .source(lines())
      .keyBy((s) => s)
      .aggregate("counts", count)
      .keyBy((r) => r.key)
      .aggregate("counts", count)
      .sink(logSink());
  assert.throws(build, /operator name "counts" is used twice/);
});

test("names must be DNS labels", () => {
  assert.throws(() => job("Word_Count"), /job name "Word_Count" must be a DNS label/);
  assert.throws(
    () =>
      job("ok")
        .source(lines())
        .keyBy((s) => s)
        .aggregate("Counts", count),
    /operator name "Counts"/,
  );
  assert.throws(
    () =>
      job("ok")
        .source(lines())
        .keyBy((s) => s)
        .reduce("", (a) => a),
    /DNS label/,
  );
});

test("sources and sinks are validated", () => {
  assert.throws(() => kafkaSource({ topic: "bad topic", value: "string" }), /invalid topic/);
  assert.throws(
    () => kafkaSource({ topic: "t", value: "xml" as "string" }),
    /format must be "string", "json" or "bytes"/,
  );
  assert.throws(() => kafkaSink({ topic: "" }), /invalid topic/);
  assert.throws(() => lines().withWatermarks({ maxOutOfOrdernessMs: -1 }), /maxOutOfOrdernessMs/);
  assert.throws(
    () => lines().withWatermarks({ maxOutOfOrdernessMs: 0, idleTimeoutMs: 0 }),
    /idleTimeoutMs/,
  );
  assert.throws(() => job("j").source(lines()).sink(), /needs a sink/);
});

test("windows need watermarks, and session windows need merge()", () => {
  assert.throws(
    () =>
      job("w")
        .source(lines())
        .keyBy((s) => s)
        .window("win", tumbling(1000), { aggregate: count })
        .sink(logSink()),
    /window "win" needs event time: call withWatermarks\(\)/,
  );
  assert.throws(
    () =>
      job("w")
        .source(lines().withWatermarks({ maxOutOfOrdernessMs: 0 }))
        .keyBy((s) => s)
        .window("win", session(1000), { aggregate: count }),
    /session windows merge/,
  );
  assert.throws(
    () =>
      job("w")
        .source(lines().withWatermarks({ maxOutOfOrdernessMs: 0 }))
        .keyBy((s) => s)
        .window("win", tumbling(1000), { aggregate: count, allowedLatenessMs: -5 }),
    /allowedLatenessMs/,
  );
});

test("every repartitioning keyBy starts a stage; repartition: false does not", () => {
  const j = job("multi")
    .source(lines().withWatermarks({ maxOutOfOrdernessMs: 100 }))
    .map((s) => s.trim())
    .keyBy((s) => s)
    .aggregate("first", count)
    .filter((r) => r.value > 1)
    .keyBy((r) => String(r.value))
    .reduce("second", (a) => a)
    .keyBy((r) => r.key, { repartition: false })
    .aggregate("third", count)
    .sink(kafkaSink({ topic: "out" }), logSink());
  assert.deepEqual(j.operatorNames(), ["first", "second", "third"]);
  const d = j.describe();
  assert.deepEqual(d.internalTopics, ["multi-first-repartition", "multi-second-repartition"]);
  assert.deepEqual(
    d.stages.map((s) => [s.sourceTopic, s.operators, s.sinkTopics]),
    [
      ["lines", ["map", "keyBy (repartition)"], ["multi-first-repartition"]],
      [
        "multi-first-repartition",
        ['aggregate "first"', "filter", "keyBy (repartition)"],
        ["multi-second-repartition"],
      ],
      ["multi-second-repartition", ['reduce "second"', "keyBy", 'aggregate "third"'], ["out"]],
    ],
  );
  // Later stages keep the job's watermark bound, applied to the repartition topic's partitions.
  assert.deepEqual(
    j.stages.map((s) => [s.source.internal, s.source.startFrom, s.source.watermarks]),
    [
      [false, "earliest", { maxOutOfOrdernessMs: 100 }],
      [true, "earliest", { maxOutOfOrdernessMs: 100 }],
      [true, "earliest", { maxOutOfOrdernessMs: 100 }],
    ],
  );
});

test("a job without keyBy is one stage", () => {
  const j = job("plain")
    .source(kafkaSource({ topic: "in", value: "json", startFrom: "latest" }))
    .map((v) => v)
    .sink(kafkaSink({ topic: "out" }));
  assert.equal(j.stages.length, 1);
  assert.equal(j.stages[0]?.source.startFrom, "latest");
  assert.deepEqual(j.operatorNames(), []);
});

test("a source's out-of-range policy: fail by default, a repartition topic always", () => {
  const build = (outOfRange?: "fail" | "earliest" | "latest") =>
    job("skips")
      .source(kafkaSource({ topic: "in", value: "string", ...(outOfRange ? { outOfRange } : {}) }))
      .keyBy((v) => v)
      .aggregate("n", { init: () => 0, add: (n: number) => n + 1 })
      .sink(kafkaSink({ topic: "out" }));
  assert.deepEqual(
    build().stages.map((s) => s.source.outOfRange),
    ["fail", "fail"],
  );
  assert.deepEqual(
    build("earliest").stages.map((s) => s.source.outOfRange),
    ["earliest", "fail"],
  );
  assert.throws(
    () => kafkaSource({ topic: "in", value: "string", outOfRange: "skip" as "fail" }),
    /outOfRange must be "fail", "earliest" or "latest", got "skip"/,
  );
});
