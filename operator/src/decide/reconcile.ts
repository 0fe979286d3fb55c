// The StreamJob reconciler's decision: from the job and what was observed of its pods and its
// savepoints to the status to write and the actions to take — pure, no I/O. The status is
// written before the actions are taken, so the step an operation is at is always on record: an
// operator that dies mid-way finds it there and carries on.
//
// The job converges on one *run* at a time: `parallelism` pods `<job>-<run>-<i>` built from
// the run's RunSpec (kept in status, so a run survives any later change of the spec). Moving
// from one run to the next — or to suspended, or to deleted — is an *operation*
// (`status.upgrade`) whose steps are:
//
//   savepoint   (mode savepoint) every pod takes its part of a stop-with-savepoint; once all
//               parts are in, the operator completes it (`_metadata.json`); a failure resumes
//               the old run and retries after a back-off (`retry-wait`)
//   stopping    every pod of the old run is deleted (last-state and stateless start here)
//   starting    the next run's pods exist, restoring from the savepoint (or their checkpoints)
//   suspended   the job rests; resuming starts a run from where it stopped
//
// A new run starts only once every pod of the previous one is gone: two runs never process at
// the same time. A savepoint that leaves the job running (manual or periodic) is an operation
// of kind `savepoint` with only the first step.
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { MAX_PARALLELISM } from "../api/schema.ts";
import type {
  SavepointRecord,
  StreamJob,
  StreamJobStatus,
  StreamSavepoint,
  StreamSavepointStatus,
} from "../api/types.ts";
import { parseDuration } from "../api/validate.ts";
import { FINALIZER, jobLabels, jobSelector, nextRunId } from "../build/names.ts";
import { buildConfigMap, buildPod, jobFieldOf, type RunRef } from "../build/run-objects.ts";
import type { AutoscalingInputs } from "../observe/job-metrics.ts";
import type { PodSavepointState } from "../observe/runtime-control.ts";
import { type AutoscalerReason, decideParallelism, rememberRecommendation } from "./autoscaler.ts";
import { type ConditionInput, conditionOf, setCondition } from "./conditions.ts";
import { classifyChange, type RunSpec, runSpecOf, specHash } from "./run-spec.ts";

export interface ObservedPod {
  name: string;
  /** `weir.dev/run` label. */
  run: string | undefined;
  /** `weir.dev/subtask` label. */
  subtask: number | undefined;
  /** Whether the pod's controller is this StreamJob (same uid), not a namesake's. */
  ownedByJob: boolean;
  phase: string;
  ready: boolean;
  terminating: boolean;
  ip?: string;
  /** When the pod object was created (epoch ms). */
  createdAt?: number;
  /** Why a container cannot run, when a person must act (ErrImagePull, CrashLoopBackOff, …). */
  problem?: string;
  /** A container that keeps exiting with an error: which one, after how many restarts, how. */
  crash?: { uid: string; container: string; restarts: number; exitCode: number };
}

/** A running job's load from the latest whole scrape of its run. */
export interface JobLoad {
  /** Records not processed yet, summed over every task (status.lag). */
  lag: number;
  /** Source partitions, as the pods report their tasks (status.partitions). */
  partitions: number;
}

/** The API server refused to create an object of a run (what act saw, for the next decision). */
export interface ObservedRefusal {
  kind: "Pod" | "ConfigMap";
  name: string;
  /** The run the object belongs to. */
  run: string;
  code: number;
  /** The API server's own words. */
  message: string;
  /** The object's field the API server named, e.g. `metadata.labels`. */
  field?: string;
}

/** The savepoint in flight, as the pods of the run and the storage see it. */
export interface ObservedSavepoint {
  id: string;
  /** Each live pod of the run being saved, and what it says about this savepoint. */
  pods: { name: string; state: PodSavepointState }[];
  /** `_metadata.json` is written: the savepoint exists. */
  complete: boolean;
  /** The oldest last checkpoint among the run's tasks (observed when a fall-back is allowed). */
  checkpointAgeSeconds?: number;
}

/** A StreamSavepoint of this job, as the reconciler needs it. */
export interface ObservedSavepointRecord {
  name: string;
  trigger: StreamSavepoint["spec"]["trigger"];
  stop: boolean;
  state: StreamSavepointStatus["state"];
  path?: string;
  /** When it completed or failed (for retention). */
  time?: string;
}

export interface Observed {
  job: StreamJob;
  pods: ObservedPod[];
  /** Why the spec cannot be run (schema and operator checks); empty when it can. */
  specErrors: string[];
  /** The job's StreamSavepoints (manual requests and the history). */
  savepoints: ObservedSavepointRecord[];
  /** Present while a savepoint is in flight (`status.upgrade.step` is `savepoint`). */
  savepoint?: ObservedSavepoint;
  /** Why the job's storage cannot be used right now (checked before a savepoint starts). */
  storageError?: string;
  /**
   * Why the job's storage cannot be used, from the latest check in the background (reported in
   * Degraded: the runtime checkpoints there; a savepoint checks afresh).
   */
  storageHealth?: string;
  /** A fresh look at the job's load (once per metricsInterval, while autoscaling). */
  autoscaling?: AutoscalingInputs;
  /** Lag and partitions, from the latest whole scrape of a running job's run. */
  load?: JobLoad;
  /** What the API server refused in this reconcile's actions (decided on at once). */
  refusal?: ObservedRefusal;
  now: Date;
}

export type Action =
  | { kind: "addFinalizer" }
  | { kind: "removeFinalizer" }
  | { kind: "create"; object: V1Pod | V1ConfigMap | StreamSavepoint }
  | { kind: "deletePod"; name: string }
  /** Removes the job's run ConfigMaps, except the one of `keepRun`. */
  | { kind: "deleteConfigMaps"; keepRun?: string }
  | { kind: "triggerSavepoint"; pod: string; ip: string; id: string; stop: boolean }
  /** Writes the savepoint's `_metadata.json` from the parts of its `parallelism` pods. */
  | { kind: "completeSavepoint"; id: string; operators: string[]; parallelism: number }
  | { kind: "savepointStatus"; name: string; status: StreamSavepointStatus }
  /** Deletes a savepoint's objects from the bucket and its StreamSavepoint. */
  | { kind: "deleteSavepoint"; name: string; path?: string };

