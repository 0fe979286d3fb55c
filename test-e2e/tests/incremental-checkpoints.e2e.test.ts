// Incremental checkpoints against real MinIO (and, for the last test, real Kafka): a task's
// checkpoints as deltas on a chain, compacted in the background; restores from the chain equal
// the live state; a crash mid-compaction leaves the old chain valid and an orphan retention
// removes; a savepoint from a delta chain is self-contained; a keyed job SIGKILLed at random
// points with incremental checkpoints emits every count exactly once.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { after, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { TaskCheckpoints } from "../../runtime/src/engine/task-checkpoints.ts";
import { TaskState } from "../../runtime/src/state/keyed-state.ts";
import type { TaskEntry } from "../../runtime/src/state/metadata.ts";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { contents, mutate, rng } from "../../runtime/src/state/state-fixtures.ts";
import { clusterEnv, s3Client, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopicSettled } from "../support/kafka.ts";
import { startTaskProcess } from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";

const env = clusterEnv();
const client = s3Client();
const prefix = uniqueName("incremental");
const task = { topic: "events", partition: 0 };
const tp = "events-0";

after(async () => {
  const keys: string[] = [];
  for await (const item of client.listObjectsV2(env.s3Bucket, `${prefix}/`, true)) {
    if (item.name) keys.push(item.name);
  }
  if (keys.length > 0) await client.removeObjects(env.s3Bucket, keys);
});

function storeFor(name: string): SnapshotStore {
  return new SnapshotStore({
    client,
    bucket: env.s3Bucket,
    prefix,
    job: { namespace: "tests", name },
  });
}

async function keys(under: string): Promise<string[]> {
  const found: string[] = [];
  for await (const item of client.listObjectsV2(env.s3Bucket, under, true)) {
    if (item.name) found.push(item.name);
  }
  return found.sort();
}

const bounds = { compactAfterDeltas: 5, compactAtRatio: 0.5, maxDeltas: 50 };

/** The newest checkpoint's entry of the task, as a restarted task would pick it. */
async function newest(store: SnapshotStore): Promise<{ id: string; entry: TaskEntry }> {
  const list = await store.list("checkpoint");
  const last = list.at(-1);
  assert.ok(last?.tasks[0], "a checkpoint exists");
  return { id: last.id, entry: last.tasks[0] };
}

/** Checkpoints of random work, committed one by one, as the task runner does. */
async function checkpointRounds(
  checkpoints: TaskCheckpoints,
  state: TaskState,
  random: () => number,
  from: { round: number; now: number },
  rounds: number,
): Promise<{ round: number; now: number }> {
  let { round, now } = from;
  for (let i = 0; i < rounds; i++, round++) {
    now += 1 + Math.floor(random() * 15);
    mutate(state, random, now, 1 + Math.floor(random() * 200));
    const id = `${tp}-${String(round).padStart(6, "0")}-r1.${round}`;
    const stored = await checkpoints.write(state, id, { [tp]: round }, now);
    checkpoints.committed(state, stored);
  }
  return { round, now };
}

