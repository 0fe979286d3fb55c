// Tasks on worker threads, through the runtime process against the real broker and MinIO: the
// re-keyed word count (two stages through a repartition topic) on 4 partitions with a CPU limit
// of 2, so that its 8 tasks run on 2 worker threads. Every running count exactly once; status
// and metrics show every task; SIGTERM exits 0 with every task committed; a savepoint taken on
// the threads restores at parallelism 2 on the main thread; SIGKILL and a restart; a record
// failed under "fail" in a worker ends the process with 3 and its JSON line.
import assert from "node:assert/strict";
import { once } from "node:events";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { taskGroupId } from "../../runtime/src/connectors/kafka/task-io.ts";
import { CPU_LIMIT_ENV } from "../../runtime/src/engine/task-threads.ts";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { httpGet } from "../cluster/probe.ts";
import { clusterEnv, s3Client } from "../support/cluster.ts";
import {
  committedGrowth,
  inputProducer,
  lastStableOffsets,
  readTopic,
  readTopicToEnd,
} from "../support/kafka.ts";
import {
  exitOf,
  type LogLine,
  type RuntimePod,
  RuntimeTestbed,
  runtimeReady,
  runtimeStatus,
  scrape,
} from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";
import {
  assertExactlyOnce,
  expectedCounts,
  LINES_PER_ROUND,
  produceContinuously,
  produceRounds,
} from "../support/word-count.ts";

const env = clusterEnv();
const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "word-count-job.ts");
const PARTITIONS = 4;
/** What the operator's downward API would say of `limits.cpu: 2` (and 1). */
const TWO_CPUS = { [CPU_LIMIT_ENV]: "2000" };
const ONE_CPU = { [CPU_LIMIT_ENV]: "1000" };

after(() => bed.tearDown());

/** The pod's JSON log lines (stdout), as they come. */
function logsOf(pod: RuntimePod) {
  const lines: LogLine[] = [];
  if (pod.process.stdout) {
    createInterface({ input: pod.process.stdout }).on("line", (line) => {
      if (line.startsWith("{")) lines.push(JSON.parse(line) as LogLine);
    });
  }
  return {
    lines,
    line: (msg: string) =>
      eventually(`log line "${msg}"`, async () => lines.find((l) => l.msg === msg)),
  };
}

/** A word-count job of its own on 4 partitions, and a way to start its pods. */
async function wordCountJob(prefix: string) {
  const name = bed.jobName(prefix);
  const input = `${name}-lines`;
  const output = `${name}-counts`;
  await bed.admin.createTopics({ topics: [input, output], partitions: PARTITIONS, replicas: 1 });
  const start = (
    parallelism: number,
    cpu: Record<string, string>,
    options: {
      env?: Record<string, string>;
      config?: Record<string, unknown>;
      stderr?: "pipe";
      checkpointIntervalMs?: number;
    } = {},
  ) =>
    Array.from({ length: parallelism }, (_, subtask) =>
      bed.start({
        module: fixture,
        job: name,
        subtask,
        parallelism,
        stdout: "pipe",
        ...(options.stderr ? { stderr: options.stderr } : {}),
        ...(options.config ? { config: options.config } : {}),
        ...(options.checkpointIntervalMs
          ? { checkpointIntervalMs: options.checkpointIntervalMs }
          : {}),
        env: { TEST_JOB: name, TEST_INPUT: input, TEST_OUTPUT: output, ...cpu, ...options.env },
      }),
    );
  return { name, input, output, start };
}

/** /v1/status with the pod-level fields this test reads. */
async function statusOf(pod: RuntimePod) {
  return (await runtimeStatus(pod)) as Awaited<ReturnType<typeof runtimeStatus>> & {
    workers: number;
  };
}

async function stopped(pod: RuntimePod): Promise<number | null> {
  if (pod.process.exitCode === null) pod.process.kill("SIGTERM");
  const [code] =
    pod.process.exitCode === null ? await once(pod.process, "exit") : [pod.process.exitCode];
  return code as number | null;
}

const needsTwoCpus = () =>
  assert.ok(availableParallelism() >= 2, "two worker threads need a machine with 2 CPUs or more");

