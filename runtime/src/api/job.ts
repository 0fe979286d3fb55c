// The job-authoring API. A job module does
//
//   export default job("word-count")
//     .source(kafkaSource({ topic: "lines", value: "string" }))
//     .flatMap((line) => line.split(" "))
//     .keyBy((word) => word)
//     .aggregate("counts", { init: () => 0, add: (n) => n + 1 })
//     .sink(kafkaSink({ topic: "counts", key: (out) => out.key }));
//
// Building a job only records what to do: `runtime/src/engine/pipeline.ts` compiles it into
// stages and runs one stage for one task. Functions here never run user code.

import { resolveFailurePolicy } from "../engine/failures.ts";
import type { Window, WindowAssigner } from "../engine/time.ts";
import type { OperatorState } from "../state/keyed-state.ts";

export type Format = "string" | "json" | "bytes";

/** A Kafka record as the source decoded it; what `timestamp` extractors see. */
export interface SourceRecord<V> {
  key: unknown;
  value: V;
  /** The Kafka record timestamp. */
  timestamp: number;
  partition: number;
  offset: bigint;
}

export interface WatermarkSpec {
  maxOutOfOrdernessMs: number;
  /**
   * A source partition without records for longer than this while its task is at its end
   * stops holding the watermark back (its task tells the tasks after a repartition topic it is
   * idle). A task behind, or cut off from its broker, never counts as idle; nor does a silent
   * upstream task downstream of a repartition topic: it is down, and its records still to come.
   */
  idleTimeoutMs?: number;
}

export interface KafkaSourceOptions<F extends Format, V> {
  topic: string;
  /** Default "string". */
  key?: Format;
  value: F;
  /** Default "earliest". */
  startFrom?: "earliest" | "latest";
  /**
   * Where a task goes when its position is no longer in the partition (retention deleted the
   * records, or an old savepoint names an offset long gone). Default "fail": the task stops
   * with an error naming the offsets, rather than skip records silently; "earliest" or
   * "latest" skip to that end of what the partition holds.
   */
  outOfRange?: "fail" | "earliest" | "latest";
  /**
   * Event time of a record, in whole milliseconds (it becomes Kafka timestamps, int64: anything
   * else fails the record); default: the Kafka record timestamp.
   */
  timestamp?: (record: SourceRecord<V>) => number;
}

/** A source; `T` is the type of the stream's elements (the decoded record values). */
export class Source<T> {
  readonly kind = "kafka";
  readonly topic: string;
  readonly keyFormat: Format;
  readonly valueFormat: Format;
  readonly startFrom: "earliest" | "latest";
  readonly outOfRange: "fail" | "earliest" | "latest";
  readonly timestamp: ((record: SourceRecord<T>) => number) | undefined;
  readonly watermarks: WatermarkSpec | undefined;

  constructor(options: KafkaSourceOptions<Format, T>, watermarks?: WatermarkSpec) {
    if (typeof options.topic !== "string" || !TOPIC.test(options.topic)) {
      throw new Error(`kafkaSource: invalid topic ${JSON.stringify(options.topic)}`);
    }
    requireFormat("kafkaSource key", options.key ?? "string");
    requireFormat("kafkaSource value", options.value);
    this.topic = options.topic;
    this.keyFormat = options.key ?? "string";
    this.valueFormat = options.value;
    this.startFrom = options.startFrom ?? "earliest";
    const outOfRange = options.outOfRange ?? "fail";
    if (!["fail", "earliest", "latest"].includes(outOfRange)) {
      throw new Error(
        `kafkaSource: outOfRange must be "fail", "earliest" or "latest", got ${JSON.stringify(outOfRange)}`,
      );
    }
    this.outOfRange = outOfRange;
    this.timestamp = options.timestamp;
    if (watermarks !== undefined) {
      const { maxOutOfOrdernessMs: bound, idleTimeoutMs: idle } = watermarks;
      if (!(Number.isFinite(bound) && bound >= 0)) {
        throw new Error(`withWatermarks: maxOutOfOrdernessMs must be >= 0, got ${String(bound)}`);
      }
      if (idle !== undefined && !(idle > 0)) {
        throw new Error(`withWatermarks: idleTimeoutMs must be > 0, got ${String(idle)}`);
      }
    }
    this.watermarks = watermarks;
  }