describe("incremental checkpoints in MinIO", () => {
  test("restores equal the state after many deltas and compactions; retention keeps chains whole", async () => {
    const store = storeFor("many-deltas");
    const random = rng(11);
    const state = new TaskState();
    mutate(state, random, 1_000, 20_000);
    const checkpoints = new TaskCheckpoints({
      store,
      task,
      jobOperators: ["cache", "count", "sessions", "win"],
      bounds,
      orphanGraceMs: 0,
    });
    let at = { round: 1, now: 1_000 };
    let deltas = 0;
    for (let batch = 0; batch < 8; batch++) {
      at = await checkpointRounds(checkpoints, state, random, at, 5);
      await checkpoints.compacting;
      await checkpoints.retain(3);
      const { entry } = await newest(store);
      if (entry.chain) deltas++;
      const restored = await new TaskCheckpoints({ store, task, jobOperators: [] }).restore(
        entry,
        "checkpoint",
      );
      assert.deepEqual(contents(restored.state, at.now), contents(state, at.now));
    }
    assert.ok(checkpoints.compactions >= 3, `${checkpoints.compactions} compactions`);
    assert.ok(deltas >= 4, "the newest checkpoint was a delta most of the time");
    // Every kept checkpoint restores (its chain's objects are all there); little else is kept.
    const kept = await store.list("checkpoint");
    assert.equal(kept.length, 3);
    for (const checkpoint of kept) {
      const entry = checkpoint.tasks[0] as TaskEntry;
      await new TaskCheckpoints({ store, task, jobOperators: [] }).restore(entry, "checkpoint");
    }
    const objects = (await keys(`${prefix}/tests/many-deltas/checkpoints/`)).filter(
      (k) => !k.endsWith("_metadata.json"),
    );
    // At most two chains (a kept checkpoint's, and the compacted one after it) and a delta.
    assert.ok(
      objects.length <= 2 * (1 + bounds.compactAfterDeltas) + 1,
      `${objects.length} objects`,
    );
  });

  test("a crash mid-compaction leaves the old chain valid; retention removes the orphan", async () => {
    const store = storeFor("crash-compaction");
    const random = rng(12);
    const state = new TaskState();
    mutate(state, random, 1_000, 20_000);
    const crashed = new TaskCheckpoints({
      store,
      task,
      jobOperators: ["cache", "count", "sessions", "win"],
      bounds,
      orphanGraceMs: 0,
    });
    // A full checkpoint, then deltas until the chain is long enough to compact.
    const at = await checkpointRounds(crashed, state, random, { round: 1, now: 1_000 }, 6);
    // The compaction's base is written, and the process dies before any checkpoint names it.
    await crashed.compacting;
    assert.equal(crashed.compactions, 1);
    const dir = `${prefix}/tests/crash-compaction/checkpoints/`;
    const orphan = (await keys(dir)).find((k) => k.includes(".compacted-"));
    assert.ok(orphan, "the compacted base was written");
    const { entry } = await newest(store);
    assert.equal(entry.chain?.deltas.length, 5, "the newest checkpoint names the old chain");
    assert.ok(
      ![entry.chain?.base, ...(entry.chain?.deltas ?? [])].some((r) => r?.key === orphan),
      "no metadata names the compacted base",
    );

    // The restarted task restores from the old chain and goes on with deltas on it.
    const restarted = new TaskCheckpoints({
      store,
      task,
      jobOperators: ["cache", "count", "sessions", "win"],
      bounds: { ...bounds, compactAfterDeltas: 100 },
      orphanGraceMs: 0,
    });
    const restored = await restarted.restore(entry, "checkpoint");
    assert.deepEqual(contents(restored.state, at.now), contents(state, at.now));
    const next = await checkpointRounds(restarted, restored.state, random, at, 1);
    await restarted.retain(3);
    assert.ok(!(await keys(dir)).includes(orphan), "retention removed the orphan");
    const { entry: last } = await newest(store);
    assert.equal(last.chain?.deltas.length, 6, "a delta on the old chain");
    const again = await new TaskCheckpoints({ store, task, jobOperators: [] }).restore(
      last,
      "checkpoint",
    );
    assert.deepEqual(contents(again.state, next.now), contents(restored.state, next.now));
  });

  test("a savepoint taken from a delta chain restores after every checkpoint object is gone; the next run starts its chain on a copy", async () => {
    const store = storeFor("savepoint-chain");
    const random = rng(13);
    const state = new TaskState();
    mutate(state, random, 1_000, 20_000);
    const operators = ["cache", "count", "sessions", "win"];
    const checkpoints = new TaskCheckpoints({ store, task, jobOperators: operators, bounds });
    const at = await checkpointRounds(checkpoints, state, random, { round: 1, now: 1_000 }, 3);
    assert.equal(checkpoints.chainLength, 2, "the state follows a base and two deltas");
    mutate(state, random, at.now, 100);
    const entry = await checkpoints.writeSavepoint(state, "sp-1", { [tp]: at.round }, at.now);
    await store.writeSavepointPart("sp-1", 0, [entry]);
    await store.completeSavepoint("sp-1", operators, 1);

    await client.removeObjects(
      env.s3Bucket,
      await keys(`${prefix}/tests/savepoint-chain/checkpoints/`),
    );
    const savepoint = await store.readAt(store.path("savepoint", "sp-1"));
    assert.ok(savepoint?.tasks[0]);
    assert.equal(savepoint.tasks[0].chain, undefined, "one full object");
    // The next run restores it; its chain starts on a copy of the savepoint's object, so its
    // first checkpoint is a delta, and it survives the operator deleting the savepoint.
    const next = new TaskCheckpoints({ store, task, jobOperators: operators, bounds });
    const copyTo = store.objectKey("checkpoint", `${tp}-${at.round}-r2`, task, "restored");
    const restored = await next.restore(savepoint.tasks[0], "savepoint", copyTo);
    assert.deepEqual(contents(restored.state, at.now), contents(state, at.now));
    const after = await checkpointRounds(next, restored.state, random, at, 1);
    const { entry: first } = await newest(store);
    assert.equal(first.chain?.base.key, copyTo, "a delta on the copy");
    await store.delete("savepoint", "sp-1");
    const again = await new TaskCheckpoints({ store, task, jobOperators: [] }).restore(
      first,
      "checkpoint",
    );
    assert.deepEqual(contents(again.state, after.now), contents(restored.state, after.now));
  });

  test("a state larger than a part streams up in parts and is verified on the way down", async () => {
    const store = storeFor("multipart");
    const state = new TaskState();
    const blobs = state.operator("blobs").value<string>("b");
    for (let i = 0; i < 2_500; i++) blobs.set(`k${i}`, `${i}`.padEnd(10_000, "x"), 0);
    const checkpoints = new TaskCheckpoints({ store, task, jobOperators: ["blobs"] });
    const stored = await checkpoints.write(state, `${tp}-1-r1.1`, { [tp]: 1 }, 0);
    assert.equal(stored.kind, "full");
    assert.ok(stored.bytes > 20_000_000, `${stored.bytes} bytes`);
    const entry = (await store.read("checkpoint", `${tp}-1-r1.1`))?.tasks[0] as TaskEntry;
    const restored = await new TaskCheckpoints({ store, task, jobOperators: [] }).restore(
      entry,
      "checkpoint",
    );
    assert.deepEqual(contents(restored.state, 0), contents(state, 0));
    await assert.rejects(
      new TaskCheckpoints({ store, task, jobOperators: [] }).restore(
        { ...entry, sha256: "0".repeat(64) },
        "checkpoint",
      ),
      /checksum mismatch/,
    );
  });
});

