// The pod's Prometheus metrics (prefix `weir_`; the list is in docs/architecture.md, "Runtime"),
// read from its task runners when scraped, and the per-task figures of /v1/status.
import { Counter, Gauge, Registry } from "prom-client";
import { backlog } from "./connectors/kafka/end-offsets.ts";
import type { RestorePlan } from "./engine/restore.ts";
import type { TaskRunner } from "./engine/task-runner.ts";
import { NO_WATERMARK } from "./engine/time.ts";
import type { TaskRef } from "./state/metadata.ts";

/** What metrics and status read of a task (a TaskRunner). */
export type TaskFigures = Pick<
  TaskRunner,
  | "task"
  | "position"
  | "watermark"
  | "processorMetrics"
  | "stateBytes"
  | "recordsIn"
  | "recordsOut"
  | "failures"
  | "deadLetters"
  | "skipped"
  | "checkpointFailures"
  | "busyMs"
  | "lastCheckpoint"
  | "checkpointedAt"
  | "processingSince"
> & {
  /** How the task started (only its kind is read: a worker thread sends no more). */
  readonly plan: Pick<RestorePlan, "kind"> | undefined;
};

/**
 * The fields of TaskFigures a worker thread copies into its snapshots (task-threads.ts);
 * `stateBytes`, a method, is sent as its value. A field added to TaskFigures must be added
 * here too, or this does not type-check.
 */
export const TASK_FIGURES = [
  "task",
  "position",
  "watermark",
  "processorMetrics",
  "plan",
  "recordsIn",
  "recordsOut",
  "failures",
  "deadLetters",
  "skipped",
  "checkpointFailures",
  "busyMs",
  "lastCheckpoint",
  "checkpointedAt",
  "processingSince",
] as const satisfies readonly (keyof TaskFigures)[];
type Unlisted = Exclude<keyof TaskFigures, (typeof TASK_FIGURES)[number] | "stateBytes">;
const everyFieldListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyFieldListed;

/** A task's figures as plain data (structured-cloneable), as a worker thread posts them. */
export type TaskFiguresData = Omit<TaskFigures, "stateBytes" | "plan"> & {
  plan: Pick<RestorePlan, "kind"> | undefined;
  /** Undefined in the frequent snapshots: estimating state size walks the whole state. */
  stateBytes: number | undefined;
  /** The partition's high watermark at the worker's last refresh. */
  end: bigint | undefined;
};

/** The data of `runner`'s figures; with `withState` its state size too (costly: see there). */
export function figuresData(
  runner: TaskFigures,
  end: bigint | undefined,
  withState: boolean,
): TaskFiguresData {
  const data: Record<string, unknown> = {};
  for (const key of TASK_FIGURES) data[key] = runner[key];
  data.plan = runner.plan && { kind: runner.plan.kind };
  data.stateBytes = withState ? runner.stateBytes() : undefined;
  data.end = end;
  return data as TaskFiguresData;
}

/** Figures read from a task's data; its state size as last sent (0 before it ever was). */
export function figuresOf(data: TaskFiguresData, stateBytes: number | undefined): TaskFigures {
  return { ...data, stateBytes: () => data.stateBytes ?? stateBytes ?? 0 };
}

export interface MetricsSource {
  /** Read at every scrape (a worker thread's tasks are replaced by each snapshot). */
  readonly runners: readonly TaskFigures[];
  /** The partition's high watermark at the last refresh. */
  end(task: TaskRef): bigint | undefined;
  now(): number;
  /** Brings `runners` up to date before a scrape reads them (tasks on worker threads). */
  refresh?(): Promise<void>;
}

/** What /v1/status says of each task. */
export function taskStatus(source: MetricsSource) {
  const now = source.now();
  return source.runners.map((r) => {
    const end = source.end(r.task);
    const watermark = r.watermark;
    return {
      ...r.task,
      position: String(r.position),
      endOffset: end === undefined ? undefined : String(end),
      lag: backlog(end, r.position),
      watermark: watermark === undefined || watermark === NO_WATERMARK ? undefined : watermark,
      recordsIn: r.recordsIn,
      recordsOut: r.recordsOut,
      failures: r.failures,
      deadLetters: r.deadLetters,
      restoredFrom: r.plan?.kind,
      lastCheckpoint: r.lastCheckpoint && {
        offset: String(r.lastCheckpoint.offset),
        at: new Date(r.lastCheckpoint.at).toISOString(),
        bytes: r.lastCheckpoint.bytes,
        kind: r.lastCheckpoint.kind,
        chainLength: r.lastCheckpoint.chainLength,
      },
      checkpointAgeSeconds: (now - r.checkpointedAt) / 1000,
    };
  });
}

