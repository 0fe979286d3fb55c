// Reading what a test's Kafka topic holds: every end-to-end test checks output this way.
import {
  type Admin,
  Consumer,
  FetchIsolationLevels,
  Producer,
  stringSerializers,
} from "@platformatic/kafka";
import { clusterEnv, uniqueName } from "./cluster.ts";

export interface ReadOptions {
  /** read_committed (the default: what an exactly-once consumer sees) or read_uncommitted. */
  committed?: boolean;
  timeoutMs?: number;
}

/** A record as a test reads it back: key and value as strings (null when absent). */
export interface ReadRecord {
  partition: number;
  offset: bigint;
  key: string | null;
  value: string | null;
  timestamp: bigint;
  headers: Record<string, string>;
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
  const values: string[] = [];
  await readRecords(
    topic,
    (records) => {
      values.push(records.at(-1)?.value ?? "");
      return done(values);
    },
    options,
  );
  return values;
}

/** Like readTopic, with each record's key, timestamp and headers; `done` runs after each one. */
export async function readRecords(
  topic: string,
  done: (records: ReadRecord[]) => boolean,
  options: ReadOptions = {},
): Promise<ReadRecord[]> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const consumer = new Consumer({
    groupId: uniqueName("weir-test-reader"),
    clientId: "weir-test-reader",
    bootstrapBrokers: [clusterEnv().kafkaBootstrap],
    isolationLevel:
      options.committed === false
        ? FetchIsolationLevels.READ_UNCOMMITTED
        : FetchIsolationLevels.READ_COMMITTED,
    maxWaitTime: 200,
  });
  const records: ReadRecord[] = [];
  const seen = new Set<string>();
  try {
    const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false });
    const deadline = setTimeout(
      () =>
        stream.destroy(
          new Error(`${topic}: still reading after ${timeoutMs} ms, got ${records.length} values`),
        ),
      timeoutMs,
    );
    try {
      for await (const message of stream) {
        const position = `${message.partition}:${message.offset}`;
        if (seen.has(position)) continue;
        seen.add(position);
        records.push({
          partition: message.partition,
          offset: message.offset,
          key: message.key?.toString() ?? null,
          value: message.value?.toString() ?? null,
          timestamp: message.timestamp,
          headers: Object.fromEntries(
            [...(message.headers ?? new Map())].map(([k, v]) => [String(k), String(v)]),
          ),
        });
        if (done(records)) break;
      }
    } finally {
      clearTimeout(deadline);
    }
  } finally {
    await consumer.close(true);
  }
  return records;
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

/** Deletes every topic whose name starts with `<name>-` for one of `names` (tests' unique names). */
export async function deleteTopicsOf(admin: Admin, names: readonly string[]): Promise<void> {
  const all = await admin.listTopics();
  const topics = all.filter((topic) => names.some((name) => topic.startsWith(`${name}-`)));
  if (topics.length > 0) await admin.deleteTopics({ topics });
}

/**
 * Makes sure the topics exist (shared ones, like the samples', may be created by someone else
 * at the same moment: "already exists" is what was wanted).
 */
export async function ensureTopics(
  admin: Admin,
  topics: readonly string[],
  partitions: number,
): Promise<void> {
  const existing = () => admin.listTopics().then((names) => new Set(names));
  const before = await existing();
  const missing = [...topics].filter((t) => !before.has(t));
  if (missing.length === 0) return;
  try {
    await admin.createTopics({ topics: missing, partitions, replicas: 1 });
  } catch (error) {
    const now = await existing();
    if (!missing.every((t) => now.has(t))) throw error;
  }
}
