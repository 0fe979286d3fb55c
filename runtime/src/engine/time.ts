// Event time: window assigners, session merging and watermarks. Everything takes explicit
// timestamps and `now` (milliseconds), so behaviour is a function of its inputs alone.
//
// Conventions (Flink's): a window is [start, end), its last instant is end - 1; a watermark W
// says "no more events with timestamp <= W", so a window is complete once end - 1 <= W.

/** A half-open interval [start, end) of event time in milliseconds. */
export interface Window {
  readonly start: number;
  readonly end: number;
}

export type WindowKind = "tumbling" | "sliding" | "session";

export interface WindowAssigner {
  readonly kind: WindowKind;
  /** The windows an event at `timestamp` belongs to, ascending by start (may be empty). */
  assign(timestamp: number): Window[];
}

/** No watermark yet: nothing is known to be complete. */
export const NO_WATERMARK = Number.NEGATIVE_INFINITY;

function requirePositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer of milliseconds, got ${String(value)}`);
  }
}

function requireCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${String(value)}`);
  }
}

function requireNonNegative(name: string, value: number): void {
  if (!(value >= 0)) throw new Error(`${name} must be >= 0, got ${String(value)}`);
}

function requireTime(name: string, value: number): void {
  if (!Number.isFinite(value))
    throw new Error(`${name} must be a finite number, got ${String(value)}`);
}

/**
 * Event timestamps (a record's, an emitted element's, a timer's) are whole milliseconds:
 * they become Kafka timestamps, which are int64.
 */
export function requireTimestamp(name: string, value: number): void {
  if (!Number.isSafeInteger(value)) {
    throw new Error(
      `${name} must be an integer of milliseconds (Kafka timestamps are int64), got ${String(value)}`,
    );
  }
}

/** Modulo that is never negative, so windows before the epoch line up like those after it. */
function floorMod(value: number, divisor: number): number {
  return ((value % divisor) + divisor) % divisor;
}

/** The last instant inside `window`. */
export function maxTimestamp(window: Window): number {
  return window.end - 1;
}

export function tumbling(sizeMs: number): WindowAssigner {
  requirePositiveInteger("tumbling window size", sizeMs);
  return {
    kind: "tumbling",
    assign(timestamp) {
      requireTime("event timestamp", timestamp);
      const start = timestamp - floorMod(timestamp, sizeMs);
      return [{ start, end: start + sizeMs }];
    },
  };
}

/**
 * Windows of `sizeMs` starting every `slideMs`: an event belongs to up to ceil(size/slide) of
 * them. A slide larger than the size samples the stream: events between windows belong to none.
 */
export function sliding(sizeMs: number, slideMs: number): WindowAssigner {
  requirePositiveInteger("sliding window size", sizeMs);
  requirePositiveInteger("sliding window slide", slideMs);
  return {
    kind: "sliding",
    assign(timestamp) {
      requireTime("event timestamp", timestamp);
      const windows: Window[] = [];
      for (
        let start = timestamp - floorMod(timestamp, slideMs);
        start > timestamp - sizeMs;
        start -= slideMs
      ) {
        windows.push({ start, end: start + sizeMs });
      }
      return windows.reverse();
    },
  };
}

/**
 * Session windows: each event opens [t, t + gap); a key's overlapping or touching windows
 * merge (see SessionWindows), so a session ends after more than `gapMs` without events.
 */
export function session(gapMs: number): WindowAssigner & { readonly gapMs: number } {
  requirePositiveInteger("session gap", gapMs);
  return {
    kind: "session",
    gapMs,
    assign(timestamp) {
      requireTime("event timestamp", timestamp);
      return [{ start: timestamp, end: timestamp + gapMs }];
    },
  };
}

export interface SessionMerge {
  /** The session the event now belongs to. */
  window: Window;
  /** Earlier sessions absorbed into `window`: their state now belongs to it. Empty when the
   * event fell inside an existing session without changing it, or started a new one. */
  merged: Window[];
}

/** The open sessions of one key, kept sorted, disjoint and not touching. */
export class SessionWindows {
  readonly gapMs: number;
  #windows: Window[] = [];

