// Exactly-once with state across a crash: a task of a keyed running count is killed with
// SIGKILL while input keeps arriving, then started again. A read_committed reader of the
// output must see, for every word, the counts 1..n each exactly once: no record lost, none
// processed twice, and the state restored to match the committed output.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { after, test } from "node:test";
import { Admin, type Producer } from "@platformatic/kafka";
import { TaskReader } from "../../runtime/src/connectors/kafka/task-io.ts";
import {
  CheckpointNotStored,
  MAX_CHECKPOINT_INTERVAL_MS,
  TaskRunner,
} from "../../runtime/src/engine/task-runner.ts";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { clusterEnv, s3Client, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopic, readTopicSettled, readTopicToEnd } from "../support/kafka.ts";
import { startTaskProcess } from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";

const bootstrapBrokers = [clusterEnv().kafkaBootstrap];
const kafka = { bootstrapBrokers };
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
const jobName = uniqueName("count");
const input = `${jobName}-in`;
const output = `${jobName}-out`;
const words = ["alpha", "beta", "gamma", "delta", "epsilon"];
const children: ChildProcess[] = [];

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await admin.deleteTopics({ topics: [input, output] }).catch(() => {});
  await admin.close();
});

const startTask = () => startTaskProcess([jobName, input, output], children);

/** Produces `count` words, `chunk` at a time, returning how many of each were sent. */
async function produce(
  producer: Producer<string, string, string, string>,
  from: number,
  count: number,
  topic = input,
) {
  for (let i = from; i < from + count; i += 50) {
    const values = Array.from(
      { length: Math.min(50, from + count - i) },
      (_, j) => words[(i + j) % words.length] ?? "",
    );
    await producer.send({
      messages: values.map((value) => ({ topic, partition: 0, value })),
    });
  }
}

test("a stateful task killed with SIGKILL mid-stream resumes exactly once", async () => {
  await admin.createTopics({ topics: [input, output], partitions: 1, replicas: 1 });
  const producer = inputProducer();
  const total = 3000;

  const first = startTask();
  assert.equal(await first.started, "started: fresh");
  await produce(producer, 0, 1000);
  await readTopic(output, (values) => values.length >= 300);
  // More input keeps arriving, in small chunks, while the task is killed: it dies with records
  // read, processed and sent in an open transaction that never commits.
  const producing = (async () => {
    for (let sent = 1000; sent < total; sent += 50) {
      await produce(producer, sent, 50);
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
  })();
  first.child.kill("SIGKILL");
  await once(first.child, "exit");

  const second = startTask();
  const restored = await second.started;
  const at = Number(/^started: snapshot at (\d+)$/.exec(restored)?.[1]);
  assert.ok(at >= 300 && at < total, `restored mid-stream from a checkpoint (${restored})`);
  await producing;
  await producer.close();

  // The whole output, to its read_committed end once settled: a duplicate tail would show.
  const values = (await readTopicSettled(output, total)).records.map((r) => r.value ?? "");
  second.child.kill("SIGTERM");
  await once(second.child, "exit");

  const seen = new Map<string, number[]>();
  for (const value of values) {
    const [word = "", count = ""] = value.split(":");
    seen.set(word, [...(seen.get(word) ?? []), Number(count)]);
  }
  for (const word of words) {
    const counts = seen.get(word) ?? [];
    const expected = Array.from({ length: total / words.length }, (_, i) => i + 1);
    assert.deepEqual(counts, expected, `${word}: every count exactly once, in order`);
  }
  assert.equal(values.length, total);
});

test("while storage refuses checkpoints the task keeps processing and commits nothing", async () => {
  const name = uniqueName("no-storage");
  const topic = `${name}-in`;
  const out = `${name}-out`;
  await admin.createTopics({ topics: [topic, out], partitions: 1, replicas: 1 });
  try {
    const store = new SnapshotStore({
      client: s3Client("not-the-secret"),
      bucket: clusterEnv().s3Bucket,
      prefix: "task-runner-tests",
      job: { namespace: "tests", name },
    });
    const runner = new TaskRunner({
      job: { namespace: "tests", name },
      task: { topic, partition: 0 },
      kafka,
      store,
      jobOperators: [],
      stateful: false,
      checkpointIntervalMs: 100,
      createProcessor: () => ({
        process: (records) =>
          records.map((r) => ({
            topic: out,
            key: null,
            value: r.value ?? Buffer.alloc(0),
            timestamp: r.timestamp,
          })),
      }),
    });
    await runner.start();
    const producer = inputProducer();
    await produce(producer, 0, 100, topic);
    await producer.close();
    await eventually("the task to process while checkpoints fail", async () =>
      runner.recordsIn >= 100 && runner.checkpointFailures >= 2 ? true : undefined,
    );
    const written = await readTopic(out, (v) => v.length >= 100, { committed: false });
    assert.equal(written.length, 100, "the outputs were sent, inside the open transaction");
    await assert.rejects(runner.stop(), CheckpointNotStored);
    const position = new TaskReader({
      kafka,
      job: { namespace: "tests", name },
      task: { topic, partition: 0 },
    });
    assert.equal(
      await position.committed(),
      undefined,
      "no offset committed without its checkpoint",
    );
    await position.close();
    const { records: visible } = await readTopicToEnd(out);
    assert.deepEqual(visible, [], "no output became visible to read_committed");
  } finally {
    await admin.deleteTopics({ topics: [topic, out] }).catch(() => {});
  }
});

test("the first commit comes once the task caught up with its source; later ones every interval", async () => {
  const name = uniqueName("first-commit");
  const topic = `${name}-in`;
  const out = `${name}-out`;
  await admin.createTopics({ topics: [topic, out], partitions: 1, replicas: 1 });
  const job = { namespace: "tests", name };
  const producer = inputProducer();
  // A backlog, as after an upgrade's downtime.
  await produce(producer, 0, 300, topic);
  const runner = new TaskRunner({
    job,
    task: { topic, partition: 0 },
    kafka,
    store: new SnapshotStore({
      client: s3Client(),
      bucket: clusterEnv().s3Bucket,
      prefix: "task-runner-tests",
      job,
    }),
    jobOperators: [],
    stateful: false,
    // Far longer than the test: only the first commit may come before the stop.
    checkpointIntervalMs: MAX_CHECKPOINT_INTERVAL_MS,
    sourceEnd: () => 300n,
    createProcessor: () => ({
      process: (records) =>
        records.map((r) => ({
          topic: out,
          key: null,
          value: r.value ?? Buffer.alloc(0),
          timestamp: r.timestamp,
        })),
    }),
  });
  try {
    await runner.start();
    await readTopic(out, (v) => v.length >= 300, { timeoutMs: 20_000 });
    const { records: first } = await readTopicToEnd(out);
    assert.equal(first.length, 300, "the backlog is visible without waiting an interval");
    await produce(producer, 300, 10, topic);
    await eventually("the next records to be processed", async () =>
      runner.recordsIn >= 310 ? true : undefined,
    );
    await assert.rejects(
      readTopic(out, (v) => v.length > 300, { timeoutMs: 3_000 }),
      /still reading/,
      "later records wait for the interval",
    );
    await runner.stop();
    // Stopped: its output is final, read to its end.
    assert.equal((await readTopicToEnd(out)).records.length, 310);
  } finally {
    await producer.close();
    await runner.stop().catch(() => {});
    await admin.deleteTopics({ topics: [topic, out] }).catch(() => {});
  }
});
