// The runtime's Kafka task I/O against the real broker: a task reads exactly its partition,
// and commits its outputs with its next source offset in one transaction; a new owner of the
// task fences the old one.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { TaskReader, TaskWriter, taskGroupId } from "../../runtime/src/connectors/kafka/task-io.ts";
import { clusterEnv, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopic } from "../support/kafka.ts";

const bootstrapBrokers = [clusterEnv().kafkaBootstrap];
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
const job = { namespace: "tests", name: uniqueName("task-io") };

/** Reads `count` records from a task's reader, failing (not hanging) after 30 s. */
async function readN<T>(
  reader: TaskReader,
  records: AsyncIterable<T>,
  count: number,
): Promise<T[]> {
  const items: T[] = [];
  const deadline = setTimeout(() => void reader.close(), 30_000);
  try {
    for await (const item of records) {
      items.push(item);
      if (items.length === count) break;
    }
  } finally {
    clearTimeout(deadline);
  }
  if (items.length < count) throw new Error(`read ${items.length} of ${count} in 30 s`);
  return items;
}

describe("kafka task I/O", () => {
  const input = uniqueName("weir-in");
  const output = uniqueName("weir-out");
  const task = { topic: input, partition: 1 };

  after(async () => {
    await admin.deleteTopics({ topics: [input, output] }).catch(() => {});
    await admin.close();
  });

  test("a task reads only its partition and commits outputs with its offset", async () => {
    await admin.createTopics({ topics: [input], partitions: 2, replicas: 1 });
    await admin.createTopics({ topics: [output], partitions: 1, replicas: 1 });
    const producer = inputProducer();
    await producer.send({
      messages: [
        ...["a", "b", "c", "d", "e"].map((v) => ({
          topic: input,
          partition: 0,
          value: v,
        })),
        ...["x", "y", "z"].map((v) => ({ topic: input, partition: 1, value: v })),
      ],
    });
    await producer.close();

    const reader = new TaskReader({ bootstrapBrokers, job, task });
    assert.equal(await reader.committedOffset(), undefined, "a new task has no position yet");
    const records = await readN(reader, await reader.start(0n), 3);
    assert.deepEqual(
      records.map((r) => [r.partition, r.value.toString()]),
      [
        [1, "x"],
        [1, "y"],
        [1, "z"],
      ],
    );

    const writer = new TaskWriter({ bootstrapBrokers, job, task });
    const last = records.at(-1);
    assert.ok(last);
    await writer.send(
      records.map((r) => ({
        topic: output,
        partition: 0,
        value: Buffer.from(r.value.toString().toUpperCase()),
      })),
    );
    await writer.commit(last);
    await writer.close();
    await reader.close();

    assert.deepEqual(await readTopic(output, (values) => values.length >= 3), ["X", "Y", "Z"]);
    const again = new TaskReader({ bootstrapBrokers, job, task });
    assert.equal(await again.committedOffset(), 3n, "the transaction moved the task's offset");
    await again.close();
  });

  test("a new owner of the task fences the old one: its outputs and offset never land", async () => {
    const reader = new TaskReader({ bootstrapBrokers, job, task });
    const producer = inputProducer();
    await producer.send({ messages: [{ topic: input, partition: 1, value: "w" }] });
    await producer.close();
    const [record] = await readN(reader, await reader.start(3n), 1);
    assert.ok(record);

    const zombie = new TaskWriter({ bootstrapBrokers, job, task, clientId: "zombie" });
    await zombie.commit(record); // registers the zombie's producer epoch
    const owner = new TaskWriter({ bootstrapBrokers, job, task, clientId: "owner" });
    await owner.send([{ topic: output, partition: 0, value: Buffer.from("FROM-OWNER") }]);
    await owner.commit(record);
    await assert.rejects(async () => {
      await zombie.send([{ topic: output, partition: 0, value: Buffer.from("FROM-ZOMBIE") }]);
      await zombie.commit(record);
    });
    await Promise.all([zombie.close().catch(() => {}), owner.close(), reader.close()]);
    const position = new TaskReader({ bootstrapBrokers, job, task });
    assert.equal(await position.committedOffset(), 4n, "only the owner's offset landed");
    await position.close();

    const values = await readTopic(output, (read) => read.length >= 4);
    assert.deepEqual(values, ["X", "Y", "Z", "FROM-OWNER"]);
    assert.equal(taskGroupId(job, task), `weir.tests.${job.name}.${input}.1`);
  });
});
