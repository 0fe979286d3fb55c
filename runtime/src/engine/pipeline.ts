// Pure, in-memory execution of one stage of a job for one task. No I/O and no clock: the
// runtime passes records and `now`, and gets back what to produce. All keyed state, window
// contents, timers and the task's event-time clock live in the TaskState, so a task restored
// from `taskState.snapshot(now)` continues exactly where it stopped.
//
// Time model: the watermark advances only between batches (end of `process`, `advanceTime`).
// Within a batch, lateness is judged against the watermark at its start; that keeps the result
// a function of the batches alone, whatever the order windows and timers are looked at.
import {
  type FailureSettings,
  type Format,
  isStateful,
  type Job,
  type JobDescription,
  lateTopic,
  type ProcessContext,
  type Stage,
  type StageSink,
  type StepSpec,
  type TimerContext,
} from "../api/job.ts";
import type { OperatorState, TaskState, ValueState } from "../state/keyed-state.ts";
import { decodeElement, encodeElement } from "./element-codec.ts";
import { isLate, NO_WATERMARK, SessionWindows, WatermarkTracker, type Window } from "./time.ts";

export interface InputRecord {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  partition: number;
  offset: bigint;
}

export interface OutputRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer;
  timestamp: number;
}

/** An element sent to a logSink. */
export interface LogRecord {
  value: unknown;
  timestamp: number;
}

/** A record (or timer) that could not be processed: the runtime decides what to do with it. */
export interface Failure {
  /** The input record; null when a timer or window firing failed. */
  record: InputRecord | null;
  error: Error;
  stage: number;
  /** The failing step: "source" (decoding), an operator name, a step kind, or "sink". */
  operator: string;
}

/**
 * What a call produced: the records to produce to Kafka (the array itself, so it can be used as
 * `OutputRecord[]`), plus `logs` (logSink elements: no topic) and `failures` (to dead-letter,
 * count or fail on: the runtime's policy; a failed record produced none of its outputs).
 */
export type StepResult = OutputRecord[] & { logs: LogRecord[]; failures: Failure[] };

function emptyResult(): StepResult {
  return Object.assign([] as OutputRecord[], {
    logs: [] as LogRecord[],
    failures: [] as Failure[],
  });
}

function append(into: StepResult, from: StepResult, metrics: TaskMetrics): void {
  // Counted here, when kept: outputs of a record that then failed are not.
  metrics.recordsOut += from.length;
  metrics.logRecords += from.logs.length;
  into.push(...from);
  into.logs.push(...from.logs);
  into.failures.push(...from.failures);
}

export interface TaskMetrics {
  recordsIn: number;
  /** Records produced to Kafka topics (sinks, repartition, late side outputs). */
  recordsOut: number;
  logRecords: number;
  failures: number;
  /** Records too late for every window they belong to (dropped or side-output). */
  lateRecords: number;
  /** Of those, the ones dropped (no side output). */
  lateDropped: number;
}

export interface CompiledJob {
  name: string;
  operatorNames: string[];
  failures: FailureSettings;
  stages: readonly Stage[];
  describe(): JobDescription;
}

export function compile(job: Job): CompiledJob {
  return {
    name: job.name,
    operatorNames: job.operatorNames(),
    failures: job.failures,
    stages: job.stages,
    describe: () => job.describe(),
  };
}

export interface TaskOptions {
  /** Source partitions the task reads: each holds the watermark back until it has data. */
  partitions: readonly number[];
  /** When the task starts (registers the partitions). */
  now: number;
}

/** An element flowing between steps. */
interface Element {
  value: unknown;
  timestamp: number;
  key: string | undefined;
}

type Emit = (element: Element) => void;

interface Ctx {
  now: number;
  watermark: number;
}

interface RunningStep {
  label: string;
  onElement(element: Element, ctx: Ctx, emit: Emit): void;
  /** Fires what is due at `ctx`. */
  onAdvance?(ctx: Ctx, emit: Emit): void;
}

