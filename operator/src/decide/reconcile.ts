// The StreamJob reconciler's decision: from the job and what was observed of its pods and its
// savepoints to the status to write and the actions to take — pure, no I/O. The status is
// written before the actions are taken, so the step an operation is at is always on record: an
// operator that dies mid-way finds it there and carries on.
//
// The job converges on one *run* at a time: `parallelism` pods `<job>-<run>-<i>` built from
// the run's RunSpec (kept in status, so a run survives any later change of the spec). Moving
// from one run to the next — or to suspended, or to deleted — is an *operation*
// (`status.upgrade`), one step per decision. This file is the state diagram of
// docs/architecture.md ("The operator"): what the job should become (`targetOf`), then which
// operation moves it there (`step`); each operation is a module of operations/.
import { activeRun, type Draft, draftOf, runTargetOf, withHash } from "./draft.ts";
import { autoscale } from "./operations/autoscale.ts";
import { ensureFinalizer, finishDeletion } from "./operations/deletion.ts";
import { drain, drainsRun } from "./operations/drain.ts";
import { recordRefusal } from "./operations/refusal.ts";
import {
  refuseRescaleAbovePartitions,
  replace,
  replacing,
  runsTarget,
} from "./operations/replace.ts";
import { heldBackByRollback } from "./operations/rollback.ts";
import {
  closeSavepointRecords,
  continueSavepoint,
  startSavepointIfDue,
} from "./operations/savepoint.ts";
import { keepRunWhole, nothingToRun, startRun } from "./operations/start.ts";
import { rest } from "./operations/suspend.ts";
import { runSpecOf } from "./run-spec.ts";
import { finish } from "./status.ts";
import type { Decision, Observed, Run, Target } from "./types.ts";

export { SAVEPOINT_POLL_MS, savepointIdOf } from "./operations/savepoint.ts";
export { STANDBY_POLL_MS } from "./operations/standby.ts";
export type {
  Action,
  Decision,
  EventSpec,
  JobLoad,
  Measurements,
  Observed,
  ObservedPod,
  ObservedRefusal,
  ObservedSavepoint,
  ObservedSavepointRecord,
} from "./types.ts";

export function decide(observed: Observed): Decision {
  const draft = draftOf(observed);
  const valid = observed.specErrors.length === 0;
  // Before anything is created, so that a deletion always waits for the cleanup.
  ensureFinalizer(draft);
  // What the API server refused in the last actions: kept on the run, which then backs off.
  recordRefusal(draft);
  const active = activeRun(draft);
  // An invalid spec's autoscaler settings are not to be trusted either.
  if (valid) autoscale(draft, active);
  draft.target = targetOf(draft, valid, active);
  step(draft, active, draft.target);
  // Only a job that runs with nothing under way takes a savepoint of its own.
  if (draft.state === "Running" && !draft.operation) startSavepointIfDue(draft);
  closeSavepointRecords(draft);
  return finish(draft, valid);
}

/**
 * What the job should become: deleted, suspended, or a run of its spec. A spec the operator
 * refuses keeps the run in place as it is (none: nothing to run); a spec that was rolled back
 * runs as the last stable one; a rescale above the source's partitions is not taken.
 */
function targetOf(draft: Draft, valid: boolean, active: Run | undefined): Target | undefined {
  const target = heldBackByRollback(draft, wantedTarget(draft, valid, active));
  return refuseRescaleAbovePartitions(draft, active, target);
}

function wantedTarget(draft: Draft, valid: boolean, active: Run | undefined): Target | undefined {
  const { job } = draft;
  if (job.metadata.deletionTimestamp) return "deleted";
  if (!valid) return active?.spec ? runTargetOf(active) : undefined;
  if (job.spec.state === "suspended") return "suspended";
  // At the parallelism the autoscaler decided in this very decision.
  return withHash(
    runSpecOf({ ...job, status: { ...draft.previous, autoscaler: draft.autoscaler } }),
  );
}

/** One step towards the target, as the state diagram has it. */
function step(draft: Draft, active: Run | undefined, target: Target | undefined): void {
  // A savepoint that leaves the job running ends (done, or failed and waited out) first.
  if (draft.operation?.kind === "savepoint" && target !== "deleted") continueSavepoint(draft);
  // No valid spec has run: there is nothing to keep either.
  else if (target === undefined) nothingToRun(draft);
  // The run in place is right, but pods of it are on a node being drained: it moves.
  else if (
    active &&
    typeof target === "object" &&
    runsTarget(active, target) &&
    drainsRun(draft, active)
  )
    drain(draft, active, target);
  // The run in place is not what the job should be, or an operation is replacing it (the spec
  // may have gone back to it half-way): the operation goes on, or is called off.
  else if (active && (!runsTarget(active, target) || replacing(draft, active)))
    replace(draft, active, target);
  // No run in place (any more):
  else if (target === "deleted") finishDeletion(draft);
  else if (target === "suspended") rest(draft);
  // The run in place is the right one.
  else if (active) keepRunWhole(draft, active, target);
  else startRun(draft, target);
}
