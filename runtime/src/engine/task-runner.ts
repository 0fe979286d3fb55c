// Runs one task (one source partition) exactly once: restore (restore.ts), then read a batch,
// process it, send its outputs inside the open Kafka transaction, and every checkpoint
// interval upload the task's state for the current offset and only then commit the
// transaction with that offset. A crash at any point leaves either the previous committed
// transaction (and the checkpoint taken at its offset) or the new one: never half of one.
import type { Message } from "@platformatic/kafka";
import { TaskReader, TaskWriter } from "../connectors/kafka/task-io.ts";
import { TaskState } from "../state/keyed-state.ts";
import type { JobRef, SnapshotMetadata, TaskEntryInput, TaskRef } from "../state/metadata.ts";
import type { SnapshotStore } from "../state/snapshot-store.ts";
import type { Failure, InputRecord, OutputRecord } from "./pipeline.ts";
import { planRestore, type RestorePlan } from "./restore.ts";

type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>;

/** What the runner asks of a job's operators for one task; their state lives in `TaskState`. */
/** A result may carry the records that failed (pipeline.ts's StepResult does). */
type Processed = OutputRecord[] & { failures?: Failure[] };

export interface TaskProcessor {
  process(records: InputRecord[], now: number): Processed;
  /** Fires what time alone makes due (processing-time timers, idle-partition watermarks). */
  advanceTime?(now: number): OutputRecord[];
}

export interface TaskRunnerOptions {
  job: JobRef;
  task: TaskRef;
  bootstrapBrokers: string[];
  store: SnapshotStore;
  /** Every stable operator name of the job (the snapshot fingerprint). */
  jobOperators: readonly string[];
  /** Whether the job keeps state (a stateless task may resume from its offset alone). */
  stateful: boolean;
  createProcessor(state: TaskState): TaskProcessor;
  /** A savepoint to start from (`WEIR_RESTORE_FROM`). */
  restoreFrom?: SnapshotMetadata;
  /** Stateful steps of the savepoint the job no longer has (see checkCompatibility). */
  dropOperators?: readonly string[];
  startFrom?: "earliest" | "latest";
  checkpointIntervalMs?: number;
  maxBatch?: number;
  /** How many checkpoints of this task to keep. */
  retainCheckpoints?: number;
  now?: () => number;
}

/** A task's checkpoint is named by its position, so a retried upload overwrites itself. */
export function checkpointId(task: TaskRef, offset: bigint): string {
  return `${checkpointIdPrefix(task)}${offset}`;
}

/** Narrows listings to (about) one task's checkpoints; the metadata's task decides exactly. */
function checkpointIdPrefix(task: TaskRef): string {
  return `${task.topic}-${task.partition}-`;
}

/** The state could not be uploaded: nothing was committed, the transaction is still open. */
export class CheckpointNotStored extends Error {}

export class TaskRunner {
  readonly #options: TaskRunnerOptions;
  readonly #reader: TaskReader;
  readonly #writer: TaskWriter;
  readonly #now: () => number;
  #state = new TaskState();
  #processor: TaskProcessor | undefined;
  #queue: RawMessage[] = [];
  #arrived: (() => void) | undefined;
  #drained: (() => void) | undefined;
  #pumping: Promise<void> | undefined;
  #lastInput: RawMessage | undefined;
  /** The next offset to process (what a snapshot taken now records). */
  #position = 0n;
  #finished = false;
  #savepointRequest:
    | {
        id: string;
        stop: boolean;
        resolve: (entry: TaskEntryInput) => void;
        reject: (error: unknown) => void;
      }
    | undefined;
  #uncommitted = 0;
  #stopping = false;
  #loop: Promise<void> | undefined;
  plan: RestorePlan | undefined;
  recordsIn = 0;
  recordsOut = 0;
  failures = 0;
  checkpointFailures = 0;

  constructor(options: TaskRunnerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    const io = { bootstrapBrokers: options.bootstrapBrokers, job: options.job, task: options.task };
    this.#reader = new TaskReader(io);
    this.#writer = new TaskWriter(io);
  }

  get task(): TaskRef {
    return this.#options.task;
  }

