// Kafka I/O of one task (one source partition; see docs/architecture.md, "Runtime"):
// a reader that owns exactly its partition from an offset the runtime chooses, and a
// transactional writer that commits the task's outputs together with its next source offset.
//
// Each task has a consumer group of its own with one static member, whose assignment is
// fixed by our assigner: no rebalancing between tasks, a restarted owner replaces the old
// member at once, and the group's committed offset is the task's exactly-once position.
import { setTimeout as sleep } from "node:timers/promises";
import {
  Consumer,
  findErrorBy,
  type Message,
  type MessagesStream,
  MessagesStreamModes,
  type MessageToProduce,
  Producer,
} from "@platformatic/kafka";
import type { JobRef, TaskRef } from "../../state/metadata.ts";

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

export interface TaskReaderOptions {
  bootstrapBrokers: string[];
  job: JobRef;
  task: TaskRef;
  clientId?: string;
}

export class TaskReader {
  readonly #consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  readonly #task: TaskRef;
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;

  constructor(options: TaskReaderOptions) {
    const { task } = options;
    this.#task = task;
    const groupId = taskGroupId(options.job, task);
    this.#consumer = new Consumer({
      clientId: options.clientId ?? groupId,
      bootstrapBrokers: options.bootstrapBrokers,
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

  /** The next offset to read according to the task's last committed transaction. */
  async committedOffset(): Promise<bigint | undefined> {
    const offsets = await this.#consumer.listCommittedOffsets({
      topics: [{ topic: this.#task.topic, partitions: [this.#task.partition] }],
    });
    const offset = offsets.get(this.#task.topic)?.[this.#task.partition];
    return offset === undefined || offset < 0n ? undefined : offset;
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
    });
    this.#stream = stream;
    const partition = this.#task.partition;
    return (async function* inOrder() {
      let next = offset;
      for await (const message of stream) {
        if (message.partition !== partition || message.offset < next) continue;
        next = message.offset + 1n;
        yield message;
      }
    })();
  }

  async close(): Promise<void> {
    await this.#stream?.close();
    await this.#consumer.close(true);
  }
}

export interface TaskWriterOptions {
  bootstrapBrokers: string[];
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

export class TaskWriter {
  readonly #producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  #transaction:
    | Awaited<ReturnType<Producer<Buffer, Buffer, Buffer, Buffer>["beginTransaction"]>>
    | undefined;

  constructor(options: TaskWriterOptions) {
    const transactionalId = taskGroupId(options.job, options.task);
    this.#producer = new Producer({
      clientId: options.clientId ?? transactionalId,
      bootstrapBrokers: options.bootstrapBrokers,
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

  /** Sends outputs inside the open transaction: invisible to read_committed until `commit`. */
  async send(outputs: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]): Promise<void> {
    if (outputs.length === 0) return;
    await (await this.#open()).send({ messages: outputs });
  }

  /**
   * Commits the open transaction together with the source position after `lastInput` (a
   * message read by this task's TaskReader, which knows its group). On any error the
   * transaction is aborted: its outputs never become visible.
   */
  async commit(lastInput: RawMessage): Promise<void> {
    const consumer = (lastInput.metadata as { consumer?: { groupId: string } }).consumer;
    if (!consumer) throw new Error("lastInput was not read by a TaskReader: it names no group");
    const transaction = await this.#open();
    this.#transaction = undefined;
    try {
      await transaction.addConsumer(consumer as never);
      await transaction.addOffset(lastInput as never);
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
