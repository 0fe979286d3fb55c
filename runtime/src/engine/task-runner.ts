// Runs one task (one source partition) exactly once: restore (restore.ts), then read a batch,
// process it, send its outputs inside the open Kafka transaction, and every checkpoint
// interval upload the task's state for the current offset and only then commit the
// transaction with that offset. A crash at any point leaves either the previous committed
// transaction (and the checkpoint taken at its offset) or the new one: never half of one.
import type { MessageToProduce as KafkaMessageToProduce } from "@platformatic/kafka";
import type { KafkaConnection } from "../connectors/kafka/connection.ts";
import {
  type OutOfRangePolicy,
  type SourceRecord,
  TaskReader,
  TaskWriter,
} from "../connectors/kafka/task-io.ts";
import type { ChainBounds } from "../state/chain.ts";
import { StateNotSerializable, TaskState } from "../state/keyed-state.ts";
import type { JobRef, SnapshotMetadata, TaskEntryInput, TaskRef } from "../state/metadata.ts";
import type { SnapshotStore } from "../state/snapshot-store.ts";
import { deadLetter, type FailurePolicy, failureKind, RecordFailed } from "./failures.ts";
import type { Failure, InputRecord, OutputRecord, TaskMetrics } from "./pipeline.ts";
import {
  checkpointId,
  checkpointIdPrefix,
  type EMPTY_STATE,
  planRestore,
  type RestorePlan,
} from "./restore.ts";
import { type StoredCheckpoint, TaskCheckpoints } from "./task-checkpoints.ts";

type MessageToProduce = KafkaMessageToProduce<Buffer, Buffer, Buffer, Buffer>;

/** What the runner asks of a job's operators for one task; their state lives in `TaskState`. */
/** A result may carry the records that failed (pipeline.ts's StepResult does). */
type Processed = OutputRecord[] & { failures?: Failure[] };

export interface TaskProcessor {
  process(records: InputRecord[], now: number): Processed;
  /** Fires what time alone makes due (processing-time timers, idle-partition watermarks). */
  advanceTime?(now: number): Processed;
  /** The source may still hold records at `now`: its partitions are not idle (pipeline.ts). */
  sourceBusy?(now: number): void;
  /** The task's event-time watermark (pipeline.ts's TaskPipeline has one). */
  readonly watermark?: number;
  metrics?(): Pick<TaskMetrics, "lateRecords" | "lateDropped">;
}

/** A task's last stored checkpoint (for status and metrics). */
export interface CheckpointStats {
  offset: bigint;
  /** When it committed, by the runner's clock. */
  at: number;
  bytes: number;
  durationMs: number;
  /** A delta on the task's chain, or a full snapshot (see TaskCheckpoints). */
  kind: "full" | "delta";
  /** Deltas after the base of its chain. */
  chainLength: number;
}

/** Where a task's start went (ms): its restore, and the whole of `start()`. */
export interface StartTimings {
  /** Reading the state object and deserializing it (0 without a snapshot to restore). */
  restoreMs: number;
  restoredBytes: number;
  /** Committed offset, checkpoint list, restore, and the source's start. */
  startMs: number;
}

/** Where this task's part of a savepoint went (ms). */
export interface SavepointTimings {
  /** From the request to the batch boundary where the task took it. */
  waitMs: number;
  snapshotMs: number;
  /** The savepoint's object, and with `checkpointCopy` a checkpoint at the same offset too. */
  uploadMs: number;
  /** Whether records were processed since the last checkpoint (then both are uploaded). */
  checkpointCopy: boolean;
  commitMs: number;
  bytes: number;
}