  /** Event-time watermarks per source partition, with bounded out-of-orderness. */
  withWatermarks(spec: WatermarkSpec): Source<T> {
    return new Source<T>(
      {
        topic: this.topic,
        key: this.keyFormat,
        value: this.valueFormat,
        startFrom: this.startFrom,
        outOfRange: this.outOfRange,
        ...(this.timestamp === undefined ? {} : { timestamp: this.timestamp }),
      },
      { ...spec },
    );
  }
}

export function kafkaSource(options: KafkaSourceOptions<"string", string>): Source<string>;
export function kafkaSource(options: KafkaSourceOptions<"bytes", Buffer>): Source<Buffer>;
export function kafkaSource<T = unknown>(options: KafkaSourceOptions<"json", T>): Source<T>;
export function kafkaSource(options: KafkaSourceOptions<Format, never>): Source<unknown> {
  return new Source<never>(options) as Source<unknown>;
}

// ---- sinks ----

export interface KafkaSinkOptions<T> {
  topic: string;
  /** The record key; default none (null). */
  key?: (out: T) => string | Buffer | undefined;
  /** Default "json" ("string" needs string outputs, "bytes" Buffer or Uint8Array outputs). */
  value?: Format;
}

export type SinkSpec =
  | {
      kind: "kafka";
      topic: string;
      key: ((out: unknown) => string | Buffer | undefined) | undefined;
      value: Format;
    }
  | { kind: "log" };

/** A sink for elements of type `T` (the type parameter only checks user code). */
export interface Sink<T> {
  readonly spec: SinkSpec;
  /** Phantom: never set. */
  readonly __type?: (value: T) => void;
}

export function kafkaSink<T>(options: KafkaSinkOptions<T>): Sink<T> {
  if (typeof options.topic !== "string" || !TOPIC.test(options.topic)) {
    throw new Error(`kafkaSink: invalid topic ${JSON.stringify(options.topic)}`);
  }
  const value = options.value ?? "json";
  requireFormat("kafkaSink value", value);
  return {
    spec: {
      kind: "kafka",
      topic: options.topic,
      key: options.key as ((out: unknown) => string | Buffer | undefined) | undefined,
      value,
    },
  };
}

/** Elements go to the task's log (the pipeline returns them in `logs`). */
export function logSink<T = unknown>(): Sink<T> {
  return { spec: { kind: "log" } };
}

// ---- keyed operators ----

/** Timer times are whole milliseconds. */
export interface Timers {
  /** Fires `onTimer` once processing time (the `now` the runtime passes) reaches `at`. */
  registerProcessingTime(at: number): void;
  /** Fires `onTimer` once the watermark reaches `at`. */
  registerEventTime(at: number): void;
}

/** The operator's state stores (names starting with "_" are reserved for the runtime). */
export type KeyedStateStores = Pick<OperatorState, "value" | "map">;

export interface ProcessContext<O> {
  readonly key: string;
  /** Event time of the record, or the timer's time in `onTimer`. */
  readonly timestamp: number;
  /** Processing time, for state reads and writes: `ctx.state.value("x").get(ctx.key, ctx.now)`. */
  readonly now: number;
  readonly watermark: number;
  readonly state: KeyedStateStores;
  readonly timers: Timers;
  /** Emits downstream; `timestamp` (whole milliseconds) defaults to `ctx.timestamp`. */
  emit(out: O, timestamp?: number): void;
}

export interface TimerContext<O> extends ProcessContext<O> {
  readonly timeDomain: "event-time" | "processing-time";
}

