// The run in place makes way — for a run of another spec (upgrade, rescale, restart,
// rollback), a suspension or the deletion — one step per decision:
//
//   standby     (spec.warmStandby, savepoint and last-state modes) the next run's pods start
//               warm and wait for their restore source (standby.ts)
//   savepoint   (mode savepoint) a stop-with-savepoint of every pod (savepoint.ts); a failure
//               keeps the old run and retries after a back-off (`retry-wait`)
//   stopping    every pod of the old run is deleted (modes last-state and stateless start here)
//   then        the next run starts (start.ts), the job rests (suspend.ts) or is gone (deletion.ts)
//
// The next run processes only once every pod of the old one is gone: two runs never process
// at the same time (a standby waits without reading or writing anything).
import {
  autoscalerOwnsParallelism,
  type Draft,
  degraded,
  deletePods,
  emit,
  livePodsOf,
  runSpecFrom,
  runTargetOf,
  stateDuring,
} from "../draft.ts";
import { classifyChange, type RunSpec, upgradeHash } from "../run-spec.ts";
import type { Mode, Operation, OperationKind, Run, Target } from "../types.ts";
import { finishDeletion } from "./deletion.ts";
import { backingOff, callOffSavepoint, takeSavepoint } from "./savepoint.ts";
import {
  handsOverAtOnce,
  prepareStandby,
  standbyPods,
  stopStep,
  wantsStandby,
  withoutStandby,
} from "./standby.ts";
import { keepRunWhole, startRun } from "./start.ts";
import { rest } from "./suspend.ts";

/** Whether the run in place is what the target asks for (same spec, and the job runs). */
export function runsTarget(active: Run, target: Target): boolean {
  return typeof target === "object" && target.hash === active.specHash;
}

/**
 * Whether an operation is replacing `active` (past its first decision), whatever the target
 * says now: the spec may have gone back to the run in place half-way.
 */
export function replacing(draft: Draft, active: Run): boolean {
  const op = draft.operation;
  return (
    op !== undefined &&
    op.kind !== "savepoint" &&
    op.fromRun === active.id &&
    (op.step === "standby" ||
      op.step === "savepoint" ||
      op.step === "stopping" ||
      op.step === "retry-wait")
  );
}

/**
 * Moves the operation replacing `active` on by as many steps as this decision can take. `drain`:
 * by a run of the same spec, off the nodes being drained (drain.ts), which nothing calls off.
 */
export function replace(draft: Draft, active: Run, target: Target, drain = false): void {
  if (!drain && runsTarget(active, target) && calledOff(draft, active)) return;
  // A rollback stays one while it leads to the stable spec (at any parallelism); a suspension,
  // a deletion or a new spec meanwhile is an operation of its own kind.
  const stable = draft.previous.lastStableSpec as RunSpec | undefined;
  const rollingBack =
    draft.operation?.kind === "rollback" &&
    typeof target === "object" &&
    stable !== undefined &&
    upgradeHash(target.spec) === upgradeHash(stable);
  const kind = drain ? "drain" : rollingBack ? "rollback" : operationKind(active, target);
  let op = draft.operation;
  if (!op || op.fromRun !== active.id || op.step === "starting" || op.step === "suspended") {
    op = beginOperation(draft, kind, active, target);
  } else if (op.kind !== kind || op.toSpecHash !== hashOf(target)) {
    // The target moved while the operation was under way: its progress still counts, but not
    // a standby of the spec it had (its pods go).
    if (op.standbyRun) {
      deletePods(
        draft,
        standbyPods(draft, op.standbyRun).filter((p) => !p.terminating),
        "the operation's target changed",
      );
      op =
        op.step === "standby"
          ? stopStep(withoutStandby(op), draft.now.toISOString())
          : withoutStandby(op);
    }
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
    draft.operation = op = beginOperation(draft, kind, active, target, (op.attempt ?? 1) + 1);
  }
  if (op.step === "standby" && typeof target === "object") {
    if (!prepareStandby(draft, active, target, op)) {
      if (!draft.operation) {
        // Discarded: the old run goes on as it was (it is Running, the standby's pods going).
        keepRunWhole(draft, active, runTargetOf(active));
        if (draft.readyPods === active.parallelism) draft.state = "Running";
      }
      return;
    }
    op = draft.operation ?? op;
  }
  if (op.step === "savepoint") {
    if (!takeSavepoint(draft, active, op, true)) return;
    op = draft.operation ?? op;
  }
  if (op.step === "stopping") {
    // Every pod but the standby's (it waits to be told its restore source).
    const old = draft.observed.pods.filter((p) => p.run !== op?.standbyRun || !p.ownedByJob);
    deletePods(
      draft,
      old.filter((p) => !p.terminating),
      `run ${active.id} is replaced (${op.kind})`,
    );
    if (old.length > 0 && !handsOverAtOnce(op, target)) return;
    if (target === "deleted") finishDeletion(draft);
    else if (target === "suspended") rest(draft);
    else startRun(draft, target);
  }
}

