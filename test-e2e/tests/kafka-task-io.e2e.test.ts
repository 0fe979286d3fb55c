// The runtime's Kafka task I/O against the real broker: a task reads exactly its partition,
// and commits its outputs with its next source offset in one transaction; a new owner of the
// task fences the old one; an aborted transaction is never read, however far its marker is;
// an offset out of range stops the task with an error that names it.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { TaskReader, TaskWriter, taskGroupId } from "../../runtime/src/connectors/kafka/task-io.ts";
import { clusterEnv, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopicToEnd } from "../support/kafka.ts";

const bootstrapBrokers = [clusterEnv().kafkaBootstrap];
const kafka = { bootstrapBrokers };
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
const job = { namespace: "tests", name: uniqueName("task-io") };

/** A reader's records one at a time (it hands them out one fetch at a time). */
async function* oneByOne<T>(fetches: AsyncIterable<T[]>): AsyncGenerator<T> {
  for await (const fetched of fetches) {
    assert.ok(fetched.length > 0, "a reader never hands out an empty fetch");
    yield* fetched;
  }
}

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

    const reader = new TaskReader({ kafka, job, task });
    assert.equal(await reader.committed(), undefined, "a new task has no position yet");
    const records = await readN(reader, oneByOne(reader.start(0n)), 3);
    assert.deepEqual(
      records.map((r) => [r.partition, String(r.value)]),
      [
        [1, "x"],
        [1, "y"],
        [1, "z"],
      ],
    );

    const writer = new TaskWriter({ kafka, job, task });
    const last = records.at(-1);
    assert.ok(last);
    await writer.send(
      records.map((r) => ({
        topic: output,
        partition: 0,
        value: Buffer.from(String(r.value).toUpperCase()),
      })),
    );
    await writer.commit(await reader.offsetsAt(last.offset + 1n, 1n));
    await writer.close();
    await reader.close();

    // Every writer has committed and closed: the output is final, read to its end.
    const written = (await readTopicToEnd(output)).records.map((r) => r.value);
    assert.deepEqual(written, ["X", "Y", "Z"]);
    const again = new TaskReader({ kafka, job, task });
    assert.deepEqual(
      await again.committed(),
      { offset: 3n, checkpoint: 1n },
      "the transaction moved the task's offset and named its checkpoint",
    );
    await again.close();
  });

  test("a new owner of the task fences the old one: its outputs and offset never land", async () => {
    const reader = new TaskReader({ kafka, job, task });
    const producer = inputProducer();
    await producer.send({ messages: [{ topic: input, partition: 1, value: "w" }] });
    await producer.close();
    const [record] = await readN(reader, oneByOne(reader.start(3n)), 1);
    assert.ok(record);

    const offsets = await reader.offsetsAt(record.offset + 1n, 2n);
    const zombie = new TaskWriter({ kafka, job, task, clientId: "zombie" });
    await zombie.fence(); // registers the zombie's producer epoch
    const owner = new TaskWriter({ kafka, job, task, clientId: "owner" });
    await owner.fence();
    await assert.rejects(async () => {
      await zombie.send([{ topic: output, partition: 0, value: Buffer.from("FROM-ZOMBIE") }]);
      await zombie.commit(offsets);
    }, "a fenced owner can neither send nor commit");
    await owner.send([{ topic: output, partition: 0, value: Buffer.from("FROM-OWNER") }]);
    await owner.commit(offsets);
    await Promise.all([zombie.close().catch(() => {}), owner.close(), reader.close()]);
    const position = new TaskReader({ kafka, job, task });
    assert.equal((await position.committed())?.offset, 4n, "only the owner's offset landed");
    await position.close();

    const values = (await readTopicToEnd(output)).records.map((r) => r.value);
    assert.deepEqual(
      values,
      ["X", "Y", "Z", "FROM-OWNER"],
      "the zombie's output never landed, before or after the owner's",
    );
    assert.equal(taskGroupId(job, task), `weir.tests.${job.name}.${input}.1`);
  });
  test("an upstream task's aborted transaction is never read, even when its marker is a fetch away", async () => {
    // The pod-kill case: an upstream task's transaction is open when its pod dies, other tasks
    // go on writing to the same partition, and only the next owner's fencing aborts it. The
    // reader fetches 256 KB at a time, so the abort marker lies beyond the fetch that holds the
    // transaction's records (the client kept them: the word count over-counted).
    const topic = uniqueName("weir-repartition");
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
    try {
      const upstream = { topic: uniqueName("weir-upstream"), partition: 0 };
      const killed = new TaskWriter({ kafka, job, task: upstream, clientId: "killed" });
      const aborted = Array.from({ length: 50 }, (_, i) => ({
        topic,
        partition: 0,
        value: Buffer.from(`aborted-${i}`),
      }));
      await killed.send(aborted);
      const producer = inputProducer();
      const committed = Array.from(
        { length: 600 },
        (_, i) => `committed-${i}-${"x".repeat(1_000)}`,
      );
      for (let i = 0; i < committed.length; i += 100) {
        await producer.send({
          messages: committed.slice(i, i + 100).map((value) => ({ topic, partition: 0, value })),
        });
      }
      await producer.close();
      // The task's next owner fences the killed one: the broker aborts its transaction now.
      const next = new TaskWriter({ kafka, job, task: upstream, clientId: "next" });
      await next.fence();

      const reader = new TaskReader({ kafka, job, task: { topic, partition: 0 } });
      const read = await readN(reader, oneByOne(reader.start(0n)), committed.length);
      await reader.close();
      await Promise.all([next.close(), killed.close().catch(() => {})]);
      const values = read.map((r) => String(r.value));
      assert.deepEqual(
        values.filter((v) => v.startsWith("aborted-")),
        [],
        "no record of the aborted transaction",
      );
      assert.deepEqual(values, committed, "every committed record, in order");
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    }
  });

  test("a reader reads on from its own position while what it read is purged under it", async () => {
    // A repartition topic's reader deletes what it committed while the upstream goes on
    // writing transactions, some aborted: whatever the broker and the client do meanwhile,
    // the reader asks for exactly the offset after the last record it handed out.
    const topic = uniqueName("weir-purged");
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
    const reader = new TaskReader({ kafka, job, task: { topic, partition: 0 } });
    try {
      const expected: string[] = [];
      const records = oneByOne(reader.start(0n))[Symbol.asyncIterator]();
      const read: string[] = [];
      for (let round = 0; round < 12; round++) {
        const upstream = { topic: uniqueName(`weir-up-${round}`), partition: 0 };
        const writer = new TaskWriter({ kafka, job, task: upstream });
        const values = Array.from({ length: 150 }, (_, i) => `r${round}-${i}`);
        await writer.send(values.map((v) => ({ topic, partition: 0, value: Buffer.from(v) })));
        if (round % 3 === 2) {
          // A transaction that never commits: the broker aborts it when its owner is fenced.
          const next = new TaskWriter({ kafka, job, task: upstream });
          await next.fence();
          await Promise.all([next.close(), writer.close().catch(() => {})]);
        } else {
          await writer.commit([]);
          await writer.close();
          expected.push(...values);
        }
        while (read.length < expected.length) {
          const { value, done } = await records.next();
          assert.ok(!done, "the reader ends only when closed");
          read.push(String(value.value));
          // Purges right behind the reader, as a repartition task's commits do.
          if (read.length % 50 === 0) await reader.purgeBefore(value.offset + 1n);
        }
      }
      assert.deepEqual(read, expected, "every committed record once, in order; no aborted one");
    } finally {
      await reader.close();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    }
  });

  test("sends run ahead of their acknowledgements: a commit lands all of them, in order, once", async () => {
    // A task hands the writer one send per batch without waiting for the broker. Early sends of
    // a transaction each bring partitions it has not written yet (which the transaction must
    // register before their records), to two topics: every record must still land, in order.
    const topics = [uniqueName("weir-ahead"), uniqueName("weir-ahead")];
    for (const topic of topics)
      await admin.createTopics({ topics: [topic], partitions: 12, replicas: 1 });
    const writer = new TaskWriter({
      kafka,
      job,
      task: { topic: uniqueName("weir-src"), partition: 0 },
    });
    try {
      const expected = new Map<string, string[]>();
      for (let transaction = 0; transaction < 3; transaction++) {
        for (let batch = 0; batch < 24; batch++) {
          const messages = Array.from({ length: 20 }, (_, i) => {
            const topic = topics[i % 2] as string;
            const partition = i < 10 ? batch % 12 : (batch * 5 + transaction) % 12;
            const value = `t${transaction}-b${batch}-${i}`;
            const key = `${topic}/${partition}`;
            expected.set(key, [...(expected.get(key) ?? []), value]);
            return { topic, partition, value: Buffer.from(value) };
          });
          await writer.send(messages);
        }
        await writer.commit([]);
      }
      for (const topic of topics) {
        const read = (await readTopicToEnd(topic)).records;
        for (let partition = 0; partition < 12; partition++) {
          assert.deepEqual(
            read.filter((r) => r.partition === partition).map((r) => r.value),
            expected.get(`${topic}/${partition}`) ?? [],
            `${topic}-${partition}: every record once, in the order sent`,
          );
        }
      }
    } finally {
      await writer.close();
      await admin.deleteTopics({ topics }).catch(() => {});
    }
  });

  test("a position out of range stops the task with an error naming topic, partition and offsets", async () => {
    const topic = uniqueName("weir-retained");
    await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
    try {
      const producer = inputProducer();
      await producer.send({
        messages: ["a", "b", "c", "d"].map((value) => ({ topic, partition: 0, value })),
      });
      await producer.close();
      // Retention passed offset 1 (as deleteRecords does it).
      await admin.deleteRecords({
        topics: [{ name: topic, partitions: [{ partition: 0, offset: 3n }] }],
      });
      const reader = new TaskReader({ kafka, job, task: { topic, partition: 0 } });
      const records = oneByOne(reader.start(1n));
      await assert.rejects(
        async () => {
          for await (const _ of records)
            assert.fail("no record is read from a position that is gone");
        },
        new RegExp(`${topic}-0: offset 1 is out of range \\(it holds offsets 3 to 4\\)`),
      );
      await reader.close().catch(() => {});

      const skipping = new TaskReader({
        kafka,
        job,
        task: { topic, partition: 0 },
        outOfRange: "earliest",
      });
      const [first] = await readN(skipping, oneByOne(skipping.start(1n)), 1);
      assert.equal(String(first?.value), "d", "outOfRange: earliest goes on from the log start");
      await skipping.close();
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    }
  });
});
