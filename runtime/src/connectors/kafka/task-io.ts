// Kafka I/O of one task (one source partition; see docs/architecture.md, "Runtime"):
// a reader that owns exactly its partition from an offset the runtime chooses, and a
// transactional writer that commits the task's outputs together with its next source offset.
//
// Each task has a consumer group of its own with one static member, whose assignment is
// fixed by our assigner: no rebalancing between tasks, a restarted owner replaces the old
// member at once, and the group's committed offset is the task's exactly-once position.
import { setTimeout as sleep } from "node:timers/promises";
import {
  Admin,
  FindCoordinatorKeyTypes,
  findErrorBy,
  ListOffsetTimestamps,
  type Message,
  type MessagesStream,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type MessageToProduce,
  Producer,
} from "@platformatic/kafka";
import type { JobRef, TaskRef } from "../../state/metadata.ts";
import type { KafkaConnection } from "./connection.ts";
import { ReadCommittedConsumer } from "./read-committed.ts";

/**
 * The task's stable name, stable across runs and parallelism. It is both its consumer group
 * (whose committed offset is the task's position) and its transactional id (so a new owner of
 * the task fences any zombie of an old one).
 */
export function taskGroupId(job: JobRef, task: TaskRef): string {
  return `weir.${job.namespace}.${job.name}.${task.topic}.${task.partition}`;
}

type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>;

/** Largest fetch response (the broker still sends a larger record batch whole). */
const FETCH_MAX_BYTES = 256 * 1024;

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

/** How long a task waits for a predecessor's commit in flight to settle (requireStable). */
const STABLE_OFFSET_WAIT_MS = 60_000;

export class TaskReader {
  readonly #consumer: ReadCommittedConsumer;
  readonly #task: TaskRef;
  readonly #groupId: string;
  readonly #kafka: KafkaConnection;
  readonly #checkpointGroupId: string;
  readonly #outOfRange: OutOfRangePolicy;
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  #admin: Admin | undefined;
  #checkpointCoordinator: number | undefined;
  #lastFetchAt = 0;

