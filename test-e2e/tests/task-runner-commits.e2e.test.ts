// When a task commits, against the real broker and MinIO: outputs that a timer emits on a
// quiet partition commit without new input (and their state with them, so a restart does not
// emit them again); a stop-with-savepoint whose commit fails stops the task instead of letting
// it go on past outputs that never landed.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { TaskReader, TaskWriter } from "../../runtime/src/connectors/kafka/task-io.ts";
import { CommitFailed, TaskRunner } from "../../runtime/src/engine/task-runner.ts";
import type { TaskState } from "../../runtime/src/state/keyed-state.ts";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { clusterEnv, s3Client, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopicSettled } from "../support/kafka.ts";
import { eventually } from "../support/wait.ts";

const bootstrapBrokers = [clusterEnv().kafkaBootstrap];
const kafka = { bootstrapBrokers };
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
const topics: string[] = [];

after(async () => {
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.close();
});

async function topicsFor(name: string): Promise<{ input: string; output: string }> {
  const input = `${name}-in`;
  const output = `${name}-out`;
  topics.push(input, output);
  await admin.createTopics({ topics: [input, output], partitions: 1, replicas: 1 });
  return { input, output };
}

/**
 * Counts the records it reads; 300 ms (processing time) after a record it emits the count
 * so far, once: a processing-time timer, so it fires on a quiet partition.
 */
function countThenReport(output: string) {
  return (state: TaskState) => {
    const count = state.operator("report").value<number>("count");
    const due = state.operator("report").value<number>("due");
    return {
      process: (records: { timestamp: number }[], now: number) => {
        count.set("", (count.get("", now) ?? 0) + records.length, now);
        if (records.length > 0) due.set("", now + 300, now);
        return [];
      },
      advanceTime: (now: number) => {
        const at = due.get("", now);
        if (at === undefined || now < at) return [];
        due.delete("");
        const value = Buffer.from(`count:${count.get("", now) ?? 0}`);
        return [{ topic: output, key: null, value, timestamp: now }];
      },
    };
  };
}

function runner(
  name: string,
  input: string,
  output: string,
  checkpointIntervalMs: number,
  sourceEnd?: bigint,
) {
  const job = { namespace: "tests", name };
  return new TaskRunner({
    job,
    task: { topic: input, partition: 0 },
    kafka,
    store: new SnapshotStore({
      client: s3Client(),
      bucket: clusterEnv().s3Bucket,
      prefix: "task-runner-commits",
      job,
    }),
    jobOperators: ["report"],
    stateful: true,
    checkpointIntervalMs,
    run: "r1",
    ...(sourceEnd === undefined ? {} : { sourceEnd: () => sourceEnd }),
    createProcessor: countThenReport(output),
  });
}

async function produce(input: string, count: number): Promise<void> {
  const producer = inputProducer();
  await producer.send({
    messages: Array.from({ length: count }, (_, i) => ({
      topic: input,
      partition: 0,
      value: `r${i}`,
    })),
  });
  await producer.close();
}

test("a timer's output on a quiet partition commits, and a restart does not emit it again", async () => {
  const name = uniqueName("quiet-timer");
  const { input, output } = await topicsFor(name);
  await produce(input, 3);
  const first = runner(name, input, output, 500);
  await first.start();
  // No record arrives after the three: only the checkpoint after the timer can commit it.
  const fired = await readTopicSettled(output, 1, { timeoutMs: 15_000 });
  assert.deepEqual(
    fired.records.map((r) => r.value),
    ["count:3"],
  );
  await first.stop();

  // The state committed with the output has the timer done: a new owner does not fire it again.
  const second = runner(name, input, output, 500);
  await second.start();
  try {
    assert.equal(second.plan?.kind, "snapshot");
    await produce(input, 2);
    const all = await readTopicSettled(output, 2, { timeoutMs: 15_000 });
    assert.deepEqual(
      all.records.map((r) => r.value),
      ["count:3", "count:5"],
      "each report exactly once",
    );
  } finally {
    await second.stop();
  }
});

test("a stop-with-savepoint whose commit fails stops the task and commits nothing", async () => {
  const name = uniqueName("failed-stop");
  const { input, output } = await topicsFor(name);
  await produce(input, 5);
  // One checkpoint a minute: after the first commit (once caught up with the 5 records),
  // nothing else commits during the test.
  const task = runner(name, input, output, 60_000, 5n);
  await task.start();
  await eventually("the first commit", async () => (task.lastCheckpoint ? true : undefined));
  await produce(input, 5);
  await eventually("the next records to be processed", async () =>
    task.recordsIn >= 10 ? true : undefined,
  );
  // Another owner takes the task over: the runner's open transaction is aborted.
  const other = new TaskWriter({
    kafka,
    job: { namespace: "tests", name },
    task: { topic: input, partition: 0 },
    clientId: "other-owner",
  });
  await other.fence();
  await assert.rejects(task.savepoint(uniqueName("sp"), true), CommitFailed);
  // It does not go on as if the aborted outputs had landed: it fails now, not at its next
  // checkpoint a minute later.
  const stopped = await Promise.race([
    task.running.then(
      () => "went on",
      (error: unknown) => (error instanceof CommitFailed ? "failed" : String(error)),
    ),
    new Promise((resolve) => setTimeout(() => resolve("still running after 10 s"), 10_000)),
  ]);
  await Promise.all([task.stop().catch(() => {}), other.close()]);
  assert.equal(stopped, "failed");
  const position = new TaskReader({
    kafka,
    job: { namespace: "tests", name },
    task: { topic: input, partition: 0 },
  });
  const committed = await position.committed();
  await position.close();
  assert.ok(task.lastCheckpoint && task.lastCheckpoint.offset < 10n);
  assert.equal(committed?.offset, task.lastCheckpoint.offset, "only the first commit landed");
});
