// The Kafka source of the runtime process against the real broker: where a fresh job starts
// (`latest` skips what the topic held before; after that the committed offset rules), and the
// live backlog per source partition the autoscaler reads (metrics and /v1/status).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { readRecords, readTopicSettled } from "../support/kafka.ts";
import {
  produceWords,
  RuntimeTestbed,
  runtimeReady,
  runtimeStatus,
  scrape,
} from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";

const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "runtime-count-job.ts");

after(() => bed.tearDown());

async function countJob(startFrom: "earliest" | "latest") {
  const { name, input, output } = await bed.job("source");
  const start = async () => {
    const pod = bed.start({
      module: fixture,
      job: name,
      config: { job: { config: { name, input, output, startFrom } } },
    });
    await runtimeReady(pod);
    return pod;
  };
  const produce = (words: string[]) => produceWords(input, words);
  return { input, output, start, produce };
}

/** The output once it holds `n` records and has settled, read to its read_committed end. */
const read = async (topic: string, n: number) =>
  (await readTopicSettled(topic, n)).records.map((r) => JSON.parse(r.value ?? ""));

test("latest: a fresh job skips what the topic held; restarted, it resumes from its commit", async () => {
  const job = await countJob("latest");
  await job.produce(["old", "old", "old"]);
  const first = await job.start();
  await job.produce(["new", "new"]);
  assert.deepEqual(await read(job.output, 2), [
    { key: "new", value: 1 },
    { key: "new", value: 2 },
  ]);
  first.process.kill("SIGTERM");
  await eventually("the first run to stop", async () =>
    first.process.exitCode === null ? undefined : first.process.exitCode,
  );

  // Input that arrives while it is stopped is not skipped: "latest" applied to the first start only.
  await job.produce(["new", "late"]);
  await job.start();
  assert.deepEqual((await read(job.output, 4)).slice(2), [
    { key: "new", value: 3 },
    { key: "late", value: 1 },
  ]);
});

test("backlog per source partition: live in metrics and /v1/status while the task is stopped", async () => {
  const job = await countJob("earliest");
  const pod = await job.start();
  await job.produce(["a", "b", "c"]);
  await readRecords(job.output, (records) => records.length >= 3);
  const backlog = `weir_source_backlog_records{topic="${job.input}",partition="0"}`;
  await eventually("backlog 0 once caught up", async () =>
    (await scrape(pod)).get(backlog) === 0 ? true : undefined,
  );

  // Stop reading (a stop-with-savepoint), then 5 more records arrive: the backlog shows them.
  await fetch(`${pod.url}/v1/savepoints`, {
    method: "POST",
    body: JSON.stringify({ id: "pause", stop: true }),
  });
  await eventually("the task to stop reading", async () => {
    const state = (await (await fetch(`${pod.url}/v1/savepoints/pause`)).json()) as {
      state: string;
    };
    return state.state === "completed" ? true : undefined;
  });
  await job.produce(["d", "e", "f", "g", "h"]);
  await eventually("backlog 5", async () =>
    (await scrape(pod)).get(backlog) === 5 ? true : undefined,
  );
  const task = (await runtimeStatus(pod)).tasks.find((t) => t.topic === job.input);
  assert.equal(task?.lag, 5, "/v1/status carries the task's lag");
  assert.equal(task?.position, "3");

  const metrics = await scrape(pod);
  assert.ok((metrics.get("weir_busy_seconds_total") ?? 0) > 0, "busy time is counted");
  assert.equal(metrics.get("weir_records_in_total"), 3);
  assert.ok(
    (metrics.get(`weir_checkpoint_size_bytes{topic="${job.input}",partition="0"}`) ?? 0) > 0,
    "the last checkpoint's size",
  );
  assert.ok(
    (metrics.get(`weir_state_size_bytes{topic="${job.input}",partition="0"}`) ?? 0) > 0,
    "the task's state size",
  );
  pod.process.kill("SIGTERM");
});