export interface EventSpec {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** What a decision measured, for the operator's metrics. */
export interface Measurements {
  savepoints: { result: "completed" | "failed"; seconds: number; bytes?: number }[];
  /** Operations that completed: how long they took, and how long nothing was processed. */
  operations: { kind: string; seconds: number; downtimeSeconds: number }[];
  /** The autoscaler's decisions, by reason. */
  autoscalerDecisions: AutoscalerReason[];
}

export interface Decision {
  status: StreamJobStatus;
  measurements: Measurements;
  actions: Action[];
  events: EventSpec[];
  /** Look again after this long even if nothing changes (pods are watched; this is a safety net). */
  requeueAfterMs: number;
}

type Run = NonNullable<StreamJobStatus["run"]>;
type State = NonNullable<StreamJobStatus["state"]>;
type Operation = NonNullable<StreamJobStatus["upgrade"]>;
type OperationKind = NonNullable<Operation["kind"]>;
type Mode = NonNullable<Operation["mode"]>;
/** Where an operation leads: a run of this spec, a suspended job, or no job at all. */
type Target = { spec: RunSpec; hash: string } | "suspended" | "deleted";

const SETTLED_RESYNC_MS = 60_000;
const BUSY_RESYNC_MS = 5_000;
/** A savepoint in flight is polled this often. */
export const SAVEPOINT_POLL_MS = 200;
/**
 * A run's pods are created like a ReplicaSet's slow start, but on readiness: this many at
 * first, then as many more as are ready. A spec that cannot run fails on its first pods, not on
 * a thousand of them; a healthy run of up to this many starts at once.
 */
const SLOW_START_PODS = 8;
const HISTORY_LENGTH = 20;
const RETRY_BASE_MS = 10_000;
const RETRY_CAP_MS = 10 * 60_000;

export function decide(o: Observed): Decision {
  return new Reconcile(o).decide();
}

/** One decision in the making: what it has decided so far, and the helpers to add to it. */
class Reconcile {
  readonly o: Observed;
  readonly job: StreamJob;
  readonly previous: StreamJobStatus;
  readonly now: Date;
  readonly actions: Action[] = [];
  readonly events: EventSpec[] = [];
  readonly measurements: Measurements = { savepoints: [], operations: [], autoscalerDecisions: [] };
  state: State;
  run: Run | undefined;
  op: Operation | undefined;
  lastSavepoint: SavepointRecord | undefined;
  rollback: StreamJobStatus["rollback"];
  autoscaler: StreamJobStatus["autoscaler"];
  history: SavepointRecord[];
  readyPods = 0;
  /** Degraded because of a failed step (beside an invalid spec or failing pods). */
  stepProblem: ConditionInput | undefined;
  /** Set by a step that needs a look sooner (a savepoint being polled, a retry, a periodic savepoint). */
  requeueAfterMs: number | undefined;
  /** Where the decision leads (set once decided; its parallelism is status.desiredParallelism). */
  target: Target | undefined;
  /** The source's partitions as the pods last reported them (what a rescale is checked against). */
  partitions: number | undefined;

  constructor(o: Observed) {
    this.o = o;
    this.job = o.job;
    this.previous = o.job.status ?? {};
    this.now = o.now;
    this.state = this.previous.state ?? "Deploying";
    this.run = this.previous.run;
    this.op = this.previous.upgrade;
    this.lastSavepoint = this.previous.lastSavepoint;
    this.rollback = this.previous.rollback;
    this.autoscaler = this.previous.autoscaler;
    this.history = this.previous.savepointHistory ?? [];
    this.partitions = o.load?.partitions ?? this.previous.partitions;
  }

  get name(): string {
    return this.job.metadata.name ?? "";
  }

  /** The run whose pods should exist (none while suspended). */
  get activeRun(): Run | undefined {
    return this.run && this.state !== "Suspended" && this.state !== "Failed" ? this.run : undefined;
  }

  get live(): ObservedPod[] {
    return this.o.pods.filter((p) => !p.terminating);
  }

  decide(): Decision {
    const { job } = this;
    const valid = this.o.specErrors.length === 0;
    if (!job.metadata.deletionTimestamp && !job.metadata.finalizers?.includes(FINALIZER))
      this.actions.push({ kind: "addFinalizer" });
    const refusal = this.o.refusal;
    if (refusal && this.run && refusal.run === this.run.id) this.recordRefusal(this.run, refusal);
    const active = this.activeRun;
    // An invalid spec's autoscaler settings are not to be trusted either.
    if (valid) this.autoscale(active);

    // What the job should become. A refused spec keeps the last good run as it was.
    let target: Target | undefined = job.metadata.deletionTimestamp
      ? "deleted"
      : !valid
        ? active?.spec
          ? { spec: runSpecFrom(active), hash: active.specHash ?? "" }
          : undefined
        : job.spec.state === "suspended"
          ? "suspended"
          : withHash(
              runSpecOf({ ...job, status: { ...this.previous, autoscaler: this.autoscaler } }),
            );
    // A spec that was rolled back is not tried again: the stable one runs until the spec changes.
    const rolledBack = this.previous.rollback;
    if (typeof target === "object" && target.hash === rolledBack?.specHash) {
      const stable = this.previous.lastStableSpec;
      if (stable)
        target = { spec: stable as unknown as RunSpec, hash: rolledBack.toSpecHash ?? "" };
      this.stepProblem = {
        type: "Degraded",
        status: "True",
        reason: "RolledBack",
        message: `${rolledBack.reason}; rolled back to spec ${rolledBack.toSpecHash}. Change the spec to try again.`,
      };
    }
    const abovePartitions = typeof target === "object" && this.aboveThePartitions(active, target);
    if (abovePartitions && active) {
      // A rescale the source cannot take: the run in place goes on.
      this.stepProblem = abovePartitions;
      target = { spec: runSpecFrom(active), hash: active.specHash ?? "" };
    }
    this.target = target;

    if (this.op?.kind === "savepoint" && target !== "deleted") this.savepointOnly();
    else if (target === undefined) this.nothingToRun();
    else if (active && !(typeof target === "object" && target.hash === active.specHash))
      this.replace(active, target);
    else if (target === "deleted") this.finishDeletion();
    else if (target === "suspended") this.rest();
    else if (active) this.maintain(active, target);
    else this.startRun(target);

    if (this.state === "Running" && !this.op) this.maybeStartSavepoint();
    const refused = this.activeRun?.refused;
    if (refused && !this.stepProblem)
      this.stepProblem = {
        type: "Degraded",
        status: "True",
        reason: "PodsRefused",
        message: `${refusalText(refused)}; asked again at ${refused.retryTime}`,
      };
    if (this.o.storageHealth && !this.stepProblem)
      this.stepProblem = {
        type: "Degraded",
        status: "True",
        reason: "StorageUnusable",
        message: `spec.savepoints.storage: ${this.o.storageHealth}`,
      };
    return this.finish(valid);
  }