  /** `windows` restores the sessions of a snapshot; they are merged as if added one by one. */
  constructor(gapMs: number, windows: readonly Window[] = []) {
    requirePositiveInteger("session gap", gapMs);
    this.gapMs = gapMs;
    for (const window of windows) {
      requireTime("session start", window.start);
      requireTime("session end", window.end);
      if (window.end <= window.start) {
        throw new Error(`session window [${window.start}, ${window.end}) is empty`);
      }
      this.#merge(window);
    }
  }

  /** Adds an event at `timestamp`, in any order: a late event may bridge two sessions. */
  add(timestamp: number): SessionMerge {
    requireTime("event timestamp", timestamp);
    return this.#merge({ start: timestamp, end: timestamp + this.gapMs });
  }

  #merge(proto: Window): SessionMerge {
    let start = proto.start;
    let end = proto.end;
    const merged: Window[] = [];
    const kept: Window[] = [];
    for (const window of this.#windows) {
      // Touching counts as overlapping: an event exactly `gap` after the last one continues it.
      if (window.start <= end && window.end >= start) {
        merged.push(window);
        start = Math.min(start, window.start);
        end = Math.max(end, window.end);
      } else {
        kept.push(window);
      }
    }
    const result = { start, end };
    const at = kept.findIndex((w) => w.start > start);
    kept.splice(at === -1 ? kept.length : at, 0, result);
    this.#windows = kept;
    const unchanged = merged.length === 1 && merged[0]?.start === start && merged[0]?.end === end;
    return { window: result, merged: unchanged ? [] : merged };
  }

  /** The open sessions, ascending. */
  windows(): Window[] {
    return this.#windows.map((w) => ({ ...w }));
  }

  get size(): number {
    return this.#windows.length;
  }

  /**
   * Removes and returns the sessions complete at `watermark` (plus `allowedLatenessMs`):
   * with lateness, a fired session stays open to late events until its cleanup time.
   */
  takeComplete(watermark: number, allowedLatenessMs = 0): Window[] {
    requireNonNegative("allowed lateness", allowedLatenessMs);
    const done = this.#windows.filter((w) => isLate(w.start, allowedLatenessMs, w, watermark));
    this.#windows = this.#windows.filter((w) => !done.includes(w));
    return done.map((w) => ({ ...w }));
  }
}

/** True once every event of `window` has arrived according to `watermark` (time to fire). */
export function isWindowComplete(window: Window, watermark: number): boolean {
  return maxTimestamp(window) <= watermark;
}

/**
 * Whether an event at `timestamp` comes too late to be processed: for windowed operators,
 * `window`'s cleanup time (its last instant plus the lateness) has passed; without a window,
 * the event's own timestamp plus the lateness is at or below the watermark.
 */
export function isLate(
  timestamp: number,
  allowedLatenessMs: number,
  window: Window | undefined,
  watermark: number,
): boolean {
  requireTime("event timestamp", timestamp);
  requireNonNegative("allowed lateness", allowedLatenessMs);
  const last = window === undefined ? timestamp : maxTimestamp(window);
  return last + allowedLatenessMs <= watermark;
}

export interface WatermarkOptions {
  /** How far behind the newest event of a partition an event may still arrive. */
  maxOutOfOrdernessMs: number;
  /** A partition without events for longer than this stops holding the watermark back.
   * Default: never idle. */
  idleTimeoutMs?: number;
}

function requireIdleTimeout(idleTimeoutMs: number | undefined): number {
  const idle = idleTimeoutMs ?? Number.POSITIVE_INFINITY;
  if (!(idle > 0)) throw new Error(`idleTimeoutMs must be > 0, got ${String(idle)}`);
  return idle;
}

interface InputClock {
  /** What the input allows: no more events at or below this. */
  watermark: number;
  lastActivity: number;
  /** The input said it is idle (an upstream task announcing it has no input). */
  idle: boolean;
}

/**
 * The watermark over a task's inputs (source partitions, or upstream tasks): the minimum over
 * active inputs, never decreasing. An input is inactive once idle: silent for longer than the
 * idle timeout, or said so. While no input is active, the watermark holds.
 */
class InputWatermarks<K> {
  readonly idleTimeoutMs: number;
  readonly #inputs = new Map<K, InputClock>();
  #current = NO_WATERMARK;

  constructor(idleTimeoutMs: number) {
    this.idleTimeoutMs = idleTimeoutMs;
  }

  /** An input known before it has said anything: it holds the watermark until it idles. */
  register(input: K, now: number): void {
    requireTime("now", now);
    if (!this.#inputs.has(input)) {
      this.#inputs.set(input, { watermark: NO_WATERMARK, lastActivity: now, idle: false });
    }
  }

