// MinIO (the pinned build) stores, returns and lists objects through the `minio` package, in
// the savepoint bucket that `cluster up` created.
import assert from "node:assert/strict";
import { text } from "node:stream/consumers";
import { after, describe, test } from "node:test";
import { clusterEnv, s3Client, uniqueName } from "../support/cluster.ts";

const env = clusterEnv();
const client = s3Client();

async function listNames(prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const item of client.listObjectsV2(env.s3Bucket, prefix, true)) {
    if (item.name) names.push(item.name);
  }
  return names.sort();
}

describe("minio", () => {
  const prefix = `${uniqueName("minio-test")}/`;

  after(async () => {
    await client.removeObjects(env.s3Bucket, await listNames(prefix));
  });

  test("the savepoint bucket exists", async () => {
    assert.equal(await client.bucketExists(env.s3Bucket), true);
  });

  test("put, get and list objects", async () => {
    const objects = {
      [`${prefix}savepoints/sp-1/_metadata.json`]: JSON.stringify({ formatVersion: 1 }),
      [`${prefix}savepoints/sp-1/task-0`]: "state of task 0",
      [`${prefix}savepoints/sp-1/task-1`]: "state of task 1",
    };
    for (const [name, body] of Object.entries(objects)) {
      await client.putObject(env.s3Bucket, name, Buffer.from(body));
    }
    const read = await text(
      await client.getObject(env.s3Bucket, `${prefix}savepoints/sp-1/task-1`),
    );
    assert.equal(read, "state of task 1");
    assert.deepEqual(await listNames(prefix), Object.keys(objects).sort());
    const stat = await client.statObject(env.s3Bucket, `${prefix}savepoints/sp-1/task-0`);
    assert.equal(stat.size, Buffer.byteLength("state of task 0"));
  });

  test("wrong credentials are refused", async () => {
    const intruder = s3Client("not-the-secret");
    await assert.rejects(
      intruder.bucketExists(env.s3Bucket),
      (error: Error & { code?: string }) => {
        assert.match(String(error.code), /SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId/);
        return true;
      },
    );
  });
});