  /** Restores, starts reading, and keeps processing until `stop`. */
  async start(): Promise<void> {
    const { task, store, restoreFrom, stateful } = this.#options;
    const committed = await this.#reader.committedOffset();
    const checkpoints =
      committed === undefined || restoreFrom
        ? []
        : await store.list("checkpoint", checkpointIdPrefix(task));
    const plan = planRestore(
      task,
      restoreFrom,
      committed === undefined ? undefined : Number(committed),
      checkpoints,
      stateful,
    );
    this.plan = plan;
    if (plan.kind === "snapshot" && plan.entry) {
      this.#state = TaskState.restore(await store.readTaskState(plan.entry));
      // State of steps the job no longer has (allowed by allowNonRestoredState) is dropped.
      for (const name of this.#options.dropOperators ?? []) this.#state.dropOperator(name);
    }
    this.#processor = this.#options.createProcessor(this.#state);
    // A fresh task reads from the start ("latest" would need the partition's end offset,
    // which the source does not expose yet).
    const offset = plan.kind === "fresh" ? 0n : BigInt(plan.offset);
    this.#position = offset;
    const stream = await this.#reader.start(offset);
    this.#pumping = this.#pump(stream);
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const interval = this.#options.checkpointIntervalMs ?? 1_000;
    let nextCheckpoint = this.#now() + interval;
    while (!this.#stopping) {
      const batch = await this.#nextBatch(Math.max(10, nextCheckpoint - this.#now()));
      if (batch.length > 0) await this.#process(batch);
      const due = this.#processor?.advanceTime?.(this.#now()) ?? [];
      if (due.length > 0) await this.#emit(due);
      if (this.#now() >= nextCheckpoint) {
        // A checkpoint that cannot be stored (storage down) is retried at the next interval
        // with the state of then: the transaction stays open meanwhile, so nothing is lost or
        // emitted twice; if it stays open too long the broker aborts it, the next commit fails,
        // and the task restarts from its last checkpoint.
        await this.checkpoint().catch((error: unknown) => {
          if (!(error instanceof CheckpointNotStored)) throw error;
          this.checkpointFailures++;
          process.stderr.write(
            `${JSON.stringify({ msg: "checkpoint failed; retrying at the next interval", task: `${this.#options.task.topic}-${this.#options.task.partition}`, error: String(error) })}\n`,
          );
        });
        nextCheckpoint = this.#now() + interval;
      }
      const request = this.#savepointRequest;
      if (request) {
        this.#savepointRequest = undefined;
        await this.#takeSavepoint(request.id).then(request.resolve, request.reject);
        if (request.stop) await this.#finish(false);
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
      this.#savepointRequest = { id, stop, resolve, reject };
      this.#arrived?.();
    });
  }

  async #takeSavepoint(id: string): Promise<TaskEntryInput> {
    const { task, store } = this.#options;
    const entry = await store.writeTask("savepoint", id, {
      task,
      offsets: { [`${task.topic}-${task.partition}`]: this.#position },
      state: this.#state.snapshot(this.#now()),
      operators: this.#state.operatorNames(),
    });
    await this.#commit();
    return entry;
  }

  /**
   * Moves records from the source into the queue the loop takes batches from, holding back
   * (and so letting the source apply back-pressure) while a full batch is waiting.
   */
  async #pump(stream: AsyncIterable<RawMessage>): Promise<void> {
    const max = this.#options.maxBatch ?? 500;
    for await (const message of stream) {
      this.#queue.push(message);
      this.#arrived?.();
      while (this.#queue.length >= max && !this.#stopping) {
        await new Promise<void>((resolve) => {
          this.#drained = resolve;
        });
      }
      if (this.#stopping) break;
    }
  }

  /** Up to `maxBatch` records, waiting at most `waitMs` for the first. */
  async #nextBatch(waitMs: number): Promise<RawMessage[]> {
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

  async #process(batch: RawMessage[]): Promise<void> {
    const records: InputRecord[] = batch.map((m) => ({
      key: m.key ?? null,
      value: m.value ?? null,
      timestamp: Number(m.timestamp),
      partition: m.partition,
      offset: m.offset,
    }));
    const outputs: Processed = this.#processor?.process(records, this.#now()) ?? [];
    this.#reportFailures(outputs.failures ?? []);
    await this.#emit(outputs);
    this.recordsIn += records.length;
    this.#uncommitted += records.length;
    this.#lastInput = batch.at(-1);
    if (this.#lastInput) this.#position = this.#lastInput.offset + 1n;
  }

  /**
   * Records that failed to decode or threw in user code are counted and logged with where
   * they came from, never dropped silently. (Dead-letter topics and the fail-the-task
   * policy come with the runtime's error settings.)
   */
  #reportFailures(failures: Failure[]): void {
    this.failures += failures.length;
    for (const failure of failures) {
      process.stderr.write(
        `${JSON.stringify({
          msg: "record failed",
          task: `${this.#options.task.topic}-${this.#options.task.partition}`,
          offset: failure.record ? String(failure.record.offset) : undefined,
          operator: failure.operator,
          error: failure.error.message,
        })}\n`,
      );
    }
  }

  async #emit(outputs: OutputRecord[]): Promise<void> {
    await this.#writer.send(
      outputs.map((o) => ({
        topic: o.topic,
        value: o.value,
        ...(o.key ? { key: o.key } : {}),
        timestamp: BigInt(o.timestamp),
      })),
    );
    this.recordsOut += outputs.length;
  }

  /** Commits the open transaction with the offset after the last record processed. */
  async #commit(): Promise<void> {
    if (!this.#lastInput || this.#uncommitted === 0) return;
    await this.#writer.commit(this.#lastInput);
    this.#uncommitted = 0;
  }

  /** State for the current offset first, then the transaction that moves the offset there. */
  async checkpoint(): Promise<void> {
    if (!this.#lastInput || this.#uncommitted === 0) return;
    const { task, store, jobOperators } = this.#options;
    const next = this.#position;
    const offsets = { [`${task.topic}-${task.partition}`]: next };
    const state = this.#state.snapshot(this.#now());
    try {
      await store.write("checkpoint", checkpointId(task, next), jobOperators, [
        { task, offsets, state, operators: this.#state.operatorNames() },
      ]);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new CheckpointNotStored(
        `checkpoint of ${task.topic}-${task.partition} at ${next} not stored: ${why}`,
        { cause: error },
      );
    }
    await this.#commit();
    if (this.#options.retainCheckpoints !== undefined) {
      await store.retain(
        "checkpoint",
        this.#options.retainCheckpoints,
        (checkpoint) =>
          checkpoint.tasks.some(
            (t) => t.task.topic === task.topic && t.task.partition === task.partition,
          ),
        checkpointIdPrefix(task),
      );
    }
  }

  /** Finishes the records in hand, checkpoints, and closes the task's clients. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#arrived?.();
    this.#drained?.();
    await this.#loop;
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
      await this.#writer.close().catch(() => {});
      await this.#reader.close().catch(() => {});
      await this.#pumping;
    }
  }
}
