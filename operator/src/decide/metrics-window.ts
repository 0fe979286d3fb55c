// A short window of one job's runtime samples, and what it says: rates from counter deltas, busy
// time, backlog and its change. Pure data and pure functions.
//
// A summary is `complete` only when every subtask of the current run has fresh samples without
// gaps spanning the whole window and reporting every task's backlog; otherwise it says what is
// missing and the autoscaler decides nothing on it. Right after a run starts, while a pod
// restarts or a scrape fails, the window is therefore incomplete until it has refilled.
import type { RuntimeSample } from "../observe/runtime-metrics.ts";

export interface MetricsWindow {
  /** The run the samples belong to; samples of another run start a new window. */
  run: string;
  /** Oldest first. */
  samples: readonly RuntimeSample[];
}

export interface WindowOptions {
  /** Length of the window a decision is made on (spec.autoscaler.metricsWindow). */
  windowMs: number;
  /** Scrape interval (spec.autoscaler.metricsInterval). */
  intervalMs: number;
}

export type WindowSummary = CompleteSummary | { complete: false; why: string };

export interface CompleteSummary {
  complete: true;
  subtasks: number;
  /** Tasks of the run (every stage's partitions). */
  tasks: number;
  /** Shortest span of any subtask's samples (s). */
  spanSeconds: number;
  /** Records read per second, all subtasks. */
  recordsInRate: number;
  /** Records arriving per second: read plus backlog growth. */
  arrivalRate: number;
  /** Records not processed yet, all tasks, at the latest samples. */
  backlog: number;
  /** Change of the backlog per second over the window (negative: draining). */
  backlogRate: number;
  /** Arrival rate of each scrape interval of the window, oldest first (read plus backlog growth). */
  intervalArrivalRates: number[];
  /** Share of wall time spent processing: mean and busiest subtask. */
  busyRatio: { mean: number; max: number };
  /** Records a subtask processes per second of busy time (DS2's true processing rate); absent when no subtask was busy. */
  trueRatePerSubtask?: number;
}

/** A sample counts as fresh, and samples as contiguous, within this many scrape intervals. */
const MAX_GAP_INTERVALS = 2.5;

/**
 * Adds one scrape round to the window and forgets what no decision needs any more: per subtask,
 * everything before the newest sample at least `windowMs` older than `now` (so the kept samples
 * just span the window).
 */
export function recordSamples(
  window: MetricsWindow | undefined,
  run: string,
  samples: readonly RuntimeSample[],
  now: number,
  options: WindowOptions,
): MetricsWindow {
  const kept = window?.run === run ? window.samples : [];
  const all = [...kept, ...samples].sort((a, b) => a.time - b.time);
  const cutoff = now - options.windowMs;
  const firstKept = new Map<number, number>();
  for (const s of all) if (s.time <= cutoff) firstKept.set(s.subtask, s.time);
  return {
    run,
    samples: all.filter((s) => s.time >= (firstKept.get(s.subtask) ?? Number.NEGATIVE_INFINITY)),
  };
}

/** What the window says about the run of `parallelism` subtasks at `now`. */
export function summarize(
  window: MetricsWindow | undefined,
  run: string,
  parallelism: number,
  now: number,
  options: WindowOptions,
): WindowSummary {
  if (window === undefined || window.run !== run) {
    return { complete: false, why: `no samples of run ${run} yet` };
  }
  if (parallelism < 1) return { complete: false, why: "the run has no subtasks" };
  const maxGapMs = options.intervalMs * MAX_GAP_INTERVALS;
  const cutoff = now - options.windowMs;
  let inRate = 0;
  let backlogRate = 0;
  let backlog = 0;
  let tasks = 0;
  let inDelta = 0;
  let busyDelta = 0;
  let minSpan = Number.POSITIVE_INFINITY;
  const busy: number[] = [];
  /** Per subtask, its interval arrival rates, newest first (scrape rounds line up from the end). */
  const intervals: number[][] = [];
  for (let subtask = 0; subtask < parallelism; subtask++) {
    const own = window.samples.filter((s) => s.subtask === subtask);
    const last = own.at(-1);
    if (last === undefined) return incomplete(subtask, "no samples yet");
    if (now - last.time > maxGapMs) {
      return incomplete(subtask, `latest sample is ${seconds(now - last.time)} old`);
    }
    // The window's own samples: from the newest one at or before the cutoff.
    const start = own.findLastIndex((s) => s.time <= cutoff);
    if (start < 0) {
      return incomplete(
        subtask,
        `samples span ${seconds(last.time - (own[0]?.time ?? last.time))} of the ${seconds(options.windowMs)} window`,
      );
    }
    const used = own.slice(start);
    const first = used[0] as RuntimeSample;
    for (let i = 1; i < used.length; i++) {
      const gap = (used[i] as RuntimeSample).time - (used[i - 1] as RuntimeSample).time;
      if (gap > maxGapMs) return incomplete(subtask, `no sample for ${seconds(gap)}`);
    }
    const partial = used.find((s) => s.backlog.length < s.tasks);
    if (partial) {
      return incomplete(
        subtask,
        `backlog of ${partial.backlog.length} of ${partial.tasks} tasks known at ${new Date(partial.time).toISOString()}`,
      );
    }
    const span = (last.time - first.time) / 1000;
    const read = increase(used, (s) => s.recordsIn);
    const busySeconds = increase(used, (s) => s.busySeconds);
    inDelta += read;
    busyDelta += busySeconds;
    inRate += read / span;
    busy.push(Math.min(1, busySeconds / span));
    intervals.push(
      used
        .slice(1)
        .map((after, i) => {
          const before = used[i] as RuntimeSample;
          const read = increase([before, after], (s) => s.recordsIn);
          return (read + total(after) - total(before)) / ((after.time - before.time) / 1000);
        })
        .reverse(),
    );
    backlog += total(last);
    backlogRate += (total(last) - total(first)) / span;
    tasks += last.tasks;
    minSpan = Math.min(minSpan, span);
  }
  return {
    complete: true,
    subtasks: parallelism,
    tasks,
    spanSeconds: minSpan,
    recordsInRate: inRate,
    arrivalRate: Math.max(0, inRate + backlogRate),
    backlog,
    backlogRate,
    intervalArrivalRates: Array.from(
      { length: Math.min(...intervals.map((rates) => rates.length)) },
      (_, i) =>
        Math.max(
          0,
          intervals.reduce((sum, rates) => sum + (rates[i] ?? 0), 0),
        ),
    ).reverse(),
    busyRatio: { mean: busy.reduce((a, b) => a + b, 0) / busy.length, max: Math.max(...busy) },
    ...(busyDelta > 0 ? { trueRatePerSubtask: inDelta / busyDelta } : {}),
  };
}

function incomplete(subtask: number, why: string): WindowSummary {
  return { complete: false, why: `subtask ${subtask}: ${why}` };
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

function total(sample: RuntimeSample): number {
  return sample.backlog.reduce((sum, b) => sum + b.records, 0);
}

/**
 * How much a counter grew over the samples. A counter that went down was reset (the pod's
 * process restarted): it counted from zero since, so its new value is the growth (Prometheus'
 * `increase` does the same).
 */
function increase(
  samples: readonly RuntimeSample[],
  of: (sample: RuntimeSample) => number,
): number {
  let grown = 0;
  for (let i = 1; i < samples.length; i++) {
    const before = of(samples[i - 1] as RuntimeSample);
    const after = of(samples[i] as RuntimeSample);
    grown += after >= before ? after - before : after;
  }
  return grown;
}
