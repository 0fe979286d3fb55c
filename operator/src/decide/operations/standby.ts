// A warm standby (spec.warmStandby): before the old run stops, the next run's pods start and
// wait (process up, job loaded and validated, topics and storage reached) for their restore
// source. Only once every one of them waits does the old run take its stop-with-savepoint (or
// stop); then they are told where to restore from (start.ts, POST /v1/start), so the downtime
// is the savepoint, the restore and the first commit instead of a pod's whole start.
//
//   standby   the next run's pods are created with WEIR_STANDBY and polled until each waits;
//             no room for both runs (a quota refused a pod, no node fits one) → stop, then
//             start, said in an Event (`standbySkipped`); a standby pod that fails, or a
//             standby not waiting within readinessTimeout → discarded, the old run goes on and
//             the spec is held back as after a rollback (it never stopped anything)
//
// A standby pod never reads or writes Kafka before it is told its restore point, which exists
// only once the old run has stopped: still one writer per task (the transactional ids fence a
// late old pod in any case).
import { parseDuration } from "../../api/validate.ts";
import { nextRunId } from "../../build/names.ts";
import { buildConfigMap, buildPod, jobFieldOf, type RunRef } from "../../build/run-objects.ts";
import {
  type Draft,
  degraded,
  deletePods,
  emit,
  lookAgainWithin,
  secondsSince,
  truncate,
} from "../draft.ts";
import { upgradeHash } from "../run-spec.ts";
import type {
  Mode,
  ObservedPod,
  Operation,
  OperationKind,
  Run,
  RunTarget,
  Target,
} from "../types.ts";
import { refusalText } from "./refusal.ts";

/** How often standby pods are asked how their start goes (observe/observe-job.ts). */
export const STANDBY_POLL_MS = 200;

/** Whether an operation of `kind` in `mode` towards `target` starts a warm standby first. */
export function wantsStandby(
  draft: Draft,
  kind: OperationKind,
  mode: Mode,
  target: Target,
  runningWell: boolean,
): boolean {
  return (
    draft.job.spec.warmStandby !== false &&
    typeof target === "object" &&
    runningWell &&
    (mode === "savepoint" || mode === "last-state") &&
    (kind === "upgrade" || kind === "rescale" || kind === "restart" || kind === "drain")
  );
}

/** The first step of an operation in `mode` once the old run is to stop (no standby, or ready). */
export function stopStep(op: Operation, now: string): Operation {
  return op.mode === "savepoint"
    ? { ...op, step: "savepoint" }
    : { ...op, step: "stopping", stopTime: now };
}

/**
 * The standby step of `op`: its pods created and looked at. Returns true once the operation has
 * moved on to stopping the old run (the standby waits, or there is no room for one).
 */
export function prepareStandby(
  draft: Draft,
  active: Run,
  target: RunTarget,
  op: Operation,
): boolean {
  const now = draft.now.toISOString();
  const id = op.standbyRun ?? nextRunId(active.id);
  if (!op.standbyRun) {
    op = { ...op, standbyRun: id, standbyTime: now };
    draft.operation = op;
    // A standby dropped earlier may have left a ConfigMap under this run's id (once: a later
    // look would delete what this standby created).
    draft.actions.push({ kind: "deleteConfigMaps", run: id });
  }
  const pods = standbyPods(draft, id);
  const live = pods.filter((p) => !p.terminating);
  const refusal = draft.observed.refusal?.run === id ? draft.observed.refusal : undefined;
  if (refusal && refusal.code === 403 && /quota/i.test(refusal.message))
    return skipStandby(
      draft,
      op,
      live,
      `the API server refused ${refusal.kind} ${refusal.name}: ${refusal.message}`,
    );
  const unschedulable = live.find((p) => p.problem?.startsWith("Unschedulable"));
  if (unschedulable)
    return skipStandby(draft, op, live, `pod ${unschedulable.name}: ${unschedulable.problem}`);
  const ref: RunRef = {
    job: draft.job,
    id,
    spec: target.spec,
    specHash: target.hash,
    standby: true,
  };
  if (refusal) {
    // In the StreamJob's words: the field it came from, as a refused run's says it.
    const field = refusal.field ? jobFieldOf(ref, refusal.kind, refusal.field) : undefined;
    const text = refusalText({
      object: `${refusal.kind} ${refusal.name}`,
      code: refusal.code,
      ...(field ? { field } : {}),
      message: refusal.message,
    });
    discardStandby(draft, active, target, op, `standby ${text}`);
    return false;
  }
  const failing = live.find((p) => p.problem || p.phase === "Failed" || p.phase === "Succeeded");
  if (failing) {
    const why = failing.problem ?? `its phase is ${failing.phase}`;
    discardStandby(draft, active, target, op, `standby pod ${failing.name}: ${why}`);
    return false;
  }
  const timeout = draft.job.spec.readinessTimeout ?? "2m";
  if (draft.now.getTime() - Date.parse(op.standbyTime ?? now) > parseDuration(timeout)) {
    const late = live.filter((p) => p.start?.phase !== "standby").map((p) => p.name);
    const which = late.length > 0 ? ` (${late.join(", ")})` : "";
    discardStandby(
      draft,
      active,
      target,
      op,
      `run ${id}'s standby was not ready within ${timeout}${which}`,
    );
    return false;
  }
  const p = target.spec.parallelism;
  const taken = new Set(pods.map((pod) => pod.subtask));
  const missing = Array.from({ length: p }, (_, i) => i).filter((i) => !taken.has(i));
  if (missing.length > 0) {
    draft.actions.push({ kind: "create", object: buildConfigMap(ref) });
    for (const i of missing) draft.actions.push({ kind: "create", object: buildPod(ref, i) });
    if (live.length === 0 && pods.length === 0)
      emit(
        draft,
        "Normal",
        "StandbyStarting",
        `${op.kind} of run ${active.id}: run ${id} starts ${p} pods warm before run ${active.id} stops`,
      );
  }
  const waiting = live.filter((pod) => pod.start?.phase === "standby").length;
  if (missing.length > 0 || waiting < p) {
    // The polls' landings bring the next look sooner.
    lookAgainWithin(draft, 1_000);
    return false;
  }
  draft.measurements.standbys.push({
    result: "ready",
    seconds: secondsSince(draft, op.standbyTime),
  });
  emit(
    draft,
    "Normal",
    "StandbyReady",
    `run ${id} waits warm after ${secondsSince(draft, op.standbyTime)} s (${p} pods ready to restore): run ${active.id} stops now`,
  );
  draft.operation = stopStep({ ...op, standbyReadyTime: now }, now);
  return true;
}

