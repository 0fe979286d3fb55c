// Pure, in-memory execution of one stage of a job for one task. No I/O and no clock: the
// runtime passes records and `now`, and gets back what to produce. All keyed state, window
// contents, timers and the task's event-time clock live in the TaskState, so a task restored
// from `taskState.snapshot(now)` continues exactly where it stopped.
//
// Time model: the watermark advances only between batches (end of `process`, `advanceTime`).
// Within a batch, lateness is judged against the watermark at its start; that keeps the result
// a function of the batches alone, whatever the order windows and timers are looked at. A task
// reading a source topic derives its watermark from its partitions' event times; a task reading
// a repartition topic takes the minimum over its upstream tasks' watermarks, which every
// repartition record carries (element-codec.ts; UpstreamWatermarks in time.ts).
//
// Units of work: each record, each fired window and each timer either succeeds whole (its
// outputs kept, its state writes committed) or fails whole (one Failure, no outputs, its state
// writes rolled back), and the others go on.

import { murmur2 } from "@platformatic/kafka";
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
import { type DueEntry, DueIndex, inDueOrder } from "./due-index.ts";
import {
  decodeRepartition,
  encodeElement,
  encodeWatermark,
  type UpstreamClock,
} from "./element-codec.ts";
import {
  isLate,
  NO_WATERMARK,
  requireTimestamp,
  SessionWindows,
  type UpstreamMark,
  UpstreamWatermarks,
  WatermarkAnnouncements,
  WatermarkTracker,
  type Window,
} from "./time.ts";

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
  /** The partition to write to (repartition records name theirs); default: by key. */
  partition?: number;
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
  /**
   * Source partitions the task reads: each holds the watermark back until it has data. The
   * first names the task (a repartition record says which upstream task wrote it by this).
   */
  partitions: readonly number[];
  /** When the task starts (registers the partitions). */
  now: number;
  /**
   * Tasks per stage: the partition count of the job's source, which every repartition topic
   * has too (main.ts creates them so). A task reading a repartition topic hears from this many
   * upstream tasks; a task writing one addresses this many partitions. Default 1.
   */
  tasksPerStage?: number;
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
  /**
   * The watermark repartition records written in this call carry: the one before the call's
   * advance. A window the advance fires has its timestamp at or below the new watermark, so
   * carrying the new one would make the window's result late downstream.
   */
  carried: number;
}

/** Runs `work` as a unit of its own: its outputs and state writes kept, or one Failure. */
type Unit = (work: () => void) => void;

interface RunningStep {
  label: string;
  onElement(element: Element, ctx: Ctx, emit: Emit): void;
  /** Fires what is due at `ctx`, each window or timer as a unit. */
  onAdvance?(ctx: Ctx, emit: Emit, unit: Unit): void;
}

/** A decoded input record: its element (none for a watermark-only record) and upstream clock. */
interface Decoded {
  element: Element | undefined;
  clock: UpstreamClock | undefined;
}