describe("a keyed job with incremental checkpoints", () => {
  const bootstrapBrokers = [env.kafkaBootstrap];
  const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
  const jobName = uniqueName("inc-count");
  const input = `${jobName}-in`;
  const output = `${jobName}-out`;
  const children: ChildProcess[] = [];

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await admin.deleteTopics({ topics: [input, output] }).catch(() => {});
    await admin.close();
  });

  const startTask = () =>
    startTaskProcess([jobName, input, output, prefix, "short-chain"], children);

  test("SIGKILLed at random points, every count comes out exactly once", async () => {
    await admin.createTopics({ topics: [input, output], partitions: 1, replicas: 1 });
    const random = rng(21);
    const keyCount = 400;
    const total = 12_000; // 6 × 1,600 with kills, then the rest (and more until a compaction)
    const producer = inputProducer();
    const sent = new Map<string, number>();
    const produce = async (count: number) => {
      const values = Array.from({ length: count }, () => `k${Math.floor(random() * keyCount)}`);
      for (const value of values) sent.set(value, (sent.get(value) ?? 0) + 1);
      await producer.send({
        messages: values.map((value) => ({ topic: input, partition: 0, value })),
      });
    };
    const store = storeFor(jobName);
    const checkpointsOf = async () => (await store.list("checkpoint")).flatMap((c) => c.tasks);

    const checkpointed = async () =>
      Math.max(0, ...(await checkpointsOf()).map((e) => e.offsets[`${input}-0`] ?? 0));
    let produced = 0;
    let task = startTask();
    await task.started;
    // Compactions over all the runs, killed ones included, from what each logged.
    const runs = [task];
    const compactions = () =>
      runs.reduce((n, run) => n + run.logged().split("checkpoint chain compacted").length - 1, 0);
    const restores: string[] = [];
    for (let kill = 0; kill < 6; kill++) {
      // Input arrives while the task runs; it is killed once its checkpoints reach a random
      // point of what was produced (mid-delta, mid-compaction or mid-batch, as it falls).
      const from = produced;
      while (produced < from + 1_600) {
        await produce(200);
        produced += 200;
      }
      const target = from + 1 + Math.floor(random() * 1_599); // past a checkpoint of this round
      await eventually(`checkpoints to reach offset ${target}`, async () =>
        (await checkpointed()) >= target ? true : undefined,
      );
      task.child.kill("SIGKILL");
      await once(task.child, "exit");
      task = startTask();
      runs.push(task);
      restores.push(await task.started);
    }
    while (produced < total) {
      await produce(200);
      produced += 200;
    }
    // Where the kills came too early for any chain to reach its bound, input goes on until one
    // has been compacted: the runs must have crossed a compaction, or the test proves nothing.
    await eventually("a chain to be compacted", async () => {
      if (compactions() > 0) return true;
      await produce(200);
      produced += 200;
      return undefined;
    });
    await producer.close();
    const { records } = await readTopicSettled(output, produced);
    const entries = await checkpointsOf();
    task.child.kill("SIGTERM");
    await once(task.child, "exit");

    const seen = new Map<string, number[]>();
    for (const record of records) {
      const [key = "", count = ""] = (record.value ?? "").split(":");
      seen.set(key, [...(seen.get(key) ?? []), Number(count)]);
    }
    assert.equal(records.length, produced);
    for (const [key, n] of sent) {
      const expected = Array.from({ length: n }, (_, i) => i + 1);
      assert.deepEqual(seen.get(key), expected, `${key}: every count exactly once, in order`);
    }
    assert.ok(
      restores.every((r) => /^started: snapshot at \d+$/.test(r)),
      `every restart restored a checkpoint: ${restores.join(", ")}`,
    );
    assert.ok(
      entries.some((e) => e.chain),
      "checkpoints were deltas",
    );
    assert.ok(compactions() > 0, "chains were compacted");
  });
});