  constructor(options: TaskReaderOptions) {
    const { task } = options;
    this.#task = task;
    const groupId = taskGroupId(options.job, task);
    this.#groupId = groupId;
    this.#checkpointGroupId = `${groupId}.checkpoint`;
    this.#kafka = options.kafka;
    this.#outOfRange = options.outOfRange ?? "fail";
    this.#consumer = new ReadCommittedConsumer({
      ...options.kafka,
      clientId: options.clientId ?? groupId,
      groupId,
      groupInstanceId: groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      // The only member of its group gets exactly the task's partition.
      partitionAssigner: (_current, members) =>
        [...members.keys()].map((memberId, index) => ({
          memberId,
          assignments: new Map(
            index === 0 ? [[task.topic, { topic: task.topic, partitions: [task.partition] }]] : [],
          ),
        })),
    });
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
   * partition, checkpoints twice at one position: the number tells the two states apart).
   */
  async offsetsAt(position: bigint, checkpoint: bigint): Promise<TransactionalOffset[]> {
    const { topic, partition } = this.#task;
    const consumer = this.#consumer;
    this.#checkpointCoordinator ??= await this.#adminClient()
      .findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [this.#checkpointGroupId] })
      .then(([found]) => found?.nodeId);
    const at = (offset: bigint, group: TransactionalOffset["metadata"]["consumer"]) => ({
      topic,
      partition,
      // The client commits the offset after the message it is given.
      offset: offset - 1n,
      metadata: { consumer: group },
    });
    return [
      at(position, {
        groupId: this.#groupId,
        memberId: consumer.memberId ?? "",
        generationId: consumer.generationId ?? -1,
        coordinatorId: consumer.coordinatorId ?? -1,
      }),
      at(checkpoint, {
        groupId: this.#checkpointGroupId,
        memberId: "",
        generationId: -1,
        coordinatorId: this.#checkpointCoordinator ?? -1,
      }),
    ];
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
   * order: the client may fetch a range again when its group settles, so anything before the
   * next expected offset is dropped here.
   */
  async start(offset: bigint): Promise<AsyncIterable<RawMessage>> {
    const stream = await this.#consumer.consume({
      topics: [this.#task.topic],
      mode: MessagesStreamModes.MANUAL,
      offsets: [{ topic: this.#task.topic, partition: this.#task.partition, offset }],
      autocommit: false,
      isolationLevel: 1,
      maxWaitTime: 200,
      // The client parses a response through a list of the socket's chunks, looking each read
      // up from the first chunk: a fetch of the default 50 MB costs ~15 µs of CPU per record,
      // one of 256 KB ~2.5 µs (measured on records of ~100 bytes).
      maxBytes: FETCH_MAX_BYTES,
      // Never the client's default (skip to the end): see OutOfRangePolicy.
      fallbackMode:
        this.#outOfRange === "fail"
          ? MessagesStreamFallbackModes.FAIL
          : this.#outOfRange === "earliest"
            ? MessagesStreamFallbackModes.EARLIEST
            : MessagesStreamFallbackModes.LATEST,
    });
    this.#stream = stream;
    this.#lastFetchAt = Date.now();
    // Every fetch answered (records or not, error or not): a flowing stream fetches again at
    // least every maxWaitTime.
    stream.on("fetch", () => {
      this.#lastFetchAt = Date.now();
    });
    const { topic, partition } = this.#task;
    const heldRange = () => this.#heldRange();
    return (async function* inOrder() {
      let next = offset;
      try {
        for await (const message of stream) {
          if (message.partition !== partition || message.offset < next) continue;
          next = message.offset + 1n;
          yield message;
        }
      } catch (error) {
        if (findErrorBy(error as Error, "apiId", "OFFSET_OUT_OF_RANGE") === null) throw error;
        const held = await heldRange().catch(() => undefined);
        throw outOfRange(error, topic, partition, next, held);
      }
    })();
  }

  /**
   * Milliseconds since the broker last answered one of this reader's fetches. While its
   * records are being waited for, this stays below a second; the client's stream can stop
   * fetching for good (seen after broker restarts: a refresh of offsets that failed is not
   * retried), which only this shows.
   */
  sinceLastFetch(): number {
    return Date.now() - this.#lastFetchAt;
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
    await this.#stream?.close();
    await this.#consumer.close(true);
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

/**
 * Commits a task's outputs and its next source offset in one Kafka transaction: a reader
 * with read_committed sees the outputs exactly when the offset moved past their inputs.
 */
const BEGIN_ATTEMPTS = 30;
/**
 * How long a commit waits for the task's consumer to rejoin its group: 60 × 500 ms (its
 * transaction stays open meanwhile, well within the transaction timeout).
 */
const REJOIN_ATTEMPTS = 60;
const REJOIN_WAIT_MS = 500;

export class TaskWriter {
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
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

  /** Sends outputs inside the open transaction: invisible to read_committed until `commit`. */
  async send(outputs: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]): Promise<void> {
    if (outputs.length === 0) return;
    await (await this.#open()).send({ messages: outputs });
  }

  /**
   * Commits the open transaction together with the offsets `offsets()` gives (see
   * TaskReader.offsetsAt). While the task's consumer is rejoining its group (the broker dropped
   * it: a missed heartbeat, a removed member) the offsets' generation is refused; they are
   * asked for again, in the same transaction, until the consumer is back. On any other error
   * the transaction is aborted: its outputs never become visible.
   */
  async commit(offsets: () => Promise<readonly TransactionalOffset[]>): Promise<void> {
    const transaction = await this.#open();
    this.#transaction = undefined;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          for (const offset of await offsets()) {
            await transaction.addConsumer(offset.metadata.consumer as never);
            await transaction.addOffset(offset as never);
          }
          break;
        } catch (error) {
          const rejoining = findErrorBy(error as Error, "needsRejoin", true) !== null;
          if (!rejoining || attempt >= REJOIN_ATTEMPTS) throw error;
          await sleep(REJOIN_WAIT_MS);
        }
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