/** Thrown inside a step, so that failures name it. */
class StepError extends Error {
  readonly step: string;
  constructor(step: string, cause: unknown) {
    super(`${step}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.step = step;
  }
}

/** A timer's or window's unit of work: the work itself. */
const runWork = (work: () => void): void => work();

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
  /** Per source partition, the newest event time seen (a task reading a source topic). */
  maxTimestamps: [number, number][];
  /** Per upstream task, its last watermark (a task reading a repartition topic). */
  upstream?: UpstreamMark[];
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
  readonly #state: TaskState;
  readonly #steps: RunningStep[];
  readonly #timeStores: ValueState<TimeState>[];
  /** This task, as the repartition records it writes name it. */
  readonly #task: number;
  readonly #tasksPerStage: number;
  /** Event time of a task reading a source topic. */
  readonly #tracker: WatermarkTracker | undefined;
  readonly #maxTimestamps = new Map<number, number>();
  /** Event time of a task reading a repartition topic. */
  readonly #upstream: UpstreamWatermarks | undefined;
  /** A task writing a repartition topic, with event time: when to tell which partition. */
  readonly #announcements: { topic: string; schedule: WatermarkAnnouncements } | undefined;
  /** Per step index, what emitting into that step calls: built once, not per element. */
  readonly #emitTo: Emit[];
  /** The context of the process or advanceTime call under way. */
  #ctx: Ctx = { now: 0, watermark: NO_WATERMARK, carried: NO_WATERMARK };
  /** A source record's unit of work (one function for every record, no closure each). */
  readonly #decodeAndRun = (record: InputRecord): Decoded => {
    const input = this.#decode(record);
    if (input.element !== undefined) this.#run(0, input.element);
    return input;
  };
  /** When the task started: its restored timers and windows are indexed as of then. */
  readonly #builtAt: number;
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
    this.#builtAt = options.now;
    this.#state = taskState;
    this.#task = options.partitions[0] ?? 0;
    this.#tasksPerStage = options.tasksPerStage ?? 1;
    const ops = stage.operators.filter(isStateful).map((s) => taskState.operator(s.name));
    // Each stateful operator keeps a copy of the task's clock: no extra operator name appears
    // in snapshots (metadata checks them against the job's names).
    this.#timeStores = ops.map((op) => op.value<TimeState>(TIME_STATE));
    const saved = this.#timeStores.flatMap((store) => store.get(TASK_KEY, options.now) ?? []);
    for (const time of saved) this.#watermark = Math.max(this.#watermark, time.watermark);
    const spec = stage.source.watermarks;
    if (spec !== undefined && stage.source.internal) {
      this.#upstream = new UpstreamWatermarks(
        this.#tasksPerStage,
        options.now,
        saved.flatMap((time) => time.upstream ?? []),
      );
    } else if (spec !== undefined) {
      this.#tracker = new WatermarkTracker(spec);
      for (const p of options.partitions) this.#tracker.register(String(p), options.now);
      for (const [p, ts] of saved.flatMap((time) => time.maxTimestamps)) {
        this.#maxTimestamps.set(p, Math.max(ts, this.#maxTimestamps.get(p) ?? ts));
        this.#tracker.observe(String(p), ts, options.now);
      }
    }
    const repartition = stage.sinks.find((sink) => sink.kind === "repartition");
    if (spec !== undefined && repartition !== undefined) {
      this.#announcements = {
        topic: repartition.topic,
        schedule: new WatermarkAnnouncements(this.#tasksPerStage),
      };
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
    this.#emitTo = Array.from({ length: this.#steps.length + 1 }, (_, i) => (e: Element) => {
      this.#run(i, e);
    });
  }

  get watermark(): number {
    return this.#watermark;
  }

  metrics(): TaskMetrics {
    return { ...this.#metrics };
  }

  /**
   * The task's source may still hold records at `now` (the task is behind its end, or cannot
   * reach its broker): no source partition goes idle for the silence until then.
   */
  sourceBusy(now: number): void {
    this.#tracker?.hold(now);
  }

  /** Runs `records` through the stage, then advances time to `now` (see advanceTime). */
  process(records: readonly InputRecord[], now: number): StepResult {
    const result = emptyResult();
    const ctx: Ctx = { now, watermark: this.#watermark, carried: this.#watermark };
    this.#ctx = ctx;
    for (const record of records) {
      this.#metrics.recordsIn++;
      const decoded = this.#unit(record, "source", result, this.#decodeAndRun, record);
      // Only a record that succeeded moves time: the clock stays in step with the state.
      if (decoded !== undefined) this.#observe(record, decoded, now);
    }
    this.#sent(result, 0, ctx);
    this.#advance(now, undefined, result);
    return result;
  }

  /**
   * Moves processing time to `now` and the watermark to what the source partitions allow (or
   * `watermark`, when given and higher), then fires due timers and complete windows.
   */
  advanceTime(now: number, watermark?: number): StepResult {
    return this.#advance(now, watermark, emptyResult());
  }

  /** advanceTime, its outputs appended to `into`. */
  #advance(now: number, watermark: number | undefined, into: StepResult): StepResult {
    let next = this.#watermark;
    if (this.#tracker !== undefined) next = Math.max(next, this.#tracker.watermark(now));
    if (this.#upstream !== undefined) next = Math.max(next, this.#upstream.watermark(now));
    if (watermark !== undefined) next = Math.max(next, watermark);
    const ctx: Ctx = { now, watermark: next, carried: this.#watermark };
    this.#ctx = ctx;
    this.#watermark = next;
    const from = into.length;
    for (const [i, step] of this.#steps.entries()) {
      if (step.onAdvance === undefined) continue;
      const emit = this.#emitTo[i + 1] as Emit;
      const unit = (work: () => void) => {
        this.#unit(null, step.label, into, runWork, work);
      };
      // What fails outside a window's or timer's own unit (a timer cycle, say) fails the step.
      try {
        guard(step.label, () => step.onAdvance?.(ctx, emit, unit));
      } catch (error) {
        into.failures.push(this.#failure(null, error));
      }
    }
    this.#saveTime(now);
    this.#sent(into, from, ctx);
    this.#announce(into, now);
    return into;
  }

  /**
   * Runs `work` as one unit of work: it either succeeds, and its outputs go to `into`, or it
   * fails, and `into` gets one Failure instead while its state writes (and its late-record
   * counts) are undone. Returns what `work` returned, undefined when it failed.
   */
  #unit<A, R>(
    record: InputRecord | null,
    label: string,
    into: StepResult,
    work: (arg: A) => R,
    arg: A,
  ): R | undefined {
    const { lateRecords, lateDropped } = this.#metrics;
    // Outputs go straight into `into`; a failure cuts it back to where the unit began.
    const outputs = into.length;
    const logs = into.logs.length;
    this.#current = into;
    this.#state.begin();
    try {
      let value: R;
      try {
        value = work(arg);
      } catch (error) {
        throw error instanceof StepError ? error : new StepError(label, error);
      }
      this.#state.commit();
      // Counted here, when kept: outputs of a unit that then failed are not.
      this.#metrics.recordsOut += into.length - outputs;
      this.#metrics.logRecords += into.logs.length - logs;
      return value;
    } catch (error) {
      this.#state.rollback();
      into.length = outputs;
      into.logs.length = logs;
      this.#metrics.lateRecords = lateRecords;
      this.#metrics.lateDropped = lateDropped;
      into.failures.push(this.#failure(record, error));
      return undefined;
    }
  }

  /**
   * The repartition records kept in `result` from index `from` on told their partitions the
   * carried watermark.
   */
  #sent(result: StepResult, from: number, ctx: Ctx): void {
    if (this.#announcements === undefined) return;
    const { topic, schedule } = this.#announcements;
    for (let i = from; i < result.length; i++) {
      const output = result[i] as OutputRecord;
      if (output.topic === topic && output.partition !== undefined) {
        schedule.sent(output.partition, ctx.carried);
      }
    }
  }

  /**
   * Watermark-only records for the repartition partitions that need one (see
   * WatermarkAnnouncements): after this call's outputs, so a downstream task has everything
   * the watermark covers before it hears it.
   */
  #announce(result: StepResult, now: number): void {
    if (this.#announcements === undefined) return;
    const { topic, schedule } = this.#announcements;
    const idle = this.#tracker?.allIdle(now) ?? this.#upstream?.allIdle(now) ?? false;
    for (const partition of schedule.due(this.#watermark, idle)) {
      result.push({
        topic,
        key: null,
        value: encodeWatermark(this.#task, this.#watermark, idle),
        timestamp: now,
        partition,
      });
      this.#metrics.recordsOut++;
    }
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

  /** Runs `element` through step `index` on, in the context of the call under way. */
  #run(index: number, element: Element): void {
    const step = this.#steps[index];
    if (step === undefined) return;
    try {
      step.onElement(element, this.#ctx, this.#emitTo[index + 1] as Emit);
    } catch (error) {
      throw error instanceof StepError ? error : new StepError(step.label, error);
    }
  }

  #observe(record: InputRecord, decoded: Decoded, now: number): void {
    const { clock, element } = decoded;
    if (clock !== undefined)
      this.#upstream?.heard(clock.upstream, clock.watermark, clock.idle, now);
    if (this.#tracker === undefined || element === undefined) return;
    const { partition } = record;
    this.#tracker.observe(String(partition), element.timestamp, now);
    this.#maxTimestamps.set(
      partition,
      Math.max(element.timestamp, this.#maxTimestamps.get(partition) ?? element.timestamp),
    );
  }

  #saveTime(now: number): void {
    const upstream = this.#upstream?.saved() ?? [];
    if (
      this.#watermark === NO_WATERMARK &&
      this.#maxTimestamps.size === 0 &&
      upstream.length === 0
    ) {
      return;
    }
    const time: TimeState = {
      watermark: this.#watermark,
      maxTimestamps: [...this.#maxTimestamps],
      ...(this.#upstream === undefined ? {} : { upstream }),
    };
    for (const store of this.#timeStores) store.set(TASK_KEY, time, now);
  }

  #decode(record: InputRecord): Decoded {
    const source = this.stage.source;
    if (source.internal) {
      if (record.value === null) throw new Error("repartition record without value");
      const decoded = decodeRepartition(record.value);
      const clock = decoded.clock;
      if (
        this.#upstream !== undefined &&
        clock !== undefined &&
        clock.upstream >= this.#tasksPerStage
      ) {
        throw new Error(
          `repartition record from upstream task ${clock.upstream}, but stages have ${this.#tasksPerStage} tasks`,
        );
      }
      if (decoded.kind === "watermark") return { element: undefined, clock };
      if (record.key === null) throw new Error("repartition record without key");
      return {
        element: {
          key: record.key.toString("utf8"),
          value: decoded.value,
          timestamp: record.timestamp,
        },
        clock,
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
    requireTimestamp("event timestamp", timestamp);
    return { element: { key: undefined, value, timestamp }, clock: undefined };
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
          onElement: (e, ctx) => {
            if (e.key === undefined) throw new Error("repartition of an element without key");
            const key = Buffer.from(e.key, "utf8");
            this.#produce({
              topic: sink.topic,
              key,
              value: encodeElement(e.value, this.#task, ctx.carried),
              timestamp: e.timestamp,
              partition: partitionOf(key, this.#tasksPerStage),
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
      emit: (value, ts) => {
        if (ts !== undefined) requireTimestamp("emit timestamp", ts);
        emit({ key, value, timestamp: ts ?? timestamp });
      },
    });
    // Per time domain, which timer is due when (state stays the truth: see due-index.ts).
    const due = { "event-time": new DueIndex(), "processing-time": new DueIndex() };
    const index = (key: string, id: string, t: TimerEntry) =>
      due[t.domain].add({ at: t.at, order: 0, key, id });
    for (const key of timers.keys(this.#builtAt)) {
      for (const [id, t] of timers.entries(key, this.#builtAt)) index(key, id, t);
    }
    const register = (key: string, domain: TimerEntry["domain"], at: number, now: number) => {
      requireTimestamp("timer time", at);
      if (onTimer === undefined)
        throw new Error(`process "${step.name}" registers timers but has no onTimer`);
      const id = `${domain}@${at}`;
      const timer = { domain, at };
      // A timer registered again is indexed already (once per timer, not once per record).
      const known = timers.has(key, id, now);
      timers.set(key, id, timer, now);
      if (!known) index(key, id, timer);
    };
    return {
      label: step.name,
      onElement: (e, ctx, emit) =>
        processFn(e.value, context(requireKey(e), e.timestamp, ctx, emit)),
      onAdvance: (ctx, emit, unit) => {
        if (onTimer === undefined) return;
        // onTimer may register timers that are already due: loop, with a bound against cycles.
        for (let round = 0; ; round++) {
          const entries: DueEntry[] = [];
          for (const [domain, time] of [
            ["event-time", ctx.watermark],
            ["processing-time", ctx.now],
          ] as const) {
            for (let e = due[domain].popDue(time); e; e = due[domain].popDue(time)) {
              const timer = timers.get(e.key, e.id, ctx.now);
              // A timer deleted since, or a second entry of one timer: nothing is due.
              if (timer !== undefined && timer.domain === domain && timer.at === e.at) {
                entries.push(e);
              }
            }
          }
          if (entries.length === 0) return;
          if (round >= 1000)
            throw new Error(`process "${step.name}": timers keep re-registering as due`);
          // One order across both domains, whatever order state was restored in.
          let previous: DueEntry | undefined;
          for (const e of inDueOrder(entries)) {
            if (previous?.key === e.key && previous.id === e.id) continue;
            previous = e;
            const t = timers.get(e.key, e.id, ctx.now);
            if (t === undefined) continue;
            // Gone whether onTimer succeeds or not: a failing timer is reported once, not again
            // at every advance.
            timers.delete(e.key, e.id);
            unit(() => {
              const base = context(e.key, t.at, ctx, emit);
              const timerCtx: TimerContext<unknown> = { ...base, timeDomain: t.domain };
              onTimer(t.at, timerCtx);
            });
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
    // When each window fires (end - 1) and, once fired, is purged (end - 1 + lateness): onAdvance
    // looks only at what is due, never at every key's windows.
    const dueAt = (w: WindowEntry) => (w.fired ? w.end - 1 + lateness : w.end - 1);
    const due = new DueIndex();
    const index = (key: string, w: WindowEntry) =>
      due.add({ at: dueAt(w), order: w.start, key, id: id(w) });
    for (const key of windows.keys(this.#builtAt)) {
      for (const [, w] of windows.entries(key, this.#builtAt)) index(key, w);
    }
    // A window that already fired fires again at once for each late record within lateness.
    const update = (key: string, w: WindowEntry, ctx: Ctx, emit: Emit, known?: WindowEntry) => {
      if (w.end - 1 <= ctx.watermark) {
        w.fired = true;
        fire(key, w, emit);
      }
      windows.set(key, id(w), w, ctx.now);
      // One entry per window and due time, not one per record.
      if (known === undefined || dueAt(known) !== dueAt(w)) index(key, w);
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
      const known = merged.length === 0 ? same : undefined;
      update(key, { ...window, acc: aggregate.add(acc, e.value), fired }, ctx, emit, known);
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
          const known = windows.get(key, id(w), ctx.now);
          const entry = known ?? { ...w, acc: aggregate.init(), fired: false };
          update(key, { ...entry, acc: aggregate.add(entry.acc, e.value) }, ctx, emit, known);
        }
      },
      onAdvance: (ctx, emit, unit) => {
        for (let e = due.popDue(ctx.watermark); e; e = due.popDue(ctx.watermark)) {
          const stored = windows.get(e.key, e.id, ctx.now);
          // A window gone since, or an entry for a due time it no longer has: nothing to do.
          if (stored === undefined || dueAt(stored) !== e.at) continue;
          // A copy: the stored entry stays as it was for a rollback to put back.
          const w = stored.fired ? stored : { ...stored, fired: true };
          if (!stored.fired) {
            unit(() => fire(e.key, w, emit));
            // Fired whether its result succeeded or not: a window whose result throws is
            // reported once, not again at every advance.
            windows.set(e.key, e.id, w, ctx.now);
          }
          if (dueAt(w) <= ctx.watermark) windows.delete(e.key, e.id);
          else index(e.key, w);
        }
      },
    };
  }
}

export function createTask(stage: Stage, taskState: TaskState, options: TaskOptions): TaskPipeline {
  return new TaskPipeline(stage, taskState, options);
}

/**
 * The partition of a repartition record: the Kafka client's default partitioner (murmur2 of
 * the key), which placed keys before records named their partition, so keyed state restored
 * from a savepoint stays where its keys go.
 */
function partitionOf(key: Buffer, partitions: number): number {
  return (murmur2(key) >>> 0) % partitions;
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

/** One decoder for every record: building one per record cost more than the decoding. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

function decode(format: Format, data: Buffer): unknown {
  switch (format) {
    case "bytes":
      return data;
    case "string":
      return UTF8.decode(data);
    case "json":
      return JSON.parse(UTF8.decode(data));
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
