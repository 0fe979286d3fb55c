// Savepoints: the `savepoint` step of an operation (a stop-with-savepoint before the run is
// replaced), and the savepoints that leave the job running — a user's StreamSavepoint
// (`trigger: manual`) or a periodic one (`savepoints.interval`), each an operation of kind
// `savepoint` with that step only. Every savepoint has a StreamSavepoint (the history); a
// failed one changes nothing for good and is retried after a back-off (`retry-wait`);
// retention deletes old ones when one completes.
import type { SavepointRecord, StreamJob, StreamSavepoint } from "../../api/types.ts";
import { parseDuration } from "../../api/validate.ts";
import { jobLabels } from "../../build/names.ts";
import type { PodSavepointState } from "../../observe/runtime-control.ts";
import {
  activeRun,
  type Draft,
  degraded,
  deletePods,
  emit,
  jobName,
  livePodsOf,
  lookAgainIn,
  lookAgainWithin,
  retryDelayMs,
  runTargetOf,
  secondsSince,
} from "../draft.ts";
import type { Operation, OperationKind, Run } from "../types.ts";
import { keepRunWhole } from "./start.ts";

/** A savepoint in flight is polled this often. */
export const SAVEPOINT_POLL_MS = 200;
const HISTORY_LENGTH = 20;

/**
 * One id per attempt of an operation, stable across decisions (it comes from status) and
 * across a change of the operation's kind (the pods know it by the first).
 */
/** When the operation's savepoint started: after its warm standby, if it had one. */
export function savepointStart(op: Operation): string | undefined {
  return op.standbyReadyTime ?? op.startTime;
}

export function savepointIdOf(op: Operation): string {
  return op.savepointId ?? `${op.kind}-${Date.parse(op.startTime ?? "").toString(36)}`;
}

/** A running job with nothing under way: a requested or periodic savepoint may start. */
export function startSavepointIfDue(draft: Draft): void {
  const active = activeRun(draft);
  if (!active) return;
  const requested = draft.observed.savepoints.filter((s) => s.trigger === "manual" && !s.state);
  for (const s of requested.filter((r) => r.stop)) {
    // The operator never writes the spec: stopping a job is `spec.state: suspended`, which
    // takes a savepoint on its way (upgradeMode savepoint).
    draft.actions.push({
      kind: "savepointStatus",
      name: s.name,
      status: {
        state: "Failed",
        message:
          "stop: true is not supported: set the StreamJob's spec.state to suspended to stop it with a savepoint",
        completionTime: draft.now.toISOString(),
      },
    });
  }
  const manual = requested.find((s) => !s.stop);
  const interval = draft.job.spec.savepoints?.interval;
  // A periodic savepoint that failed is tried again an interval later, not at once: storage
  // that is down would otherwise cost a savepoint (and a Warning) every back-off.
  const lastFailed = draft.observed.savepoints
    .filter((s) => s.trigger === "periodic" && s.state === "Failed" && s.time)
    .map((s) => Date.parse(s.time ?? ""));
  const last = Math.max(
    Date.parse(draft.lastSavepoint?.time ?? active.startTime ?? ""),
    ...lastFailed,
  );
  const periodicDue =
    interval !== undefined && draft.now.getTime() - last >= parseDuration(interval);
  if (!manual && !periodicDue) {
    // Not sooner than anything else asks for (the autoscaler's next look at the load).
    if (interval !== undefined)
      lookAgainWithin(draft, Math.max(1_000, last + parseDuration(interval) - draft.now.getTime()));
    return;
  }
  const op: Operation = {
    kind: "savepoint",
    mode: "savepoint",
    step: "savepoint",
    fromRun: active.id,
    startTime: draft.now.toISOString(),
    attempt: 1,
  };
  // A periodic one gets its StreamSavepoint from takeSavepoint, like those of operations.
  op.savepoint = manual ? manual.name : `${jobName(draft)}-${savepointIdOf(op)}`;
  draft.operation = op;
  emit(draft, "Normal", "SavepointStarted", `savepoint ${op.savepoint} of run ${active.id}`);
  takeSavepoint(draft, active, op, false);
}

/** The savepoint in flight that leaves the job running: its run is kept whole meanwhile. */
export function continueSavepoint(draft: Draft): void {
  const op = draft.operation;
  const active = activeRun(draft);
  if (!op || !active) {
    draft.operation = undefined;
    return;
  }
  keepRunWhole(draft, active, runTargetOf(active));
  if (op.step === "retry-wait") {
    draft.problem = degraded("SavepointFailed", op.lastError ?? "savepoint failed");
    // Over: the next one starts when it is due (a failed manual request is not taken again).
    if (!backingOff(draft, op)) draft.operation = undefined;
    return;
  }
  takeSavepoint(draft, active, op, false);
}

