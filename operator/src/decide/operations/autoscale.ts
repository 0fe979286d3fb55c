// The autoscaler's policy (../autoscaler.ts) wired into the decision: one decision per fresh
// look at the load, recorded in `status.autoscaler`; while the autoscaler owns parallelism its
// recommendation is the run's parallelism (runSpecOf), so a change is a rescale operation. A
// change of spec.parallelism meanwhile (`kubectl scale`, an HPA) is a manual override.
import { MAX_PARALLELISM } from "../../api/schema.ts";
import { parseDuration } from "../../api/validate.ts";
import { decideParallelism, rememberRecommendation } from "../autoscaler.ts";
import { autoscalerOwnsParallelism, type Draft, emit, lookAgainWithin } from "../draft.ts";
import type { RunSpec } from "../run-spec.ts";
import type { Operation, Run } from "../types.ts";

/** Rescales remembered for the next plan. */
const RESCALES_KEPT = 60;

/**
 * One autoscaler decision per fresh look at the load, while the run is running and nothing
 * else is under way; recorded in status (and acted on through desiredParallelism).
 */
export function autoscale(draft: Draft, active: Run | undefined): void {
  const spec = draft.job.spec.autoscaler;
  const seen = draft.observed.autoscaling;
  if (!spec?.enabled) return;
  // The next look at the load is due then.
  lookAgainWithin(draft, parseDuration(spec.metricsInterval));
  // An override stands at least until the next look at the load.
  if (takeManualOverride(draft)) return;
  if (!seen || !active || draft.previous.state !== "Running" || draft.operation) return;
  const previous = draft.autoscaler ?? {};
  const now = draft.now.getTime();
  const decision = decideParallelism({
    summary: seen.summary,
    spec,
    partitions: seen.partitions,
    parallelism: active.parallelism ?? 1,
    history: previous,
    now,
  });
  draft.measurements.autoscalerDecisions.push(decision.reason);
  draft.autoscaler = {
    ...previous,
    recommendedParallelism: decision.recommendedParallelism,
    reason: decision.reason,
    time: draft.now.toISOString(),
    inputs: decision.inputs,
    stuck: decision.stuck,
    recommendations: rememberRecommendation(
      previous.recommendations,
      decision,
      now,
      parseDuration(spec.scaleDownDelay),
    ),
  };
  const changed =
    decision.recommendedParallelism !== previous.recommendedParallelism ||
    decision.reason !== previous.reason;
  if (changed && decision.reason !== "MetricsIncomplete")
    emit(
      draft,
      decision.stuck ? "Warning" : "Normal",
      decision.stuck ? "BacklogNotShrinking" : "Autoscaler",
      `${spec.dryRun ? "dry run, not applied: " : ""}${decision.reason}: ${decision.message}`,
    );
}

/**
 * `kubectl scale` (a change of spec.parallelism) while the autoscaler owns parallelism: the
 * new value, within the autoscaler's limits and the partitions, becomes its recommendation and
 * counts as one of its own (so no scale-down undoes it within scaleDownDelay); the autoscaler
 * decides from there. The spec.parallelism it last saw is kept to tell a change from a value
 * that merely differs (a manifest re-applied as it was changes nothing).
 */
function takeManualOverride(draft: Draft): boolean {
  const spec = draft.job.spec.autoscaler;
  const wanted = draft.job.spec.parallelism;
  const previous = draft.autoscaler ?? {};
  const before = previous.specParallelism;
  draft.autoscaler = { ...previous, specParallelism: wanted };
  if (!autoscalerOwnsParallelism(draft.job) || before === undefined || before === wanted)
    return false;
  const max = Math.min(spec.maxParallelism ?? MAX_PARALLELISM, draft.partitions ?? MAX_PARALLELISM);
  const to = Math.min(max, Math.max(spec.minParallelism, wanted));
  draft.autoscaler = {
    ...draft.autoscaler,
    recommendedParallelism: to,
    reason: "ManualOverride",
    time: draft.now.toISOString(),
    recommendations: rememberRecommendation(
      previous.recommendations,
      { target: to },
      draft.now.getTime(),
      parseDuration(spec.scaleDownDelay),
    ),
  };
  draft.measurements.autoscalerDecisions.push("ManualOverride");
  const clamped =
    to === wanted
      ? ""
      : ` (the autoscaler's limits and the partitions allow ${spec.minParallelism}..${max})`;
  emit(
    draft,
    "Normal",
    "Autoscaler",
    `ManualOverride: spec.parallelism changed from ${before} to ${wanted}: the job runs ${to}${clamped}; the autoscaler decides from there, scaling down no sooner than scaleDownDelay (${spec.scaleDownDelay})`,
  );
  return true;
}

/** A rescale the autoscaler made, with its measured downtime (what the next plan counts in). */
export function recordRescale(
  draft: Draft,
  op: Operation,
  to: number,
  downtimeSeconds: number,
): void {
  const from = (draft.previous.lastStableSpec as RunSpec | undefined)?.parallelism ?? to;
  // The load the rescale was sized for (the latest interval's: a scale-up in a rise is sized
  // for it): after a scale-up, `from` proved too few for it.
  const sizedFor = draft.autoscaler?.inputs?.latestArrivalRate;
  const arrivalRate = typeof sizedFor === "number" ? sizedFor : undefined;
  const rescales = [
    ...(draft.autoscaler?.rescales ?? []),
    {
      time: op.startTime ?? draft.now.toISOString(),
      from,
      to,
      downtimeSeconds,
      ...(arrivalRate === undefined ? {} : { arrivalRate }),
    },
  ].slice(-RESCALES_KEPT);
  const hourAgo = draft.now.getTime() - 3_600_000;
  draft.autoscaler = {
    ...draft.autoscaler,
    rescales,
    lastRescaleTime: op.startTime,
    rescalesInLastHour: rescales.filter((r) => Date.parse(r.time) > hourAgo).length,
  };
}