  /**
   * A rescale above the source's partition count (as the run's pods report it) is refused
   * before any pod stops: every pod must own a partition. Only a rescale: a change of anything
   * else may change the source too.
   */
  aboveThePartitions(
    active: Run | undefined,
    target: { spec: RunSpec; hash: string },
  ): ConditionInput | undefined {
    const partitions = this.partitions;
    const p = target.spec.parallelism;
    if (!active?.spec || !partitions || p <= partitions) return undefined;
    if (classifyChange(runSpecFrom(active), target.spec) !== "rescale") return undefined;
    const field =
      this.autoscalerOwnsParallelism && this.job.spec.autoscaler.minParallelism > partitions
        ? "spec.autoscaler.minParallelism"
        : "spec.parallelism";
    return {
      type: "Degraded",
      status: "True",
      reason: "ParallelismAbovePartitions",
      message: `${field}: ${p} pods are more than the ${partitions} partitions of the job's source (every pod must own one); run ${active.id} keeps ${active.parallelism}`,
    };
  }

  /**
   * The API server refused an object of `run`: kept on the run (its words, and when to ask
   * again, backing off), so no decision creates its objects before then.
   */
  recordRefusal(run: Run, refusal: ObservedRefusal): void {
    const attempt = (run.refused?.attempt ?? 0) + 1;
    const retryMs = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
    const ref = runRef(this.job, run, { spec: runSpecFrom(run), hash: run.specHash ?? "" });
    const field = refusal.field ? jobFieldOf(ref, refusal.kind, refusal.field) : undefined;
    this.run = {
      ...run,
      refused: {
        object: `${refusal.kind} ${refusal.name}`,
        code: refusal.code,
        ...(field ? { field } : {}),
        message: truncate(refusal.message, 600),
        time: this.now.toISOString(),
        attempt,
        retryTime: new Date(this.now.getTime() + retryMs).toISOString(),
      },
    };
  }

  /** Whether `run`'s objects were refused and it is not yet time to ask again. */
  waitingOnRefusal(run: Run): boolean {
    const retry = Date.parse(run.refused?.retryTime ?? "");
    if (!(retry > this.now.getTime())) return false;
    this.requeueAfterMs = Math.min(this.requeueAfterMs ?? retry, retry - this.now.getTime());
    return true;
  }

  // --- the steps --------------------------------------------------------------------------

  /** The run in place is the right one: keep exactly its pods, one per subtask. */
  maintain(active: Run, spec: { spec: RunSpec; hash: string }): void {
    const p = spec.spec.parallelism;
    const pods = this.o.pods;
    const others = pods.filter((pod) => pod.run !== active.id || !pod.ownedByJob);
    this.deletePods(
      others.filter((pod) => !pod.terminating),
      "it belongs to another run",
    );
    const keep = new Map<number, ObservedPod>();
    // A subtask whose pod is going (terminating, or deleted now) gets its pod back once it is gone.
    const going = new Set<number>();
    for (const pod of pods.filter((pod) => pod.run === active.id && pod.ownedByJob)) {
      const i = pod.subtask;
      if (pod.terminating) {
        if (i !== undefined) going.add(i);
      } else if (i === undefined || i >= p || keep.has(i)) {
        this.deletePods([pod], "no such subtask in this run");
      } else if (pod.phase === "Failed" || pod.phase === "Succeeded") {
        this.deletePods([pod], `its phase is ${pod.phase}; it is replaced`);
        going.add(i);
      } else keep.set(i, pod);
    }
    this.readyPods = [...keep.values()].filter((pod) => pod.ready).length;
    // A missing pod is recreated, but never next to a pod of another run, and only as many
    // at a time as the slow start allows.
    let created = 0;
    if (others.length === 0) {
      const missing = range(p).filter((i) => !keep.has(i) && !going.has(i));
      if (missing.length === 0 && active.refused) this.run = withoutRefusal(active);
      else if (missing.length > 0 && !this.waitingOnRefusal(active)) {
        const starting = keep.size - this.readyPods;
        const room = Math.max(SLOW_START_PODS, this.readyPods) - starting;
        const batch = missing.slice(0, Math.max(0, room));
        const ref = runRef(this.job, active, spec);
        if (batch.length > 0) this.actions.push({ kind: "create", object: buildConfigMap(ref) });
        for (const i of batch) {
          const pod = buildPod(ref, i);
          this.actions.push({ kind: "create", object: pod });
          this.event("Normal", "CreatedPod", `created pod ${pod.metadata?.name}`);
        }
        created = batch.length;
      }
    }
    if (others.length === 0 && this.readyPods === p) {
      // Ready again in the middle of an operation (a retry's wait) is not news.
      if (this.previous.state !== "Running" && (!this.op || this.op.step === "starting")) {
        const op = this.op;
        let what = "";
        if (op?.kind && op.step === "starting") {
          const seconds = this.secondsSince(op.startTime);
          const downtimeSeconds = this.secondsSince(op.stopTime ?? op.startTime);
          this.measurements.operations.push({ kind: op.kind, seconds, downtimeSeconds });
          if (op.kind === "rescale" && this.autoscalerOwnsParallelism)
            this.recordRescale(op, p, downtimeSeconds);
          what = `${op.kind} completed in ${seconds} s (downtime ${downtimeSeconds} s): `;
        }
        this.event("Normal", "RunReady", `${what}run ${active.id} has all ${p} pods ready`);
      }
      this.state = "Running";
      if (this.op?.step === "starting") this.op = undefined;
    } else {
      this.state = this.op
        ? this.op.kind === "rollback"
          ? "RollingBack"
          : "Upgrading"
        : "Deploying";
      this.rollBackIfFailed(this.run ?? active, created > 0);
    }
  }