/**
 * The spec went back to the run in place while an operation was replacing it (a revert, GitOps
 * self-heal after `kubectl scale`). Before any pod has heard of the savepoint nothing has
 * stopped, and a failed savepoint's wait left the run as it was: the operation is called off.
 * Once pods may have taken their stop-with-savepoint (or are being stopped) it goes on, as a
 * restart of the run's own spec. Returns whether this decision is done.
 */
function calledOff(draft: Draft, active: Run): boolean {
  const op = draft.operation;
  if (!op) return false;
  const why = `the spec went back to run ${active.id}'s`;
  if (op.step === "standby") {
    // Nothing stopped: the standby's pods go (keepRunWhole deletes every other run's).
  } else if (op.step === "savepoint") {
    const off = callOffSavepoint(draft, op, why);
    // Not looked at yet: the run goes on as it is meanwhile.
    if (off === undefined) draft.state = stateDuring(op);
    if (off !== true) return off === undefined;
  } else if (op.step !== "retry-wait") return false;
  emit(draft, "Normal", "OperationCalledOff", `${op.kind} of run ${active.id} called off: ${why}`);
  draft.operation = undefined;
  keepRunWhole(draft, active, runTargetOf(active));
  return true;
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

function beginOperation(
  draft: Draft,
  kind: OperationKind,
  active: Run,
  target: Target,
  attempt = 1,
): Operation {
  const well = runningWell(draft, active);
  const mode = modeFor(draft, kind, well);
  const now = draft.now.toISOString();
  const standby = wantsStandby(draft, kind, mode, target, well);
  const retrying = attempt > 1 ? `, attempt ${attempt}` : "";
  const warm = standby ? ": the next run starts warm first" : "";
  emit(
    draft,
    "Normal",
    "OperationStarted",
    `${kind} of run ${active.id} (mode ${mode}${retrying})${warm}`,
  );
  const op: Operation = {
    kind,
    mode,
    step: "standby",
    fromRun: active.id,
    ...(hashOf(target) ? { toSpecHash: hashOf(target) } : {}),
    startTime: now,
    attempt,
  };
  return standby ? op : stopStep(op, now);
}

/** Ran well once (its spec became stable) and all its pods are ready now. */
function runningWell(draft: Draft, active: Run): boolean {
  return (
    draft.previous.lastStableSpecHash === active.specHash &&
    livePodsOf(draft, active).filter((p) => p.ready).length === active.parallelism
  );
}

/**
 * How state crosses to the next run. A savepoint needs a run that is running: a run that
 * never became ready (or has pods down) hands over its checkpoints instead (last-state).
 */
function modeFor(draft: Draft, kind: OperationKind, runningWell: boolean): Mode {
  // A deletion takes its savepoint when asked to (savepoints.onDelete), whatever the upgrade
  // mode; otherwise the run simply stops (its checkpoints stay).
  if (kind === "delete")
    return draft.job.spec.savepoints?.onDelete && runningWell ? "savepoint" : "last-state";
  const mode = draft.job.spec.upgradeMode;
  if (mode !== "savepoint") return mode;
  return runningWell ? "savepoint" : "last-state";
}

function operationKind(active: Run, target: Target): OperationKind {
  if (target === "deleted") return "delete";
  if (target === "suspended") return "suspend";
  const change = classifyChange(runSpecFrom(active), target.spec);
  // The same spec again: an operation the spec went back on half-way goes on as a restart.
  return change === "none" ? "restart" : change;
}

function hashOf(target: Target): string | undefined {
  return typeof target === "object" ? target.hash : undefined;
}
