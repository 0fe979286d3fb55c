// What the decision reads (Observed: the job and what was seen of its pods, savepoints and
// storage) and what it hands back (Decision: the status to write, then the actions to take).
// observe/ builds the first, act/ carries out the second, through reconcile.ts's re-exports.
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import type { StartPhase } from "../../../runtime/src/control/server.ts";
import type {
  StreamJob,
  StreamJobStatus,
  StreamSavepoint,
  StreamSavepointStatus,
} from "../api/types.ts";
import type { AutoscalingInputs } from "../observe/job-metrics.ts";
import type { PodSavepointState } from "../observe/runtime-control.ts";
import type { AutoscalerReason } from "./autoscaler.ts";
import type { RunSpec } from "./run-spec.ts";

export interface ObservedPod {
  name: string;
  uid?: string;
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
  /** The node it runs on, when that node is cordoned (being drained): the run must move. */
  drainingNode?: string;
  /** Built as a warm standby (it waits for POST /v1/start, see build/run-objects.ts). */
  standby?: boolean;
  /** What a standby-built pod that is not Ready says of its start (polled in the background). */
  start?: PodStart;
}

/** A standby-built pod's start, from its `/v1/status`. */
export interface PodStart {
  phase: StartPhase | "unreachable";
  /** When its last task began processing (epoch ms, the pod's clock). */
  processingSince?: number;
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
  /**
   * Ready nodes that take new pods (not cordoned): where a run on a node being drained could
   * move. Undefined when not known (no Node informer): a drain then moves the run.
   */
  nodesToMoveTo?: number;
  /** What the API server refused in this reconcile's actions (decided on at once). */
  refusal?: ObservedRefusal;
  now: Date;
}

export type Action =
  | { kind: "addFinalizer" }
  | { kind: "removeFinalizer" }
  | { kind: "create"; object: V1Pod | V1ConfigMap | StreamSavepoint }
  /** `uid`: only this pod, not a namesake created since (a precondition of the delete). */
  | { kind: "deletePod"; name: string; uid?: string }
  /** Removes the job's run ConfigMaps, except the one of `keepRun`; or only the one of `run`. */
  | { kind: "deleteConfigMaps"; keepRun?: string; run?: string }
  | { kind: "triggerSavepoint"; pod: string; ip: string; id: string; stop: boolean }
  /** Tells a standby pod its restore source: it restores and starts (idempotent). */
  | { kind: "startPod"; pod: string; ip: string; restoreFrom: string }
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
  /** Warm standbys that ended their wait: ready (how long they took to), skipped or discarded. */
  standbys: { result: "ready" | "skipped" | "discarded"; seconds: number }[];
}

export interface Decision {
  status: StreamJobStatus;
  measurements: Measurements;
  actions: Action[];
  events: EventSpec[];
  /** Look again after this long even if nothing changes (pods are watched; this is a safety net). */
  requeueAfterMs: number;
}

// The parts of status the decision works with.
export type Run = NonNullable<StreamJobStatus["run"]>;
export type JobState = NonNullable<StreamJobStatus["state"]>;
/** An operation in flight (`status.upgrade`): its kind, mode and the step it is at. */
export type Operation = NonNullable<StreamJobStatus["upgrade"]>;
export type OperationKind = NonNullable<Operation["kind"]>;
export type Mode = NonNullable<Operation["mode"]>;
export type Refusal = NonNullable<Run["refused"]>;
/** A run of this spec (its hash is the run's `specHash`). */
export type RunTarget = { spec: RunSpec; hash: string };
/** Where the job is going: a run of a spec, a suspended job, or no job at all. */
export type Target = RunTarget | "suspended" | "deleted";