  /**
   * A new run whose objects the API server refuses, or that is not Ready within
   * `readinessTimeout`, is replaced by a run of the last stable spec (its state from the
   * checkpoints at the committed offsets: those of the savepoint just taken, unless the new run
   * committed more).
   */
  rollBackIfFailed(active: Run, creatingPods: boolean): void {
    const op = this.op;
    const stableHash = this.previous.lastStableSpecHash;
    if (op?.step !== "starting" || op.kind === "rollback") return;
    if (!this.previous.lastStableSpec || !stableHash || stableHash === active.specHash) return;
    const run = `run ${active.id} (spec ${active.specHash})`;
    if (active.refused) {
      this.rollBack(active, stableHash, `${run}: ${refusalText(active.refused)}`);
      return;
    }
    const timeout = this.job.spec.readinessTimeout ?? "2m";
    // The clock starts once the operator created the last pod it could (an operator that was
    // down meanwhile does not count against the run).
    if (creatingPods) return;
    const pods = this.live.filter((p) => p.run === active.id);
    const since = Math.max(
      Date.parse(active.startTime ?? ""),
      ...pods.map((p) => p.createdAt ?? 0),
    );
    const late = this.now.getTime() - since > parseDuration(timeout);
    if (!late) {
      this.requeueAfterMs = Math.min(this.requeueAfterMs ?? BUSY_RESYNC_MS, BUSY_RESYNC_MS);
      return;
    }
    this.rollBack(active, stableHash, `${run} was not ready within ${timeout}`);
  }

  /** Replaces `active` by a run of the stable spec; `reason` is remembered with its hash. */
  rollBack(active: Run, stableHash: string, reason: string): void {
    this.rollback = {
      specHash: active.specHash,
      run: active.id,
      toSpecHash: stableHash,
      reason,
      time: this.now.toISOString(),
    };
    this.op = {
      kind: "rollback",
      mode: "last-state",
      step: "stopping",
      fromRun: active.id,
      toSpecHash: stableHash,
      startTime: this.now.toISOString(),
      attempt: 1,
    };
    this.state = "RollingBack";
    this.stepProblem ??= {
      type: "Degraded",
      status: "True",
      reason: "RolledBack",
      message: `${reason}; rolling back to spec ${stableHash}`,
    };
    this.event("Warning", "RollingBack", `${reason}: rolling back to spec ${stableHash}`);
    this.deletePods(this.live, "rolling back");
  }

  /** No pod of the job is left and it should run: start the next run. */
  startRun(spec: { spec: RunSpec; hash: string }): void {
    if (this.o.pods.length > 0) {
      // Pods of an earlier run are still going (e.g. after a resume during a stop).
      this.deletePods(this.live, "a new run is due");
      this.state = "Deploying";
      return;
    }
    const op = this.op;
    // Where the run's state comes from: the operation's savepoint; none at all for a stateless
    // operation (`none`: empty state from the committed offsets on); for a brand-new job its
    // initial savepoint; otherwise each task restores its checkpoint at its committed offset.
    const restoreFrom =
      op?.mode === "savepoint"
        ? op.savepointPath
        : op?.mode === "stateless"
          ? "none"
          : !this.previous.run
            ? this.job.spec.initialSavepoint
            : undefined;
    const next: Run = {
      id: nextRunId(this.previous.run?.id),
      spec: spec.spec as unknown as Record<string, unknown>,
      specHash: spec.hash,
      parallelism: spec.spec.parallelism,
      image: spec.spec.image,
      startTime: this.now.toISOString(),
      ...(restoreFrom ? { restoredFrom: restoreFrom } : {}),
    };
    // A run of another spec may read another source: its partitions are not known yet.
    const previousSpec = this.previous.run?.spec as RunSpec | undefined;
    if (previousSpec && classifyChange(previousSpec, spec.spec) === "upgrade")
      this.partitions = undefined;
    this.run = next;
    const ref = runRef(this.job, next, spec);
    this.actions.push(
      { kind: "deleteConfigMaps", keepRun: next.id },
      { kind: "create", object: buildConfigMap(ref) },
    );
    for (const i of range(Math.min(spec.spec.parallelism, SLOW_START_PODS)))
      this.actions.push({ kind: "create", object: buildPod(ref, i) });
    const why = op?.step === "suspended" ? "resume" : (op?.kind ?? "start");
    if (op)
      this.op = { ...op, kind: op.step === "suspended" ? "resume" : op.kind, step: "starting" };
    this.event(
      "Normal",
      "RunStarted",
      `${why}: started run ${next.id} with ${next.parallelism} pods of ${next.image} (spec ${next.specHash})${restoreFrom ? `, restoring ${restoreFrom}` : ""}`,
    );
    this.state = this.op ? "Upgrading" : "Deploying";
  }

  /**
   * The active run must make way (for another spec, a suspension or the deletion): the
   * operation goes through its steps, one decision at a time.
   */
  replace(active: Run, target: Target): void {
    const kind = this.op?.kind === "rollback" ? "rollback" : operationKind(active, target);
    let op = this.op;
    if (!op || op.fromRun !== active.id || op.step === "starting" || op.step === "suspended") {
      op = this.beginOperation(kind, active);
    } else if (op.kind !== kind || op.toSpecHash !== hashOf(target)) {
      // The target moved while the operation was under way: its progress still counts.
      op = { ...op, kind, ...(hashOf(target) ? { toSpecHash: hashOf(target) } : {}) };
    }
    this.op = op;
    const busy: State =
      kind === "delete" ? "Deleting" : kind === "rollback" ? "RollingBack" : "Upgrading";
    this.state = busy;

    if (op.step === "retry-wait") {
      // The old run goes on (its pods come back if the failed step stopped them) until the
      // back-off is over.
      this.maintain(active, { spec: runSpecFrom(active), hash: active.specHash ?? "" });
      this.state = busy;
      this.stepProblem = {
        type: "Degraded",
        status: "True",
        reason: "SavepointFailed",
        message: `${op.lastError ?? "savepoint failed"}; run ${active.id} goes on, retrying at ${op.retryTime}`,
      };
      if (Date.parse(op.retryTime ?? "") > this.now.getTime()) {
        this.requeueAfterMs = Math.max(1_000, Date.parse(op.retryTime ?? "") - this.now.getTime());
        return;
      }
      this.op = op = this.beginOperation(kind, active, (op.attempt ?? 1) + 1);
    }
    if (op.step === "savepoint") {
      if (!this.takeSavepoint(active, op, true)) return;
      op = this.op ?? op;
    }
    if (op.step === "stopping") {
      this.deletePods(this.live, `run ${active.id} is replaced (${op.kind})`);
      if (this.o.pods.length > 0) return;
      if (target === "deleted") this.finishDeletion();
      else if (target === "suspended") this.rest();
      else this.startRun(target);
    }
  }

