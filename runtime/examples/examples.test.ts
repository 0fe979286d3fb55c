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
import clicksPerUser from "./clicks-per-user.ts";
import filterEnrich from "./filter-enrich.ts";
import wordCount from "./word-count.ts";

interface Shown {
  topic: string;
  key: string | null;
  value: unknown;
  timestamp: number;
}

/**
 * Feeds each input record as its own batch through every stage: what a stage produces to the
 * next stage's (repartition) topic is that stage's input. Ends with a final watermark flush.
 */
function runJob(job: Job, inputs: { value: string; timestamp?: number }[]): Shown[] {
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
  const out = runJob(wordCount, [
    { value: "The cat", timestamp: 1 },
    { value: "the dog,  the END", timestamp: 2 },
  ]);
  assert.deepEqual(out, [
    { topic: "word-counts", key: "the", value: { key: "the", value: 1 }, timestamp: 1 },
    { topic: "word-counts", key: "cat", value: { key: "cat", value: 1 }, timestamp: 1 },
    { topic: "word-counts", key: "the", value: { key: "the", value: 2 }, timestamp: 2 },
    { topic: "word-counts", key: "dog", value: { key: "dog", value: 1 }, timestamp: 2 },
    { topic: "word-counts", key: "the", value: { key: "the", value: 3 }, timestamp: 2 },
    { topic: "word-counts", key: "end", value: { key: "end", value: 1 }, timestamp: 2 },
  ]);
});

test("clicks-per-user: 60 s event-time windows with lateness and a late side output", () => {
  const click = (user: string, ts: number) => ({ value: JSON.stringify({ user, url: "/", ts }) });
  const out = runJob(clicksPerUser, [
    click("u1", 1000),
    click("u2", 2000),
    click("u1", 30_000),
    click("u1", 61_000), // watermark 55999: nothing complete yet
    click("u2", 70_000), // watermark 64999: [0, 60000) fires
    click("u1", 50_000), // late but within 10 s of lateness: updates u1's window at once
    click("u1", 80_000), // watermark 74999: [0, 60000) is cleaned up
    click("u2", 10_000), // too late: side output
  ]);
  const win = (user: string, start: number, clicks: number) => ({
    topic: "clicks-per-user",
    key: user,
    value: { user, start, end: start + 60_000, clicks },
    timestamp: start + 59_999,
  });
  assert.deepEqual(out, [
    win("u1", 0, 2),
    win("u2", 0, 1),
    win("u1", 0, 3),
    {
      topic: "clicks-per-user-clicks-per-minute-late",
      key: "u2",
      value: { user: "u2", url: "/", ts: 10_000 },
      timestamp: 10_000,
    },
    win("u1", 60_000, 2),
    win("u2", 60_000, 1),
  ]);
  assert.deepEqual(compile(clicksPerUser).stages[1]?.sinkTopics, [
    "clicks-per-user",
    "clicks-per-user-clicks-per-minute-late",
  ]);
});

test("filter-enrich: drops bad and bot events, adds the domain", () => {
  assert.equal(compile(filterEnrich).stages.length, 1);
  const out = runJob(filterEnrich, [
    { value: JSON.stringify({ user: "ann", url: "https://example.com/a" }), timestamp: 5 },
    { value: JSON.stringify({ user: "", url: "https://example.com/" }) },
    { value: JSON.stringify({ user: "bob", url: "not a url" }) },
    { value: JSON.stringify({ user: "bot", url: "https://x.org/", agent: "Googlebot/2.1" }) },
    { value: JSON.stringify([1, 2]) },
    {
      value: JSON.stringify({ user: "cy", url: "http://shop.test:8080/p?q=1", agent: "Firefox" }),
      timestamp: 9,
    },
  ]);
  assert.deepEqual(out, [
    {
      topic: "page-views-enriched",
      key: "ann",
      value: { user: "ann", url: "https://example.com/a", domain: "example.com" },
      timestamp: 5,
    },
    {
      topic: "page-views-enriched",
      key: "cy",
      value: {
        user: "cy",
        url: "http://shop.test:8080/p?q=1",
        agent: "Firefox",
        domain: "shop.test",
      },
      timestamp: 9,
    },
  ]);
});