export type ProcessHandler<T, O> =
  | ((value: T, ctx: ProcessContext<O>) => void)
  | {
      process(value: T, ctx: ProcessContext<O>): void;
      onTimer?(timestamp: number, ctx: TimerContext<O>): void;
    };

export interface Aggregate<T, A, R> {
  init: () => A;
  add: (acc: A, value: T) => A;
  /** Default: the accumulator itself. */
  result?: (acc: A) => R;
  /** Combines two accumulators: required for session windows, which merge. */
  merge?: (a: A, b: A) => A;
}

export interface KeyedResult<R> {
  key: string;
  value: R;
}

export interface WindowResult<R> {
  key: string;
  window: Window;
  value: R;
}

export interface WindowOptions<T, A, R> {
  aggregate: Aggregate<T, A, R>;
  /** How long after a window fired late records still update it. Default 0. */
  allowedLatenessMs?: number;
  /** Default "drop"; "side-output" produces them to `<job>-<name>-late`. */
  lateRecords?: "drop" | "side-output";
}

// ---- the recorded steps (what the pipeline executes) ----

type Fn = (value: unknown) => unknown;
type AnyAggregate = Aggregate<unknown, unknown, unknown>;

export type StepSpec =
  | { kind: "map"; fn: Fn }
  | { kind: "filter"; fn: (value: unknown) => boolean }
  | { kind: "flatMap"; fn: (value: unknown) => Iterable<unknown> }
  | { kind: "keyBy"; fn: (value: unknown) => string; repartition: boolean }
  | { kind: "process"; name: string; handler: ProcessHandler<unknown, unknown> }
  | { kind: "reduce"; name: string; fn: (acc: unknown, value: unknown) => unknown }
  | { kind: "aggregate"; name: string; aggregate: AnyAggregate }
  | {
      kind: "window";
      name: string;
      assigner: WindowAssigner;
      aggregate: AnyAggregate;
      allowedLatenessMs: number;
      lateRecords: "drop" | "side-output";
    };

export type StatefulStep = Extract<StepSpec, { name: string }>;

export function isStateful(step: StepSpec): step is StatefulStep {
  return "name" in step;
}

// Kubernetes DNS label: names end up in topic names, state object listings and metrics.
const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;

function requireName(what: string, name: string): void {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new Error(
      `${what} name ${JSON.stringify(name)} must be a DNS label (lowercase letters, digits and "-", at most 63)`,
    );
  }
}

function requireFormat(what: string, format: unknown): void {
  if (format !== "string" && format !== "json" && format !== "bytes") {
    throw new Error(`${what} format must be "string", "json" or "bytes", got ${String(format)}`);
  }
}

/**
 * What to do with a record that fails to decode or throws in user code: send it to a
 * dead-letter topic (with the error and its source offset, exactly once like other outputs),
 * skip it (counted and logged), or fail the task (the process exits naming the offset).
 * Default: "dead-letter" when `deadLetterTopic` is set, else "skip". The runtime
 * configuration's `failures` key overrides this field by field.
 */
export interface FailureSettings {
  action?: "dead-letter" | "skip" | "fail";
  deadLetterTopic?: string;
}

/** The job's `config` (StreamJob `spec.job.config`) a job module may be built from. */
export type JobConfig = Readonly<Record<string, unknown>>;

/**
 * What a job module exports as default: the job, or a function building it from its config
 * (e.g. topic names), which the runtime calls with `job.config` of its configuration file.
 */
export type JobModule = Job | ((config: JobConfig) => Job);

/** The job a module's default export stands for, given the job's config. */
export function jobOf(exported: JobModule, config: JobConfig): Job {
  return typeof exported === "function" ? exported(config) : exported;
}