export interface TaskRunnerOptions {
  job: JobRef;
  task: TaskRef;
  /** The job's Kafka cluster (connection.ts): every client of the task is built from it. */
  kafka: KafkaConnection;
  store: SnapshotStore;
  /** Every stable operator name of the job (the snapshot fingerprint). */
  jobOperators: readonly string[];
  /** Whether the job keeps state (a stateless task may resume from its offset alone). */
  stateful: boolean;
  createProcessor(state: TaskState): TaskProcessor;
  /** A savepoint to start from (`WEIR_RESTORE_FROM`). */
  restoreFrom?: SnapshotMetadata | typeof EMPTY_STATE;
  /** The run this task belongs to (`WEIR_RUN`); it names the task's checkpoints. */
  run?: string;
  /** Stateful steps of the savepoint the job no longer has (see checkCompatibility). */
  dropOperators?: readonly string[];
  /** Where a task without committed offset starts (default 0; main.ts looks up earliest/latest). */
  startOffset?: () => Promise<bigint>;
  /**
   * The source partition's end offset, undefined unless seen in the last few seconds (main.ts:
   * EndOffsets, refreshed every second): the first commit comes once the task catches up with
   * it, and only while caught up can its partition go idle.
   */
  sourceEnd?: () => bigint | undefined;
  /** What to do with records that fail (default: skip and count). */
  failures?: FailurePolicy;
  checkpointIntervalMs?: number;
  maxBatch?: number;
  /** How many checkpoints of this task to keep (and every object their chains need). */
  retainCheckpoints?: number;
  /** When a chain of deltas is compacted (default: 20 deltas, or deltas past half the base). */
  chainBounds?: ChainBounds;
  /** How old an unreferenced checkpoint object must be before retention removes it. */
  orphanGraceMs?: number;
  /** Where the task goes when its position is gone from the partition (default: it fails). */
  outOfRange?: OutOfRangePolicy;
  /**
   * Whether the task is its source partition's only reader (a repartition topic): records it
   * has committed are then deleted, so the internal topic does not keep the whole stream.
   */
  purgeCommitted?: boolean;
  now?: () => number;
}

/** The state could not be uploaded: nothing was committed, the transaction is still open. */
export class CheckpointNotStored extends Error {}

/**
 * A transaction could not commit and was aborted: its outputs are gone while the task's state
 * and position include them, so the task must not go on (it restarts from its last commit).
 */
export class CommitFailed extends Error {}

/** Longest a checkpoint interval may be: the transaction stays open that long (see below). */
export const MAX_CHECKPOINT_INTERVAL_MS = 5 * 60_000;
const MIN_CHECKPOINT_INTERVAL_MS = 100;

/**
 * The transaction timeout for a checkpoint interval: a transaction spans one interval plus the
 * state's upload, and the broker aborts any open longer (its transaction.max.timeout.ms, 15
 * minutes by default, bounds this).
 */
export function transactionTimeoutFor(checkpointIntervalMs: number): number {
  return Math.max(60_000, 2 * checkpointIntervalMs + 30_000);
}

/** Deleting committed records of an internal topic: at most this often per task. */
const PURGE_EVERY_MS = 10_000;

export class TaskRunner {
  readonly #options: TaskRunnerOptions;
  readonly #reader: TaskReader;
  readonly #writer: TaskWriter;
  readonly #now: () => number;
  #state = new TaskState();
  readonly #checkpoints: TaskCheckpoints;
  #processor: TaskProcessor | undefined;
  #queue: SourceRecord[] = [];
  #arrived: (() => void) | undefined;
  #drained: (() => void) | undefined;
  #pumping: Promise<void> | undefined;
  /** Why the source stopped delivering (its offset out of range, say): the task fails on it. */
  #sourceFailed: unknown;
  /** The next offset to process (what a snapshot taken now records). */
  #position = 0n;
  /** The number of the checkpoint the last commit named (see checkpointId). */
  #checkpointNumber = 0n;
  #lastPurge = 0;
  #finished = false;
  #savepointRequest:
    | {
        id: string;
        stop: boolean;
        resolve: (entry: TaskEntryInput) => void;
        reject: (error: unknown) => void;
        requestedAt: number;
      }
    | undefined;
  /** Records processed and outputs sent since the last commit: something to commit. */
  #pending = 0;
  #stopping = false;
  #loop: Promise<void> | undefined;
  plan: RestorePlan | undefined;
  recordsIn = 0;
  recordsOut = 0;
  /** Failed records (and timers) by kind: see failureKind. */
  readonly failures = { decode: 0, user: 0, encode: 0 };
  deadLetters = 0;
  /** Records that produced nothing by policy: failures skipped. (Late drops: processorMetrics.) */
  skipped = 0;
  checkpointFailures = 0;
  /** Time spent processing batches and firing timers (not waiting for input or storage). */
  busyMs = 0;
  lastCheckpoint: CheckpointStats | undefined;
  /** Since when the stored state covers everything processed (restore, or a checkpoint). */
  checkpointedAt = 0;
  /**
   * When the task was first seen processing after its start (runner clock): its first commit,
   * or caught up with nothing to commit. What the pod's readiness waits for.
   */
  processingSince: number | undefined;
  started: StartTimings | undefined;
  lastSavepoint: SavepointTimings | undefined;