test("8 tasks on 2 worker threads: exactly once, every task in status and metrics, SIGTERM commits every task", async () => {
  needsTwoCpus();
  const job = await wordCountJob("wt");
  const [pod] = job.start(1, TWO_CPUS);
  assert.ok(pod);
  const logs = logsOf(pod);
  await runtimeReady(pod);
  const running = await logs.line("running");
  assert.equal(running.workers, 2, "the running line says how many workers");
  assert.equal(running.cpus, 2);
  assert.equal((running.tasks as string[]).length, 2 * PARTITIONS);

  const rounds = 25;
  await produceRounds(job.input, PARTITIONS, rounds);
  await assertExactlyOnce(job.output, rounds);

  const status = await statusOf(pod);
  assert.equal(status.workers, 2);
  assert.equal(status.tasks.length, 2 * PARTITIONS, "4 source tasks and 4 repartition tasks");
  const source = status.tasks.filter((t) => t.topic === job.input);
  assert.deepEqual(
    source.map((t) => t.partition).sort(),
    [0, 1, 2, 3],
    "every source partition's task, whichever thread runs it",
  );
  const repartition = status.tasks.find((t) => t.topic !== job.input)?.topic ?? "";
  assert.match(repartition, /-repartition$/);
  // The figures come from the workers (status: their last snapshot, at most ~500 ms old).
  const lines = rounds * LINES_PER_ROUND;
  const words = [...expectedCounts(rounds).values()].reduce((a, b) => a + b, 0);
  await eventually("status to count every line read", async () => {
    const tasks = (await statusOf(pod)).tasks;
    const read = (topic: string) =>
      tasks.filter((t) => t.topic === topic).reduce((sum, t) => sum + t.recordsIn, 0);
    return read(job.input) === lines && read(repartition) === words ? true : undefined;
  });
  assert.ok(
    (await statusOf(pod)).tasks.every((t) => t.lastCheckpoint !== undefined || t.recordsIn === 0),
  );

  // Metrics ask every worker at scrape time: totals and one series per task.
  const metrics = await scrape(pod);
  assert.equal(metrics.get("weir_tasks"), 2 * PARTITIONS);
  assert.equal(metrics.get("weir_records_in_total"), lines + words);
  assert.equal(metrics.get("weir_records_out_total"), 2 * words, "repartitioned, then counted");
  for (const topic of [job.input, repartition]) {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      assert.ok(
        metrics.has(`weir_checkpoint_age_seconds{topic="${topic}",partition="${partition}"}`),
        `${topic}-${partition} in the metrics`,
      );
      assert.ok(
        metrics.has(`weir_state_size_bytes{topic="${topic}",partition="${partition}"}`),
        `${topic}-${partition}: its state size`,
      );
    }
  }
  assert.equal(metrics.get(`weir_source_backlog_records{topic="${job.input}",partition="0"}`), 0);

  // SIGTERM: every worker's tasks finish, checkpoint and commit; then exit 0.
  assert.equal(await stopped(pod), 0);
  for (const topic of [job.input, repartition]) {
    // Where each partition's last record is (a repartition topic also holds commit markers).
    const contents = await readTopicToEnd(topic);
    const ends = Array.from({ length: PARTITIONS }, (_, partition) =>
      contents.records
        .filter((r) => r.partition === partition)
        .reduce((end, r) => (r.offset + 1n > end ? r.offset + 1n : end), 0n),
    );
    const stable = await lastStableOffsets(topic);
    const committed = await Promise.all(
      Array.from({ length: PARTITIONS }, async (_, partition) => {
        const groupId = taskGroupId({ namespace: "tests", name: job.name }, { topic, partition });
        const [offsets] = await bed.admin.listConsumerGroupOffsets({
          groups: [{ groupId, topics: [{ name: topic, partitionIndexes: [partition] }] }],
        });
        return offsets?.topics[0]?.partitions[0]?.committedOffset;
      }),
    );
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const offset = committed[partition];
      const end = ends[partition] ?? 0n;
      assert.ok(offset !== undefined && offset >= 0n, `${topic}-${partition} committed`);
      // Past its partition's last record (a marker or more may follow it), not past the end.
      assert.ok(
        offset >= end && offset <= (stable[partition] ?? 0n),
        `${topic}-${partition}: committed ${offset}, last record ends at ${end}, stable end ${stable[partition]}`,
      );
    }
  }
});