/** A string setting of a job's config, or `fallback` when unset. */
export function configString(config: JobConfig, name: string, fallback: string): string {
  const value = config[name] ?? fallback;
  if (typeof value !== "string") {
    throw new Error(`job config ${name} must be a string, got ${JSON.stringify(value)}`);
  }
  return value;
}

interface Draft {
  name: string;
  source: Source<unknown>;
  failures: FailureSettings;
}

export class Stream<T> {
  readonly #draft: Draft;
  readonly #steps: readonly StepSpec[];

  /** @internal created by JobBuilder.source and the operators */
  constructor(draft: Draft, steps: readonly StepSpec[]) {
    this.#draft = draft;
    this.#steps = steps;
  }

  #then<U>(step: StepSpec): Stream<U> {
    return new Stream<U>(this.#draft, [...this.#steps, step]);
  }

  map<U>(fn: (value: T) => U): Stream<U> {
    return this.#then({ kind: "map", fn: fn as Fn });
  }

  filter<S extends T>(fn: (value: T) => value is S): Stream<S>;
  filter(fn: (value: T) => boolean): Stream<T>;
  filter(fn: (value: T) => boolean): Stream<T> {
    return this.#then({ kind: "filter", fn: fn as (value: unknown) => boolean });
  }

  flatMap<U>(fn: (value: T) => Iterable<U>): Stream<U> {
    return this.#then({ kind: "flatMap", fn: fn as (value: unknown) => Iterable<unknown> });
  }

  /**
   * Partitions the stream by `fn`'s key. By default the job is split here: records go through
   * the internal topic `<job>-<next step>-repartition`, keyed by the key, so that every key is
   * owned by exactly one task. `repartition: false` skips that: only correct when the input
   * topic is already partitioned by this very key (e.g. its Kafka key).
   */
  keyBy(fn: (value: T) => string, options: { repartition?: boolean } = {}): KeyedStream<T> {
    return new KeyedStream<T>(this.#draft, [
      ...this.#steps,
      {
        kind: "keyBy",
        fn: fn as (value: unknown) => string,
        repartition: options.repartition ?? true,
      },
    ]);
  }

  /** Ends the job: every element goes to each of `sinks`. */
  sink(...sinks: Sink<T>[]): Job {
    if (sinks.length === 0) throw new Error(`job "${this.#draft.name}": sink() needs a sink`);
    return new Job(
      this.#draft.name,
      this.#draft.source,
      this.#steps,
      sinks.map((s) => s.spec),
      this.#draft.failures,
    );
  }
}

export class KeyedStream<T> {
  readonly #draft: Draft;
  readonly #steps: readonly StepSpec[];

  /** @internal created by Stream.keyBy */
  constructor(draft: Draft, steps: readonly StepSpec[]) {
    this.#draft = draft;
    this.#steps = steps;
  }

  #then<U>(step: StatefulStep): Stream<U> {
    requireName("operator", step.name);
    return new Stream<U>(this.#draft, [...this.#steps, step]);
  }

