// Snapshots in real MinIO: task objects first, `_metadata.json` last; what lacks metadata
// does not exist; checksums are verified on read; retention removes whole snapshots.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { clusterEnv, s3Client, uniqueName } from "../support/cluster.ts";

const env = clusterEnv();
const client = s3Client();
const prefix = uniqueName("snapshots");
const store = new SnapshotStore({
  client,
  bucket: env.s3Bucket,
  prefix,
  job: { namespace: "tests", name: "word-count" },
});
const operators = ["source", "count", "sink"];
const task = (partition: number, state: string) => ({
  task: { topic: "words", partition },
  offsets: { [`words-${partition}`]: 100n + BigInt(partition) },
  state: Buffer.from(state),
  operators: ["count"],
});

describe("snapshot store", () => {
  after(async () => {
    const keys: string[] = [];
    for await (const item of client.listObjectsV2(env.s3Bucket, `${prefix}/`, true)) {
      if (item.name) keys.push(item.name);
    }
    await client.removeObjects(env.s3Bucket, keys);
  });

  test("a written savepoint reads back with its offsets and verified task states", async () => {
    const written = await store.write("savepoint", "sp-1", operators, [
      task(0, "zero"),
      task(1, "one"),
    ]);
    const read = await store.read("savepoint", "sp-1");
    assert.deepEqual(read, written);
    assert.equal(read?.tasks[1]?.offsets["words-1"], 101);
    const states = await Promise.all(
      (read?.tasks ?? []).map((entry) => store.readTaskState(entry)),
    );
    assert.deepEqual(states.map(String), ["zero", "one"]);
    assert.equal(
      store.path("savepoint", "sp-1"),
      `s3://${env.s3Bucket}/${prefix}/tests/word-count/savepoints/sp-1/`,
    );
  });

  test("a task object that changed after the snapshot is refused", async () => {
    const metadata = await store.read("savepoint", "sp-1");
    const entry = metadata?.tasks[0];
    assert.ok(entry);
    await client.putObject(env.s3Bucket, entry.key, Buffer.from("oops"));
    await assert.rejects(store.readTaskState(entry), /words|checksum|size/i);
  });

  test("objects without _metadata.json are not a snapshot", async () => {
    // A task that belongs to no operator of the job makes the metadata step fail after the
    // task objects were uploaded: exactly a snapshot interrupted before its metadata.
    await assert.rejects(
      store.write("checkpoint", "cp-broken", operators, [{ ...task(0, "x"), operators: ["gone"] }]),
    );
    assert.equal(await store.read("checkpoint", "cp-broken"), undefined);
    assert.deepEqual(
      (await store.list("checkpoint")).map((s) => s.id),
      [],
    );
  });

  test("retention keeps the newest checkpoints and deletes the rest with their objects", async () => {
    for (const id of ["cp-1", "cp-2", "cp-3"]) {
      await store.write("checkpoint", id, operators, [task(0, id)]);
    }
    assert.deepEqual(
      (await store.list("checkpoint")).map((s) => s.id),
      ["cp-1", "cp-2", "cp-3"],
    );
    assert.deepEqual(await store.retain("checkpoint", 2), ["cp-1"]);
    assert.deepEqual(
      (await store.list("checkpoint")).map((s) => s.id),
      ["cp-2", "cp-3"],
    );
    const leftovers: string[] = [];
    for await (const item of client.listObjectsV2(
      env.s3Bucket,
      `${prefix}/tests/word-count/checkpoints/cp-1/`,
      true,
    )) {
      if (item.name) leftovers.push(item.name);
    }
    assert.deepEqual(leftovers, []);
  });
});
