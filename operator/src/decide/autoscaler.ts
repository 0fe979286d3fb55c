// The autoscaler's policy: from what the metrics window says, the job's limits and the
// autoscaler's own history, the parallelism to run and why. Pure; the reconciler records every
// decision in status.autoscaler and an Event, and a rescale is a savepoint and a new run.
//
// The numbers (DS2, Kalavri et al., OSDI 2018, as in Flink's autoscaler, FLIP-271):
// - true rate r: records one subtask processes per second of busy time (records in / busy time),
//   i.e. what it could do at 100 % busy;
// - arrival λ: records read per second plus the backlog's growth per second;
// - steady state needs P·r·u ≥ λ (u = targetUtilization, the headroom for noise and bursts);
// - a rescale stops processing for the expected downtime D (measured on this job's past
//   rescales), so the backlog after it is B + λ·D, and it must drain within catchUpDuration T
//   while new records keep arriving: P·r ≥ λ + (B + λ·D)/T.
// The target is the smallest parallelism satisfying both with its busiest subtask (which owns
// ceil(partitions / P) partitions), aligned so partitions spread evenly (alignParallelism),
// within minParallelism/maxParallelism and the partition count.
// Draining runs at full speed, so the catch-up term does not carry the utilization headroom.
//
// Then, in order: a parallelism outside the limits is corrected at once; incomplete metrics
// decide nothing; a backlog that does not shrink while the pods are mostly idle is reported
// (stuck), not answered with more pods; a current parallelism that already meets both
// conditions is kept (a rescale would only add downtime); changes within the dead band are
// ignored; scale-ups happen at once, scale-downs only to the highest target of the last
// scaleDownDelay (and only once the history covers that long); at most maxRescalesPerHour.
import { alignParallelism } from "../../../runtime/src/engine/assignment.ts";
import type {
  AutoscalerRecommendation,
  AutoscalerRescale,
  AutoscalerSpec,
} from "../api/types.generated.ts";
import { parseDuration } from "../api/validate.ts";
import type { WindowSummary } from "./metrics-window.ts";

/** Planned for until a rescale of this job has been measured. */
export const DEFAULT_RESCALE_DOWNTIME_SECONDS = 60;
/** How many of the latest measured rescales the expected downtime averages. */
const DOWNTIME_SAMPLES = 3;
/** A backlog this many seconds of arrivals (plus one record per task) is in flight, not behind. */
const NEGLIGIBLE_BACKLOG_SECONDS = 5;
/** Below this busy share on every subtask, a backlog that does not shrink is not a capacity problem. */
const STUCK_BUSY_RATIO = 0.5;
const HOUR_MS = 3_600_000;
const MAX_RECOMMENDATIONS = 100;

export type AutoscalerReason =
  | "ManualOverride"
  | "ScaleUp"
  | "ScaleDown"
  | "Steady"
  | "WithinDeadBand"
  | "ScaleDownDelayed"
  | "RescaleLimit"
  | "OutsideLimits"
  | "MetricsIncomplete"
  | "BacklogNotShrinking";

/** What the autoscaler remembers between decisions (status.autoscaler). */
export interface AutoscalerHistory {
  recommendations?: readonly AutoscalerRecommendation[];
  rescales?: readonly AutoscalerRescale[];
}

export interface AutoscalerInput {
  summary: WindowSummary;
  spec: AutoscalerSpec;
  /** Source partitions: the hard cap on parallelism. */
  partitions: number;
  /** Parallelism of the current run. */
  parallelism: number;
  history: AutoscalerHistory;
  /** ms since the epoch. */
  now: number;
}

export interface AutoscalerDecision {
  recommendedParallelism: number;
  /**
   * What the numbers alone call for now, before the dead band, the scale-down delay and the
   * rescale cap; absent when the metrics decided nothing. Goes into the history
   * (`rememberRecommendation`).
   */
  target?: number;
  reason: AutoscalerReason;
  message: string;
  /** The backlog does not shrink although the job has capacity to spare. */
  stuck: boolean;
  inputs: Record<string, number>;
}