/** Thrown inside a step, so that failures name it. */
class StepError extends Error {
  readonly step: string;
  constructor(step: string, cause: unknown) {
    super(`${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.step = step;
  }
}

function guard<R>(label: string, fn: () => R): R {
  try {
    return fn();
  } catch (error) {
    if (error instanceof StepError) throw error;
    throw new StepError(label, error);
  }
}

// Reserved state names: user stores may not start with "_".
const TIME_STATE = "_time";
const TIMERS_STATE = "_timers";
const ACC_STATE = "_acc";
const WINDOWS_STATE = "_windows";
const TASK_KEY = "";

interface TimeState {
  watermark: number;
  maxTimestamps: [number, number][];
}

interface TimerEntry {
  domain: "event-time" | "processing-time";
  at: number;
}

interface WindowEntry {
  start: number;
  end: number;
  acc: unknown;
  fired: boolean;
}

export class TaskPipeline {
  readonly stage: Stage;
  readonly #steps: RunningStep[];
  readonly #timeStores: ValueState<TimeState>[];
  readonly #tracker: WatermarkTracker | undefined;
  readonly #maxTimestamps = new Map<number, number>();
  #watermark = NO_WATERMARK;
  #current: StepResult = emptyResult();
  readonly #metrics: TaskMetrics = {
    recordsIn: 0,
    recordsOut: 0,
    logRecords: 0,
    failures: 0,
    lateRecords: 0,
    lateDropped: 0,
  };

  constructor(stage: Stage, taskState: TaskState, options: TaskOptions) {
    this.stage = stage;
    const ops = stage.operators.filter(isStateful).map((s) => taskState.operator(s.name));
    // Each stateful operator keeps a copy of the task's clock: no extra operator name appears
    // in snapshots (metadata checks them against the job's names).
    this.#timeStores = ops.map((op) => op.value<TimeState>(TIME_STATE));
    const spec = stage.source.watermarks;
    if (spec !== undefined) {
      this.#tracker = new WatermarkTracker(spec);
      for (const p of options.partitions) this.#tracker.register(String(p), options.now);
    }
    for (const store of this.#timeStores) {
      const saved = store.get(TASK_KEY, options.now);
      if (saved === undefined) continue;
      this.#watermark = Math.max(this.#watermark, saved.watermark);
      for (const [p, ts] of saved.maxTimestamps) {
        this.#maxTimestamps.set(p, Math.max(ts, this.#maxTimestamps.get(p) ?? ts));
        this.#tracker?.observe(String(p), ts, options.now);
      }
    }
    this.#steps = stage.operators.map((step) => this.#build(step, taskState));
    // Sinks are one step: each element goes to every sink.
    const sinks = stage.sinks.map((sink) => this.#buildSink(sink));
    this.#steps.push({
      label: "sink",
      onElement: (e, ctx, emit) => {
        for (const sink of sinks) sink.onElement(e, ctx, emit);
      },
    });
  }

  get watermark(): number {
    return this.#watermark;
  }

  metrics(): TaskMetrics {
    return { ...this.#metrics };
  }

  /** Runs `records` through the stage, then advances time to `now` (see advanceTime). */
  process(records: readonly InputRecord[], now: number): StepResult {
    const result = emptyResult();
    const ctx: Ctx = { now, watermark: this.#watermark };
    for (const record of records) {
      this.#metrics.recordsIn++;
      // A record's outputs are kept only if all of it succeeded: a failed record is in
      // `failures` as a whole and produces nothing.
      this.#current = emptyResult();
      try {
        const element = guard("source", () => this.#decode(record));
        this.#observe(record.partition, element.timestamp, now);
        this.#run(0, element, ctx);
        append(result, this.#current, this.#metrics);
      } catch (error) {
        result.failures.push(this.#failure(record, error));
      }
    }
    const fired = this.advanceTime(now);
    // advanceTime counted its own outputs already.
    result.push(...fired);
    result.logs.push(...fired.logs);
    result.failures.push(...fired.failures);
    return result;
  }

  /**
   * Moves processing time to `now` and the watermark to what the source partitions allow (or
   * `watermark`, when given and higher), then fires due timers and complete windows.
   */
  advanceTime(now: number, watermark?: number): StepResult {
    let next = this.#watermark;
    if (this.#tracker !== undefined) next = Math.max(next, this.#tracker.watermark(now));
    if (watermark !== undefined) next = Math.max(next, watermark);
    this.#watermark = next;
    const ctx: Ctx = { now, watermark: next };
    const result = emptyResult();
    for (const [i, step] of this.#steps.entries()) {
      if (step.onAdvance === undefined) continue;
      this.#current = emptyResult();
      try {
        guard(step.label, () => step.onAdvance?.(ctx, (e) => this.#run(i + 1, e, ctx)));
        append(result, this.#current, this.#metrics);
      } catch (error) {
        result.failures.push(this.#failure(null, error));
      }
    }
    this.#saveTime(now);
    return result;
  }

  #failure(record: InputRecord | null, error: unknown): Failure {
    this.#metrics.failures++;
    const step = error instanceof StepError ? error.step : "unknown";
    const cause = error instanceof StepError ? error.cause : error;
    return {
      record,
      error: cause instanceof Error ? cause : new Error(String(cause)),
      stage: this.stage.index,
      operator: step,
    };
  }

  #run(index: number, element: Element, ctx: Ctx): void {
    const step = this.#steps[index];
    if (step === undefined) return;
    guard(step.label, () => step.onElement(element, ctx, (e) => this.#run(index + 1, e, ctx)));
  }

  #observe(partition: number, timestamp: number, now: number): void {
    if (this.#tracker === undefined) return;
    this.#tracker.observe(String(partition), timestamp, now);
    this.#maxTimestamps.set(
      partition,
      Math.max(timestamp, this.#maxTimestamps.get(partition) ?? timestamp),
    );
  }

  #saveTime(now: number): void {
    if (this.#watermark === NO_WATERMARK && this.#maxTimestamps.size === 0) return;
    const time: TimeState = {
      watermark: this.#watermark,
      maxTimestamps: [...this.#maxTimestamps],
    };
    for (const store of this.#timeStores) store.set(TASK_KEY, time, now);
  }

  #decode(record: InputRecord): Element {
    const source = this.stage.source;
    if (source.internal) {
      if (record.key === null || record.value === null) {
        throw new Error("repartition record without key or value");
      }
      return {
        key: record.key.toString("utf8"),
        value: decodeElement(record.value),
        timestamp: record.timestamp,
      };
    }
    if (record.value === null) throw new Error("record has no value (tombstone)");
    // Only internal sources have the "internal" format, handled above.
    const value = decode(source.valueFormat as Format, record.value);
    const key = record.key === null ? null : decode(source.keyFormat, record.key);
    const timestamp =
      source.timestamp === undefined
        ? record.timestamp
        : source.timestamp({
            key,
            value,
            timestamp: record.timestamp,
            partition: record.partition,
            offset: record.offset,
          });
    if (!Number.isFinite(timestamp)) {
      throw new Error(`event timestamp must be a finite number, got ${String(timestamp)}`);
    }
    return { key: undefined, value, timestamp };
  }

  #produce(record: OutputRecord): void {
    this.#current.push(record);
  }

  #buildSink(sink: StageSink): RunningStep {
    switch (sink.kind) {
      case "log":
        return {
          label: "sink",
          onElement: (e) => {
            this.#current.logs.push({ value: e.value, timestamp: e.timestamp });
          },
        };
      case "repartition":
        return {
          label: "sink",
          onElement: (e) => {
            if (e.key === undefined) throw new Error("repartition of an element without key");
            this.#produce({
              topic: sink.topic,
              key: Buffer.from(e.key, "utf8"),
              value: encodeElement(e.value),
              timestamp: e.timestamp,
            });
          },
        };
      case "kafka":
        return {
          label: "sink",
          onElement: (e) => {
            const key = sink.key?.(e.value);
            this.#produce({
              topic: sink.topic,
              key: key === undefined ? null : typeof key === "string" ? Buffer.from(key) : key,
              value: encode(sink.value, e.value),
              timestamp: e.timestamp,
            });
          },
        };
    }
  }

  #build(step: StepSpec, taskState: TaskState): RunningStep {
    switch (step.kind) {
      case "map":
        return {
          label: "map",
          onElement: (e, _c, emit) => emit({ ...e, value: step.fn(e.value) }),
        };
      case "filter":
        return {
          label: "filter",
          onElement: (e, _c, emit) => (step.fn(e.value) ? emit(e) : undefined),
        };
      case "flatMap":
        return {
          label: "flatMap",
          onElement: (e, _c, emit) => {
            for (const value of step.fn(e.value)) emit({ ...e, value });
          },
        };
      case "keyBy":
        return {
          label: "keyBy",
          onElement: (e, _c, emit) => {
            const key = step.fn(e.value);
            if (typeof key !== "string")
              throw new Error(`keyBy must return a string, got ${typeof key}`);
            emit({ ...e, key });
          },
        };
      case "reduce":
      case "aggregate": {
        const acc = taskState.operator(step.name).value<unknown>(ACC_STATE);
        const add =
          step.kind === "reduce"
            ? (prev: unknown, v: unknown) => (prev === undefined ? v : step.fn(prev, v))
            : (prev: unknown, v: unknown) =>
                step.aggregate.add(prev === undefined ? step.aggregate.init() : prev, v);
        const result = step.kind === "aggregate" ? step.aggregate.result : undefined;
        return {
          label: step.name,
          onElement: (e, ctx, emit) => {
            const key = requireKey(e);
            const next = add(acc.get(key, ctx.now), e.value);
            acc.set(key, next, ctx.now);
            emit({
              key,
              timestamp: e.timestamp,
              value: { key, value: result ? result(next) : next },
            });
          },
        };
      }
      case "process":
        return this.#buildProcess(step, taskState.operator(step.name));
      case "window":
        return this.#buildWindow(step, taskState.operator(step.name));
    }
  }

  #buildProcess(
    step: Extract<StepSpec, { kind: "process" }>,
    operator: OperatorState,
  ): RunningStep {
    const timers = operator.map<string, TimerEntry>(TIMERS_STATE);
    const handler = step.handler;
    const onTimer = typeof handler === "function" ? undefined : handler.onTimer?.bind(handler);
    const processFn = typeof handler === "function" ? handler : handler.process.bind(handler);
    const stores = {
      value: ((name: string, options) =>
        operator.value(userStateName(name), options)) as OperatorState["value"],
      map: ((name: string, options) =>
        operator.map(userStateName(name), options)) as OperatorState["map"],
    };
    const context = (
      key: string,
      timestamp: number,
      ctx: Ctx,
      emit: Emit,
    ): ProcessContext<unknown> => ({
      key,
      timestamp,
      now: ctx.now,
      watermark: ctx.watermark,
      state: stores,
      timers: {
        registerProcessingTime: (at) => register(key, "processing-time", at, ctx.now),
        registerEventTime: (at) => register(key, "event-time", at, ctx.now),
      },
      emit: (value, ts) => emit({ key, value, timestamp: ts ?? timestamp }),
    });
    const register = (key: string, domain: TimerEntry["domain"], at: number, now: number) => {
      if (!Number.isFinite(at))
        throw new Error(`timer time must be a finite number, got ${String(at)}`);
      if (onTimer === undefined)
        throw new Error(`process "${step.name}" registers timers but has no onTimer`);
      timers.set(key, `${domain}@${at}`, { domain, at }, now);
    };
    return {
      label: step.name,
      onElement: (e, ctx, emit) =>
        processFn(e.value, context(requireKey(e), e.timestamp, ctx, emit)),
      onAdvance: (ctx, emit) => {
        if (onTimer === undefined) return;
        // onTimer may register timers that are already due: loop, with a bound against cycles.
        for (let round = 0; ; round++) {
          const due: [string, string, TimerEntry][] = [];
          for (const key of timers.keys(ctx.now)) {
            for (const [id, t] of timers.entries(key, ctx.now)) {
              const time = t.domain === "event-time" ? ctx.watermark : ctx.now;
              if (t.at <= time) due.push([key, id, t]);
            }
          }
          if (due.length === 0) return;
          if (round >= 1000)
            throw new Error(`process "${step.name}": timers keep re-registering as due`);
          // Deterministic order, whatever order state was restored in.
          due.sort((a, b) => a[2].at - b[2].at || cmp(a[0], b[0]) || cmp(a[1], b[1]));
          for (const [key, id, t] of due) {
            timers.delete(key, id);
            const base = context(key, t.at, ctx, emit);
            const timerCtx: TimerContext<unknown> = { ...base, timeDomain: t.domain };
            onTimer(t.at, timerCtx);
          }
        }
      },
    };
  }

  #buildWindow(step: Extract<StepSpec, { kind: "window" }>, operator: OperatorState): RunningStep {
    const windows = operator.map<string, WindowEntry>(WINDOWS_STATE);
    const { aggregate, assigner, allowedLatenessMs: lateness } = step;
    const result = (acc: unknown) => (aggregate.result ? aggregate.result(acc) : acc);
    const fire = (key: string, w: WindowEntry, emit: Emit) =>
      emit({
        key,
        timestamp: w.end - 1,
        value: { key, window: { start: w.start, end: w.end }, value: result(w.acc) },
      });
    const id = (w: Window) => `${w.start}:${w.end}`;
    const late = (e: Element, key: string) => {
      this.#metrics.lateRecords++;
      if (step.lateRecords !== "side-output") {
        this.#metrics.lateDropped++;
        return;
      }
      this.#produce({
        topic: lateTopic(this.stage.job, step.name),
        key: Buffer.from(key, "utf8"),
        value: Buffer.from(JSON.stringify(e.value) ?? "null"),
        timestamp: e.timestamp,
      });
    };
    // The lowest watermark at which some window fires or is purged: below it, onAdvance has
    // nothing to do and does not scan every key's windows after each batch. Unknown (-∞) at
    // start and after a failed advance, so the next advance scans.
    let nextDue = Number.NEGATIVE_INFINITY;
    const dueAt = (w: WindowEntry) => (w.fired ? w.end - 1 + lateness : w.end - 1);
    // A window that already fired fires again at once for each late record within lateness.
    const update = (key: string, w: WindowEntry, ctx: Ctx, emit: Emit) => {
      if (w.end - 1 <= ctx.watermark) {
        w.fired = true;
        fire(key, w, emit);
      }
      windows.set(key, id(w), w, ctx.now);
      nextDue = Math.min(nextDue, dueAt(w));
    };
    const addSession = (e: Element, key: string, ctx: Ctx, emit: Emit) => {
      const gap = (assigner as { gapMs?: number }).gapMs ?? 0;
      const existing = windows.entries(key, ctx.now).map(([, w]) => w);
      const sessions = new SessionWindows(gap, existing);
      const { window, merged } = sessions.add(e.timestamp);
      if (isLate(e.timestamp, lateness, window, ctx.watermark)) return late(e, key);
      const merge = aggregate.merge ?? ((a: unknown) => a);
      let acc: unknown;
      let fired = false;
      const same = windows.get(key, id(window), ctx.now);
      if (merged.length === 0 && same !== undefined) {
        acc = same.acc;
        fired = same.fired;
      } else {
        for (const m of merged) {
          const old = windows.get(key, id(m), ctx.now);
          windows.delete(key, id(m));
          if (old === undefined) continue;
          // A merged session is a new, larger window: it fires (again) as a whole.
          acc = acc === undefined ? old.acc : merge(acc, old.acc);
        }
      }
      if (acc === undefined) acc = aggregate.init();
      update(key, { ...window, acc: aggregate.add(acc, e.value), fired }, ctx, emit);
    };
    return {
      label: step.name,
      onElement: (e, ctx, emit) => {
        const key = requireKey(e);
        if (assigner.kind === "session") return addSession(e, key, ctx, emit);
        const assigned = assigner.assign(e.timestamp);
        const open = assigned.filter((w) => !isLate(e.timestamp, lateness, w, ctx.watermark));
        if (assigned.length > 0 && open.length === 0) return late(e, key);
        for (const w of open) {
          const entry = windows.get(key, id(w), ctx.now) ?? {
            ...w,
            acc: aggregate.init(),
            fired: false,
          };
          update(key, { ...entry, acc: aggregate.add(entry.acc, e.value) }, ctx, emit);
        }
      },
      onAdvance: (ctx, emit) => {
        if (ctx.watermark < nextDue) return;
        let next = Number.POSITIVE_INFINITY;
        const due: [string, WindowEntry][] = [];
        for (const key of windows.keys(ctx.now)) {
          for (const [, w] of windows.entries(key, ctx.now)) {
            if (w.end - 1 <= ctx.watermark) due.push([key, w]);
            else next = Math.min(next, dueAt(w));
          }
        }
        due.sort((a, b) => a[1].end - b[1].end || a[1].start - b[1].start || cmp(a[0], b[0]));
        nextDue = Number.NEGATIVE_INFINITY;
        for (const [key, w] of due) {
          if (!w.fired) {
            w.fired = true;
            fire(key, w, emit);
            windows.set(key, id(w), w, ctx.now);
          }
          if (w.end - 1 + lateness <= ctx.watermark) windows.delete(key, id(w));
          else next = Math.min(next, dueAt(w));
        }
        nextDue = next;
      },
    };
  }
}

export function createTask(stage: Stage, taskState: TaskState, options: TaskOptions): TaskPipeline {
  return new TaskPipeline(stage, taskState, options);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function requireKey(e: Element): string {
  if (e.key === undefined) throw new Error("keyed step reached by an element without key");
  return e.key;
}

function userStateName(name: string): string {
  if (typeof name === "string" && name.startsWith("_")) {
    throw new Error(
      `state name "${name}" is reserved (names starting with "_" belong to the runtime)`,
    );
  }
  return name;
}

function decode(format: Format, data: Buffer): unknown {
  switch (format) {
    case "bytes":
      return data;
    case "string":
      return new TextDecoder("utf-8", { fatal: true }).decode(data);
    case "json":
      return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  }
}

function encode(format: Format, value: unknown): Buffer {
  switch (format) {
    case "bytes":
      if (value instanceof Uint8Array) return Buffer.from(value);
      throw new Error("sink value format bytes needs Buffer or Uint8Array outputs");
    case "string":
      if (typeof value === "string") return Buffer.from(value, "utf8");
      throw new Error(`sink value format string needs string outputs, got ${typeof value}`);
    case "json": {
      const text = JSON.stringify(value);
      if (text === undefined) throw new Error(`output cannot be encoded as JSON (${typeof value})`);
      return Buffer.from(text, "utf8");
    }
  }
}
