// The three policies the simulator compares, each seeing what it would see in production:
// Weir's (the operator's real window and policy, on the runtime's scraped metrics), a KEDA-like
// one (Kafka lag from the broker through an HPA) and a Flink-like one (the Flink Kubernetes
// Operator's autoscaler, FLIP-271, with its defaults).
import type { AutoscalerRescale, AutoscalerSpec } from "../../operator/src/api/types.generated.ts";
import { parseDuration } from "../../operator/src/api/validate.ts";
import {
  type AutoscalerHistory,
  decideParallelism,
  rememberRecommendation,
} from "../../operator/src/decide/autoscaler.ts";
import {
  type MetricsWindow,
  recordSamples,
  summarize,
  type WindowOptions,
} from "../../operator/src/decide/metrics-window.ts";
import type { RuntimeSample } from "../../operator/src/observe/runtime-metrics.ts";

/** What a policy sees each simulated second. */
export interface Observation {
  /** ms */
  now: number;
  run: string;
  /** Parallelism of the running run. */
  parallelism: number;
  /** Set while a rescale to this parallelism is in progress. */
  rescalingTo?: number;
  /** Scrapes of the runtime pods that arrived this second. */
  samples: RuntimeSample[];
  /** End offsets minus committed offsets, all partitions (what the broker says). */
  brokerLag: number;
  rescales: readonly AutoscalerRescale[];
}

export interface Policy {
  name: string;
  /** The parallelism the policy asks for now, if it decides anything this second. */
  tick(observation: Observation): number | undefined;
}

/** The operator's autoscaler: the metrics window and `decideParallelism`, as the reconciler runs them. */
export function weirPolicy(spec: AutoscalerSpec, partitions: number): Policy {
  const options: WindowOptions = {
    windowMs: parseDuration(spec.metricsWindow),
    intervalMs: parseDuration(spec.metricsInterval),
  };
  const delayMs = parseDuration(spec.scaleDownDelay);
  let window: MetricsWindow | undefined;
  let recommendations: AutoscalerHistory["recommendations"] = [];
  /** The arrival rate each rescale was sized for, by its start (the reconciler keeps it in status). */
  const sizedFor = new Map<string, number>();
  return {
    name: "weir",
    tick(o) {
      // The reconciler decides on each scrape round, and not while a rescale is in progress.
      if (o.samples.length === 0 || o.rescalingTo !== undefined) return undefined;
      window = recordSamples(window, o.run, o.samples, o.now, options);
      const decision = decideParallelism({
        summary: summarize(window, o.run, o.parallelism, o.now, options),
        spec,
        partitions,
        parallelism: o.parallelism,
        history: {
          recommendations,
          rescales: o.rescales.map((r) => {
            const arrivalRate = sizedFor.get(r.time);
            return arrivalRate === undefined ? r : { ...r, arrivalRate };
          }),
        },
        now: o.now,
      });
      recommendations = rememberRecommendation(recommendations, decision, o.now, delayMs);
      const latest = decision.inputs.latestArrivalRate;
      if (decision.recommendedParallelism !== o.parallelism && latest !== undefined)
        sizedFor.set(new Date(o.now).toISOString(), latest);
      return decision.recommendedParallelism;
    },
  };
}

/**
 * KEDA's Kafka scaler feeding an HPA, defaults: desired = ceil(totalLag / lagThreshold) capped at
 * the partition count; the HPA syncs every 15 s, ignores changes within 10 % (tolerance), scales
 * up at most max(4 pods, 100 %) per sync, and scales down to the highest recommendation of the
 * last 300 s (stabilization window). It knows nothing of capacity or partitions' spread.
 */
export function kedaPolicy(lagThreshold: number, partitions: number, minReplicas = 1): Policy {
  const SYNC_S = 15;
  const TOLERANCE = 0.1;
  const STABILIZATION_MS = 300_000;
  let recent: { time: number; replicas: number }[] = [];
  let wanted: number | undefined;
  return {
    name: "keda-like",
    tick(o) {
      // The HPA writes the replicas and the operator applies them once a rescale in progress ends.
      if ((o.now / 1000) % SYNC_S !== 0) return wanted;
      const current = o.rescalingTo ?? o.parallelism;
      const ratio = o.brokerLag / (current * lagThreshold);
      let desired =
        Math.abs(ratio - 1) <= TOLERANCE ? current : Math.ceil(o.brokerLag / lagThreshold);
      desired = Math.min(partitions, Math.max(minReplicas, desired));
      recent = [
        ...recent.filter((r) => r.time > o.now - STABILIZATION_MS),
        { time: o.now, replicas: desired },
      ];
      if (desired < current)
        desired = Math.min(current, Math.max(...recent.map((r) => r.replicas)));
      if (desired > current) desired = Math.min(desired, Math.max(current + 4, current * 2));
      wanted = desired;
      return desired;
    },
  };
}