export function decideParallelism(input: AutoscalerInput): AutoscalerDecision {
  const { summary, spec, partitions, parallelism: current, history, now } = input;
  const max = Math.min(spec.maxParallelism ?? partitions, partitions);
  const min = Math.min(spec.minParallelism, max);
  // Capacity is the busiest subtask's: `desired` parallelism's worth of evenly loaded subtasks
  // takes subtasks of at most floor(partitions / desired) partitions each.
  const align = (desired: number) =>
    alignParallelism(
      partitions,
      partitions / Math.max(1, Math.floor(partitions / desired)),
      spec.minParallelism,
      spec.maxParallelism ?? partitions,
    );
  const limits = { minParallelism: min, maxParallelism: max, partitions, current };
  if (partitions < 1)
    return {
      recommendedParallelism: current,
      reason: "MetricsIncomplete",
      message: "metrics incomplete: no pod has reported its partitions yet",
      stuck: false,
      inputs: limits,
    };

  if (current < min || current > max) {
    const to = align(current);
    return {
      recommendedParallelism: to,
      reason: "OutsideLimits",
      message: `parallelism ${current} is outside [${min}, ${max}] (limits and partition count): ${to}`,
      stuck: false,
      inputs: limits,
    };
  }
  const hold = (reason: AutoscalerReason, message: string, extra: Partial<AutoscalerDecision>) => ({
    recommendedParallelism: current,
    reason,
    message,
    stuck: false,
    inputs: limits,
    ...extra,
  });
  if (!summary.complete) return hold("MetricsIncomplete", `metrics incomplete: ${summary.why}`, {});

  const backlog = summary.backlog;
  const downtime = expectedDowntimeSeconds(history);
  const catchUp = parseDuration(spec.catchUpDuration) / 1000;
  // The rate that held through the last intervals covering a rescale's downtime and one whole
  // interval more (a burst can touch two intervals without filling either): a burst shorter
  // than that is cheaper to drain (the backlog term) than to scale for.
  const sustainedIntervals = Math.ceil(downtime / (parseDuration(spec.metricsInterval) / 1000)) + 2;
  const recent = summary.intervalArrivalRates.slice(-sustainedIntervals);
  const arrival = recent.length > 0 ? Math.min(...recent) : summary.arrivalRate;
  const latest = recent.at(-1) ?? arrival;
  const inputs: Record<string, number> = {
    ...limits,
    arrivalRate: round(summary.arrivalRate),
    sustainedArrivalRate: round(arrival),
    latestArrivalRate: round(latest),
    recordsInRate: round(summary.recordsInRate),
    backlog: round(backlog),
    backlogRate: round(summary.backlogRate),
    busyRatioMax: round(summary.busyRatio.max),
    expectedDowntimeSeconds: round(downtime),
    ...(summary.trueRatePerSubtask === undefined
      ? {}
      : { trueRatePerSubtask: round(summary.trueRatePerSubtask) }),
  };
  const negligible = backlog <= summary.tasks + arrival * NEGLIGIBLE_BACKLOG_SECONDS;

  let target: number;
  let why: string;
  if (summary.recordsInRate === 0 && negligible) {
    target = min;
    why = "no traffic";
  } else {
    const r = summary.trueRatePerSubtask;
    const idle = summary.busyRatio.max < STUCK_BUSY_RATIO;
    if (r === undefined || (!negligible && summary.backlogRate >= 0 && idle)) {
      return hold(
        "BacklogNotShrinking",
        r === undefined
          ? `backlog of ${Math.round(backlog)} records and nothing processed for ${Math.round(summary.spanSeconds)}s: a stuck consumer or a failing sink? Not adding pods`
          : `backlog of ${Math.round(backlog)} records not shrinking while the busiest subtask is ${Math.round(summary.busyRatio.max * 100)}% busy: a stuck consumer or a failing sink? Not adding pods`,
        { stuck: true, inputs },
      );
    }
    const steady = (rate: number) => rate / (r * spec.targetUtilization);
    const drain = (rate: number) => (rate + (backlog + rate * downtime) / catchUp) / r;
    const need = (rate: number) => align(Math.max(steady(rate), drain(rate)));
    inputs.steadyParallelism = round(steady(arrival));
    inputs.catchUpParallelism = round(drain(arrival));
    target = need(arrival);
    why = `arrival ${fmt(arrival)}/s, backlog ${fmt(backlog)}, ${fmt(r)}/s per busy subtask`;
    if (target > current) {
      // What the current parallelism is worth in evenly loaded subtasks (its busiest one bounds it).
      const evenly = partitions / Math.ceil(partitions / current);
      const sufficient =
        evenly >= steady(arrival) && (negligible || evenly * r - arrival >= backlog / catchUp);
      if (sufficient) {
        // Draining without a rescale is faster than paying its downtime.
        target = current;
        why += `; ${current} keeps up and drains within ${spec.catchUpDuration}`;
      } else if (latest > arrival) {
        // The load outgrew the job for longer than a rescale takes: size for it as it is now
        // (a rise still under way shows in the latest interval first), so one rescale does.
        target = need(latest);
        why = `arrival ${fmt(latest)}/s now (${fmt(arrival)}/s sustained), backlog ${fmt(backlog)}, ${fmt(r)}/s per busy subtask`;
      }
    }
  }
  if (target < current) {
    const outgrown = outgrownAt(history, arrival, spec.deadBand, now);
    if (outgrown !== undefined && target <= outgrown) {
      // This job scaled up from `outgrown` within the hour at about this load: it was too few
      // then and is now (capacity differs between runs; the mean rate hides a slow subtask).
      // The next size up is the first whose busiest subtask owns one partition fewer.
      const lighterBusiest = Math.max(1, Math.ceil(partitions / outgrown) - 1);
      target = Math.min(current, align(partitions / lighterBusiest));
      why += `; ${outgrown} fell behind at this load within the hour`;
      inputs.outgrownParallelism = outgrown;
    }
  }
  inputs.target = target;

  if (target === current) return hold("Steady", `${why}: ${current} fits`, { target, inputs });
  const band = spec.deadBand;
  if (Math.abs(target - current) / current <= band) {
    return hold("WithinDeadBand", `${why}: ${target} is within the dead band of ${current}`, {
      target,
      inputs,
    });
  }
  let to = target;
  if (target < current) {
    const highest = highestSince(history, now - parseDuration(spec.scaleDownDelay), target);
    if (highest === undefined || highest >= current || (current - highest) / current <= band) {
      return hold(
        "ScaleDownDelayed",
        `${why}: ${target} would do, but not for the whole scale-down delay (${spec.scaleDownDelay})`,
        { target, inputs: { ...inputs, ...(highest === undefined ? {} : { highest }) } },
      );
    }
    to = highest;
  }
  const lastHour = (history.rescales ?? []).filter(
    (r) => Date.parse(r.time) > now - HOUR_MS,
  ).length;
  if (lastHour >= spec.maxRescalesPerHour) {
    return hold(
      "RescaleLimit",
      `${why}: ${to} wanted, but ${lastHour} rescales within the last hour (maxRescalesPerHour ${spec.maxRescalesPerHour})`,
      { target, inputs },
    );
  }
  return {
    recommendedParallelism: to,
    target,
    reason: to > current ? "ScaleUp" : "ScaleDown",
    message: `${why}: ${current} → ${to}`,
    stuck: false,
    inputs,
  };
}