  /** A keyed process function with state and timers. */
  process<O>(name: string, handler: ProcessHandler<T, O>): Stream<O> {
    return this.#then({
      kind: "process",
      name,
      handler: handler as ProcessHandler<unknown, unknown>,
    });
  }

  /** Running reduction per key: emits `{ key, value }` with the new value per record. */
  reduce(name: string, fn: (acc: T, value: T) => T): Stream<KeyedResult<T>> {
    return this.#then({
      kind: "reduce",
      name,
      fn: fn as (acc: unknown, value: unknown) => unknown,
    });
  }

  /** Running aggregate per key: emits `{ key, value: result(acc) }` per record. */
  aggregate<A, R = A>(name: string, aggregate: Aggregate<T, A, R>): Stream<KeyedResult<R>> {
    return this.#then({ kind: "aggregate", name, aggregate: aggregate as AnyAggregate });
  }

  /**
   * Event-time windows: emits `{ key, window, value }` once the watermark passes the window's
   * end, and again for every late record within `allowedLatenessMs`.
   */
  window<A, R = A>(
    name: string,
    assigner: WindowAssigner,
    options: WindowOptions<T, A, R>,
  ): Stream<WindowResult<R>> {
    const lateness = options.allowedLatenessMs ?? 0;
    if (!(Number.isSafeInteger(lateness) && lateness >= 0)) {
      throw new Error(`window "${name}": allowedLatenessMs must be an integer >= 0`);
    }
    if (assigner.kind === "session" && options.aggregate.merge === undefined) {
      throw new Error(`window "${name}": session windows merge, so the aggregate needs merge()`);
    }
    const late = options.lateRecords ?? "drop";
    if (late !== "drop" && late !== "side-output") {
      throw new Error(`window "${name}": lateRecords must be "drop" or "side-output"`);
    }
    return this.#then({
      kind: "window",
      name,
      assigner,
      aggregate: options.aggregate as AnyAggregate,
      allowedLatenessMs: lateness,
      lateRecords: late,
    });
  }
}

export class JobBuilder {
  readonly name: string;
  readonly #failures: FailureSettings;

  constructor(name: string, failures: FailureSettings = {}) {
    requireName("job", name);
    if (failures.deadLetterTopic !== undefined && !TOPIC.test(failures.deadLetterTopic)) {
      throw new Error(`onFailure: invalid topic ${JSON.stringify(failures.deadLetterTopic)}`);
    }
    resolveFailurePolicy(failures); // throws on a setting that makes no policy
    this.name = name;
    this.#failures = failures;
  }

  /** What to do with records that fail to decode or throw in user code (see FailureSettings). */
  onFailure(failures: FailureSettings): JobBuilder {
    return new JobBuilder(this.name, { ...failures });
  }

  source<T>(source: Source<T>): Stream<T> {
    return new Stream<T>(
      { name: this.name, source: source as Source<unknown>, failures: this.#failures },
      [],
    );
  }
}

export function job(name: string): JobBuilder {
  return new JobBuilder(name);
}

// ---- the built job and its stages ----

/** Where a stage's elements go at its end. */
export type StageSink = SinkSpec | { kind: "repartition"; topic: string };

export interface StageSource {
  topic: string;
  /** An internal repartition topic: keys are UTF-8 keys, values elements (element-codec.ts). */
  internal: boolean;
  keyFormat: Format;
  valueFormat: Format | "internal";
  startFrom: "earliest" | "latest";
  outOfRange: "fail" | "earliest" | "latest";
  timestamp: ((record: SourceRecord<unknown>) => number) | undefined;
  watermarks: WatermarkSpec | undefined;
}

export interface Stage {
  job: string;
  index: number;
  source: StageSource;
  sourceTopic: string;
  operators: readonly StepSpec[];
  sinks: readonly StageSink[];
  /** Every topic the stage produces to: sinks, repartition and late side outputs. */
  sinkTopics: string[];
}

export interface StageDescription {
  index: number;
  sourceTopic: string;
  internalSource: boolean;
  operators: string[];
  sinkTopics: string[];
}

export interface JobDescription {
  name: string;
  operatorNames: string[];
  /** Repartition and late-record topics the runtime must create (partitions: see the reply). */
  internalTopics: string[];
  stages: StageDescription[];
}

export class Job {
  readonly name: string;
  readonly source: Source<unknown>;
  readonly steps: readonly StepSpec[];
  readonly sinks: readonly SinkSpec[];
  readonly stages: readonly Stage[];
  readonly failures: FailureSettings;