/**
 * Whether the standby takes over without waiting for the old run's pods to go: after a
 * completed stop-with-savepoint every old task has stopped (it committed its savepoint's
 * offset and reads no more), and should one still write, the standby's transactional ids
 * fence it. In last-state mode the old pods' last checkpoints are written as they stop: those
 * must be in before anything restores them.
 */
export function handsOverAtOnce(op: Operation | undefined, target: Target): boolean {
  return (
    op?.mode === "savepoint" &&
    op.savepointPath !== undefined &&
    op.standbyRun !== undefined &&
    typeof target === "object" &&
    target.hash === op.toSpecHash
  );
}

/** Pods of the standby run `id` (the job's own). */
export function standbyPods(draft: Draft, id: string): ObservedPod[] {
  return draft.observed.pods.filter((p) => p.run === id && p.ownedByJob);
}

/** The operation without its standby: it stops the old run first, then starts the next. */
export function withoutStandby(op: Operation): Operation {
  const { standbyRun: _r, standbyTime: _t, standbyReadyTime: _s, ...rest } = op;
  return rest;
}

/** No room for both runs: stop, then start, as without a standby. */
function skipStandby(draft: Draft, op: Operation, live: ObservedPod[], why: string): boolean {
  deletePods(draft, live, "no room for a standby");
  if (op.standbyRun) draft.actions.push({ kind: "deleteConfigMaps", run: op.standbyRun });
  draft.measurements.standbys.push({
    result: "skipped",
    seconds: secondsSince(draft, op.standbyTime),
  });
  emit(
    draft,
    "Warning",
    "StandbySkipped",
    truncate(
      `no room for run ${op.standbyRun} next to run ${op.fromRun} (${why}): ${op.kind} stops run ${op.fromRun}, then starts the next`,
    ),
  );
  draft.operation = stopStep(
    { ...withoutStandby(op), standbySkipped: truncate(why, 400) },
    draft.now.toISOString(),
  );
  return true;
}

/**
 * The standby cannot run: it goes, the old run goes on (it never stopped), and the spec is held
 * back like a rolled-back one (`status.rollback`) until it changes.
 */
function discardStandby(
  draft: Draft,
  active: Run,
  target: RunTarget,
  op: Operation,
  why: string,
): void {
  const id = op.standbyRun ?? "";
  draft.measurements.standbys.push({
    result: "discarded",
    seconds: secondsSince(draft, op.standbyTime),
  });
  deletePods(
    draft,
    standbyPods(draft, id).filter((p) => !p.terminating),
    "its standby failed",
  );
  draft.actions.push({ kind: "deleteConfigMaps", run: id });
  draft.rollback = {
    specHash: target.hash,
    upgradeHash: upgradeHash(target.spec),
    run: id,
    toSpecHash: active.specHash,
    reason: why,
    time: draft.now.toISOString(),
  };
  draft.problem = degraded("RolledBack", truncate(`${why}; run ${active.id} goes on`));
  emit(
    draft,
    "Warning",
    "StandbyFailed",
    truncate(
      `${why}: standby discarded, run ${active.id} goes on (it never stopped); spec ${target.hash} is not tried again until it changes`,
    ),
  );
  draft.operation = undefined;
}