  beginOperation(kind: OperationKind, active: Run, attempt = 1): Operation {
    const mode = this.modeFor(kind, active);
    const op: Operation = {
      kind,
      mode,
      step: mode === "savepoint" ? "savepoint" : "stopping",
      fromRun: active.id,
      startTime: this.now.toISOString(),
      ...(mode === "savepoint" ? {} : { stopTime: this.now.toISOString() }),
      attempt,
    };
    this.event(
      "Normal",
      "OperationStarted",
      `${kind} of run ${active.id} (mode ${mode}${attempt > 1 ? `, attempt ${attempt}` : ""})`,
    );
    return op;
  }

  /**
   * How state crosses to the next run. A savepoint needs a run that is running: a run that
   * never became ready (or has pods down) hands over its checkpoints instead (last-state).
   */
  modeFor(kind: OperationKind, active: Run): Mode {
    const mode = this.job.spec.upgradeMode;
    if (mode !== "savepoint") return mode;
    // Ran well once (its spec became stable) and all its pods are ready now.
    const runningWell =
      this.previous.lastStableSpecHash === active.specHash &&
      this.live.filter((p) => p.run === active.id && p.ready).length === active.parallelism;
    if (kind === "delete" && !this.job.spec.savepoints?.onDelete) return "last-state";
    return runningWell ? "savepoint" : "last-state";
  }

  /**
   * The savepoint step of `op` on the run `from`. Returns true once it is complete (the
   * operation moved on to `stopping`, or ended for a savepoint that leaves the job running).
   */
  takeSavepoint(from: Run, op: Operation, stop: boolean): boolean {
    const id = savepointIdOf(op);
    const recordName = op.savepoint ?? `${this.name}-${id}`;
    const seen = this.o.savepoint?.id === id ? this.o.savepoint : undefined;
    // The StreamSavepoint that records it comes first (again, if an operator stopped between
    // recording the step and creating it), then the pods are asked.
    if (!this.o.savepoints.some((s) => s.name === recordName))
      this.actions.push({
        kind: "create",
        // A savepoint of its own not requested by anyone is a periodic one.
        object: savepointRecord(
          this.job,
          recordName,
          op.kind === "savepoint" ? "periodic" : triggerOf(op.kind),
          stop,
        ),
      });
    if (!op.savepoint) this.op = op = { ...op, savepoint: recordName };
    const recorded = this.o.savepoints.find((s) => s.name === recordName);
    if (recorded?.state !== "InProgress")
      this.actions.push({
        kind: "savepointStatus",
        name: recordName,
        status: { state: "InProgress", startTime: op.startTime, run: from.id },
      });
    this.requeueAfterMs = SAVEPOINT_POLL_MS;
    if (this.o.storageError) {
      // Before any pod was asked nothing stopped; after, some pods may have.
      this.failSavepoint(from, op, `storage: ${this.o.storageError}`, stop && seen !== undefined);
      return false;
    }
    if (seen?.complete) {
      const done = seen.pods.map((p) => p.state).filter(isCompleted);
      const path = done[0]?.path ?? "";
      const record: SavepointRecord = {
        name: recordName,
        path,
        time: this.now.toISOString(),
        trigger: op.kind === "savepoint" ? this.triggerOfRecord(recordName) : triggerOf(op.kind),
        sizeBytes: done.reduce((sum, s) => sum + s.bytes, 0),
        run: from.id,
      };
      this.lastSavepoint = record;
      this.history = [record, ...this.history.filter((h) => h.name !== recordName)].slice(
        0,
        HISTORY_LENGTH,
      );
      this.actions.push({
        kind: "savepointStatus",
        name: recordName,
        status: {
          state: "Completed",
          path,
          sizeBytes: record.sizeBytes,
          startTime: op.startTime,
          completionTime: record.time,
          run: from.id,
        },
      });
      this.event(
        "Normal",
        "SavepointCompleted",
        `savepoint ${recordName} of run ${from.id} completed: ${path} (${record.sizeBytes} bytes, ${this.secondsSince(op.startTime)} s)`,
      );
      this.retain(path);
      this.measurements.savepoints.push({
        result: "completed",
        seconds: this.secondsSince(op.startTime),
        bytes: record.sizeBytes ?? 0,
      });
      // A stop-with-savepoint stopped processing when the pods took their parts, right after
      // they were asked: the downtime counts from the savepoint's start.
      this.op =
        op.kind === "savepoint"
          ? undefined
          : { ...op, step: "stopping", savepointPath: path, stopTime: op.startTime };
      return true;
    }
    const states = seen?.pods ?? [];
    const failed = states.find((p) => p.state.state === "failed");
    if (failed && failed.state.state === "failed") {
      this.failSavepoint(from, op, `pod ${failed.name}: ${failed.state.reason}`, stop);
      return false;
    }
    const timeoutMs = parseDuration(this.job.spec.savepoints?.timeout ?? "5m");
    if (this.now.getTime() - Date.parse(op.startTime ?? "") > timeoutMs) {
      const waiting = states.filter((p) => p.state.state !== "completed").map((p) => p.name);
      this.failSavepoint(
        from,
        op,
        `timed out after ${this.job.spec.savepoints?.timeout ?? "5m"} waiting for ${waiting.join(", ") || "the pods"}`,
        stop,
      );
      return false;
    }
    const completed = states.map((p) => p.state).filter(isCompleted);
    if (completed.length === from.parallelism) {
      this.actions.push({
        kind: "completeSavepoint",
        id,
        operators: completed[0]?.operators ?? [],
        parallelism: from.parallelism ?? 0,
      });
      // Completed by this decision's actions: look again at once.
      this.requeueAfterMs = 0;
      return false;
    }
    // Ask every pod that has not heard of it yet (a pod that restarted meanwhile asks again).
    const askable = new Set(states.filter((p) => p.state.state === "absent").map((p) => p.name));
    for (const pod of this.live.filter((p) => p.run === from.id && p.ip)) {
      if (!seen || askable.has(pod.name))
        this.actions.push({ kind: "triggerSavepoint", pod: pod.name, ip: pod.ip ?? "", id, stop });
    }
    return false;
  }

