// The tasks one thread runs: the process's main thread, or one worker thread (task-threads.ts).
// Everything here is built from plain data (a TaskGroupSpec: the configuration, the pod's place,
// the restore decision, which tasks), so a worker builds its task runners, Kafka clients and
// storage client exactly as the main thread would, and `createTaskRunner` is the one place a
// TaskRunner is made from the configuration.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { type JobModule, jobOf } from "../api/job.ts";
import {
  explainKafkaError,
  type KafkaConnection,
  kafkaConnection,
} from "../connectors/kafka/connection.ts";
import { EndOffsets } from "../connectors/kafka/end-offsets.ts";
import { figuresData, type MetricsSource, type TaskFiguresData } from "../metrics.ts";
import { type RuntimeConfig, required } from "../placement.ts";
import type { JobRef, SnapshotMetadata, TaskEntryInput, TaskRef } from "../state/metadata.ts";
import { SnapshotStore } from "../state/snapshot-store.ts";
import { storageClient } from "../state/storage-client.ts";
import { type FailurePolicy, RecordFailed, resolveFailurePolicy } from "./failures.ts";
import { type CompiledJob, compile, createTask } from "./pipeline.ts";
import type { EMPTY_STATE } from "./restore.ts";
import { type SavepointTimings, type StartTimings, TaskRunner } from "./task-runner.ts";

/** One task: a partition of one of the job's stages (by index). */
export interface TaskSpec {
  stage: number;
  partition: number;
}

/** What a thread needs to run its tasks: plain data, as a worker receives it (workerData). */
export interface TaskGroupSpec {
  /** The job module, as an absolute path. */
  entry: string;
  config: RuntimeConfig;
  job: JobRef;
  /** The run the tasks belong to (`WEIR_RUN`): it names their checkpoints. */
  run: string;
  /** Partitions of the job's source: tasks per stage. */
  partitionCount: number;
  restoreFrom: SnapshotMetadata | typeof EMPTY_STATE | undefined;
  /** Stateful steps of the savepoint the job no longer has (see checkCompatibility). */
  dropOperators: readonly string[];
  tasks: readonly TaskSpec[];
  /** Names this group's own clients (the end-offsets admin) apart from other threads'. */
  clientId: string;
}

/** What the main thread decides about state before the tasks start (main.ts). */
export type RestoreDecision = Pick<TaskGroupSpec, "restoreFrom" | "dropOperators">;

/** A group's spec before the restore decision: what a worker is started with. */
export type TaskGroupBase = Omit<TaskGroupSpec, keyof RestoreDecision>;

/** The job and the clients' settings its tasks share within a thread. */
export interface JobResources {
  job: CompiledJob;
  failures: FailurePolicy;
  kafka: KafkaConnection;
  store: SnapshotStore;
}

/** The job module at `entry`, compiled with the configuration's job config. */
export async function loadJob(entry: string, config: RuntimeConfig): Promise<CompiledJob> {
  const exported = ((await import(pathToFileURL(entry).href)) as { default: JobModule }).default;
  return compile(jobOf(exported, config.job?.config ?? {}));
}

/** The job's snapshot store, from the configuration (and the storage credentials' variables). */
export function snapshotStoreOf(config: RuntimeConfig, job: JobRef): SnapshotStore {
  const { storage } = config;
  return new SnapshotStore({
    client: storageClient({
      endpoint: storage.endpoint,
      credentials:
        storage.credentials === "chain"
          ? { kind: "chain" }
          : {
              kind: "static",
              accessKey: required("S3_ACCESS_KEY"),
              secretKey: required("S3_SECRET_KEY"),
            },
      ...(storage.region === undefined ? {} : { region: storage.region }),
      ...(storage.addressing ? { addressing: storage.addressing } : {}),
      ...(storage.caFile ? { ca: readFileSync(storage.caFile, "utf8") } : {}),
      ...(storage.stsEndpoint ? { stsEndpoint: storage.stsEndpoint } : {}),
      ...(storage.timeoutMs === undefined ? {} : { timeoutMs: storage.timeoutMs }),
    }),
    bucket: storage.bucket,
    prefix: storage.prefix ?? "weir",
    job,
  });
}

/** The job and its clients' settings, built from the spec (what a worker does first). */
export async function jobResources(spec: TaskGroupBase): Promise<JobResources> {
  const job = await loadJob(spec.entry, spec.config);
  return {
    job,
    failures: resolveFailurePolicy(job.failures, spec.config.failures),
    kafka: kafkaConnection(spec.config.kafka),
    store: snapshotStoreOf(spec.config, spec.job),
  };
}

