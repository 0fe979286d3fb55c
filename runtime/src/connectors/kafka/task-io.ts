// Kafka I/O of one task (one source partition; see docs/architecture.md, "Runtime"):
// a reader that fetches exactly its partition from an offset the runtime chooses, and a
// transactional writer that commits the task's outputs together with its next source offset.
//
// The reader is no consumer-group member: it fetches its one partition itself, from the
// offset it last handed out, and nothing else ever moves that offset (a group's rejoin, a
// refresh of committed offsets, a fetch session's cached position). The task's group exists
// only to hold its committed offset, written by the task's transactions; a new owner of the
// task fences an old one through the transactional id, not the group.
import { setTimeout as sleep } from "node:timers/promises";
import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  type fetchV17,
  findErrorBy,
  ListOffsetTimestamps,
  type MessageToProduce,
  Producer,
} from "@platformatic/kafka";
import type { JobRef, TaskRef } from "../../state/metadata.ts";
import type { KafkaConnection } from "./connection.ts";
import { CONTROL, withoutAbortedBatches } from "./read-committed.ts";

/**
 * The task's stable name, stable across runs and parallelism. It is both its consumer group
 * (whose committed offset is the task's position) and its transactional id (so a new owner of
 * the task fences any zombie of an old one).
 */
export function taskGroupId(job: JobRef, task: TaskRef): string {
  return `weir.${job.namespace}.${job.name}.${task.topic}.${task.partition}`;
}

/**
 * A record as a task reads it: what the pipeline takes (its InputRecord), built once from the
 * fetch response, headers left out (no step reads them).
 */
export interface SourceRecord {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  partition: number;
  offset: bigint;
}

/**
 * Largest fetch response (the broker still sends a larger record batch whole). The client
 * parses a response through a list of the socket's chunks, looking each read up from the
 * first chunk: a fetch of the default 50 MB costs ~15 µs of CPU per record, one of 256 KB
 * ~2.5 µs (measured on records of ~100 bytes).
 */
const FETCH_MAX_BYTES = 256 * 1024;
/** How long the broker holds a fetch open waiting for records. */
const FETCH_MAX_WAIT_MS = 200;
/** Longest pause between fetches that failed (a broker down or moving its leadership). */
const FETCH_BACKOFF_MAX_MS = 1_000;

/**
 * Where a task goes when its position is no longer in the partition (retention deleted it, or
 * an old savepoint names it): "fail" (the default) stops the task with an error naming the
 * offsets; "earliest" or "latest" skip to that end, as the job asked.
 */
export type OutOfRangePolicy = "fail" | "earliest" | "latest";

/** Where the task's last transaction left it. */
export interface Committed {
  /** The next offset to read. */
  offset: bigint;
  /** The number of the checkpoint holding the state for it (absent: committed before numbers). */
  checkpoint: bigint | undefined;
}

/** One offset a transaction commits, in the shape the client's addOffset takes. */
export interface TransactionalOffset {
  topic: string;
  partition: number;
  offset: bigint;
  metadata: {
    consumer: { groupId: string; memberId: string; generationId: number; coordinatorId: number };
  };
}

/** The task's position is outside the partition's records (see OutOfRangePolicy). */
export class OffsetOutOfRange extends Error {}

export interface TaskReaderOptions {
  kafka: KafkaConnection;
  job: JobRef;
  task: TaskRef;
  clientId?: string;
  outOfRange?: OutOfRangePolicy;
}

/**
 * How long a reader waits for its partition to appear in the broker's metadata before it
 * fails (a topic deleted, or named wrong): a leader election takes seconds.
 */
const MISSING_PARTITION_WAIT_MS = 60_000;

type FetchedPartition = fetchV17.FetchResponsePartition;

/** The broker's metadata has no leader for the task's partition. */
class PartitionMissing extends Error {}

/**
 * Whether waiting may mend a failed request: the client says so of everything in the
 * error's chain (a broker unreachable, a leadership moving), and nothing in it says no.
 */
