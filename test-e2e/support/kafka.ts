// Reading what a test's Kafka topic holds: every end-to-end test checks output this way. Two
// readers: `readTopic`/`readRecords` (the project's client, @platformatic/kafka: cheap, for
// waiting until output has arrived) and `readTopicToEnd` (Kafka's Java client, the reference
// implementation: what an exactly-once check trusts, read to the topic's read_committed end).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  ListOffsetTimestamps,
  Producer,
  stringSerializers,
} from "@platformatic/kafka";
import { cacheDir } from "../cluster/layout.ts";
import { KAFKA_VERSION } from "../cluster/versions.ts";
import { clusterEnv, uniqueName } from "./cluster.ts";
import { eventually } from "./wait.ts";

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
 * It stops when `done` says so, so what comes after is never seen, and its client may keep
 * records of aborted transactions: to check output exactly, use readTopicToEnd.
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

/** Where a partition's read by readTopicToEnd ended, and how far the log went at the time. */
export interface PartitionEnd {
  partition: number;
  /** The last stable offset: every record before it is decided (committed or aborted). */
  lastStableOffset: bigint;
  /** Above lastStableOffset when a transaction was open at the time of the read. */
  highWatermark: bigint;
}

export interface TopicContents {
  /** Every record a read_committed consumer sees, in partition and offset order. */
  records: ReadRecord[];
  partitions: PartitionEnd[];
}

const javaReader = join(import.meta.dirname, "ReadCommitted.java");
/** The broker's classpath (toolchain.ts fetches it), which holds Kafka's Java client too. */
const kafkaLibs = join(cacheDir, `kafka-${KAFKA_VERSION}`, "libs");

/**
 * Reads every partition of `topic` from its beginning to its read_committed end (its last
 * stable offsets when the read begins) with Kafka's Java client (ReadCommitted.java): the
 * reference implementation of read_committed, independent of the client the runtime uses.
 * One JVM per call (about a second or two): one read per assertion, not a polling loop.
 */
export async function readTopicToEnd(
  topic: string,
  options: { timeoutMs?: number } = {},
): Promise<TopicContents> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const reader = spawn(
    "java",
    [
      // Start-up over peak speed: the JIT's first tier and the serial collector.
      "-XX:TieredStopAtLevel=1",
      "-XX:+UseSerialGC",
      "-Xmx512m",
      "-Dlog4j2.level=WARN",
      "-cp",
      `${kafkaLibs}/*`,
      javaReader,
      clusterEnv().kafkaBootstrap,
      topic,
      String(timeoutMs),
    ],
    { stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs + 30_000 },
  );
  let stderr = "";
  reader.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = once(reader, "close") as Promise<[number | null, NodeJS.Signals | null]>;
  // Line by line: a long topic's output is more than one string should hold.
  const contents: TopicContents = { records: [], partitions: [] };
  for await (const line of createInterface({ input: reader.stdout })) {
    if (!line) continue;
    const parsed = JSON.parse(line) as JavaRecord | { end: JavaEnd };
    if ("end" in parsed) {
      contents.partitions.push({
        partition: parsed.end.partition,
        lastStableOffset: BigInt(parsed.end.lastStableOffset),
        highWatermark: BigInt(parsed.end.highWatermark),
      });
    } else {
      contents.records.push({
        ...parsed,
        offset: BigInt(parsed.offset),
        timestamp: BigInt(parsed.timestamp),
      });
    }
  }
  const [code, signal] = await exited;
  if (code !== 0) {
    // The reason is the reader's last line (the client's warnings come before it).
    const reason = stderr.trim().split("\n").at(-1) || `exit ${code ?? signal}`;
    throw new Error(`reading ${topic} to its end failed: ${reason}`);
  }
  return contents;
}

type JavaRecord = Omit<ReadRecord, "offset" | "timestamp"> & { offset: number; timestamp: number };
interface JavaEnd {
  partition: number;
  lastStableOffset: number;
  highWatermark: number;
}