export function runtimeMetrics(source: MetricsSource): Registry {
  const registry = new Registry();
  const sum = (of: (r: TaskFigures) => number) =>
    source.runners.reduce((total, r) => total + of(r), 0);

  // Pod totals: counters summed over the tasks at scrape time.
  const total = (name: string, help: string, of: (r: TaskFigures) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      async collect() {
        await source.refresh?.();
        this.reset();
        this.inc(sum(of));
      },
    });
  total("weir_records_in_total", "Records read by this pod's tasks", (r) => r.recordsIn);
  total(
    "weir_records_out_total",
    "Records produced by this pod's tasks (sinks, repartition and late side outputs)",
    (r) => r.recordsOut,
  );
  total(
    "weir_busy_seconds_total",
    "Time spent processing batches and firing timers, not waiting",
    (r) => r.busyMs / 1000,
  );
  total(
    "weir_late_records_total",
    "Records too late for every window they belong to (dropped or side output)",
    (r) => r.processorMetrics.lateRecords,
  );
  total(
    "weir_dead_letters_total",
    "Failed records sent to the dead-letter topic",
    (r) => r.deadLetters,
  );
  total(
    "weir_checkpoint_failures_total",
    "Checkpoints storage did not take (retried at the next interval)",
    (r) => r.checkpointFailures,
  );

  new Counter({
    name: "weir_record_failures_total",
    help: "Records (or timers) that failed: decode (bad bytes), user (user code threw), encode (sink)",
    labelNames: ["kind"],
    registers: [registry],
    async collect() {
      await source.refresh?.();
      this.reset();
      for (const kind of ["decode", "user", "encode"] as const)
        this.inc(
          { kind },
          sum((r) => r.failures[kind]),
        );
    },
  });
  new Counter({
    name: "weir_dropped_records_total",
    help: "Records that produced nothing by policy: late (lateRecords drop) or failed (skip)",
    labelNames: ["reason"],
    registers: [registry],
    async collect() {
      await source.refresh?.();
      this.reset();
      this.inc(
        { reason: "late" },
        sum((r) => r.processorMetrics.lateDropped),
      );
      this.inc(
        { reason: "failure" },
        sum((r) => r.skipped),
      );
    },
  });

  // Per task (source topic and partition).
  const perTask = (
    name: string,
    help: string,
    of: (r: TaskFigures, now: number) => number | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ["topic", "partition"],
      registers: [registry],
      async collect() {
        await source.refresh?.();
        this.reset();
        const now = source.now();
        for (const r of source.runners) {
          const value = of(r, now);
          if (value !== undefined)
            this.set({ topic: r.task.topic, partition: String(r.task.partition) }, value);
        }
      },
    });
  perTask(
    "weir_source_backlog_records",
    "Records of the source partition not processed yet (high watermark − position)",
    (r) => backlog(source.end(r.task), r.position),
  );
  perTask(
    "weir_watermark_lag_seconds",
    "Processing time minus the task's event-time watermark",
    (r, now) =>
      r.watermark === undefined || r.watermark === NO_WATERMARK
        ? undefined
        : (now - r.watermark) / 1000,
  );
  perTask(
    "weir_checkpoint_age_seconds",
    "Time since the stored state last covered everything the task processed",
    (r, now) => (now - r.checkpointedAt) / 1000,
  );
  perTask(
    "weir_checkpoint_duration_seconds",
    "Duration of the task's last checkpoint (state upload and commit)",
    (r) => (r.lastCheckpoint === undefined ? undefined : r.lastCheckpoint.durationMs / 1000),
  );
  perTask(
    "weir_checkpoint_size_bytes",
    "Size of the task's last checkpoint",
    (r) => r.lastCheckpoint?.bytes,
  );
  perTask(
    "weir_checkpoint_chain_length",
    "Deltas after the base in the chain of the task's last checkpoint",
    (r) => r.lastCheckpoint?.chainLength,
  );
  perTask(
    "weir_checkpoint_delta",
    "1 when the task's last checkpoint was a delta, 0 when it was a full snapshot",
    (r) => (r.lastCheckpoint === undefined ? undefined : r.lastCheckpoint.kind === "delta" ? 1 : 0),
  );
  perTask("weir_state_size_bytes", "Estimated size of the task's keyed state", (r) =>
    r.stateBytes(),
  );

  new Gauge({
    name: "weir_tasks",
    help: "Tasks this pod runs",
    registers: [registry],
    // At scrape time: tasks on worker threads are known once their worker has reported.
    async collect() {
      await source.refresh?.();
      this.set(source.runners.length);
    },
  });
  return registry;
}