  /** @internal created by Stream.sink; validates the whole job. */
  constructor(
    name: string,
    source: Source<unknown>,
    steps: readonly StepSpec[],
    sinks: readonly SinkSpec[],
    failures: FailureSettings = {},
  ) {
    this.name = name;
    this.source = source;
    this.steps = steps;
    this.sinks = sinks;
    this.failures = failures;
    const seen = new Set<string>();
    for (const step of steps) {
      if (!isStateful(step)) continue;
      if (seen.has(step.name)) {
        throw new Error(
          `job "${name}": operator name "${step.name}" is used twice; stateful steps need unique names`,
        );
      }
      seen.add(step.name);
      // Without watermarks no window would ever fire: refuse instead of buffering forever.
      if (step.kind === "window" && source.watermarks === undefined) {
        throw new Error(
          `job "${name}": window "${step.name}" needs event time: call withWatermarks() on the source`,
        );
      }
    }
    this.stages = splitStages(this);
  }

  /** The stable names of the stateful steps, in job order. */
  operatorNames(): string[] {
    return this.steps.filter(isStateful).map((s) => s.name);
  }

  describe(): JobDescription {
    return {
      name: this.name,
      operatorNames: this.operatorNames(),
      internalTopics: this.stages.flatMap((s) => s.sinkTopics.filter((t) => isInternal(this, t))),
      stages: this.stages.map((s) => ({
        index: s.index,
        sourceTopic: s.sourceTopic,
        internalSource: s.source.internal,
        operators: s.operators.map(describeStep),
        sinkTopics: s.sinkTopics,
      })),
    };
  }
}

function isInternal(job: Job, topic: string): boolean {
  return topic.startsWith(`${job.name}-`) && /-(repartition|late)$/.test(topic);
}

function describeStep(step: StepSpec): string {
  if (step.kind === "keyBy") return step.repartition ? "keyBy (repartition)" : "keyBy";
  return isStateful(step) ? `${step.kind} "${step.name}"` : step.kind;
}

export function repartitionTopic(jobName: string, operator: string): string {
  return `${jobName}-${operator}-repartition`;
}

export function lateTopic(jobName: string, operator: string): string {
  return `${jobName}-${operator}-late`;
}

/** Splits at every repartitioning keyBy: the stage before it produces to the topic the next reads. */
function splitStages(job: Job): Stage[] {
  const stages: Stage[] = [];
  let source: StageSource = {
    topic: job.source.topic,
    internal: false,
    keyFormat: job.source.keyFormat,
    valueFormat: job.source.valueFormat,
    startFrom: job.source.startFrom,
    outOfRange: job.source.outOfRange,
    timestamp: job.source.timestamp,
    watermarks: job.source.watermarks,
  };
  let operators: StepSpec[] = [];
  const finish = (sinks: StageSink[]) => {
    const topics = sinks.flatMap((s) => (s.kind === "log" ? [] : [s.topic]));
    for (const op of operators) {
      if (op.kind === "window" && op.lateRecords === "side-output")
        topics.push(lateTopic(job.name, op.name));
    }
    stages.push({
      job: job.name,
      index: stages.length,
      source,
      sourceTopic: source.topic,
      operators,
      sinks,
      sinkTopics: [...new Set(topics)],
    });
  };
  for (const [i, step] of job.steps.entries()) {
    operators.push(step);
    if (step.kind !== "keyBy" || !step.repartition) continue;
    // KeyedStream only offers named steps, so the step after keyBy names the topic.
    const next = job.steps[i + 1];
    if (next === undefined || !isStateful(next))
      throw new Error("keyBy must be followed by a keyed step");
    const topic = repartitionTopic(job.name, next.name);
    finish([{ kind: "repartition", topic }]);
    // Watermarks go through the topic with the records: the next stage's is the minimum over
    // the tasks writing to it (pipeline.ts); the spec gives it their idle timeout.
    source = {
      topic,
      internal: true,
      keyFormat: "string",
      valueFormat: "internal",
      startFrom: "earliest",
      // A repartition record missing is a record lost: never skipped.
      outOfRange: "fail",
      timestamp: undefined,
      watermarks: job.source.watermarks,
    };
    operators = [];
  }
  finish([...job.sinks]);
  return stages;
}