  unregister(input: K): boolean {
    return this.#inputs.delete(input);
  }

  /** Every input counts as active at `now` (its silence until then was no idleness). */
  touch(now: number): void {
    requireTime("now", now);
    for (const clock of this.#inputs.values())
      clock.lastActivity = Math.max(clock.lastActivity, now);
  }

  /** `input` allows `watermark` (an input's own watermark never goes back), as of `now`. */
  advance(input: K, watermark: number, now: number, idle: boolean): void {
    requireTime("now", now);
    const clock = this.#inputs.get(input);
    if (clock === undefined) {
      this.#inputs.set(input, { watermark, lastActivity: now, idle });
      return;
    }
    clock.watermark = Math.max(clock.watermark, watermark);
    clock.lastActivity = Math.max(clock.lastActivity, now);
    clock.idle = idle;
  }

  /** Undefined for an input not tracked. */
  isIdle(input: K, now: number): boolean | undefined {
    const clock = this.#inputs.get(input);
    return clock === undefined ? undefined : this.#idle(clock, now);
  }

  /** Whether no input is active (what a task with no input at all announces downstream). */
  allIdle(now: number): boolean {
    for (const clock of this.#inputs.values()) if (!this.#idle(clock, now)) return false;
    return true;
  }

  #idle(clock: InputClock, now: number): boolean {
    return clock.idle || now - clock.lastActivity > this.idleTimeoutMs;
  }

  inputs(): [K, InputClock][] {
    return [...this.#inputs];
  }

  /** Recomputes the watermark at `now` and returns it (it never decreases). */
  watermark(now: number): number {
    requireTime("now", now);
    let candidate: number | undefined;
    for (const clock of this.#inputs.values()) {
      if (this.#idle(clock, now)) continue;
      candidate = candidate === undefined ? clock.watermark : Math.min(candidate, clock.watermark);
    }
    // No active input: nothing new is known.
    if (candidate !== undefined && candidate > this.#current) this.#current = candidate;
    return this.#current;
  }

  get current(): number {
    return this.#current;
  }
}

/**
 * Bounded-out-of-orderness watermarks over a task's source partitions:
 * watermark = min over active partitions of (max event time seen - bound - 1).
 *
 * - A registered partition without events holds the watermark at NO_WATERMARK until it
 *   has an event or goes idle: otherwise its first events could all be late.
 * - A partition is idle once `now - lastActivity > idleTimeoutMs`; an event makes it active
 *   again, and so does `hold` (the task is not at its source's end, or cannot reach it: a
 *   partition whose records are late in coming is not idle). While every partition is idle,
 *   the watermark holds (nothing new is known).
 * - The watermark never goes back, even when a partition returns from idleness behind it
 *   (its events below the watermark are late, as for any out-of-bound event).
 */
export class WatermarkTracker {
  readonly maxOutOfOrdernessMs: number;
  readonly #partitions: InputWatermarks<string>;

  constructor(options: WatermarkOptions) {
    requireNonNegative("maxOutOfOrdernessMs", options.maxOutOfOrdernessMs);
    this.maxOutOfOrdernessMs = options.maxOutOfOrdernessMs;
    this.#partitions = new InputWatermarks(requireIdleTimeout(options.idleTimeoutMs));
  }

  get idleTimeoutMs(): number {
    return this.#partitions.idleTimeoutMs;
  }

  /** A partition this task reads, known before its first event: it holds the watermark back. */
  register(partition: string, now: number): void {
    this.#partitions.register(partition, now);
  }

  /** No longer read (the task gave the partition up): it stops counting. */
  unregister(partition: string): boolean {
    return this.#partitions.unregister(partition);
  }

  /**
   * The task's source may still hold records for its partitions at `now` (the task is behind,
   * or its broker does not answer): their silence so far does not make them idle.
   */
  hold(now: number): void {
    this.#partitions.touch(now);
  }

  /** An event of `partition` with event time `timestamp`, read at `now`. */
  observe(partition: string, timestamp: number, now: number): void {
    requireTime("event timestamp", timestamp);
    this.#partitions.advance(partition, timestamp - this.maxOutOfOrdernessMs - 1, now, false);
  }

  isIdle(partition: string, now: number): boolean {
    const idle = this.#partitions.isIdle(partition, now);
    if (idle === undefined) throw new Error(`partition ${partition} is not tracked`);
    return idle;
  }

  /** Whether every partition is idle: the task has no input to announce time from. */
  allIdle(now: number): boolean {
    return this.#partitions.allIdle(now);
  }

  partitions(): string[] {
    return this.#partitions.inputs().map(([partition]) => partition);
  }

  /** Recomputes the watermark at `now` and returns it (it never decreases). */
  watermark(now: number): number {
    return this.#partitions.watermark(now);
  }

  /** The watermark as of the last `watermark(now)` call. */
  get current(): number {
    return this.#partitions.current;
  }

  /** `isLate` against the current watermark. */
  isLate(timestamp: number, allowedLatenessMs = 0, window?: Window): boolean {
    return isLate(timestamp, allowedLatenessMs, window, this.current);
  }
}

/** What a task reading a repartition topic keeps of one upstream task, in its snapshot. */
export type UpstreamMark = [task: number, watermark: number, idle: boolean];

/**
 * The watermark of a task reading a repartition topic: the minimum over its upstream tasks'
 * watermarks, which every record of the topic carries (and watermark-only records between
 * them). Each upstream task has its own order in the topic partition, so the last watermark
 * heard from it holds for everything it writes after.
 *
 * - Until every upstream task has been heard from, the watermark holds: a task not heard
 *   from yet may still send anything.
 * - An upstream task that announced itself idle drops out of the minimum until it is heard
 *   from again. Silence alone never does: a silent upstream task is down, restarting or cut
 *   off from the broker, and its records (behind the others' in event time) are still to come.
 * - Restored (`saved`), the last watermark of each upstream task counts again: a restarted
 *   task neither goes back nor jumps past a slow upstream task.
 */
export class UpstreamWatermarks {
  readonly tasks: number;
  readonly #upstream = new InputWatermarks<number>(Number.POSITIVE_INFINITY);

  constructor(tasks: number, now: number, saved: readonly UpstreamMark[] = []) {
    requireCount("upstream tasks", tasks);
    this.tasks = tasks;
    for (const [task, watermark, idle] of saved) this.#upstream.advance(task, watermark, now, idle);
    for (let task = 0; task < tasks; task++) this.#upstream.register(task, now);
  }

  /** A record of upstream task `task`, which was at `watermark` (idle or not) when it wrote it. */
  heard(task: number, watermark: number, idle: boolean, now: number): void {
    this.#upstream.advance(task, watermark, now, idle);
  }

  /** Whether every upstream task announced itself idle. */
  allIdle(now: number): boolean {
    return this.#upstream.allIdle(now);
  }

  /** Recomputes the watermark at `now` and returns it (it never decreases). */
  watermark(now: number): number {
    return this.#upstream.watermark(now);
  }

  /** The upstream tasks heard from, for the snapshot. */
  saved(): UpstreamMark[] {
    return this.#upstream
      .inputs()
      .filter(([, clock]) => clock.watermark !== NO_WATERMARK || clock.idle)
      .map(([task, clock]) => [task, clock.watermark, clock.idle]);
  }
}

/**
 * When a task writing a repartition topic tells each of the topic's partitions its watermark
 * with a watermark-only record. Its data records carry its watermark too, so a partition needs
 * one only when the task's watermark moved past what it last told it, or when the task went
 * idle or came back (no heartbeats: a downstream task never takes silence for idleness). At
 * most once per call (a batch or a timer round), never per record.
 */
export class WatermarkAnnouncements {
  readonly partitions: number;
  readonly #told: ({ watermark: number; idle: boolean } | undefined)[];

  constructor(partitions: number) {
    requireCount("repartition partitions", partitions);
    this.partitions = partitions;
    this.#told = Array.from({ length: partitions }, () => undefined);
  }

  /** A data record carrying `watermark` went to `partition`. */
  sent(partition: number, watermark: number): void {
    this.#told[partition] = { watermark, idle: false };
  }

  /** The partitions to tell `watermark` (and whether idle); they count as told. */
  due(watermark: number, idle: boolean): number[] {
    const due: number[] = [];
    for (const [partition, told] of this.#told.entries()) {
      if (told !== undefined && told.idle === idle && watermark <= told.watermark) continue;
      this.#told[partition] = { watermark, idle };
      due.push(partition);
    }
    return due;
  }
}
