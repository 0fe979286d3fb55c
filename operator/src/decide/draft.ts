// The decision in the making: what one call of decide() has settled so far (the status fields
// it may change, the actions, the Events, the measurements) and the helpers the operations add
// to it with. A draft lives for one decision and is its only mutable state; status.ts turns it
// into the Decision.
import type { SavepointRecord, StreamJob, StreamJobStatus } from "../api/types.ts";
import type { RunRef } from "../build/run-objects.ts";
import type { ConditionInput } from "./conditions.ts";
import { type RunSpec, specHash } from "./run-spec.ts";
import type {
  Action,
  EventSpec,
  JobState,
  Measurements,
  Observed,
  ObservedPod,
  Operation,
  Run,
  RunTarget,
  Target,
} from "./types.ts";

export interface Draft {
  readonly observed: Observed;
  readonly job: StreamJob;
  /** The status this decision started from. */
  readonly previous: StreamJobStatus;
  readonly now: Date;
  readonly actions: Action[];
  readonly events: EventSpec[];
  readonly measurements: Measurements;
  state: JobState;
  run: Run | undefined;
  /** The operation in flight (`status.upgrade`). */
  operation: Operation | undefined;
  lastSavepoint: SavepointRecord | undefined;
  savepointHistory: SavepointRecord[];
  rollback: StreamJobStatus["rollback"];
  autoscaler: StreamJobStatus["autoscaler"];
  /** Ready pods of the run being kept whole (what the Ready condition counts). */
  readyPods: number;
  /** Degraded because of a failed step (beside an invalid spec or failing pods). */
  problem: ConditionInput | undefined;
  /** When to look again, if sooner than status.ts's resync (see lookAgainWithin, lookAgainIn). */
  requeueAfterMs: number | undefined;
  /** Where the decision leads (set once decided; its parallelism is status.desiredParallelism). */
  target: Target | undefined;
  /** The source's partitions as the pods last reported them (what a rescale is checked against). */
  partitions: number | undefined;
}

export function draftOf(observed: Observed): Draft {
  const previous = observed.job.status ?? {};
  return {
    observed,
    job: observed.job,
    previous,
    now: observed.now,
    actions: [],
    events: [],
    measurements: { savepoints: [], operations: [], autoscalerDecisions: [], standbys: [] },
    state: previous.state ?? "Deploying",
    run: previous.run,
    operation: previous.upgrade,
    lastSavepoint: previous.lastSavepoint,
    savepointHistory: previous.savepointHistory ?? [],
    rollback: previous.rollback,
    autoscaler: previous.autoscaler,
    readyPods: 0,
    problem: undefined,
    requeueAfterMs: undefined,
    target: undefined,
    partitions: observed.load?.partitions ?? previous.partitions,
  };
}

export function jobName(draft: Draft): string {
  return draft.job.metadata.name ?? "";
}

/** The run whose pods should exist (none while suspended, or when no valid spec has run). */
export function activeRun(draft: Draft): Run | undefined {
  const { run, state } = draft;
  return run && state !== "Suspended" && state !== "Failed" ? run : undefined;
}

/** The job's state while `op` is under way. */
export function stateDuring(op: Operation): JobState {
  return op.kind === "delete" ? "Deleting" : op.kind === "rollback" ? "RollingBack" : "Upgrading";
}

/** The job's pods that are not on their way out. */
export function livePods(draft: Draft): ObservedPod[] {
  return draft.observed.pods.filter((p) => !p.terminating);
}

export function livePodsOf(draft: Draft, run: Run): ObservedPod[] {
  return livePods(draft).filter((p) => p.run === run.id);
}

/** Deletes each pod once per decision, with an Event that says why. */
export function deletePods(draft: Draft, pods: ObservedPod[], why: string): void {
  for (const pod of pods) {
    if (draft.actions.some((a) => a.kind === "deletePod" && a.name === pod.name)) continue;
    draft.actions.push({ kind: "deletePod", name: pod.name, ...(pod.uid ? { uid: pod.uid } : {}) });
    emit(draft, "Normal", "DeletedPod", `deleted pod ${pod.name}: ${why}`);
  }
}

export function emit(draft: Draft, type: EventSpec["type"], reason: string, message: string): void {
  draft.events.push({ type, reason, message });
}

/** Look again within `ms` at the latest (an earlier request for a sooner look stands). */
export function lookAgainWithin(draft: Draft, ms: number): void {
  draft.requeueAfterMs = Math.min(draft.requeueAfterMs ?? ms, ms);
}

/**
 * Look again in `ms`, whatever was asked before: a savepoint in flight owns the timing (its
 * poll, at once when it completes, the end of its back-off).
 */
export function lookAgainIn(draft: Draft, ms: number): void {
  draft.requeueAfterMs = ms;
}

/** Seconds from `time` to now, to a tenth (Events and metrics). */
export function secondsSince(draft: Draft, time: string | undefined): number {
  return Math.round((draft.now.getTime() - Date.parse(time ?? "")) / 100) / 10;
}

export function degraded(reason: string, message: string): ConditionInput {
  return { type: "Degraded", status: "True", reason, message };
}

const RETRY_BASE_MS = 10_000;
const RETRY_CAP_MS = 10 * 60_000;

/** The back-off before asking again (a refused object, a failed savepoint): 10 s doubling to 10 min. */
export function retryDelayMs(attempt: number): number {
  return Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
}

/** Whether the autoscaler owns parallelism (enabled, and not only recommending). */
export function autoscalerOwnsParallelism(job: StreamJob): boolean {
  const spec = job.spec.autoscaler;
  return spec?.enabled === true && !spec.dryRun;
}

/** The RunSpec a run was started from, as status keeps it. */
export function runSpecFrom(run: Run): RunSpec {
  return run.spec as unknown as RunSpec;
}

/** The run in place as a target: it stays as it is. */
export function runTargetOf(run: Run): RunTarget {
  return { spec: runSpecFrom(run), hash: run.specHash ?? "" };
}

export function withHash(spec: RunSpec): RunTarget {
  return { spec, hash: specHash(spec) };
}

/** What build/ needs to make the objects of `run` from `desired`. */
export function runRef(job: StreamJob, run: Run, desired: RunTarget): RunRef {
  return {
    job,
    id: run.id ?? "",
    spec: desired.spec,
    specHash: desired.hash,
    ...(run.restoredFrom ? { restoreFrom: run.restoredFrom } : {}),
  };
}

/** Condition messages and Events stay readable (and within the API's limits). */
export function truncate(message: string, max = 1000): string {
  return message.length <= max ? message : `${message.slice(0, max - 1)}…`;
}