/** The task runner of `task` (a partition of `stage`), from the configuration. */
export function createTaskRunner(
  spec: TaskGroupSpec,
  resources: JobResources,
  offsets: EndOffsets,
  { stage: stageIndex, partition }: TaskSpec,
): TaskRunner {
  const { job, failures, kafka, store } = resources;
  const stage = job.stages[stageIndex];
  if (!stage) throw new Error(`job ${job.name} has no stage ${stageIndex}`);
  const task = { topic: stage.sourceTopic, partition };
  return new TaskRunner({
    job: spec.job,
    task,
    kafka,
    store,
    jobOperators: job.operatorNames,
    stateful: job.operatorNames.length > 0,
    checkpointIntervalMs: spec.config.checkpointIntervalMs ?? 5_000,
    retainCheckpoints: 3,
    restoreFrom: spec.restoreFrom,
    run: spec.run,
    dropOperators: spec.dropOperators,
    failures,
    purgeCommitted: stage.source.internal,
    outOfRange: stage.source.outOfRange,
    startOffset: () => offsets.startOffset(task, stage.source.startFrom),
    sourceEnd: () => offsets.freshEnd(task),
    createProcessor: (state) =>
      createTask(stage, state, {
        partitions: [partition],
        now: Date.now(),
        tasksPerStage: spec.partitionCount,
      }),
  });
}

/** A task's start, as the `running` log line reports it. */
export interface TaskStarted {
  task: TaskRef;
  started: StartTimings | undefined;
}

/** A task's part of a savepoint: its entry, and where its time went. */
export interface TaskSavepoint {
  task: TaskRef;
  entry: TaskEntryInput;
  timings: SavepointTimings | undefined;
}

/** How a failed task ends the process: its stderr line and exit status (see main.ts). */
export interface TaskFailure {
  line: Record<string, unknown>;
  status: number;
}

/** Exit status of a record failed under the "fail" policy. */
export const EXIT_RECORD_FAILED = 3;

/** An error a worker thread already described (see describeError): said as it is. */
export class DescribedError extends Error {}

/**
 * An error as the process's last line says it (the operator shows it in the job's Degraded
 * condition): a Kafka connection failure in words a person can act on, else the message.
 */
export function describeError(error: unknown, kafka: RuntimeConfig["kafka"] | undefined): string {
  if (error instanceof DescribedError) return error.message;
  const explained = kafka && explainKafkaError(error, kafka);
  return explained ?? (error instanceof Error ? error.message : String(error));
}

/** A running task's failure: under "fail" a poison record, named (exit 3); else exit 1. */
export function taskFailure(error: unknown, kafka: RuntimeConfig["kafka"]): TaskFailure {
  return error instanceof RecordFailed
    ? {
        line: { msg: "task failed: record failed under the fail policy", ...error.details },
        status: EXIT_RECORD_FAILED,
      }
    : {
        line: { msg: "task failed", error: describeError(error, kafka), causes: causesOf(error) },
        status: 1,
      };
}

/** The messages under an error (its causes, a Kafka client's several errors), for the log. */
function causesOf(error: unknown, depth = 0): string[] {
  if (!(error instanceof Error) || depth > 4) return [];
  const under = [
    ...(error.cause === undefined ? [] : [error.cause]),
    ...((error as { errors?: unknown[] }).errors ?? []),
  ];
  return under.flatMap((e) => [
    e instanceof Error ? e.message : String(e),
    ...causesOf(e, depth + 1),
  ]);
}

/** The tasks of one thread, with the end offsets of their partitions. */
export class TaskGroup {
  readonly runners: TaskRunner[];
  readonly offsets: EndOffsets;
  readonly #spec: TaskGroupSpec;

  constructor(spec: TaskGroupSpec, resources: JobResources) {
    this.#spec = spec;
    const tasks = spec.tasks.map(({ stage, partition }) => ({
      topic: resources.job.stages[stage]?.sourceTopic ?? "",
      partition,
    }));
    this.offsets = new EndOffsets({ kafka: resources.kafka, clientId: spec.clientId, tasks });
    this.runners = spec.tasks.map((task) => createTaskRunner(spec, resources, this.offsets, task));
  }

  /**
   * Starts every task; a task that fails later calls `failed` (which ends the process: under
   * "fail" a poison record stops it, named, with nothing of its batch committed).
   */
  async start(failed: (failure: TaskFailure) => void): Promise<TaskStarted[]> {
    await this.offsets.start();
    const kafka = this.#spec.config.kafka;
    await Promise.all(
      this.runners.map((r) =>
        r.start().then(() => {
          r.running.catch((error: unknown) => failed(taskFailure(error, kafka)));
        }),
      ),
    );
    return this.runners.map((r) => ({ task: r.task, started: r.started }));
  }

  /** Every task's part of savepoint `id`, at a batch boundary (see TaskRunner.savepoint). */
  async savepoint(id: string, stop: boolean): Promise<TaskSavepoint[]> {
    const entries = await Promise.all(this.runners.map((r) => r.savepoint(id, stop)));
    return this.runners.map((r, i) => ({
      task: r.task,
      entry: entries[i] as TaskEntryInput,
      timings: r.lastSavepoint,
    }));
  }

  /** Finishes the records in hand, checkpoints and commits every task, and closes. */
  async stop(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop()));
    await this.offsets.close();
  }

  /** What metrics and status read, live. */
  get source(): MetricsSource {
    return { runners: this.runners, end: (task) => this.offsets.end(task), now: Date.now };
  }

  /** Every task's figures as data (with the state size: costly, only when scraped). */
  data(withState: boolean): TaskFiguresData[] {
    return this.runners.map((r) => figuresData(r, this.offsets.end(r.task), withState));
  }
}