  /**
   * A savepoint that cannot be taken changes nothing for good: the run goes on (its pods
   * restart from their checkpoints if the attempt stopped them), `Degraded` says why, and the
   * operation is tried again after a back-off.
   */
  failSavepoint(from: Run, op: Operation, why: string, stop: boolean): void {
    const attempt = op.attempt ?? 1;
    const retryMs = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
    const retryTime = new Date(this.now.getTime() + retryMs).toISOString();
    if (op.savepoint)
      this.actions.push({
        kind: "savepointStatus",
        name: op.savepoint,
        status: {
          state: "Failed",
          message: why,
          startTime: op.startTime,
          completionTime: this.now.toISOString(),
          run: from.id,
        },
      });
    this.event("Warning", "SavepointFailed", `savepoint of run ${from.id} failed: ${why}`);
    this.measurements.savepoints.push({
      result: "failed",
      seconds: this.secondsSince(op.startTime),
    });
    this.stepProblem = {
      type: "Degraded",
      status: "True",
      reason: "SavepointFailed",
      message: why,
    };
    if (op.kind === "savepoint") {
      // A savepoint that leaves the job running stopped nothing; a periodic one waits too.
      this.op = { ...op, step: "retry-wait", lastError: why, retryTime };
      return;
    }
    if (op.kind === "delete") {
      // Deletion is not held hostage by storage: the checkpoints stay in the bucket.
      this.op = { ...op, mode: "last-state", step: "stopping", lastError: why };
      return;
    }
    // Allowed by the spec, and the run's checkpoints are recent enough: go on without it.
    const savepoints = this.job.spec.savepoints;
    const age = this.o.savepoint?.checkpointAgeSeconds;
    if (
      savepoints?.fallbackToLastState &&
      age !== undefined &&
      age * 1000 <= parseDuration(savepoints.maxCheckpointAge ?? "5m")
    ) {
      this.event(
        "Warning",
        "FallingBackToLastState",
        `${op.kind} goes on from the run's checkpoints (the oldest is ${Math.round(age)} s old)`,
      );
      this.op = {
        ...op,
        mode: "last-state",
        step: "stopping",
        lastError: why,
        stopTime: this.now.toISOString(),
      };
      this.deletePods(
        this.live.filter((p) => p.run === from.id),
        `run ${from.id} is replaced (${op.kind})`,
      );
      return;
    }
    if (stop)
      this.deletePods(
        this.live.filter((p) => p.run === from.id),
        "resuming after a failed savepoint",
      );
    this.op = { ...op, step: "retry-wait", lastError: why, retryTime };
    this.requeueAfterMs = retryMs;
  }

  /** A savepoint that leaves the job running (manual or periodic). */
  savepointOnly(): void {
    const op = this.op;
    const active = this.activeRun;
    if (!op || !active) {
      this.op = undefined;
      return;
    }
    this.maintain(active, { spec: runSpecFrom(active), hash: active.specHash ?? "" });
    if (op.step === "retry-wait") {
      this.stepProblem = {
        type: "Degraded",
        status: "True",
        reason: "SavepointFailed",
        message: op.lastError ?? "savepoint failed",
      };
      if (Date.parse(op.retryTime ?? "") <= this.now.getTime()) this.op = undefined;
      else
        this.requeueAfterMs = Math.max(1_000, Date.parse(op.retryTime ?? "") - this.now.getTime());
      return;
    }
    this.takeSavepoint(active, op, false);
  }

  /** A running job with nothing under way: a requested or periodic savepoint may start. */
  maybeStartSavepoint(): void {
    const active = this.activeRun;
    if (!active) return;
    const requested = this.o.savepoints.filter((s) => s.trigger === "manual" && !s.state);
    for (const s of requested.filter((r) => r.stop)) {
      // The operator never writes the spec: stopping a job is `spec.state: suspended`, which
      // takes a savepoint on its way (upgradeMode savepoint).
      this.actions.push({
        kind: "savepointStatus",
        name: s.name,
        status: {
          state: "Failed",
          message:
            "stop: true is not supported: set the StreamJob's spec.state to suspended to stop it with a savepoint",
          completionTime: this.now.toISOString(),
        },
      });
    }
    const manual = requested.find((s) => !s.stop);
    const interval = this.job.spec.savepoints?.interval;
    const last = Date.parse(this.lastSavepoint?.time ?? active.startTime ?? "");
    const periodicDue =
      interval !== undefined && this.now.getTime() - last >= parseDuration(interval);
    if (!manual && !periodicDue) {
      if (interval !== undefined)
        this.requeueAfterMs = Math.max(1_000, last + parseDuration(interval) - this.now.getTime());
      return;
    }
    this.op = {
      kind: "savepoint",
      mode: "savepoint",
      step: "savepoint",
      fromRun: active.id,
      startTime: this.now.toISOString(),
      attempt: 1,
      ...(manual ? { savepoint: manual.name } : {}),
    };
    // A periodic one gets its StreamSavepoint from takeSavepoint, like those of operations.
    if (!manual) this.op = { ...this.op, savepoint: `${this.name}-${savepointIdOf(this.op)}` };
    this.event("Normal", "SavepointStarted", `savepoint ${this.op.savepoint} of run ${active.id}`);
    this.takeSavepoint(active, this.op, false);
  }

  /** Suspended: no pod runs; the operation keeps where the next run starts from. */
  rest(): void {
    this.deletePods(this.live, "the job is suspended");
    if (this.o.pods.length > 0) {
      this.state = "Upgrading";
      return;
    }
    if (this.state !== "Suspended") this.event("Normal", "Suspended", "all pods stopped");
    this.state = "Suspended";
    const op = this.op;
    this.op =
      op?.kind === "suspend" || op?.step === "suspended" ? { ...op, step: "suspended" } : op;
  }

