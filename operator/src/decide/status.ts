// The draft turned into the Decision: the status to write (conditions Ready, Progressing,
// Degraded; the run; the operation; what the source and the autoscaler last said), one Warning
// Event per new Degraded message, and when to look again.
import type { StreamJobStatus } from "../api/types.ts";
import { jobSelector } from "../build/names.ts";
import { type ConditionInput, conditionOf, setCondition } from "./conditions.ts";
import { activeRun, type Draft, degraded, emit, jobName, livePods, truncate } from "./draft.ts";
import { refusalText } from "./operations/refusal.ts";
import type { Decision, JobState, Operation, Run, Target } from "./types.ts";

/** How often a job is looked at when nothing asks sooner: settled, or under way. */
const SETTLED_RESYNC_MS = 60_000;
const BUSY_RESYNC_MS = 5_000;

export function finish(draft: Draft, valid: boolean): Decision {
  const { job, previous, now, state, operation: op } = draft;
  const generation = job.metadata.generation ?? 0;
  const active = activeRun(draft);
  const degradedNow = degradedCondition(draft, valid, active);
  const before = conditionOf(previous.conditions, "Degraded");
  if (
    degradedNow.status === "True" &&
    // A failed savepoint has an Event of its own.
    degradedNow.reason !== "SavepointFailed" &&
    (before?.message !== degradedNow.message || before?.observedGeneration !== generation)
  ) {
    emit(draft, "Warning", degradedNow.reason, degradedNow.message);
  }
  let conditions = previous.conditions;
  for (const c of [
    readyCondition(draft, active),
    progressingCondition(state, op, active),
    degradedNow,
  ])
    conditions = setCondition(conditions, c, generation, now);

  const status: StreamJobStatus = dropUndefined({
    ...previous,
    observedGeneration: generation,
    conditions,
    state,
    run: draft.run,
    upgrade: op,
    parallelism: active?.parallelism ?? 0,
    desiredParallelism: desiredOf(draft.target),
    selector: jobSelector(jobName(draft)),
    // Lag is a running job's; partitions stay known (a rescale is checked against them).
    lag: state === "Running" ? (draft.observed.load?.lag ?? previous.lag) : undefined,
    partitions: draft.partitions,
    lastSavepoint: draft.lastSavepoint,
    savepointHistory: draft.savepointHistory.length > 0 ? draft.savepointHistory : undefined,
    rollback: draft.rollback,
    autoscaler: draft.autoscaler,
    lastStableSpecHash: state === "Running" ? draft.run?.specHash : previous.lastStableSpecHash,
    lastStableSpec: state === "Running" ? draft.run?.spec : previous.lastStableSpec,
  });
  const settled = (state === "Running" || state === "Suspended") && !op;
  const fallback = settled ? SETTLED_RESYNC_MS : BUSY_RESYNC_MS;
  return {
    status,
    measurements: draft.measurements,
    actions: draft.actions,
    events: draft.events,
    requeueAfterMs: Math.min(draft.requeueAfterMs ?? fallback, fallback),
  };
}

/**
 * The first that holds: an invalid spec; a failed step; the run's objects refused; storage
 * that cannot be used; pods that cannot run.
 */
function degradedCondition(draft: Draft, valid: boolean, active: Run | undefined): ConditionInput {
  if (!valid) {
    const keeps = active ? ` (run ${active.id} keeps running as it was)` : "";
    return degraded("InvalidSpec", truncate(`${draft.observed.specErrors.join("; ")}${keeps}`));
  }
  if (draft.problem) return draft.problem;
  const refused = active?.refused;
  if (refused)
    return degraded("PodsRefused", `${refusalText(refused)}; asked again at ${refused.retryTime}`);
  const storage = draft.observed.storageHealth;
  if (storage) return degraded("StorageUnusable", `spec.savepoints.storage: ${storage}`);
  const problems = livePods(draft)
    .filter((p) => p.problem)
    .map((p) => `${p.name}: ${p.problem}`);
  if (problems.length > 0) return degraded("PodsFailing", truncate(problems.join("; ")));
  return { type: "Degraded", status: "False", reason: "AsExpected", message: "" };
}

function readyCondition(draft: Draft, active: Run | undefined): ConditionInput {
  const { state, readyPods } = draft;
  if (state === "Running")
    return {
      type: "Ready",
      status: "True",
      reason: "RunReady",
      message: `run ${active?.id}: ${readyPods}/${readyPods} pods ready`,
    };
  return {
    type: "Ready",
    status: "False",
    reason: state,
    message: notReadyMessage(state, readyPods, active),
  };
}

/** True while an operation moves (its reason names kind and step) or a run starts. */
function progressingCondition(
  state: JobState,
  op: Operation | undefined,
  active: Run | undefined,
): ConditionInput {
  if (op && op.step !== "suspended" && op.step !== "retry-wait")
    return {
      type: "Progressing",
      status: "True",
      reason: `${capitalize(op.kind ?? "upgrade")}${capitalize(op.step ?? "")}`,
      message: `${op.kind} of run ${op.fromRun} (mode ${op.mode}) at step ${op.step}`,
    };
  if (op?.step === "retry-wait")
    return { type: "Progressing", status: "False", reason: "RetryWait", message: "" };
  if (state === "Running" || state === "Suspended" || state === "Failed")
    return { type: "Progressing", status: "False", reason: state, message: "" };
  return {
    type: "Progressing",
    status: "True",
    reason: state,
    message: `run ${active?.id ?? "(next)"} starting`,
  };
}

function notReadyMessage(state: JobState, readyPods: number, run: Run | undefined): string {
  if (state === "Suspended") return "the job is suspended";
  if (state === "Failed") return "no valid spec has run yet";
  if (!run) return "waiting for the previous pods to stop";
  return `run ${run.id}: ${readyPods}/${run.parallelism} pods ready`;
}

/** How many pods the target runs (none while suspended or deleted; unknown without a target). */
function desiredOf(target: Target | undefined): number | undefined {
  if (target === undefined) return undefined;
  return typeof target === "object" ? target.spec.parallelism : 0;
}

/** `retry-wait` → `RetryWait`: condition reasons are CamelCase. */
function capitalize(s: string): string {
  return s
    .split("-")
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