/**
 * Whether a failed savepoint's back-off (`op.retryTime`) is still running; if so, the next look
 * is when it ends.
 */
export function backingOff(draft: Draft, op: Operation): boolean {
  const retry = Date.parse(op.retryTime ?? "");
  if (!(retry > draft.now.getTime())) return false;
  lookAgainIn(draft, Math.max(1_000, retry - draft.now.getTime()));
  return true;
}

/**
 * The savepoint step of `op` on the run `from`. Returns true once it is complete (the
 * operation moved on to `stopping`, or ended for a savepoint that leaves the job running).
 */
export function takeSavepoint(draft: Draft, from: Run, op: Operation, stop: boolean): boolean {
  const { observed } = draft;
  const id = savepointIdOf(op);
  const recordName = op.savepoint ?? `${jobName(draft)}-${id}`;
  const seen = observed.savepoint?.id === id ? observed.savepoint : undefined;
  // The StreamSavepoint that records it comes first (again, if an operator stopped between
  // recording the step and creating it), then the pods are asked.
  if (!observed.savepoints.some((s) => s.name === recordName))
    draft.actions.push({
      kind: "create",
      // A savepoint of its own not requested by anyone is a periodic one.
      object: streamSavepoint(
        draft.job,
        recordName,
        op.kind === "savepoint" ? "periodic" : triggerOf(op.kind),
        stop,
      ),
    });
  if (!op.savepoint || !op.savepointId)
    draft.operation = op = { ...op, savepoint: recordName, savepointId: id };
  const recorded = observed.savepoints.find((s) => s.name === recordName);
  if (recorded?.state !== "InProgress")
    draft.actions.push({
      kind: "savepointStatus",
      name: recordName,
      status: { state: "InProgress", startTime: savepointStart(op), run: from.id },
    });
  lookAgainIn(draft, SAVEPOINT_POLL_MS);
  if (observed.storageError) {
    // Before any pod was asked nothing stopped; after, some pods may have.
    failSavepoint(draft, from, op, `storage: ${observed.storageError}`, stop && seen !== undefined);
    return false;
  }
  if (seen?.complete) {
    completed(draft, from, op, recordName, seen.pods.map((p) => p.state).filter(isCompleted));
    return true;
  }
  const states = seen?.pods ?? [];
  const failed = states.find((p) => p.state.state === "failed");
  if (failed && failed.state.state === "failed") {
    failSavepoint(draft, from, op, `pod ${failed.name}: ${failed.state.reason}`, stop);
    return false;
  }
  const timeout = draft.job.spec.savepoints?.timeout ?? "5m";
  if (draft.now.getTime() - Date.parse(savepointStart(op) ?? "") > parseDuration(timeout)) {
    const waiting = states.filter((p) => p.state.state !== "completed").map((p) => p.name);
    const pods = waiting.join(", ") || "the pods";
    failSavepoint(draft, from, op, `timed out after ${timeout} waiting for ${pods}`, stop);
    return false;
  }
  const parts = states.map((p) => p.state).filter(isCompleted);
  if (parts.length === from.parallelism) {
    draft.actions.push({
      kind: "completeSavepoint",
      id,
      operators: parts[0]?.operators ?? [],
      parallelism: from.parallelism ?? 0,
    });
    // Completed by this decision's actions: look again at once.
    lookAgainIn(draft, 0);
    return false;
  }
  // A savepoint already on record may have been asked for by an operator that stopped since:
  // the pods are looked at first (an operator that keeps dying right after asking must not
  // keep asking, and never learn the answer).
  const onRecord =
    draft.previous.upgrade?.step === "savepoint" && savepointIdOf(draft.previous.upgrade) === id;
  if (!seen && onRecord) return false;
  // Ask every pod that has not heard of it yet (a pod that restarted meanwhile asks again).
  const askable = new Set(states.filter((p) => p.state.state === "absent").map((p) => p.name));
  for (const pod of livePodsOf(draft, from).filter((p) => p.ip)) {
    if (!seen || askable.has(pod.name))
      draft.actions.push({ kind: "triggerSavepoint", pod: pod.name, ip: pod.ip ?? "", id, stop });
  }
  return false;
}

/**
 * No StreamSavepoint stays InProgress for ever. One the job's history has as completed says so
 * (again: an operator may have stopped between recording the savepoint in the job's status and
 * in its StreamSavepoint, or the cache has not seen that write yet); one that no operation
 * takes any more (called off, or ended while an operator was down) is closed as Failed.
 */