export interface SettledReadOptions {
  /** How long the output may take to hold `count` records (default 120 s). */
  timeoutMs?: number;
  /**
   * How long the output must go without a new write before it is read to its end (default
   * 5 s). Long enough for a tail of extra records to show: a task commits its output once per
   * checkpoint interval, so a duplicate tail commits within one or two intervals of the last
   * regular output — two of the testbed's 1 s intervals, plus a margin for a slow machine.
   * Jobs with longer intervals need a longer quiet period.
   */
  quietMs?: number;
}

/**
 * What `topic` holds once it has settled: waits (cheap reads) until it holds at least `count`
 * records, then until no write reached it for the quiet period, then reads it to its
 * read_committed end with the Java client. `reachedCount` is false when the output never held
 * `count` records within the timeout: the contents are read anyway, so that a check can say
 * what is missing rather than only that something is.
 */
export async function readTopicSettled(
  topic: string,
  count: number,
  options: SettledReadOptions = {},
): Promise<TopicContents & { reachedCount: boolean }> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const quietMs = options.quietMs ?? 5_000;
  const reachedCount = await readTopic(topic, (read) => read.length >= count, { timeoutMs }).then(
    () => true,
    () => false,
  );
  await untilQuiet(topic, quietMs, Math.max(60_000, 10 * quietMs));
  return { ...(await readTopicToEnd(topic)), reachedCount };
}

/** Each partition's end offset: the high watermark, or with `committed` the last stable offset. */
async function endOffsets(admin: Admin, topic: string, committed: boolean): Promise<bigint[]> {
  const metadata = await admin.metadata({ topics: [topic] });
  const partitions = metadata.topics.get(topic)?.partitionsCount ?? 0;
  const [listed] = await admin.listOffsets({
    topics: [
      {
        name: topic,
        partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({
          partitionIndex,
          timestamp: ListOffsetTimestamps.LATEST,
        })),
      },
    ],
    isolationLevel: committed
      ? FetchIsolationLevels.READ_COMMITTED
      : FetchIsolationLevels.READ_UNCOMMITTED,
  });
  return [...(listed?.partitions ?? [])]
    .sort((a, b) => a.partitionIndex - b.partitionIndex)
    .map((p) => p.offset);
}

function testAdmin(): Admin {
  return new Admin({
    clientId: "weir-test-offsets",
    bootstrapBrokers: [clusterEnv().kafkaBootstrap],
  });
}

/** `topic`'s last stable offsets, by partition: where a read_committed reader's end is. */
export async function lastStableOffsets(topic: string): Promise<bigint[]> {
  const admin = testAdmin();
  try {
    return await endOffsets(admin, topic, true);
  } finally {
    await admin.close();
  }
}

/**
 * The sum of `topic`'s last stable offsets: it grows as transactions that wrote to the topic
 * commit (a test's way to see a job's output move on).
 */
export async function committedEnd(topic: string): Promise<bigint> {
  return (await lastStableOffsets(topic)).reduce((a, b) => a + b, 0n);
}

/** Waits until `topic`'s committed output has grown by `records` from now: its job processes. */
export async function committedGrowth(
  topic: string,
  records: number,
  timeoutMs = 120_000,
): Promise<void> {
  const from = await committedEnd(topic);
  await eventually(
    `${topic} to grow by ${records} committed records`,
    async () => ((await committedEnd(topic)) >= from + BigInt(records) ? true : undefined),
    timeoutMs,
  );
}

/**
 * Waits until `topic`'s high watermarks (every write, committed or not, moves them) stayed the
 * same for `quietMs`; fails after `timeoutMs` of output that keeps coming.
 */
async function untilQuiet(topic: string, quietMs: number, timeoutMs: number): Promise<void> {
  const admin = testAdmin();
  try {
    const watermarks = async () => (await endOffsets(admin, topic, false)).join(",");
    const deadline = Date.now() + timeoutMs;
    let last = await watermarks();
    let quietSince = Date.now();
    while (Date.now() - quietSince < quietMs) {
      if (Date.now() > deadline)
        throw new Error(
          `${topic}: still being written after ${timeoutMs} ms (waiting for ${quietMs} ms without a write)`,
        );
      await sleep(250);
      const now = await watermarks();
      if (now !== last) {
        last = now;
        quietSince = Date.now();
      }
    }
  } finally {
    await admin.close();
  }
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
