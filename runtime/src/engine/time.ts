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

function requireNonNegative(name: string, value: number): void {
  if (!(value >= 0)) throw new Error(`${name} must be >= 0, got ${String(value)}`);
}

function requireTime(name: string, value: number): void {
  if (!Number.isFinite(value))
    throw new Error(`${name} must be a finite number, got ${String(value)}`);
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

interface PartitionClock {
  maxTimestamp: number | undefined;
  lastActivity: number;
}

/**
 * Bounded-out-of-orderness watermarks over a task's source partitions:
 * watermark = min over active partitions of (max event time seen - bound - 1).
 *
 * - A registered partition without events holds the watermark at NO_WATERMARK until it
 *   has an event or goes idle: otherwise its first events could all be late.
 * - A partition is idle once `now - lastActivity > idleTimeoutMs`; an event makes it active
 *   again. While every partition is idle, the watermark holds (nothing new is known).
 * - The watermark never goes back, even when a partition returns from idleness behind it
 *   (its events below the watermark are late, as for any out-of-bound event).
 */
export class WatermarkTracker {
  readonly maxOutOfOrdernessMs: number;
  readonly idleTimeoutMs: number;
  readonly #partitions = new Map<string, PartitionClock>();
  #current = NO_WATERMARK;

  constructor(options: WatermarkOptions) {
    requireNonNegative("maxOutOfOrdernessMs", options.maxOutOfOrdernessMs);
    const idle = options.idleTimeoutMs ?? Number.POSITIVE_INFINITY;
    if (!(idle > 0)) throw new Error(`idleTimeoutMs must be > 0, got ${String(idle)}`);
    this.maxOutOfOrdernessMs = options.maxOutOfOrdernessMs;
    this.idleTimeoutMs = idle;
  }

  /** A partition this task reads, known before its first event: it holds the watermark back. */
  register(partition: string, now: number): void {
    requireTime("now", now);
    if (!this.#partitions.has(partition)) {
      this.#partitions.set(partition, { maxTimestamp: undefined, lastActivity: now });
    }
  }

  /** No longer read (the task gave the partition up): it stops counting. */
  unregister(partition: string): boolean {
    return this.#partitions.delete(partition);
  }

  /** An event of `partition` with event time `timestamp`, read at `now`. */
  observe(partition: string, timestamp: number, now: number): void {
    requireTime("event timestamp", timestamp);
    requireTime("now", now);
    const clock = this.#partitions.get(partition);
    if (clock === undefined) {
      this.#partitions.set(partition, { maxTimestamp: timestamp, lastActivity: now });
      return;
    }
    clock.maxTimestamp =
      clock.maxTimestamp === undefined ? timestamp : Math.max(clock.maxTimestamp, timestamp);
    clock.lastActivity = Math.max(clock.lastActivity, now);
  }

  isIdle(partition: string, now: number): boolean {
    const clock = this.#partitions.get(partition);
    if (clock === undefined) throw new Error(`partition ${partition} is not tracked`);
    return now - clock.lastActivity > this.idleTimeoutMs;
  }

  partitions(): string[] {
    return [...this.#partitions.keys()];
  }

  /** Recomputes the watermark at `now` and returns it (it never decreases). */
  watermark(now: number): number {
    requireTime("now", now);
    let candidate = Number.POSITIVE_INFINITY;
    for (const clock of this.#partitions.values()) {
      if (now - clock.lastActivity > this.idleTimeoutMs) continue;
      const own =
        clock.maxTimestamp === undefined
          ? NO_WATERMARK
          : clock.maxTimestamp - this.maxOutOfOrdernessMs - 1;
      candidate = Math.min(candidate, own);
    }
    // No active partition: candidate is still +Infinity and must not become the watermark.
    if (candidate !== Number.POSITIVE_INFINITY && candidate > this.#current)
      this.#current = candidate;
    return this.#current;
  }

  /** The watermark as of the last `watermark(now)` call. */
  get current(): number {
    return this.#current;
  }

  /** `isLate` against the current watermark. */
  isLate(timestamp: number, allowedLatenessMs = 0, window?: Window): boolean {
    return isLate(timestamp, allowedLatenessMs, window, this.#current);
  }
}
