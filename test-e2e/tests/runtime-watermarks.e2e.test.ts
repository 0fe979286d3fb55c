// Event time through a repartition topic, against the real broker and MinIO: the
// clicks-per-user example at parallelism 3 (three runtime processes) on a 6-partition input,
// one partition's clicks 20 s behind the others in event time. Each window task's watermark is
// the minimum over the six source tasks' (carried through the repartition topic), so no click
// of the lagging partition is late, and the windowed output read back (read_committed) is
// exactly the batch answer over the same input — also when the pod of the lagging partition
// is down for longer than the idle timeout (a silent upstream task is not an idle one).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { assertWindows, produceClicks } from "../support/clicks.ts";
import { committedGrowth } from "../support/kafka.ts";
import { type RuntimePod, RuntimeTestbed, runtimeReady, scrape } from "../support/runtime.ts";

const bed = new RuntimeTestbed();
const fixture = `${import.meta.dirname}/../fixtures/runtime-example.ts`;

after(() => bed.tearDown());

const PARTITIONS = 6;
const PARALLELISM = 3;
/** The example's idle timeout: a source partition without records for this long is idle. */
const IDLE_TIMEOUT_MS = 30_000;

/** The example on topics of its own, its three pods ready; `start` (re)starts one of them. */
async function clicksJob(prefix: string) {
  const name = bed.jobName(prefix);
  const input = `${name}-in`;
  const output = `${name}-out`;
  await bed.admin.createTopics({ topics: [input], partitions: PARTITIONS, replicas: 1 });
  await bed.admin.createTopics({ topics: [output], partitions: 1, replicas: 1 });
  const start = (subtask: number) =>
    bed.start({
      module: fixture,
      job: name,
      subtask,
      parallelism: PARALLELISM,
      config: { job: { config: { example: "clicks-per-user", name, input, output } } },
    });
  const pods = Array.from({ length: PARALLELISM }, (_, subtask) => start(subtask));
  await Promise.all(pods.map((pod) => runtimeReady(pod)));
  return { input, output, pods, start };
}

const lateRecords = (pods: readonly RuntimePod[]) =>
  Promise.all(pods.map(async (pod) => (await scrape(pod)).get("weir_late_records_total") ?? 0));

test("a partition 20 s behind in event time: no click late, windows equal the batch answer", async () => {
  const job = await clicksJob("watermarks");
  // 30 rounds of 10 s of event time, one every 200 ms: the stream arrives over time.
  const sent = await produceClicks(job.input, { partitions: PARTITIONS, rounds: 30 }).stop();
  await assertWindows(job.output, sent, { timeoutMs: 120_000 });
  assert.deepEqual(await lateRecords(job.pods), [0, 0, 0], "no click late, in any window task");
  for (const pod of job.pods) pod.process.kill("SIGTERM");
});

test("the lagging partition's pod down past the idle timeout: windows still equal the batch answer", async () => {
  const job = await clicksJob("watermarks-down");
  const clicks = produceClicks(job.input, { partitions: PARTITIONS });
  await committedGrowth(job.output, 20);
  // Subtask 2 owns partitions 4 and 5 (the lagging one), their source and window tasks. The
  // other window tasks hear nothing from its source tasks for longer than the idle timeout:
  // they once took them for idle, ran ahead, and dropped the lagging clicks as late.
  job.pods[2]?.process.kill("SIGKILL");
  await sleep(IDLE_TIMEOUT_MS + 10_000);
  job.pods[2] = job.start(2);
  await runtimeReady(job.pods[2]);
  await committedGrowth(job.output, 20, 120_000);
  const sent = await clicks.stop();
  await assertWindows(job.output, sent, { timeoutMs: 120_000 });
  assert.deepEqual(await lateRecords(job.pods), [0, 0, 0], "no click late, in any window task");
  for (const pod of job.pods) pod.process.kill("SIGTERM");
});