export function closeSavepointRecords(draft: Draft): void {
  const completedOnes = new Map(draft.savepointHistory.map((h) => [h.name, h]));
  const taking = new Set([draft.operation?.savepoint, draft.previous.upgrade?.savepoint]);
  for (const s of draft.observed.savepoints) {
    if (s.state !== "InProgress") continue;
    if (draft.actions.some((a) => a.kind === "savepointStatus" && a.name === s.name)) continue;
    const done = completedOnes.get(s.name);
    if (done) {
      draft.actions.push({
        kind: "savepointStatus",
        name: s.name,
        status: {
          state: "Completed",
          ...(done.path ? { path: done.path } : {}),
          ...(done.sizeBytes !== undefined ? { sizeBytes: done.sizeBytes } : {}),
          ...(done.time ? { completionTime: done.time } : {}),
          ...(done.run ? { run: done.run } : {}),
        },
      });
      continue;
    }
    if (taking.has(s.name)) continue;
    draft.actions.push({
      kind: "savepointStatus",
      name: s.name,
      status: {
        state: "Failed",
        message: "abandoned: the operation that took it ended without it",
        completionTime: draft.now.toISOString(),
      },
    });
  }
}

/**
 * Calls off the savepoint step of `op` when no pod has heard of it (nothing stopped); returns
 * false when some may have (the step must then be finished), undefined before the pods were
 * looked at.
 */
export function callOffSavepoint(draft: Draft, op: Operation, why: string): boolean | undefined {
  const id = savepointIdOf(op);
  const seen = draft.observed.savepoint?.id === id ? draft.observed.savepoint : undefined;
  if (!seen) {
    lookAgainIn(draft, SAVEPOINT_POLL_MS);
    return undefined;
  }
  if (!seen.pods.every((p) => p.state.state === "absent")) return false;
  recordFailure(draft, op, `called off: ${why}`);
  return true;
}

/** The operation's StreamSavepoint (if it has one yet) says it failed, and why. */
function recordFailure(draft: Draft, op: Operation, why: string, from?: Run): void {
  if (!op.savepoint) return;
  draft.actions.push({
    kind: "savepointStatus",
    name: op.savepoint,
    status: {
      state: "Failed",
      message: why,
      startTime: savepointStart(op),
      completionTime: draft.now.toISOString(),
      ...(from?.id ? { run: from.id } : {}),
    },
  });
}

type CompletedPart = Extract<PodSavepointState, { state: "completed" }>;

/** The savepoint exists (`_metadata.json`): recorded, measured, and old ones retired. */
function completed(
  draft: Draft,
  from: Run,
  op: Operation,
  recordName: string,
  parts: CompletedPart[],
): void {
  const path = parts[0]?.path ?? "";
  const record: SavepointRecord = {
    name: recordName,
    path,
    time: draft.now.toISOString(),
    trigger: op.kind === "savepoint" ? triggerOfRecord(draft, recordName) : triggerOf(op.kind),
    sizeBytes: parts.reduce((sum, s) => sum + s.bytes, 0),
    run: from.id,
  };
  draft.lastSavepoint = record;
  draft.savepointHistory = [
    record,
    ...draft.savepointHistory.filter((h) => h.name !== recordName),
  ].slice(0, HISTORY_LENGTH);
  draft.actions.push({
    kind: "savepointStatus",
    name: recordName,
    status: {
      state: "Completed",
      path,
      sizeBytes: record.sizeBytes,
      startTime: savepointStart(op),
      completionTime: record.time,
      run: from.id,
    },
  });
  const seconds = secondsSince(draft, savepointStart(op));
  emit(
    draft,
    "Normal",
    "SavepointCompleted",
    `savepoint ${recordName} of run ${from.id} completed: ${path} (${record.sizeBytes} bytes, ${seconds} s)`,
  );
  retain(draft, path);
  draft.measurements.savepoints.push({
    result: "completed",
    seconds,
    bytes: record.sizeBytes ?? 0,
  });
  // A stop-with-savepoint stopped processing when the pods took their parts, right after
  // they were asked: the downtime counts from the savepoint's start.
  draft.operation =
    op.kind === "savepoint"
      ? undefined
      : { ...op, step: "stopping", savepointPath: path, stopTime: savepointStart(op) };
}

/**
 * A savepoint that cannot be taken changes nothing for good: the run goes on (its pods
 * restart from their checkpoints if the attempt stopped them), `Degraded` says why, and the
 * operation is tried again after a back-off.
 */