  /** Nothing valid to run and no run in place. */
  nothingToRun(): void {
    this.deletePods(this.live, "the spec cannot be run");
    this.state = "Failed";
  }

  finishDeletion(): void {
    this.deletePods(this.live, "the StreamJob is being deleted");
    this.state = "Deleting";
    if (this.o.pods.length === 0)
      this.actions.push({ kind: "deleteConfigMaps" }, { kind: "removeFinalizer" });
  }

  /**
   * Keeps `retention.maxCount` completed savepoints and none older than `maxAge`; the newest
   * completed one and any in use (the run's restore source, `justTaken`) always stay.
   */
  retain(justTaken: string): void {
    const retention = this.job.spec.savepoints?.retention;
    const maxCount = retention?.maxCount ?? 10;
    const maxAgeMs = retention?.maxAge ? parseDuration(retention.maxAge) : undefined;
    const inUse = new Set([justTaken, this.run?.restoredFrom, this.op?.savepointPath]);
    const finished = this.o.savepoints
      .filter((s) => s.state === "Completed" || s.state === "Failed")
      .sort((a, b) => (b.time ?? "").localeCompare(a.time ?? ""));
    // The one just taken is newer than all of them: it counts first.
    let kept = 1;
    for (const s of finished) {
      const old =
        maxAgeMs !== undefined && this.now.getTime() - Date.parse(s.time ?? "") > maxAgeMs;
      if (inUse.has(s.path) || (kept < maxCount && !old)) {
        if (s.state === "Completed") kept++;
        continue;
      }
      this.actions.push({
        kind: "deleteSavepoint",
        name: s.name,
        ...(s.path ? { path: s.path } : {}),
      });
    }
  }

  /** Whether the autoscaler owns parallelism (enabled, and not only recommending). */
  get autoscalerOwnsParallelism(): boolean {
    const spec = this.job.spec.autoscaler;
    return spec?.enabled === true && !spec.dryRun;
  }

