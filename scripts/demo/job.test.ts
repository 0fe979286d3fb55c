// The demo's job: the word count's first stage, each line taking its workMs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { compile, createTask } from "../../runtime/src/engine/pipeline.ts";
import { TaskState } from "../../runtime/src/state/keyed-state.ts";
import { demoWordCount } from "./job.ts";

test("each line waits workMs, then its words go to the counting stage", () => {
  const job = demoWordCount({ name: "t", input: "in", output: "out", workMs: 20 });
  const [first] = compile(job).stages;
  assert.ok(first);
  const task = createTask(first, new TaskState(), { partitions: [0], now: 0 });
  const lines = ["the quick fox", "the dog"].map((line, i) => ({
    key: null,
    value: Buffer.from(line),
    timestamp: 0,
    partition: 0,
    offset: BigInt(i),
  }));
  const started = performance.now();
  const out = task.process(lines, 0);
  assert.ok(performance.now() - started >= 40, "two lines, 20 ms each");
  assert.deepEqual(
    out.map((o) => o.key?.toString()),
    ["the", "quick", "fox", "the", "dog"],
  );
  assert.ok(out.every((o) => o.topic === "t-counts-repartition"));
});

test("workMs must be a number >= 0", () => {
  assert.throws(() => demoWordCount({ workMs: "2" }), /workMs must be a number >= 0/);
  assert.throws(() => demoWordCount({ workMs: -1 }), /workMs/);
  assert.doesNotThrow(() => demoWordCount({}));
});