function mayRetry(error: unknown): boolean {
  return (
    findErrorBy(error as Error, "canRetry", true) !== null &&
    findErrorBy(error as Error, "canRetry", false) === null
  );
}

/** How long a task waits for a predecessor's commit in flight to settle (requireStable). */
const STABLE_OFFSET_WAIT_MS = 60_000;

export class TaskReader {
  /** Used for its fetch requests only (leader lookup, API versions, retries): never joins. */
  readonly #client: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #task: TaskRef;
  readonly #groupId: string;
  readonly #kafka: KafkaConnection;
  readonly #checkpointGroupId: string;
  readonly #outOfRange: OutOfRangePolicy;
  #admin: Admin | undefined;
  #coordinators = new Map<string, number>();
  #closed = false;

  constructor(options: TaskReaderOptions) {
    const { task } = options;
    this.#task = task;
    const groupId = taskGroupId(options.job, task);
    this.#groupId = groupId;
    this.#checkpointGroupId = `${groupId}.checkpoint`;
    this.#kafka = options.kafka;
    this.#outOfRange = options.outOfRange ?? "fail";
    this.#client = new Consumer({
      ...options.kafka,
      clientId: options.clientId ?? groupId,
      // Required by the client's options; no request of this reader names it.
      groupId: `${groupId}.reader`,
    });
    // Its metadata requests then cover the partition's topic.
    this.#client.topics.track(task.topic);
  }
  /**
   * What the task's last committed transaction says: the next offset to read and the
   * checkpoint that holds the state for it. Asked with requireStable: while a predecessor's
   * commit is still being completed by the broker the answer waits for it, instead of giving
   * the offset before it (a restore from there would apply that transaction's records twice).
   */
  async committed(): Promise<Committed | undefined> {
    const deadline = Date.now() + STABLE_OFFSET_WAIT_MS;
    const topics = [{ name: this.#task.topic, partitionIndexes: [this.#task.partition] }];
    for (let attempt = 1; ; attempt++) {
      try {
        const groups = await this.#adminClient().listConsumerGroupOffsets({
          groups: [
            { groupId: this.#groupId, topics },
            { groupId: this.#checkpointGroupId, topics },
          ],
          requireStable: true,
        });
        const offsetOf = (groupId: string) => {
          const offset = groups
            .find((g) => g.groupId === groupId)
            ?.topics.find((t) => t.name === this.#task.topic)
            ?.partitions.find((p) => p.partitionIndex === this.#task.partition)?.committedOffset;
          return offset === undefined || offset < 0n ? undefined : offset;
        };
        const offset = offsetOf(this.#groupId);
        if (offset === undefined) return undefined;
        return { offset, checkpoint: offsetOf(this.#checkpointGroupId) };
      } catch (error) {
        const unstable = findErrorBy(error as Error, "apiId", "UNSTABLE_OFFSET_COMMIT") !== null;
        if (!unstable || Date.now() > deadline) throw error;
        await sleep(Math.min(100 * attempt, 1_000));
      }
    }
  }

  /**
   * The offsets a transaction commits to move the task to `position` with the state of
   * checkpoint number `checkpoint`: the task's group gets the position, a second group of its
   * own the checkpoint's number (a task that emits without reading, a timer or window on a quiet
   * partition, checkpoints twice at one position: the number tells the two states apart). Both
   * groups have no members, so the commits carry no generation.
   */
  async offsetsAt(position: bigint, checkpoint: bigint): Promise<TransactionalOffset[]> {
    const { topic, partition } = this.#task;
    const at = async (offset: bigint, groupId: string) => ({
      topic,
      partition,
      // The client commits the offset after the message it is given.
      offset: offset - 1n,
      metadata: {
        consumer: {
          groupId,
          memberId: "",
          generationId: -1,
          coordinatorId: await this.#coordinatorOf(groupId),
        },
      },
    });
    return [await at(position, this.#groupId), await at(checkpoint, this.#checkpointGroupId)];
  }

  async #coordinatorOf(groupId: string): Promise<number> {
    let coordinator = this.#coordinators.get(groupId);
    if (coordinator === undefined) {
      const [found] = await this.#adminClient().findCoordinator({
        keyType: FindCoordinatorKeyTypes.GROUP,
        keys: [groupId],
      });
      coordinator = found?.nodeId ?? -1;
      this.#coordinators.set(groupId, coordinator);
    }
    return coordinator;
  }

  /**
   * Deletes the partition's records before `offset`: for an internal topic (repartition) whose
   * only reader is this task, what it has committed is never read again.
   */
  async purgeBefore(offset: bigint): Promise<void> {
    await this.#adminClient().deleteRecords({
      topics: [
        { name: this.#task.topic, partitions: [{ partition: this.#task.partition, offset }] },
      ],
    });
  }

  #adminClient(): Admin {
    this.#admin ??= new Admin({ ...this.#kafka, clientId: `${this.#groupId}-admin` });
    return this.#admin;
  }

  /**
   * Reads committed records (read_committed) from `offset` on, each exactly once and in
   * order, until `close`: one array per fetch (never empty), so a task takes a fetch's records
   * in one step instead of one promise each. A fetch that fails (a broker down, restarting or
   * handing over its leadership) is tried again, with a fresh look at the partition's leader,
   * for as long as it takes: the task waits for its records rather than fail. It fails on what
   * waiting cannot mend (refused credentials, a topic gone) and on a position outside the
   * partition (see OutOfRangePolicy).
   */
  start(offset: bigint): AsyncIterable<SourceRecord[]> {
    return this.#records(offset);
  }

  async *#records(from: bigint): AsyncGenerator<SourceRecord[]> {
    const { partition } = this.#task;
    let next = from;
    let failures = 0;
    let missingSince: number | undefined;
    while (!this.#closed) {
      let fetched: FetchedPartition | undefined;
      try {
        fetched = await this.#fetch(next, failures > 0);
        failures = 0;
        missingSince = undefined;
      } catch (error) {
        if (this.#closed) return;
        failures++;
        if (findErrorBy(error as Error, "apiId", "OFFSET_OUT_OF_RANGE") !== null) {
          next = await this.#afterOutOfRange(error, next);
        } else if (error instanceof PartitionMissing) {
          missingSince ??= Date.now();
          if (Date.now() - missingSince > MISSING_PARTITION_WAIT_MS) throw error;
        } else if (!mayRetry(error)) {
          throw error;
        }
        await sleep(Math.min(50 * 2 ** failures, FETCH_BACKOFF_MAX_MS));
        continue;
      }
      const batches = fetched?.records ?? [];
      const last = batches.at(-1);
      if (!fetched || !last) continue;
      // Computed before aborted batches are dropped: the position moves past them too.
      const end = last.firstOffset + BigInt(last.lastOffsetDelta) + 1n;
      const records: SourceRecord[] = [];
      for (const batch of withoutAbortedBatches(fetched)) {
        if ((batch.attributes & CONTROL) !== 0) continue;
        const firstTimestamp = Number(batch.firstTimestamp);
        for (const record of batch.records) {
          const offset = batch.firstOffset + BigInt(record.offsetDelta);
          // A batch comes whole: its records before the position were handed out already.
          if (offset < next) continue;
          records.push({
            key: record.key ?? null,
            value: record.value ?? null,
            timestamp: firstTimestamp + Number(record.timestampDelta),
            partition,
            offset,
          });
        }
      }
      if (end > next) next = end;
      if (records.length > 0) yield records;
    }
  }

  /** One read_committed fetch of the partition from `offset`, at its current leader. */
  async #fetch(offset: bigint, refreshMetadata: boolean) {
    const { topic, partition } = this.#task;
    const metadata = await this.#client.metadata({ topics: [topic], forceUpdate: refreshMetadata });
    const described = metadata.topics.get(topic);
    const leader = described?.partitions[partition]?.leader;
    if (!described || leader === undefined || leader < 0) {
      throw new PartitionMissing(`${topic}-${partition} has no leader the broker knows of`);
    }
    const response = await this.#client.fetch({
      node: leader,
      topics: [
        {
          topicId: described.id,
          partitions: [
            {
              partition,
              fetchOffset: offset,
              partitionMaxBytes: FETCH_MAX_BYTES,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            },
          ],
        },
      ],
      maxWaitTime: FETCH_MAX_WAIT_MS,
      maxBytes: FETCH_MAX_BYTES,
      minBytes: 1,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    });
    return response.responses[0]?.partitions.find((p) => p.partitionIndex === partition);
  }

  /**
   * Where reading goes on after the broker called `position` out of range. The partition's
   * range is looked up anew: when it holds the position after all (an answer about a range
   * that has since moved) reading goes on there; otherwise the task's policy decides.
   */
  async #afterOutOfRange(error: unknown, position: bigint): Promise<bigint> {
    const held = await this.#heldRange().catch(() => undefined);
    if (held && position >= held[0] && position <= held[1]) return position;
    if (!held) return position;
    if (this.#outOfRange === "fail") {
      throw outOfRange(error, this.#task.topic, this.#task.partition, position, held);
    }
    return this.#outOfRange === "earliest" ? held[0] : held[1];
  }

  /** The first offset the partition still holds and its end. */
  async #heldRange(): Promise<[bigint, bigint]> {
    const { topic, partition } = this.#task;
    const at = async (timestamp: bigint) => {
      const [listed] = await this.#adminClient().listOffsets({
        topics: [{ name: topic, partitions: [{ partitionIndex: partition, timestamp }] }],
      });
      return listed?.partitions[0]?.offset ?? -1n;
    };
    return [await at(ListOffsetTimestamps.EARLIEST), await at(ListOffsetTimestamps.LATEST)];
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#client.close(true);
    await this.#admin?.close();
  }
}

