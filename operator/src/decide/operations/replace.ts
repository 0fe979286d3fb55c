// The run in place makes way — for a run of another spec (upgrade, rescale, restart,
// rollback), a suspension or the deletion — one step per decision:
//
//   savepoint   (mode savepoint) a stop-with-savepoint of every pod (savepoint.ts); a failure
//               keeps the old run and retries after a back-off (`retry-wait`)
//   stopping    every pod of the old run is deleted (modes last-state and stateless start here)
//   then        the next run starts (start.ts), the job rests (suspend.ts) or is gone (deletion.ts)
//
// The next run starts only once every pod of the old one is gone: two runs never process at
// the same time.
import {
  autoscalerOwnsParallelism,
  type Draft,
  degraded,
  deletePods,
  emit,
  livePods,
  livePodsOf,
  runSpecFrom,
  runTargetOf,
  stateDuring,
} from "../draft.ts";
import { classifyChange } from "../run-spec.ts";
import type { Mode, Operation, OperationKind, Run, Target } from "../types.ts";
import { finishDeletion } from "./deletion.ts";
import { backingOff, takeSavepoint } from "./savepoint.ts";
import { keepRunWhole, startRun } from "./start.ts";
import { rest } from "./suspend.ts";

/** Whether the run in place is what the target asks for (same spec, and the job runs). */
export function runsTarget(active: Run, target: Target): boolean {
  return typeof target === "object" && target.hash === active.specHash;
}

/** Moves the operation replacing `active` on by as many steps as this decision can take. */
export function replace(draft: Draft, active: Run, target: Target): void {
  const kind = draft.operation?.kind === "rollback" ? "rollback" : operationKind(active, target);
  let op = draft.operation;
  if (!op || op.fromRun !== active.id || op.step === "starting" || op.step === "suspended") {
    op = beginOperation(draft, kind, active);
  } else if (op.kind !== kind || op.toSpecHash !== hashOf(target)) {
    // The target moved while the operation was under way: its progress still counts.
    op = { ...op, kind, ...(hashOf(target) ? { toSpecHash: hashOf(target) } : {}) };
  }
  draft.operation = op;
  const busy = stateDuring(op);
  draft.state = busy;

  if (op.step === "retry-wait") {
    // The old run goes on (its pods come back if the failed step stopped them) until the
    // back-off is over.
    keepRunWhole(draft, active, runTargetOf(active));
    draft.state = busy;
    draft.problem = degraded(
      "SavepointFailed",
      `${op.lastError ?? "savepoint failed"}; run ${active.id} goes on, retrying at ${op.retryTime}`,
    );
    if (backingOff(draft, op)) return;
    draft.operation = op = beginOperation(draft, kind, active, (op.attempt ?? 1) + 1);
  }
  if (op.step === "savepoint") {
    if (!takeSavepoint(draft, active, op, true)) return;
    op = draft.operation ?? op;
  }
  if (op.step === "stopping") {
    deletePods(draft, livePods(draft), `run ${active.id} is replaced (${op.kind})`);
    if (draft.observed.pods.length > 0) return;
    if (target === "deleted") finishDeletion(draft);
    else if (target === "suspended") rest(draft);
    else startRun(draft, target);
  }
}

/**
 * A rescale above the source's partition count (as the run's pods report it) is refused
 * before any pod stops: every pod must own a partition. Only a rescale: a change of anything
 * else may change the source too. Returns the target to run instead (the run in place).
 */
export function refuseRescaleAbovePartitions(
  draft: Draft,
  active: Run | undefined,
  target: Target | undefined,
): Target | undefined {
  const partitions = draft.partitions;
  if (typeof target !== "object" || !active?.spec || !partitions) return target;
  const p = target.spec.parallelism;
  if (p <= partitions) return target;
  if (classifyChange(runSpecFrom(active), target.spec) !== "rescale") return target;
  const field =
    autoscalerOwnsParallelism(draft.job) && draft.job.spec.autoscaler.minParallelism > partitions
      ? "spec.autoscaler.minParallelism"
      : "spec.parallelism";
  // The run in place goes on.
  draft.problem = degraded(
    "ParallelismAbovePartitions",
    `${field}: ${p} pods are more than the ${partitions} partitions of the job's source (every pod must own one); run ${active.id} keeps ${active.parallelism}`,
  );
  return runTargetOf(active);
}

function beginOperation(draft: Draft, kind: OperationKind, active: Run, attempt = 1): Operation {
  const mode = modeFor(draft, kind, active);
  const now = draft.now.toISOString();
  const retrying = attempt > 1 ? `, attempt ${attempt}` : "";
  emit(
    draft,
    "Normal",
    "OperationStarted",
    `${kind} of run ${active.id} (mode ${mode}${retrying})`,
  );
  return {
    kind,
    mode,
    step: mode === "savepoint" ? "savepoint" : "stopping",
    fromRun: active.id,
    startTime: now,
    ...(mode === "savepoint" ? {} : { stopTime: now }),
    attempt,
  };
}

/**
 * How state crosses to the next run. A savepoint needs a run that is running: a run that
 * never became ready (or has pods down) hands over its checkpoints instead (last-state).
 */
function modeFor(draft: Draft, kind: OperationKind, active: Run): Mode {
  const mode = draft.job.spec.upgradeMode;
  if (mode !== "savepoint") return mode;
  // Ran well once (its spec became stable) and all its pods are ready now.
  const runningWell =
    draft.previous.lastStableSpecHash === active.specHash &&
    livePodsOf(draft, active).filter((p) => p.ready).length === active.parallelism;
  if (kind === "delete" && !draft.job.spec.savepoints?.onDelete) return "last-state";
  return runningWell ? "savepoint" : "last-state";
}

function operationKind(active: Run, target: Target): OperationKind {
  if (target === "deleted") return "delete";
  if (target === "suspended") return "suspend";
  const change = classifyChange(runSpecFrom(active), target.spec);
  // Different hashes mean some field differs; "none" cannot come out of it.
  return change === "none" ? "upgrade" : change;
}

function hashOf(target: Target): string | undefined {
  return typeof target === "object" ? target.hash : undefined;
}
