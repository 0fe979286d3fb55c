// Bad records through the runtime process, against the real broker: each failure policy.
// Poison = a value that is not JSON (decode), a record without a word (map throws), and a
// tombstone (no value). Never a silent loss: dead-lettered exactly once with the error and the
// source offset, or skipped and counted, or the process stops naming the offset.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { DEAD_LETTER_HEADERS } from "../../runtime/src/engine/failures.ts";
import { inputProducer, readTopicSettled } from "../support/kafka.ts";
import { exitOf, RuntimeTestbed, runtimeReady, scrape } from "../support/runtime.ts";

const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "runtime-count-job.ts");

after(() => bed.tearDown());

/** A count job of its own (topics `<name>-in`, `<name>-out`, dead letters `<name>-dlq`). */
async function countJob() {
  const { name, input, output } = await bed.job("poison");
  const topics = { input, output, dlq: `${name}-dlq` };
  const start = (options: { onFailure?: unknown; failures?: unknown; stderr?: "pipe" }) =>
    bed.start({
      module: fixture,
      job: name,
      stderr: options.stderr ?? "inherit",
      config: {
        job: { config: { name, ...topics, onFailure: options.onFailure } },
        ...(options.failures === undefined ? {} : { failures: options.failures }),
      },
    });
  return { name, ...topics, start };
}

/** Offsets 0..6: good, not JSON, good, no word, tombstone, good, good. */
async function produceWithPoison(topic: string): Promise<void> {
  const producer = inputProducer();
  const good = (word: string) => ({ topic, partition: 0, value: JSON.stringify({ word }) });
  await producer.send({
    messages: [
      good("a"),
      { topic, partition: 0, value: "{not json" },
      good("b"),
      { topic, partition: 0, value: JSON.stringify({ noun: "c" }) },
      { topic, partition: 0, key: "gone" },
      good("a"),
      good("b"),
    ],
  });
  await producer.close();
}

/** The running counts of the good records of produceWithPoison. */
const goodCounts = [
  { key: "a", value: 1 },
  { key: "b", value: 1 },
  { key: "a", value: 2 },
  { key: "b", value: 2 },
];

/** The output once it holds `n` records and has settled, read to its read_committed end. */
const counts = async (output: string, n: number) =>
  (await readTopicSettled(output, n)).records.map((r) => JSON.parse(r.value ?? ""));

test("poison records reach the dead-letter topic, exactly once, with the error and source offset", async () => {
  const job = await countJob();
  // The job's own setting (onFailure); the runtime creates the dead-letter topic.
  const pod = job.start({ onFailure: { deadLetterTopic: job.dlq } });
  await runtimeReady(pod);
  await produceWithPoison(job.input);

  assert.deepEqual(await counts(job.output, 4), goodCounts);
  const { records: letters } = await readTopicSettled(job.dlq, 3);
  assert.deepEqual(
    letters.map((r) => ({
      key: r.key,
      value: r.value,
      offset: r.headers[DEAD_LETTER_HEADERS.offset],
      topic: r.headers[DEAD_LETTER_HEADERS.topic],
      partition: r.headers[DEAD_LETTER_HEADERS.partition],
      kind: r.headers[DEAD_LETTER_HEADERS.kind],
      operator: r.headers[DEAD_LETTER_HEADERS.operator],
    })),
    [
      {
        key: null,
        value: "{not json",
        offset: "1",
        topic: job.input,
        partition: "0",
        kind: "decode",
        operator: "source",
      },
      {
        key: null,
        value: '{"noun":"c"}',
        offset: "3",
        topic: job.input,
        partition: "0",
        kind: "user",
        operator: "map",
      },
      {
        key: "gone",
        value: null,
        offset: "4",
        topic: job.input,
        partition: "0",
        kind: "decode",
        operator: "source",
      },
    ],
    "original bytes and key, where they came from, and why",
  );
  assert.match(letters[1]?.headers[DEAD_LETTER_HEADERS.error] ?? "", /no word in \{"noun":"c"\}/);
  assert.match(letters[0]?.headers[DEAD_LETTER_HEADERS.error] ?? "", /JSON/);

  const metrics = await scrape(pod);
  assert.equal(metrics.get("weir_dead_letters_total"), 3);
  assert.equal(metrics.get('weir_record_failures_total{kind="decode"}'), 2);
  assert.equal(metrics.get('weir_record_failures_total{kind="user"}'), 1);
  assert.equal(metrics.get('weir_dropped_records_total{reason="failure"}'), 0);
  pod.process.kill("SIGTERM");
});

test("skip: the runtime configuration overrides the job's dead-letter setting; failures are counted", async () => {
  const job = await countJob();
  const pod = job.start({ onFailure: { deadLetterTopic: job.dlq }, failures: { action: "skip" } });
  await runtimeReady(pod);
  await produceWithPoison(job.input);

  assert.deepEqual(await counts(job.output, 4), goodCounts);
  const metrics = await scrape(pod);
  assert.equal(metrics.get('weir_dropped_records_total{reason="failure"}'), 3);
  assert.equal(metrics.get('weir_record_failures_total{kind="decode"}'), 2);
  assert.equal(metrics.get("weir_dead_letters_total"), 0);
  const topics = new Set(await bed.admin.listTopics());
  assert.ok(!topics.has(job.dlq), "no dead-letter topic under skip");
  pod.process.kill("SIGTERM");
});

test("fail: the process exits 3 naming the offset, each time; skip then gets past it exactly once", async () => {
  const job = await countJob();
  await produceWithPoison(job.input);
  for (let attempt = 1; attempt <= 2; attempt++) {
    const pod = job.start({ failures: { action: "fail" }, stderr: "pipe" });
    const { code, stderr, logs } = await exitOf(pod);
    assert.equal(code, 3, `attempt ${attempt}: exit status of a record failed under "fail"`);
    const error = logs.find((line) => /fail policy/.test(line.msg));
    assert.ok(error, `attempt ${attempt}: a JSON error line in ${stderr}`);
    assert.deepEqual(
      { task: error.task, offset: error.offset, operator: error.operator, kind: error.kind },
      { task: `${job.input}-0`, offset: "1", operator: "source", kind: "decode" },
      `attempt ${attempt}: names the first poison record, not a silent crash loop`,
    );
  }
  // The operator's way past a poison record: skip it. What the failed runs processed before
  // it never committed, so each count appears exactly once.
  const pod = job.start({ failures: { action: "skip" } });
  await runtimeReady(pod);
  assert.deepEqual(await counts(job.output, 4), goodCounts);
  pod.process.kill("SIGTERM");
});