/** The broker's OFFSET_OUT_OF_RANGE for the task's partition, as an error a person can act on. */
function outOfRange(
  error: unknown,
  topic: string,
  partition: number,
  position: bigint,
  held: [bigint, bigint] | undefined,
): OffsetOutOfRange {
  const range = held ? ` (it holds offsets ${held[0]} to ${held[1]})` : "";
  return new OffsetOutOfRange(
    `${topic}-${partition}: offset ${position} is out of range${range}: its records were deleted (retention) or the offset comes from an old savepoint. ` +
      "The task stops rather than skip records; a source with outOfRange: 'earliest' or 'latest' skips to that end instead.",
    { cause: error },
  );
}

export interface TaskWriterOptions {
  kafka: KafkaConnection;
  job: JobRef;
  task: TaskRef;
  clientId?: string;
  /** Longest a transaction (one checkpoint interval) may stay open; also the request timeout. */
  transactionTimeoutMs?: number;
}

/** Tries at starting a transaction while the broker says "not yet" (see TaskWriter.#open). */
const BEGIN_ATTEMPTS = 30;

/** Sends a writer lets run ahead of their acknowledgements (see TaskWriter.send). */
const MAX_SENDS_IN_FLIGHT = 4;

/**
 * Commits a task's outputs and its next source offset in one Kafka transaction: a reader
 * with read_committed sees the outputs exactly when the offset moved past their inputs.
 */