  constructor(options: TaskRunnerOptions) {
    const interval = options.checkpointIntervalMs ?? 1_000;
    if (
      !Number.isSafeInteger(interval) ||
      interval < MIN_CHECKPOINT_INTERVAL_MS ||
      interval > MAX_CHECKPOINT_INTERVAL_MS
    ) {
      throw new Error(
        `checkpoint interval ${String(interval)} ms is out of range: a whole number of milliseconds from ${MIN_CHECKPOINT_INTERVAL_MS} to ${MAX_CHECKPOINT_INTERVAL_MS} (each task's Kafka transaction stays open for one interval)`,
      );
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    const io = { kafka: options.kafka, job: options.job, task: options.task };
    this.#reader = new TaskReader({
      ...io,
      ...(options.outOfRange ? { outOfRange: options.outOfRange } : {}),
    });
    this.#writer = new TaskWriter({ ...io, transactionTimeoutMs: transactionTimeoutFor(interval) });
    this.#checkpoints = new TaskCheckpoints({
      store: options.store,
      task: options.task,
      jobOperators: options.jobOperators,
      ...(options.chainBounds ? { bounds: options.chainBounds } : {}),
      ...(options.orphanGraceMs === undefined ? {} : { orphanGraceMs: options.orphanGraceMs }),
      log: (msg, fields) =>
        process.stderr.write(
          `${JSON.stringify({ msg, task: `${options.task.topic}-${options.task.partition}`, ...fields })}\n`,
        ),
    });
  }

  /** The task's checkpoint chain (compactions, for tests and status). */
  get checkpoints(): TaskCheckpoints {
    return this.#checkpoints;
  }

  get task(): TaskRef {
    return this.#options.task;
  }

  /** The next offset to process. */
  get position(): bigint {
    return this.#position;
  }

  /** Event-time watermark of the task, when its job has event time. */
  get watermark(): number | undefined {
    return this.#processor?.watermark;
  }

  get processorMetrics(): Pick<TaskMetrics, "lateRecords" | "lateDropped"> {
    return this.#processor?.metrics?.() ?? { lateRecords: 0, lateDropped: 0 };
  }

  /** Rough bytes of the task's state (see TaskState.sizeEstimate). */
  stateBytes(): number {
    return this.#state.sizeEstimate();
  }

  /** Settles when the task stops; rejects when it fails (e.g. RecordFailed under "fail"). */
  get running(): Promise<void> {
    return this.#loop ?? Promise.resolve();
  }

  /** Restores, starts reading, and keeps processing until `stop`. */
  async start(): Promise<void> {
    const { task, store, restoreFrom, stateful, run } = this.#options;
    const startedAt = performance.now();
    let restoreMs = 0;
    let restoredBytes = 0;
    // Fence first: once this task's producer is registered no earlier owner (a zombie pod) can
    // commit, so the committed offset read next is final.
    await this.#writer.fence();
    const committed = await this.#reader.committed();
    this.#checkpointNumber = committed?.checkpoint ?? 0n;
    const checkpoints =
      committed === undefined ? [] : await store.list("checkpoint", checkpointIdPrefix(task));
    const plan = planRestore(
      task,
      restoreFrom,
      committed === undefined ? undefined : Number(committed.offset),
      checkpoints,
      stateful,
      run,
      committed?.checkpoint === undefined ? undefined : Number(committed.checkpoint),
    );
    this.plan = plan;
    if (plan.kind === "snapshot" && plan.entry) {
      const restoring = performance.now();
      // From a savepoint, the task's own chain starts on a copy of its object, named as a
      // checkpoint of this run at this offset would be (no metadata: only chains refer to it).
      const copyTo = store.objectKey(
        "checkpoint",
        checkpointId(task, plan.offset, run),
        task,
        "restored",
      );
      const restored = await this.#checkpoints.restore(plan.entry, plan.snapshot.kind, copyTo);
      this.#state = restored.state;
      restoreMs = performance.now() - restoring;
      restoredBytes = restored.bytes;
      // State of steps the job no longer has (allowed by allowNonRestoredState) is dropped.
      for (const name of this.#options.dropOperators ?? []) this.#state.dropOperator(name);
    }
    this.#processor = this.#options.createProcessor(this.#state);
    // A fresh task starts where its source's start position says; later, its committed offset
    // (with the checkpoint taken there) rules.
    const offset =
      plan.kind === "fresh" ? ((await this.#options.startOffset?.()) ?? 0n) : BigInt(plan.offset);
    this.#position = offset;
    this.checkpointedAt = this.#now();
    const stream = this.#reader.start(offset);
    this.started = { restoreMs, restoredBytes, startMs: performance.now() - startedAt };
    this.#pumping = this.#pump(stream);
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const interval = this.#options.checkpointIntervalMs ?? 1_000;
    let nextCheckpoint = this.#now() + interval;
    // The first commit comes as soon as the task has caught up with its source (the backlog of
    // an upgrade's downtime, say), not one interval after the start: a run that replaced
    // another shows its output at once, which is what ends the downtime its users see. Within
    // a record: a transactional source's end is its last commit marker.
    let committedOnce = false;
    const caughtUp = () => {
      const end = this.#options.sourceEnd?.();
      return end !== undefined && this.#position + 1n >= end;
    };
    while (!this.#stopping) {
      // Until the task is processing, a quiet source is looked at often: it is processing once
      // caught up, and its pod's readiness waits for that, not for a whole interval.
      const wait = nextCheckpoint - this.#now();
      const batch = await this.#nextBatch(
        Math.max(10, this.processingSince === undefined ? Math.min(wait, 200) : wait),
      );
      if (this.#sourceFailed !== undefined) throw this.#sourceFailed;
      // A partition without records for the idle timeout is idle, but one whose records are
      // late in coming (the task behind, its broker gone or restarting) is not: time counts
      // towards idleness only while the task is known to be at its source's end.
      if (!caughtUp()) this.#processor?.sourceBusy?.(this.#now());
      const busySince = performance.now();
      if (batch.length > 0) await this.#process(batch);
      const due = this.#processor?.advanceTime?.(this.#now());
      if (due) await this.#emit(due, this.#handleFailures(due.failures ?? []));
      this.busyMs += performance.now() - busySince;
      if (this.processingSince === undefined && this.#pending === 0 && caughtUp())
        this.processingSince = this.#now();
      if (this.#now() >= nextCheckpoint || (!committedOnce && this.#pending > 0 && caughtUp())) {
        committedOnce = true;
        // A checkpoint that cannot be stored (storage down) is retried at the next interval
        // with the state of then: the transaction stays open meanwhile, so nothing is lost or
        // emitted twice; if it stays open too long the broker aborts it, the next commit fails,
        // and the task restarts from its last checkpoint.
        await this.checkpoint().then(
          () => {
            this.processingSince ??= this.#now();
          },
          (error: unknown) => {
            if (!(error instanceof CheckpointNotStored)) throw error;
            this.checkpointFailures++;
            process.stderr.write(
              `${JSON.stringify({ msg: "checkpoint failed; retrying at the next interval", task: `${this.#options.task.topic}-${this.#options.task.partition}`, error: String(error) })}\n`,
            );
          },
        );
        nextCheckpoint = this.#now() + interval;
      }
      const request = this.#savepointRequest;
      if (request) {
        this.#savepointRequest = undefined;
        const taken = await this.#takeSavepoint(request.id, request.requestedAt).then(
          (entry) => {
            request.resolve(entry);
            return true;
          },
          (error: unknown) => {
            request.reject(error);
            // Its transaction aborted: outputs are gone that state and position include.
            if (error instanceof CommitFailed) throw error;
            return false;
          },
        );
        // A savepoint that could not be stored stops nothing: the task goes on as it was.
        if (request.stop && taken) await this.#finish(false);
      }
    }
  }

  /**
   * This task's part of a savepoint, at a batch boundary: its state for the current position
   * is uploaded, then the transaction moving the committed offset to that position commits,
   * so a restore from the savepoint continues exactly where the output stopped. With `stop`
   * the task then stops reading (stop-with-savepoint).
   */
  savepoint(id: string, stop: boolean): Promise<TaskEntryInput> {
    if (this.#finished)
      return Promise.reject(
        new Error(`${this.#options.task.topic}-${this.#options.task.partition} is stopped`),
      );
    return new Promise((resolve, reject) => {
      this.#savepointRequest = { id, stop, resolve, reject, requestedAt: performance.now() };
      this.#arrived?.();
    });
  }

  async #takeSavepoint(id: string, requestedAt: number): Promise<TaskEntryInput> {
    const { task } = this.#options;
    const lap = stopwatch();
    const waitMs = performance.now() - requestedAt;
    const offsets = { [`${task.topic}-${task.partition}`]: this.#position };
    const now = this.#now();
    // The savepoint is a full snapshot of its own (the operator deletes savepoints; nothing may
    // depend on another object). Side by side, a checkpoint at the same offset, a delta on the
    // task's chain (the job stands still meanwhile): should the savepoint as a whole fail
    // (another pod's part missing), this task restarts from its committed offset like after
    // any crash, which needs a checkpoint taken at exactly that offset.
    const checkpointCopy = this.#pending > 0;
    const number = this.#checkpointNumber + 1n;
    const [{ serializeMs, ...entry }, copy] = await Promise.all([
      this.#checkpoints.writeSavepoint(this.#state, id, offsets, now),
      checkpointCopy
        ? this.#checkpoints.write(
            this.#state,
            checkpointId(task, this.#position, this.#options.run, number),
            offsets,
            now,
          )
        : undefined,
    ]);
    const uploadMs = lap();
    await this.#commit(number);
    if (copy) this.#checkpointStored(copy, uploadMs);
    this.lastSavepoint = {
      waitMs,
      // Serialization streams into the upload: its share of uploadMs.
      snapshotMs: serializeMs,
      uploadMs,
      checkpointCopy,
      commitMs: lap(),
      bytes: entry.bytes,
    };
    return entry;
  }

  /**
   * Moves records from the source into the queue the loop takes batches from, holding back
   * (and so letting the source apply back-pressure) while a full batch is waiting.
   */
  async #pump(stream: AsyncIterable<SourceRecord[]>): Promise<void> {
    const max = this.#options.maxBatch ?? 500;
    try {
      for await (const records of stream) {
        for (const record of records) this.#queue.push(record);
        this.#arrived?.();
        while (this.#queue.length >= max && !this.#stopping) {
          await new Promise<void>((resolve) => {
            this.#drained = resolve;
          });
        }
        if (this.#stopping) break;
      }
    } catch (error) {
      if (this.#stopping) return;
      this.#sourceFailed = error;
      this.#arrived?.();
    }
  }

  /** Up to `maxBatch` records, waiting at most `waitMs` for the first. */
  async #nextBatch(waitMs: number): Promise<SourceRecord[]> {
    if (this.#queue.length === 0 && !this.#stopping) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.#arrived = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#arrived = undefined;
    }
    const batch = this.#queue.splice(0, this.#options.maxBatch ?? 500);
    this.#drained?.();
    this.#drained = undefined;
    return batch;
  }

  /** The reader's records are already in the shape the pipeline takes (InputRecord). */
  async #process(records: SourceRecord[]): Promise<void> {
    const outputs: Processed = this.#processor?.process(records, this.#now()) ?? [];
    await this.#emit(outputs, this.#handleFailures(outputs.failures ?? []));
    this.recordsIn += records.length;
    this.#pending += records.length;
    const last = records.at(-1);
    if (last) this.#position = last.offset + 1n;
  }

  /**
   * Applies the failure policy to records that failed to decode or threw in user code: never
   * a silent loss. Each is counted by kind and logged with where it came from; then it goes to
   * the dead-letter topic (returned, to be sent in the open transaction with the outputs), is
   * skipped, or fails the task before anything of its batch commits.
   */
  #handleFailures(failures: Failure[]): MessageToProduce[] {
    const { task, failures: policy = { action: "skip" } } = this.#options;
    for (const failure of failures) {
      this.failures[failureKind(failure)]++;
      process.stderr.write(
        `${JSON.stringify({
          msg: "record failed",
          task: `${task.topic}-${task.partition}`,
          offset: failure.record ? String(failure.record.offset) : undefined,
          operator: failure.operator,
          error: failure.error.message,
          action: policy.action,
        })}\n`,
      );
      if (policy.action === "fail") throw new RecordFailed(failure, task);
    }
    if (policy.action === "dead-letter") {
      this.deadLetters += failures.length;
      return failures.map((f) => deadLetter(f, task, policy.topic, this.#now()));
    }
    this.skipped += failures.length;
    return [];
  }

  async #emit(outputs: OutputRecord[], deadLetters: MessageToProduce[] = []): Promise<void> {
    const messages: MessageToProduce[] = new Array(outputs.length);
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i] as OutputRecord;
      // The client's message shape, built once: a null key is left out, as the client wants.
      messages[i] = {
        topic: o.topic,
        key: o.key ?? undefined,
        value: o.value,
        partition: o.partition,
        timestamp: BigInt(o.timestamp),
      };
    }
    for (const letter of deadLetters) messages.push(letter);
    await this.#writer.send(messages);
    // Outputs of timers and windows count too: they commit even if no record arrives.
    this.#pending += messages.length;
    this.recordsOut += outputs.length;
  }

  /**
   * Commits the open transaction with the current position and checkpoint number `number`
   * (whose state is already stored). A commit that fails is a CommitFailed: see there.
   */
  async #commit(number: bigint): Promise<void> {
    if (this.#pending === 0) return;
    try {
      await this.#writer.commit(await this.#reader.offsetsAt(this.#position, number));
    } catch (error) {
      const { topic, partition } = this.#options.task;
      const why = error instanceof Error ? error.message : String(error);
      throw new CommitFailed(
        `commit of ${topic}-${partition} at ${this.#position} failed: ${why}`,
        {
          cause: error,
        },
      );
    }
    this.#pending = 0;
    this.#checkpointNumber = number;
    this.#purgeCommitted();
  }

  /** Deletes what this task committed from its internal source topic, now and then. */
  #purgeCommitted(): void {
    if (!this.#options.purgeCommitted || this.#now() - this.#lastPurge < PURGE_EVERY_MS) return;
    this.#lastPurge = this.#now();
    const { topic, partition } = this.#options.task;
    this.#reader.purgeBefore(this.#position).catch((error: unknown) => {
      process.stderr.write(
        `${JSON.stringify({ msg: "purging committed records failed", task: `${topic}-${partition}`, error: String(error) })}\n`,
      );
    });
  }

  /** State for the current offset first, then the transaction that moves the offset there. */
  async checkpoint(): Promise<void> {
    if (this.#pending === 0) {
      this.checkpointedAt = this.#now();
      return;
    }
    const { task } = this.#options;
    const next = this.#position;
    const number = this.#checkpointNumber + 1n;
    const offsets = { [`${task.topic}-${task.partition}`]: next };
    const started = performance.now();
    let stored: StoredCheckpoint;
    try {
      stored = await this.#checkpoints.write(
        this.#state,
        checkpointId(task, next, this.#options.run, number),
        offsets,
        this.#now(),
      );
    } catch (error) {
      if (error instanceof StateNotSerializable) throw error;
      const why = error instanceof Error ? error.message : String(error);
      throw new CheckpointNotStored(
        `checkpoint of ${task.topic}-${task.partition} at ${next} not stored: ${why}`,
        { cause: error },
      );
    }
    await this.#commit(number);
    this.#checkpointStored(stored, performance.now() - started);
    if (this.#options.retainCheckpoints !== undefined) {
      // Old checkpoints left behind by a storage failure here are removed next time.
      await this.#checkpoints.retain(this.#options.retainCheckpoints).catch((error: unknown) => {
        process.stderr.write(
          `${JSON.stringify({ msg: "checkpoint retention failed", task: `${task.topic}-${task.partition}`, error: String(error) })}\n`,
        );
      });
    }
  }

  /** A checkpoint stored and committed: its changes are clean, its chain the state's. */
  #checkpointStored(stored: StoredCheckpoint, durationMs: number): void {
    this.#checkpoints.committed(this.#state, stored);
    this.checkpointedAt = this.#now();
    this.lastCheckpoint = {
      offset: BigInt(
        stored.entry.offsets[`${this.#options.task.topic}-${this.#options.task.partition}`] ??
          this.#position,
      ),
      at: this.checkpointedAt,
      bytes: stored.bytes,
      durationMs,
      kind: stored.kind,
      chainLength: stored.chainLength,
    };
  }

  /** Finishes the records in hand, checkpoints, and closes the task's clients. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#arrived?.();
    this.#drained?.();
    try {
      await this.#loop;
    } catch (error) {
      // A failed task commits nothing more, but its clients are closed all the same.
      await this.#finish(false);
      throw error;
    }
    await this.#finish(true);
  }

  /** Ends the task once: optionally processes what was read and checkpoints, then closes. */
  async #finish(drain: boolean): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    this.#stopping = true;
    this.#drained?.();
    try {
      if (drain) {
        // Records already taken from the source are processed before the last checkpoint.
        while (this.#queue.length > 0) await this.#process(this.#queue.splice(0));
        await this.checkpoint();
      }
    } finally {
      // Closing the writer with its transaction open leaves the broker to abort it.
      await this.#checkpoints.close();
      await this.#writer.close().catch(() => {});
      await this.#reader.close().catch(() => {});
      await this.#pumping;
    }
  }
}

/** Milliseconds since the previous call (or since it was made), for timing steps in turn. */
function stopwatch(): () => number {
  let last = performance.now();
  return () => {
    const now = performance.now();
    const ms = now - last;
    last = now;
    return ms;
  };
}
