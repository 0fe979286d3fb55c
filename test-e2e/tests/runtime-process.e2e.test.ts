// The runtime process as pods run it, against the real broker and MinIO: a two-stage job
// (word count, re-keyed through a repartition topic) at parallelism 2, stopped with SIGTERM;
// and stop-with-savepoint at parallelism 2, restored at 3: every running count exactly once.
import assert from "node:assert/strict";
import { once } from "node:events";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  ConfigResourceTypes,
  IncrementalAlterConfigOperationTypes,
  ListOffsetTimestamps,
} from "@platformatic/kafka";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { httpGet } from "../cluster/probe.ts";
import { clusterEnv, s3Client } from "../support/cluster.ts";
import { inputProducer, readTopic } from "../support/kafka.ts";
import { type RuntimePod, RuntimeTestbed, runtimeReady } from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceRounds } from "../support/word-count.ts";

const env = clusterEnv();
const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "word-count-job.ts");

after(() => bed.tearDown());

/** A word-count job of its own: topics, and a way to start its pods. */
async function wordCountJob(partitions: number) {
  const name = bed.jobName("wc");
  const input = `${name}-lines`;
  const output = `${name}-counts`;
  await bed.admin.createTopics({ topics: [input, output], partitions, replicas: 1 });
  const start = async (
    parallelism: number,
    firstIp: number,
    extra: Record<string, string> = {},
  ) => {
    const started = Array.from({ length: parallelism }, (_, subtask) =>
      bed.start({
        module: fixture,
        job: name,
        subtask,
        parallelism,
        ip: `127.2.${firstIp}.${subtask + 1}`,
        env: { TEST_JOB: name, TEST_INPUT: input, TEST_OUTPUT: output, ...extra },
      }),
    );
    await Promise.all(started.map((pod) => runtimeReady(pod)));
    return started;
  };
  return { name, input, output, start };
}

async function stopAll(running: RuntimePod[]): Promise<void> {
  for (const pod of running) pod.process.kill("SIGTERM");
  const exits = await Promise.all(running.map((pod) => once(pod.process, "exit")));
  assert.deepEqual(
    exits.map(([code]) => code),
    running.map(() => 0),
    "SIGTERM: checkpoint, commit, exit 0",
  );
}

test("two subtasks of a re-keyed word count emit every running count exactly once", async () => {
  const job = await wordCountJob(4);
  const running = await job.start(2, 0);
  await produceRounds(job.input, 4, 25);
  // A record without a value (a tombstone) cannot be decoded: it is counted, not lost silently.
  const producer = inputProducer();
  await producer.send({ messages: [{ topic: job.input, partition: 0, key: "poison" }] });
  await producer.close();

  await assertExactlyOnce(job.output, 25);

  const status = JSON.parse((await httpGet(`${running[0]?.url}/v1/status`)).body);
  assert.equal(
    status.tasks.length,
    4,
    "subtask 0 of 2 owns 2 source tasks and 2 repartition tasks",
  );
  // What the repartition tasks committed is deleted: the internal topic keeps only the tail.
  const repartition = (status.tasks as { topic: string }[]).find((t) => t.topic !== job.input);
  assert.ok(repartition);
  await eventually("committed repartition records to be purged", async () => {
    const [listed] = await bed.admin.listOffsets({
      topics: [
        {
          name: repartition.topic,
          partitions: [0, 1, 2, 3].map((partitionIndex) => ({
            partitionIndex,
            timestamp: ListOffsetTimestamps.EARLIEST,
          })),
        },
      ],
    });
    return listed?.partitions.some((p) => p.offset > 0n) ? true : undefined;
  });
  const failures = await Promise.all(
    running.map(async (pod) => {
      const text = (await httpGet(`${pod.url}/metrics`)).body;
      assert.match(text, /^weir_records_in_total \d+/m);
      return Number(/^weir_record_failures_total\{kind="decode"\} (\d+)/m.exec(text)?.[1]);
    }),
  );
  assert.equal(
    failures.reduce((a, b) => a + b, 0),
    1,
    "the tombstone is counted once",
  );
  await stopAll(running);

  // Time never deletes repartition records (they carry event time): created so, and a topic
  // from before with the broker's retention is set so when the job starts again.
  assert.equal(await retentionOf(repartition.topic), "-1", "created without time retention");
  await bed.admin.incrementalAlterConfigs({
    resources: [
      {
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: repartition.topic,
        configs: [
          {
            name: "retention.ms",
            configOperation: IncrementalAlterConfigOperationTypes.SET,
            value: "604800000",
          },
        ],
      },
    ],
  });
  assert.equal(await retentionOf(repartition.topic), "604800000");
  await stopAll(await job.start(2, 4));
  assert.equal(await retentionOf(repartition.topic), "-1", "set again on start");
});

async function retentionOf(topic: string): Promise<string | null | undefined> {
  const [described] = await bed.admin.describeConfigs({
    resources: [
      {
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: topic,
        configurationKeys: ["retention.ms"],
      },
    ],
  });
  return described?.configs.find((c) => c.name === "retention.ms")?.value;
}

/** Stop-with-savepoint at `from` pods, more input while stopped, restore at `to` pods. */
async function rescaleThroughSavepoint(from: number, to: number): Promise<void> {
  const job = await wordCountJob(6);
  const before = await job.start(from, from * 10 + to);
  await produceRounds(job.input, 6, 20);
  await readTopic(job.output, (read) => read.length >= 50);

  // Every pod takes its part (state committed with its offsets) and stops reading.
  for (const pod of before) {
    const res = await fetch(`${pod.url}/v1/savepoints`, {
      method: "POST",
      body: JSON.stringify({ id: "sp-1", stop: true }),
    });
    assert.equal(res.status, 202);
  }
  for (const pod of before) {
    const done = await eventually(`${pod.ip}: savepoint completed`, async () => {
      const state = JSON.parse((await httpGet(`${pod.url}/v1/savepoints/sp-1`)).body);
      if (state.state === "failed") throw new Error(state.reason);
      return state.state === "completed" ? state : undefined;
    });
    assert.match(done.path, /\/savepoints\/sp-1\/$/);
  }
  // Input that arrives while the job is stopped is processed by the restored run.
  await produceRounds(job.input, 6, 10);
  await stopAll(before);

  // The operator's step: the savepoint exists once every part is in.
  const store = new SnapshotStore({
    client: s3Client(),
    bucket: env.s3Bucket,
    prefix: "runtime-tests",
    job: { namespace: "tests", name: job.name },
  });
  const savepoint = await store.completeSavepoint("sp-1", ["counts"], from);
  assert.ok(savepoint, "all parts were written");
  assert.equal(savepoint.tasks.length, 12, "6 source tasks and 6 repartition tasks");

  await job.start(to, to * 10 + from + 100, { WEIR_RESTORE_FROM: store.path("savepoint", "sp-1") });
  await produceRounds(job.input, 6, 10);
  await assertExactlyOnce(job.output, 40);
}

test("stop-with-savepoint at parallelism 2, restored at 3, continues every count exactly once", () =>
  rescaleThroughSavepoint(2, 3));

test("stop-with-savepoint at parallelism 3, restored at 1, continues every count exactly once", () =>
  rescaleThroughSavepoint(3, 1));