export class TaskWriter {
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  readonly #inFlight = new Set<Promise<void>>();
  /** The send queued last: the next one starts when it is done. */
  #lastSend: Promise<void> = Promise.resolve();
  /** The first send of this writer that failed: the transaction can only abort. */
  #sendFailed: unknown;
  #transaction:
    | Awaited<ReturnType<Producer<Buffer, Buffer, Buffer, Buffer>["beginTransaction"]>>
    | undefined;

  constructor(options: TaskWriterOptions) {
    const transactionalId = taskGroupId(options.job, options.task);
    this.#producer = new Producer({
      ...options.kafka,
      clientId: options.clientId ?? transactionalId,
      transactionalId,
      idempotent: true,
      acks: -1,
      // The client would answer a fencing error by re-initialising the producer id, which
      // fences the task's rightful new owner in turn. A transactional error must instead end
      // this writer: the task restarts from its last committed state.
      retries: 0,
      // A new producer must ask for its id as "none yet" (-1/-1). The client's default (0/0)
      // reads to the broker as a stale epoch of an existing producer, and a second owner of a
      // transactional id is then refused as fenced instead of fencing the first.
      producerId: -1n,
      producerEpoch: -1,
      // The client sends its request timeout as the transaction timeout (default 5 s): the
      // broker would abort any transaction open longer, i.e. a checkpoint interval plus its
      // upload. A minute covers both, with room for a slow object store.
      timeout: options.transactionTimeoutMs ?? 60_000,
    });
  }

  /**
   * The transaction open since the last commit: outputs go out as they are produced. Starting
   * one is retried while the broker says "not yet" (its transaction coordinator still loading,
   * or a killed predecessor's transaction still being aborted); a fenced writer is not retried.
   */
  async #open() {
    for (let attempt = 1; !this.#transaction; attempt++) {
      try {
        this.#transaction = await this.#producer.beginTransaction();
      } catch (error) {
        const retriable =
          findErrorBy(error as Error, "canRetry", true) !== null &&
          findErrorBy(error as Error, "producerFenced", true) === null;
        if (!retriable || attempt >= BEGIN_ATTEMPTS) throw error;
        await sleep(Math.min(100 * attempt, 1_000));
      }
    }
    return this.#transaction;
  }

  /**
   * Registers this writer as the task's producer, fencing any earlier owner (a zombie pod) and
   * aborting its open transaction. A new owner does this before it reads the committed offset:
   * from then on nobody else can commit for the task.
   */
  async fence(): Promise<void> {
    await this.#open();
  }

  /**
   * Sends outputs inside the open transaction: invisible to read_committed until `commit`.
   * Returns once the send is queued, not when the broker has it: the task processes its next
   * batch meanwhile. Sends go to the client one after another (given to it at once, two sends of
   * one transaction raced to register their partitions and the broker refused the second's
   * records); at most MAX_SENDS_IN_FLIGHT wait (back-pressure). A send that failed fails the
   * next `send` or the `commit`, which waits for every send first.
   */
  async send(outputs: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]): Promise<void> {
    if (outputs.length === 0) return;
    this.#throwIfSendFailed();
    const transaction = await this.#open();
    const sent: Promise<void> = this.#lastSend
      .then(() =>
        this.#sendFailed === undefined ? transaction.send({ messages: outputs }) : undefined,
      )
      .then(
        () => {
          this.#inFlight.delete(sent);
        },
        (error: unknown) => {
          this.#inFlight.delete(sent);
          this.#sendFailed ??= error;
        },
      );
    this.#lastSend = sent;
    this.#inFlight.add(sent);
    if (this.#inFlight.size >= MAX_SENDS_IN_FLIGHT) await Promise.race(this.#inFlight);
    this.#throwIfSendFailed();
  }

  #throwIfSendFailed(): void {
    if (this.#sendFailed !== undefined) throw this.#sendFailed;
  }

  /**
   * Commits the open transaction together with `offsets` (see TaskReader.offsetsAt), once every
   * send of it is acknowledged. On any error the transaction is aborted: its outputs never
   * become visible.
   */
  async commit(offsets: readonly TransactionalOffset[]): Promise<void> {
    const transaction = await this.#open();
    this.#transaction = undefined;
    try {
      await Promise.all(this.#inFlight);
      this.#throwIfSendFailed();
      for (const offset of offsets) {
        await transaction.addConsumer(offset.metadata.consumer as never);
        await transaction.addOffset(offset as never);
      }
      await transaction.commit();
    } catch (error) {
      if (!transaction.completed) await transaction.abort().catch(() => {});
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.#producer.close();
  }
}