function failSavepoint(draft: Draft, from: Run, op: Operation, why: string, stop: boolean): void {
  const retryMs = retryDelayMs(op.attempt ?? 1);
  const retryTime = new Date(draft.now.getTime() + retryMs).toISOString();
  recordFailure(draft, op, why, from);
  emit(draft, "Warning", "SavepointFailed", `savepoint of run ${from.id} failed: ${why}`);
  retain(draft, undefined);
  draft.measurements.savepoints.push({
    result: "failed",
    seconds: secondsSince(draft, savepointStart(op)),
  });
  draft.problem = degraded("SavepointFailed", why);
  if (op.kind === "savepoint") {
    // A savepoint that leaves the job running stopped nothing; a periodic one waits too.
    draft.operation = { ...op, step: "retry-wait", lastError: why, retryTime };
    return;
  }
  if (op.kind === "delete") {
    // Deletion is not held hostage by storage: the checkpoints stay in the bucket.
    draft.operation = { ...op, mode: "last-state", step: "stopping", lastError: why };
    return;
  }
  // Allowed by the spec, and the run's checkpoints are recent enough: go on without it.
  const savepoints = draft.job.spec.savepoints;
  const age = draft.observed.savepoint?.checkpointAgeSeconds;
  if (
    savepoints?.fallbackToLastState &&
    age !== undefined &&
    age * 1000 <= parseDuration(savepoints.maxCheckpointAge ?? "5m")
  ) {
    emit(
      draft,
      "Warning",
      "FallingBackToLastState",
      `${op.kind} goes on from the run's checkpoints (the oldest is ${Math.round(age)} s old)`,
    );
    draft.operation = {
      ...op,
      mode: "last-state",
      step: "stopping",
      lastError: why,
      stopTime: draft.now.toISOString(),
    };
    deletePods(draft, livePodsOf(draft, from), `run ${from.id} is replaced (${op.kind})`);
    return;
  }
  if (stop) deletePods(draft, livePodsOf(draft, from), "resuming after a failed savepoint");
  draft.operation = { ...op, step: "retry-wait", lastError: why, retryTime };
  lookAgainIn(draft, retryMs);
}

/**
 * Keeps `retention.maxCount` completed savepoints (and as many failed ones) and none older than
 * `maxAge`; the newest completed one and any in use (the run's restore source, `justTaken`)
 * always stay. `justTaken` undefined: a savepoint just failed.
 */
function retain(draft: Draft, justTaken: string | undefined): void {
  const retention = draft.job.spec.savepoints?.retention;
  const maxCount = retention?.maxCount ?? 10;
  const maxAgeMs = retention?.maxAge ? parseDuration(retention.maxAge) : undefined;
  const inUse = new Set([justTaken, draft.run?.restoredFrom, draft.operation?.savepointPath]);
  const finished = draft.observed.savepoints
    .filter((s) => s.state === "Completed" || s.state === "Failed")
    .sort((a, b) => (b.time ?? "").localeCompare(a.time ?? ""));
  // The one just taken is newer than all of them: it counts first. Failed ones are counted
  // apart (as many as completed ones are kept), so failures never push a good one out.
  const kept = justTaken === undefined ? { Completed: 0, Failed: 1 } : { Completed: 1, Failed: 0 };
  for (const s of finished) {
    const old = maxAgeMs !== undefined && draft.now.getTime() - Date.parse(s.time ?? "") > maxAgeMs;
    const state = s.state === "Completed" ? "Completed" : "Failed";
    if (inUse.has(s.path) || (kept[state] < maxCount && !old)) {
      kept[state]++;
      continue;
    }
    draft.actions.push({
      kind: "deleteSavepoint",
      name: s.name,
      ...(s.path ? { path: s.path } : {}),
    });
  }
}

/** The StreamSavepoint's trigger for an operation's savepoint. */
function triggerOf(kind: OperationKind | undefined): SavepointRecord["trigger"] {
  switch (kind) {
    case "rescale":
    case "suspend":
    case "delete":
    case "drain":
      return kind;
    case "savepoint":
      return "manual";
    default:
      return "upgrade";
  }
}

/** A savepoint that leaves the job running is manual or periodic, as its StreamSavepoint says. */
function triggerOfRecord(draft: Draft, name: string): SavepointRecord["trigger"] {
  return draft.observed.savepoints.find((s) => s.name === name)?.trigger ?? "periodic";
}

function isCompleted(state: PodSavepointState): state is CompletedPart {
  return state.state === "completed";
}

function streamSavepoint(
  job: StreamJob,
  name: string,
  trigger: SavepointRecord["trigger"],
  stop: boolean,
): StreamSavepoint {
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamSavepoint",
    // No owner reference: the history (and a savepoint taken on delete) outlives the job;
    // retention removes what is old.
    metadata: {
      name,
      namespace: job.metadata.namespace,
      labels: jobLabels(job.metadata.name ?? ""),
    },
    spec: { jobName: job.metadata.name ?? "", stop, trigger: trigger ?? "manual" },
  };
}