/**
 * The highest parallelism this job scaled up from within the last hour while at most about
 * `arrival` arrived (within the dead band), or undefined.
 */
function outgrownAt(
  history: AutoscalerHistory,
  arrival: number,
  deadBand: number,
  now: number,
): number | undefined {
  const outgrown = (history.rescales ?? [])
    .filter(
      (r) =>
        r.to > r.from &&
        r.arrivalRate !== undefined &&
        r.arrivalRate <= arrival * (1 + deadBand) &&
        Date.parse(r.time) > now - HOUR_MS,
    )
    .map((r) => r.from);
  return outgrown.length > 0 ? Math.max(...outgrown) : undefined;
}

/** Mean downtime of the latest measured rescales, or the default before any. */
export function expectedDowntimeSeconds(history: AutoscalerHistory): number {
  const measured = (history.rescales ?? [])
    .map((r) => r.downtimeSeconds)
    .filter((d): d is number => d !== undefined)
    .slice(-DOWNTIME_SAMPLES);
  if (measured.length === 0) return DEFAULT_RESCALE_DOWNTIME_SECONDS;
  return measured.reduce((a, b) => a + b, 0) / measured.length;
}

/**
 * The highest recommendation holding at any time since `since` (the current one included), or
 * undefined when the history does not reach back that far.
 */
function highestSince(
  history: AutoscalerHistory,
  since: number,
  current: number,
): number | undefined {
  const recommendations = history.recommendations ?? [];
  const start = recommendations.findLastIndex((r) => Date.parse(r.time) <= since);
  if (start < 0) return undefined;
  return Math.max(current, ...recommendations.slice(start).map((r) => r.parallelism));
}

/**
 * The history with a decision's target appended when it changed, keeping what the scale-down
 * delay still needs (the last entry before the delay began) and at most 100 entries.
 */
export function rememberRecommendation(
  recommendations: readonly AutoscalerRecommendation[] | undefined,
  decision: Pick<AutoscalerDecision, "target">,
  now: number,
  scaleDownDelayMs: number,
): AutoscalerRecommendation[] {
  const list = [...(recommendations ?? [])];
  if (decision.target !== undefined && list.at(-1)?.parallelism !== decision.target) {
    list.push({ time: new Date(now).toISOString(), parallelism: decision.target });
  }
  const start = list.findLastIndex((r) => Date.parse(r.time) <= now - scaleDownDelayMs);
  return list.slice(Math.max(0, start)).slice(-MAX_RECOMMENDATIONS);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function fmt(value: number): string {
  return value >= 100 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
}