test("a savepoint taken on 2 worker threads restores at parallelism 2 on the main thread, exactly once", async () => {
  needsTwoCpus();
  const job = await wordCountJob("wt-sp");
  const [pod] = job.start(1, TWO_CPUS);
  assert.ok(pod);
  const logs = logsOf(pod);
  await runtimeReady(pod);
  await produceRounds(job.input, PARTITIONS, 20);
  await readTopic(job.output, (read) => read.length >= 50);

  const res = await fetch(`${pod.url}/v1/savepoints`, {
    method: "POST",
    body: JSON.stringify({ id: "sp-1", stop: true }),
  });
  assert.equal(res.status, 202);
  const done = await eventually("the savepoint", async () => {
    const state = JSON.parse((await httpGet(`${pod.url}/v1/savepoints/sp-1`)).body);
    if (state.state === "failed") throw new Error(state.reason);
    return state.state === "completed" ? state : undefined;
  });
  assert.equal(done.files.length, 2 * PARTITIONS, "a part from every task of both workers");
  const part = await logs.line("savepoint part taken");
  assert.equal((part.tasks as unknown[]).length, 2 * PARTITIONS);
  // Input that arrives while the job is stopped is processed by the restored run.
  await produceRounds(job.input, PARTITIONS, 10);
  assert.equal(await stopped(pod), 0);

  const store = new SnapshotStore({
    client: s3Client(),
    bucket: env.s3Bucket,
    prefix: "runtime-tests",
    job: { namespace: "tests", name: job.name },
  });
  const savepoint = await store.completeSavepoint("sp-1", ["counts"], 1);
  assert.ok(savepoint, "the part was written");
  assert.equal(savepoint.tasks.length, 2 * PARTITIONS);

  // 4 tasks each and 1 CPU: on the main thread, as before workers existed.
  const restored = job.start(2, ONE_CPU, {
    env: { WEIR_RESTORE_FROM: store.path("savepoint", "sp-1") },
  });
  await Promise.all(restored.map((p) => runtimeReady(p)));
  for (const p of restored) {
    const status = await statusOf(p);
    assert.equal(status.workers, 0, "one CPU: no worker threads");
    assert.equal(status.tasks.length, PARTITIONS);
    assert.ok(status.tasks.every((t) => t.restoredFrom === "snapshot"));
  }
  await produceRounds(job.input, PARTITIONS, 10);
  await assertExactlyOnce(job.output, 40);
  assert.deepEqual(await Promise.all(restored.map(stopped)), [0, 0]);
});

test("SIGKILL mid-run on worker threads, then a restart: every count exactly once", async () => {
  needsTwoCpus();
  const job = await wordCountJob("wt-kill");
  const [first] = job.start(1, TWO_CPUS);
  assert.ok(first);
  await runtimeReady(first);
  const traffic = produceContinuously(job.input, PARTITIONS);
  let rounds: number;
  let second: RuntimePod | undefined;
  try {
    await committedGrowth(job.output, 300);
    first.process.kill("SIGKILL");
    await once(first.process, "exit");

    [second] = job.start(1, TWO_CPUS);
    assert.ok(second);
    await runtimeReady(second);
    assert.equal((await statusOf(second)).workers, 2);
    await committedGrowth(job.output, 300);
  } finally {
    rounds = await traffic.stop();
  }
  await assertExactlyOnce(job.output, rounds);
  assert.equal(await stopped(second), 0);
});

test('a record failed under "fail" on a worker thread: exit 3 with its JSON line', async () => {
  needsTwoCpus();
  const job = await wordCountJob("wt-fail");
  // Three rounds put 3 lines on each partition; then a tombstone (it cannot be decoded) at
  // offset 3 of partition 2.
  await produceRounds(job.input, PARTITIONS, 3);
  const producer = inputProducer();
  await producer.send({ messages: [{ topic: job.input, partition: 2, key: "poison" }] });
  await producer.close();

  const [pod] = job.start(1, TWO_CPUS, {
    stderr: "pipe",
    config: { failures: { action: "fail" } },
  });
  assert.ok(pod);
  const { code, stderr, logs } = await exitOf(pod);
  assert.equal(code, 3, `exit status of a record failed under "fail" (${stderr.slice(-2_000)})`);
  const failed = logs.find((line) => /fail policy/.test(line.msg));
  assert.ok(failed, `the JSON error line in ${stderr}`);
  assert.deepEqual(
    { task: failed.task, offset: failed.offset, operator: failed.operator, kind: failed.kind },
    { task: `${job.input}-2`, offset: "3", operator: "source", kind: "decode" },
  );
  // The worker's own line about the record is out too: its stderr is flushed before the exit.
  assert.ok(
    logs.some((line) => line.msg === "record failed" && line.offset === "3"),
    "the task runner's line from the worker",
  );
});
