// The object store hangs during checkpoints (SIGSTOP: connections open, nothing answers) and
// later dies outright (SIGKILL), while input keeps arriving. A MinIO of the test's own: the
// cluster's is shared and never touched. The runtime must keep processing (storage calls time
// out instead of blocking the task), retry the checkpoint, never write the `_metadata.json` of
// a snapshot without all its files, resume checkpoints once storage is back, and a
// read_committed reader must see every running count exactly once.
import assert from "node:assert/strict";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseMetadata } from "../../runtime/src/state/metadata.ts";
import { inputProducer, readTopic, readTopicSettled } from "../support/kafka.ts";
import { PrivateMinio } from "../support/minio.ts";
import { RuntimeTestbed, runtimeReady, scrape } from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";

const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "runtime-count-job.ts");
const words = ["alpha", "beta", "gamma", "delta"];
let minio: PrivateMinio | undefined;
let feeder: ReturnType<typeof feed> | undefined;

after(async () => {
  await feeder?.stop();
  await bed.tearDown();
  await minio?.remove();
});

/** Input that keeps arriving until stopped: 10 records every 100 ms; `stop` says how many per word. */
function feed(input: string) {
  const producer = inputProducer();
  const sent = new Map<string, number>();
  let producing = true;
  const feeding = (async () => {
    for (let batch = 0; producing; batch++) {
      const batchWords = Array.from(
        { length: 10 },
        (_, i) => words[(batch + i) % words.length] ?? "",
      );
      await producer.send({
        messages: batchWords.map((word) => ({
          topic: input,
          partition: 0,
          value: JSON.stringify({ word }),
        })),
      });
      for (const word of batchWords) sent.set(word, (sent.get(word) ?? 0) + 1);
      await sleep(100);
    }
  })();
  let stopped: Promise<Map<string, number>> | undefined;
  return {
    stop(): Promise<Map<string, number>> {
      producing = false;
      stopped ??= feeding.finally(() => producer.close()).then(() => sent);
      return stopped;
    },
  };
}

/**
 * Every `_metadata.json` in the bucket names only objects that exist with their size. (A
 * snapshot retention removed between listing and checking no longer has metadata: skipped.)
 */
async function assertNoSnapshotWithoutItsFiles(store: PrivateMinio): Promise<number> {
  const client = store.client();
  const objects = new Map<string, number>();
  for await (const item of client.listObjectsV2(store.bucket, "", true))
    if (item.name) objects.set(item.name, item.size ?? 0);
  let checked = 0;
  for (const key of [...objects.keys()].filter((k) => k.endsWith("/_metadata.json"))) {
    let text: string;
    try {
      text = (await buffer(await client.getObject(store.bucket, key))).toString();
    } catch {
      continue;
    }
    for (const task of parseMetadata(text, key).tasks) {
      const size = objects.get(task.key);
      assert.equal(size, task.bytes, `${key} names ${task.key}: it exists with its size`);
    }
    checked++;
  }
  return checked;
}

test("storage hanging or dead during checkpoints: processing goes on, checkpoints retry, exactly once", async () => {
  minio = await PrivateMinio.start();
  const { name, input, output } = await bed.job("outage");
  const pod = bed.start({
    module: fixture,
    job: name,
    config: {
      job: { config: { name, input, output } },
      storage: { endpoint: minio.endpoint, timeoutMs: 1_000 },
    },
  });
  await runtimeReady(pod);

  feeder = feed(input);
  const series = async (metric: string) => (await scrape(pod)).get(metric) ?? 0;
  const age = `weir_checkpoint_age_seconds{topic="${input}",partition="0"}`;

  await readTopic(output, (values) => values.length >= 100);
  assert.ok((await assertNoSnapshotWithoutItsFiles(minio)) > 0, "checkpoints were stored");

  for (const outage of ["hang", "kill"] as const) {
    if (outage === "hang") minio.hang();
    else await minio.kill();
    const before = await series("weir_records_in_total");
    const failuresBefore = await series("weir_checkpoint_failures_total");
    // Processing continues while every checkpoint fails (each after the storage timeout).
    await eventually(`${outage}: records keep being processed`, async () =>
      (await series("weir_records_in_total")) >= before + 100 ? true : undefined,
    );
    await eventually(`${outage}: the checkpoint fails and is retried`, async () =>
      (await series("weir_checkpoint_failures_total")) >= failuresBefore + 2 ? true : undefined,
    );
    await eventually(`${outage}: the checkpoint age shows the outage`, async () =>
      (await series(age)) >= 2 ? true : undefined,
    );

    if (outage === "hang") minio.resume();
    else await minio.restart();
    // Checkpoints resume: the age drops back, and the snapshots are whole.
    await eventually(`${outage}: checkpoints resume`, async () =>
      (await series(age)) < 1.5 ? true : undefined,
    );
    await assertNoSnapshotWithoutItsFiles(minio);
  }

  const sent = await feeder.stop();
  // Every word's running count 1..n exactly once, to read_committed, across both outages: the
  // whole output, read to its end once it has settled.
  const total = [...sent.values()].reduce((a, b) => a + b, 0);
  const values = (await readTopicSettled(output, total, { timeoutMs: 90_000 })).records.map(
    (r) => r.value ?? "",
  );
  const counts = new Map<string, number[]>();
  for (const value of values) {
    const { key, value: n } = JSON.parse(value) as { key: string; value: number };
    counts.set(key, [...(counts.get(key) ?? []), n]);
  }
  for (const [word, n] of sent) {
    assert.deepEqual(
      counts.get(word),
      Array.from({ length: n }, (_, i) => i + 1),
      `${word}: 1..${n} exactly once, in order`,
    );
  }
  assert.equal(values.length, total);
  assert.ok((await assertNoSnapshotWithoutItsFiles(minio)) > 0);
  pod.process.kill("SIGTERM");
});
