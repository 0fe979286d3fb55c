// Reading what a test's Kafka topic holds: every end-to-end test checks output this way.
import {
  Consumer,
  FetchIsolationLevels,
  Producer,
  stringDeserializers,
  stringSerializers,
} from "@platformatic/kafka";
import { clusterEnv, uniqueName } from "./cluster.ts";

export interface ReadOptions {
  /** read_committed (the default: what an exactly-once consumer sees) or read_uncommitted. */
  committed?: boolean;
  timeoutMs?: number;
}

/**
 * Reads `topic` from the start, as strings, until `done(valuesSoFar)`; fails (does not hang)
 * after the timeout. A fresh consumer group each time, so every call sees the whole topic.
 * A record the consumer re-delivers (same partition and offset, after its group's first
 * rebalance) counts once: the values are exactly what the topic holds, duplicates included.
 */
export async function readTopic(
  topic: string,
  done: (values: string[]) => boolean,
  options: ReadOptions = {},
): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const consumer = new Consumer({
    groupId: uniqueName("weir-test-reader"),
    clientId: "weir-test-reader",
    bootstrapBrokers: [clusterEnv().kafkaBootstrap],
    deserializers: stringDeserializers,
    isolationLevel:
      options.committed === false
        ? FetchIsolationLevels.READ_UNCOMMITTED
        : FetchIsolationLevels.READ_COMMITTED,
    maxWaitTime: 200,
  });
  const values: string[] = [];
  const seen = new Set<string>();
  try {
    const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false });
    const deadline = setTimeout(
      () =>
        stream.destroy(
          new Error(`${topic}: still reading after ${timeoutMs} ms, got ${values.length} values`),
        ),
      timeoutMs,
    );
    try {
      for await (const message of stream) {
        const position = `${message.partition}:${message.offset}`;
        if (seen.has(position)) continue;
        seen.add(position);
        values.push(message.value);
        if (done(values)) break;
      }
    } finally {
      clearTimeout(deadline);
    }
  } finally {
    await consumer.close(true);
  }
  return values;
}

/**
 * A producer of test input. Idempotent, so that a retried request never writes a record twice:
 * tests count records exactly, and a plain producer's retry on a fresh topic can duplicate one.
 */
export function inputProducer(): Producer<string, string, string, string> {
  return new Producer({
    clientId: "weir-test-input",
    bootstrapBrokers: [clusterEnv().kafkaBootstrap],
    serializers: stringSerializers,
    idempotent: true,
    acks: -1,
    producerId: -1n,
    producerEpoch: -1,
  });
}
