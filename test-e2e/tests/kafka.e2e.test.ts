// The Kafka broker (pinned 4.x, KRaft, one node) through @platformatic/kafka: topics,
// produce and consume, and transactions: an aborted one stays invisible to read_committed.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Admin, Producer, stringSerializers } from "@platformatic/kafka";
import { clusterEnv, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopic } from "../support/kafka.ts";

const bootstrapBrokers = [clusterEnv().kafkaBootstrap];
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });

describe("kafka", () => {
  const created: string[] = [];
  async function createTopic(partitions: number): Promise<string> {
    const topic = uniqueName("weir-test");
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
    created.push(topic);
    return topic;
  }

  after(async () => {
    if (created.length > 0) await admin.deleteTopics({ topics: created });
    await admin.close();
  });

  test("create a topic, produce and consume", async () => {
    const topic = await createTopic(3);
    const metadata = await admin.metadata({ topics: [topic] });
    assert.equal(metadata.topics.get(topic)?.partitionsCount, 3);

    const producer = inputProducer();
    const sent = ["a", "b", "c", "d", "e", "end"];
    await producer.send({
      messages: sent.map((value, i) => ({ topic, key: `k${i}`, value, partition: i % 3 })),
    });
    await producer.close();

    const read = await readTopic(topic, (values) => sent.every((value) => values.includes(value)));
    // Order holds within a partition only.
    assert.deepEqual(read.sort(), [...sent].sort());
  });

  test("an aborted transaction is invisible to read_committed, a committed one is seen", async () => {
    const topic = await createTopic(1);
    const producer = new Producer({
      clientId: "weir-test-transactional",
      bootstrapBrokers,
      serializers: stringSerializers,
      transactionalId: uniqueName("weir-test-tx"),
      idempotent: true,
      acks: -1,
    });
    try {
      const aborted = await producer.beginTransaction();
      await aborted.send({
        messages: [
          { topic, value: "aborted-1" },
          { topic, value: "aborted-2" },
        ],
      });
      await aborted.abort();

      const committed = await producer.beginTransaction();
      await committed.send({
        messages: [
          { topic, value: "committed-1" },
          { topic, value: "end" },
        ],
      });
      await committed.commit();
    } finally {
      await producer.close();
    }

    const isEnd = (values: string[]) => values.at(-1) === "end";
    const readCommitted = await readTopic(topic, isEnd);
    assert.deepEqual(readCommitted, ["committed-1", "end"]);
    // The aborted records really are in the log: a read_uncommitted reader sees them.
    const readUncommitted = await readTopic(topic, isEnd, { committed: false });
    assert.deepEqual(readUncommitted, ["aborted-1", "aborted-2", "committed-1", "end"]);
  });
});