/** The Flink Kubernetes Operator autoscaler's defaults (job.autoscaler.*). */
export const FLINK_DEFAULTS = {
  targetUtilization: 0.7,
  utilizationBoundary: 0.3,
  metricsWindowMs: 15 * 60_000,
  stabilizationMs: 5 * 60_000,
  restartSeconds: 5 * 60,
  catchUpSeconds: 30 * 60,
  scaleDownIntervalMs: 60 * 60_000,
  scaleDownMaxFactor: 0.6,
  backlogLagThresholdSeconds: 5 * 60,
  /** kubernetes.operator.reconcile.interval */
  evaluateEveryMs: 60_000,
};

/**
 * FLIP-271 as the Flink Kubernetes Operator runs it: after a rescale, 5 min of stabilization,
 * then a full 15 min metrics window before any decision; true processing rate from the busiest
 * subtask's busy time; scale only when the rate leaves [λ/(0.7+0.3) + catch-up, λ/(0.7−0.3) +
 * catch-up + restart], then to λ/0.7 + lag/30 min + λ·5 min/30 min; scale-downs at most 60 % at
 * once and delayed an hour (the highest recommendation of that hour applies); parallelism
 * rounded up to a divisor of the partition count.
 */
export function flinkPolicy(partitions: number, scrapeIntervalMs: number): Policy {
  const f = FLINK_DEFAULTS;
  const options: WindowOptions = { windowMs: f.metricsWindowMs, intervalMs: scrapeIntervalMs };
  let window: MetricsWindow | undefined;
  let run = "";
  let collectFrom = 0;
  let pendingDown: { since: number; highest: number } | undefined;
  return {
    name: "flink-like",
    tick(o) {
      if (o.run !== run) {
        run = o.run;
        collectFrom = o.now + f.stabilizationMs;
        window = undefined;
        pendingDown = undefined;
      }
      if (o.rescalingTo !== undefined) return undefined;
      if (o.samples.length > 0 && o.now >= collectFrom) {
        window = recordSamples(window, o.run, o.samples, o.now, options);
      }
      if (o.now % f.evaluateEveryMs !== 0) return undefined;
      const s = summarize(window, o.run, o.parallelism, o.now, options);
      const current = o.parallelism;
      if (!s.complete || s.busyRatio.max === 0) return undefined;
      const arrival = s.arrivalRate;
      const lag = s.backlog;
      const processingRate = s.recordsInRate / s.busyRatio.max; // the whole job at `current`
      const backlogProcessing =
        s.recordsInRate > 0 && lag / s.recordsInRate > f.backlogLagThresholdSeconds;
      const upper = backlogProcessing ? 1 : f.targetUtilization + f.utilizationBoundary;
      const lower = backlogProcessing ? 0 : f.targetUtilization - f.utilizationBoundary;
      const catchUp = lag / f.catchUpSeconds;
      const restart = (arrival * f.restartSeconds) / f.catchUpSeconds;
      const scaleUpAt = catchUp + arrival / Math.min(1, upper);
      const scaleDownAt =
        lower === 0 ? Number.POSITIVE_INFINITY : catchUp + restart + arrival / lower;
      if (processingRate >= scaleUpAt && processingRate <= scaleDownAt) {
        pendingDown = undefined;
        return current;
      }
      const target = catchUp + restart + arrival / f.targetUtilization;
      let next = Math.ceil((current * target) / processingRate);
      next = Math.max(next, Math.ceil(current * (1 - f.scaleDownMaxFactor)), 1);
      next = evenDivisorAtLeast(partitions, Math.min(next, partitions));
      if (next >= current) {
        pendingDown = undefined;
        return next;
      }
      pendingDown =
        pendingDown === undefined
          ? { since: o.now, highest: next }
          : { since: pendingDown.since, highest: Math.max(pendingDown.highest, next) };
      if (o.now - pendingDown.since < f.scaleDownIntervalMs) return undefined;
      const to = pendingDown.highest;
      pendingDown = undefined;
      return to;
    },
  };
}

/** Flink's partition alignment: the smallest parallelism ≥ p that divides the partitions. */
function evenDivisorAtLeast(partitions: number, p: number): number {
  for (let d = p; d < partitions; d++) if (partitions % d === 0) return d;
  return partitions;
}