  /**
   * One autoscaler decision per fresh look at the load, while the run is running and nothing
   * else is under way; recorded in status (and acted on through desiredParallelism).
   */
  autoscale(active: Run | undefined): void {
    const spec = this.job.spec.autoscaler;
    const seen = this.o.autoscaling;
    if (!spec?.enabled) return;
    this.requeueAfterMs = parseDuration(spec.metricsInterval);
    // An override stands at least until the next look at the load.
    if (this.takeManualOverride()) return;
    if (!seen || !active || this.previous.state !== "Running" || this.op) return;
    const previous = this.autoscaler ?? {};
    const now = this.now.getTime();
    const decision = decideParallelism({
      summary: seen.summary,
      spec,
      partitions: seen.partitions,
      parallelism: active.parallelism ?? 1,
      history: previous,
      now,
    });
    this.measurements.autoscalerDecisions.push(decision.reason);
    this.autoscaler = {
      ...previous,
      recommendedParallelism: decision.recommendedParallelism,
      reason: decision.reason,
      time: this.now.toISOString(),
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
      this.event(
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
  takeManualOverride(): boolean {
    const spec = this.job.spec.autoscaler;
    const wanted = this.job.spec.parallelism;
    const previous = this.autoscaler ?? {};
    const before = previous.specParallelism;
    this.autoscaler = { ...previous, specParallelism: wanted };
    if (!this.autoscalerOwnsParallelism || before === undefined || before === wanted) return false;
    const max = Math.min(
      spec.maxParallelism ?? MAX_PARALLELISM,
      this.partitions ?? MAX_PARALLELISM,
    );
    const to = Math.min(max, Math.max(spec.minParallelism, wanted));
    const now = this.now.getTime();
    this.autoscaler = {
      ...this.autoscaler,
      recommendedParallelism: to,
      reason: "ManualOverride",
      time: this.now.toISOString(),
      recommendations: rememberRecommendation(
        previous.recommendations,
        { target: to },
        now,
        parseDuration(spec.scaleDownDelay),
      ),
    };
    this.measurements.autoscalerDecisions.push("ManualOverride");
    const clamped =
      to === wanted
        ? ""
        : ` (the autoscaler's limits and the partitions allow ${spec.minParallelism}..${max})`;
    this.event(
      "Normal",
      "Autoscaler",
      `ManualOverride: spec.parallelism changed from ${before} to ${wanted}: the job runs ${to}${clamped}; the autoscaler decides from there, scaling down no sooner than scaleDownDelay (${spec.scaleDownDelay})`,
    );
    return true;
  }

  /** A rescale the autoscaler made, with its measured downtime (what the next plan counts in). */
  recordRescale(op: Operation, to: number, downtimeSeconds: number): void {
    const from = (this.previous.lastStableSpec as RunSpec | undefined)?.parallelism ?? to;
    // The load the rescale was sized for (the latest interval's: a scale-up in a rise is sized
    // for it): after a scale-up, `from` proved too few for it.
    const sizedFor = this.autoscaler?.inputs?.latestArrivalRate;
    const arrivalRate = typeof sizedFor === "number" ? sizedFor : undefined;
    const rescales = [
      ...(this.autoscaler?.rescales ?? []),
      {
        time: op.startTime ?? this.now.toISOString(),
        from,
        to,
        downtimeSeconds,
        ...(arrivalRate === undefined ? {} : { arrivalRate }),
      },
    ].slice(-60);
    const hourAgo = this.now.getTime() - 3_600_000;
    this.autoscaler = {
      ...this.autoscaler,
      rescales,
      lastRescaleTime: op.startTime,
      rescalesInLastHour: rescales.filter((r) => Date.parse(r.time) > hourAgo).length,
    };
  }

  secondsSince(time: string | undefined): number {
    return Math.round((this.now.getTime() - Date.parse(time ?? "")) / 100) / 10;
  }

  triggerOfRecord(name: string): SavepointRecord["trigger"] {
    return this.o.savepoints.find((s) => s.name === name)?.trigger ?? "periodic";
  }

  deletePods(targets: ObservedPod[], why: string): void {
    for (const pod of targets) {
      if (this.actions.some((a) => a.kind === "deletePod" && a.name === pod.name)) continue;
      this.actions.push({ kind: "deletePod", name: pod.name });
      this.event("Normal", "DeletedPod", `deleted pod ${pod.name}: ${why}`);
    }
  }

  event(type: EventSpec["type"], reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }

  // --- status -----------------------------------------------------------------------------

  finish(valid: boolean): Decision {
    const { job, previous, now, state, op } = this;
    const generation = job.metadata.generation ?? 0;
    const active = this.activeRun;
    const problems = this.live.filter((p) => p.problem).map((p) => `${p.name}: ${p.problem}`);
    const degraded: ConditionInput = !valid
      ? {
          type: "Degraded",
          status: "True",
          reason: "InvalidSpec",
          message: truncate(
            `${this.o.specErrors.join("; ")}${active ? ` (run ${active.id} keeps running as it was)` : ""}`,
          ),
        }
      : (this.stepProblem ??
        (problems.length > 0
          ? {
              type: "Degraded",
              status: "True",
              reason: "PodsFailing",
              message: truncate(problems.join("; ")),
            }
          : { type: "Degraded", status: "False", reason: "AsExpected", message: "" }));
    const before = conditionOf(previous.conditions, "Degraded");
    if (
      degraded.status === "True" &&
      degraded.reason !== "SavepointFailed" &&
      (before?.message !== degraded.message || before?.observedGeneration !== generation)
    ) {
      this.event("Warning", degraded.reason, degraded.message);
    }
    const ready: ConditionInput =
      state === "Running"
        ? {
            type: "Ready",
            status: "True",
            reason: "RunReady",
            message: `run ${active?.id}: ${this.readyPods}/${this.readyPods} pods ready`,
          }
        : {
            type: "Ready",
            status: "False",
            reason: state,
            message: notReadyMessage(state, this.readyPods, active),
          };
    const progressing: ConditionInput =
      op && op.step !== "suspended" && op.step !== "retry-wait"
        ? {
            type: "Progressing",
            status: "True",
            reason: `${capitalize(op.kind ?? "upgrade")}${capitalize(op.step ?? "")}`,
            message: `${op.kind} of run ${op.fromRun} (mode ${op.mode}) at step ${op.step}`,
          }
        : state === "Running" ||
            state === "Suspended" ||
            state === "Failed" ||
            op?.step === "retry-wait"
          ? {
              type: "Progressing",
              status: "False",
              reason: op?.step === "retry-wait" ? "RetryWait" : state,
              message: "",
            }
          : {
              type: "Progressing",
              status: "True",
              reason: state,
              message: `run ${active?.id ?? "(next)"} starting`,
            };
    let conditions = previous.conditions;
    for (const c of [ready, progressing, degraded])
      conditions = setCondition(conditions, c, generation, now);

    const status: StreamJobStatus = dropUndefined({
      ...previous,
      observedGeneration: generation,
      conditions,
      state,
      run: this.run,
      upgrade: op,
      parallelism: active?.parallelism ?? 0,
      desiredParallelism: desiredOf(this.target),
      selector: jobSelector(this.name),
      // Lag is a running job's; partitions stay known (a rescale is checked against them).
      lag: state === "Running" ? (this.o.load?.lag ?? previous.lag) : undefined,
      partitions: this.partitions,
      lastSavepoint: this.lastSavepoint,
      savepointHistory: this.history.length > 0 ? this.history : undefined,
      rollback: this.rollback,
      autoscaler: this.autoscaler,
      lastStableSpecHash: state === "Running" ? this.run?.specHash : previous.lastStableSpecHash,
      lastStableSpec: state === "Running" ? this.run?.spec : previous.lastStableSpec,
    });
    const settled = (state === "Running" || state === "Suspended") && !op;
    const fallback = settled ? SETTLED_RESYNC_MS : BUSY_RESYNC_MS;
    return {
      status,
      measurements: this.measurements,
      actions: this.actions,
      events: this.events,
      requeueAfterMs: Math.min(this.requeueAfterMs ?? fallback, fallback),
    };
  }
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

function triggerOf(kind: OperationKind | undefined): SavepointRecord["trigger"] {
  switch (kind) {
    case "rescale":
    case "suspend":
    case "delete":
      return kind;
    case "savepoint":
      return "manual";
    default:
      return "upgrade";
  }
}

/** One id per attempt of an operation, stable across decisions (it comes from status). */
export function savepointIdOf(op: Operation): string {
  return `${op.kind}-${Date.parse(op.startTime ?? "").toString(36)}`;
}

function isCompleted(
  state: PodSavepointState,
): state is Extract<PodSavepointState, { state: "completed" }> {
  return state.state === "completed";
}

function savepointRecord(
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

/** The RunSpec a run was started from, as status keeps it. */
function runSpecFrom(run: Run): RunSpec {
  return run.spec as unknown as RunSpec;
}

function withHash(spec: RunSpec): { spec: RunSpec; hash: string } {
  return { spec, hash: specHash(spec) };
}

function runRef(job: StreamJob, run: Run, desired: { spec: RunSpec; hash: string }): RunRef {
  return {
    job,
    id: run.id ?? "",
    spec: desired.spec,
    specHash: desired.hash,
    ...(run.restoredFrom ? { restoreFrom: run.restoredFrom } : {}),
  };
}

/** How many pods the target runs (none while suspended or deleted; unknown without a target). */
function desiredOf(target: Target | undefined): number | undefined {
  if (target === undefined) return undefined;
  return typeof target === "object" ? target.spec.parallelism : 0;
}

type Refusal = NonNullable<Run["refused"]>;

/** A refusal as a person reads it: the field, the object and the API server's words. */
function refusalText(refused: Refusal): string {
  const field = refused.field ? `${refused.field}: ` : "";
  return `${field}the API server refused ${refused.object} (${refused.code}): ${refused.message}`;
}

function withoutRefusal(run: Run): Run {
  const { refused: _, ...rest } = run;
  return rest;
}

function notReadyMessage(state: State, readyPods: number, run: Run | undefined): string {
  if (state === "Suspended") return "the job is suspended";
  if (state === "Failed") return "no valid spec has run yet";
  if (!run) return "waiting for the previous pods to stop";
  return `run ${run.id}: ${readyPods}/${run.parallelism} pods ready`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function capitalize(s: string): string {
  return s
    .split("-")
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");
}

/** Condition messages and Events stay readable (and within the API's limits). */
function truncate(message: string, max = 1000): string {
  return message.length <= max ? message : `${message.slice(0, max - 1)}…`;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
