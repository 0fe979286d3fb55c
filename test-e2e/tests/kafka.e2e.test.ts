// The Kafka broker (pinned 4.x, KRaft, one node) through @platformatic/kafka: topics,
// produce and consume, and transactions: an aborted one stays invisible to read_committed.
// Its SASL_SSL listener: SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN over TLS with its own CA.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Admin, type BaseOptions, Producer, stringSerializers } from "@platformatic/kafka";
import { clusterPaths } from "../cluster/layout.ts";
import { clusterEnv, secureKafkaEnv, uniqueName } from "../support/cluster.ts";
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

describe("kafka's SASL_SSL listener", () => {
  const secure = secureKafkaEnv();
  const ca = readFileSync(secure.caFile, "utf8");
  const user = { username: secure.username, password: secure.password };
  // Its own: the first suite closes the file's admin when it ends.
  const plainAdmin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
  const created: string[] = [];
  after(async () => {
    if (created.length > 0) await plainAdmin.deleteTopics({ topics: created }).catch(() => {});
    await plainAdmin.close();
  });

  /** The broker's metadata through the secure listener, or why it was refused. */
  async function metadataWith(options: Partial<BaseOptions>): Promise<string> {
    const client = new Admin({
      clientId: "weir-test-sasl",
      bootstrapBrokers: [secure.bootstrap],
      retries: 0,
      ...options,
    });
    try {
      const metadata = await client.metadata({ topics: [] });
      return [...metadata.brokers.values()].map((b) => `${b.host}:${b.port}`).join(",");
    } catch (error) {
      const causes: string[] = [];
      for (let e: unknown = error; e instanceof Error; ) {
        causes.push(e.message);
        e = e.cause ?? (e as { errors?: unknown[] }).errors?.[0];
      }
      return `refused: ${causes.join(" <- ")}`;
    } finally {
      await client.close().catch(() => {});
    }
  }

  test("takes the user with each mechanism over TLS, and advertises itself", async () => {
    for (const mechanism of ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] as const) {
      assert.equal(
        await metadataWith({ tls: { ca }, sasl: { mechanism, ...user } }),
        secure.bootstrap,
        mechanism,
      );
    }
  });

  test("refuses a wrong password, and a client that does not trust its CA", async () => {
    assert.match(
      await metadataWith({
        tls: { ca },
        sasl: { mechanism: "SCRAM-SHA-512", ...user, password: "wrong" },
      }),
      /refused: .*SASL authentication failed/,
    );
    // The cluster's own CA: real, but it did not sign the listener's certificate.
    const clusterCa = readFileSync(join(clusterPaths.pki, "ca.crt"), "utf8");
    assert.match(
      await metadataWith({ tls: { ca: clusterCa }, sasl: { mechanism: "SCRAM-SHA-512", ...user } }),
      /refused: .*unable to verify the first certificate/,
    );
    assert.match(
      await metadataWith({ sasl: { mechanism: "SCRAM-SHA-512", ...user } }),
      /refused: /,
      "no SASL without TLS on this listener",
    );
  });

  test("what is produced through it is the same broker's: read back through plaintext", async () => {
    const topic = uniqueName("weir-test-sasl");
    await plainAdmin.createTopics({ topics: [topic], partitions: 1, replicas: 1 });
    created.push(topic);
    const producer = new Producer({
      clientId: "weir-test-sasl-producer",
      bootstrapBrokers: [secure.bootstrap],
      tls: { ca },
      sasl: { mechanism: "SCRAM-SHA-512", ...user },
      serializers: stringSerializers,
    });
    await producer.send({
      messages: [
        { topic, value: "secure" },
        { topic, value: "end" },
      ],
    });
    await producer.close();
    assert.deepEqual(await readTopic(topic, (values) => values.includes("end")), ["secure", "end"]);
  });
});
