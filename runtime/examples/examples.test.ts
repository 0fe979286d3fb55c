// Each example job run in memory, stage by stage (one task per stage), against golden outputs.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Job } from "../src/api/job.ts";
import {
  compile,
  createTask,
  type InputRecord,
  type OutputRecord,
} from "../src/engine/pipeline.ts";
import { TaskState } from "../src/state/keyed-state.ts";
import { clicksPerUser as clicksPerUserJob } from "./clicks-per-user.ts";
import { filterEnrich as filterEnrichJob } from "./filter-enrich.ts";
import {
  clicksPerUserGolden,
  filterEnrichGolden,
  type GoldenInput,
  type GoldenOutput,
  wordCountGolden,
} from "./golden.ts";
import { wordCount as wordCountJob } from "./word-count.ts";

// Each example with its default config (topics named as in the README).
const wordCount = wordCountJob();
const clicksPerUser = clicksPerUserJob();
const filterEnrich = filterEnrichJob();

/**
 * Feeds each input record as its own batch through every stage: what a stage produces to the
 * next stage's (repartition) topic is that stage's input. Ends with a final watermark flush.
 */
function runJob(job: Job, inputs: GoldenInput[]): GoldenOutput[] {
  const compiled = compile(job);
  const tasks = compiled.stages.map((stage) =>
    createTask(stage, new TaskState(), { partitions: [0], now: 0 }),
  );
  const external: OutputRecord[] = [];
  let offset = 0n;
  const feed = (index: number, records: InputRecord[], flush: boolean) => {
    const t = tasks[index];
    if (t === undefined) return;
    const out = [
      ...t.process(records, 0),
      ...(flush ? t.advanceTime(0, Number.POSITIVE_INFINITY) : []),
    ];
    const nextTopic = compiled.stages[index + 1]?.sourceTopic;
    const internal = out.filter((o) => o.topic === nextTopic);
    external.push(...out.filter((o) => o.topic !== nextTopic));
    if (internal.length > 0 || flush) {
      feed(
        index + 1,
        internal.map((o) => ({
          key: o.key,
          value: o.value,
          timestamp: o.timestamp,
          partition: 0,
          offset: offset++,
        })),
        flush,
      );
    }
  };
  for (const input of inputs) {
    const record = {
      key: null,
      value: Buffer.from(input.value),
      timestamp: input.timestamp ?? 0,
      partition: 0,
      offset: offset++,
    };
    feed(0, [record], false);
  }
  feed(0, [], true);
  for (const t of tasks) assert.equal(t.metrics().failures, 0);
  return external.map((o) => ({
    topic: o.topic,
    key: o.key?.toString() ?? null,
    value: JSON.parse(o.value.toString()),
    timestamp: o.timestamp,
  }));
}

test("word-count: running counts per word, through a repartition topic", () => {
  assert.deepEqual(wordCount.describe(), {
    name: "word-count",
    operatorNames: ["counts"],
    internalTopics: ["word-count-counts-repartition"],
    stages: [
      {
        index: 0,
        sourceTopic: "lines",
        internalSource: false,
        operators: ["flatMap", "filter", "keyBy (repartition)"],
        sinkTopics: ["word-count-counts-repartition"],
      },
      {
        index: 1,
        sourceTopic: "word-count-counts-repartition",
        internalSource: true,
        operators: ['aggregate "counts"'],
        sinkTopics: ["word-counts"],
      },
    ],
  });
  assert.deepEqual(runJob(wordCount, wordCountGolden.inputs), wordCountGolden.outputs);
});

test("clicks-per-user: 60 s event-time windows with lateness and a late side output", () => {
  assert.deepEqual(runJob(clicksPerUser, clicksPerUserGolden.inputs), clicksPerUserGolden.outputs);
  assert.deepEqual(compile(clicksPerUser).stages[1]?.sinkTopics, [
    "clicks-per-user",
    "clicks-per-user-clicks-per-minute-late",
  ]);
});

test("filter-enrich: drops bad and bot events, adds the domain", () => {
  assert.equal(compile(filterEnrich).stages.length, 1);
  assert.deepEqual(runJob(filterEnrich, filterEnrichGolden.inputs), filterEnrichGolden.outputs);
});

test("an example's config renames the job and its topics", () => {
  const renamed = wordCountJob({ name: "wc-test", input: "in", output: "out" }).describe();
  assert.equal(renamed.name, "wc-test");
  assert.deepEqual(renamed.internalTopics, ["wc-test-counts-repartition"]);
  assert.equal(renamed.stages[0]?.sourceTopic, "in");
  assert.deepEqual(renamed.stages[1]?.sinkTopics, ["out"]);
  assert.throws(() => wordCountJob({ input: 42 }), /job config input must be a string, got 42/);
});
