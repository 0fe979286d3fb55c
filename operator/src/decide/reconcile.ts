// The StreamJob reconciler's decision: from the job and what was observed of its pods to the
// status to write and the actions to take — pure, no I/O. The status is written before the
// actions are taken, so the step an operation is at is always on record: an operator that
// dies mid-way finds it there and carries on.
//
// The job converges on one *run* at a time: `parallelism` pods `<job>-<run>-<i>` built from
// the run's RunSpec (kept in status, so a run survives any later change of the spec). A new
// run starts only once every pod of the previous one is gone: two runs never process at once.
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import type { StreamJob, StreamJobStatus } from "../api/types.ts";
import { FINALIZER, jobSelector, nextRunId } from "../build/names.ts";
import { buildConfigMap, buildPod, type RunRef } from "../build/run-objects.ts";
import { type ConditionInput, conditionOf, setCondition } from "./conditions.ts";
import { type ChangeKind, classifyChange, type RunSpec, runSpecOf, specHash } from "./run-spec.ts";

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
  /** Why a container cannot run, when a person must act (ErrImagePull, CrashLoopBackOff, …). */
  problem?: string;
}

export interface Observed {
  job: StreamJob;
  pods: ObservedPod[];
  /** Why the spec cannot be run (schema and operator checks); empty when it can. */
  specErrors: string[];
  now: Date;
}

export type Action =
  | { kind: "addFinalizer" }
  | { kind: "removeFinalizer" }
  | { kind: "create"; object: V1Pod | V1ConfigMap }
  | { kind: "deletePod"; name: string }
  /** Removes the job's run ConfigMaps, except the one of `keepRun`. */
  | { kind: "deleteConfigMaps"; keepRun?: string };

export interface EventSpec {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export interface Decision {
  status: StreamJobStatus;
  actions: Action[];
  events: EventSpec[];
  /** Look again after this long even if nothing changes (pods are watched; this is a safety net). */
  requeueAfterMs: number;
}

type Run = NonNullable<StreamJobStatus["run"]>;
type State = NonNullable<StreamJobStatus["state"]>;

const SETTLED_RESYNC_MS = 60_000;
const BUSY_RESYNC_MS = 5_000;

export function decide(o: Observed): Decision {
  const { job, pods, now } = o;
  const previous = job.status ?? {};
  const generation = job.metadata?.generation ?? 0;
  const actions: Action[] = [];
  const events: EventSpec[] = [];
  const live = pods.filter((p) => !p.terminating);
  const deletePods = (targets: ObservedPod[], why: string) => {
    for (const pod of targets) {
      actions.push({ kind: "deletePod", name: pod.name });
      events.push({
        type: "Normal",
        reason: "DeletedPod",
        message: `deleted pod ${pod.name}: ${why}`,
      });
    }
  };

  if (job.metadata?.deletionTimestamp) {
    deletePods(live, "the StreamJob is being deleted");
    if (pods.length === 0) actions.push({ kind: "deleteConfigMaps" }, { kind: "removeFinalizer" });
    const status: StreamJobStatus = { ...previous, state: "Deleting", parallelism: 0 };
    return { status, actions, events, requeueAfterMs: BUSY_RESYNC_MS };
  }
  if (!job.metadata?.finalizers?.includes(FINALIZER)) actions.push({ kind: "addFinalizer" });

  const valid = o.specErrors.length === 0;
  const activeRun = previous.run && previous.state !== "Suspended" ? previous.run : undefined;
  // What should run: the spec as it is; with a spec the operator refuses, the last good run
  // keeps going as it was; when suspended, nothing.
  const desired: { spec: RunSpec; hash: string } | undefined = !valid
    ? activeRun?.spec
      ? { spec: runSpecFrom(activeRun), hash: activeRun.specHash ?? "" }
      : undefined
    : job.spec.state === "suspended"
      ? undefined
      : withHash(runSpecOf(job));

  let state: State;
  let run: Run | undefined = previous.run;
  let upgrade = previous.upgrade;
  let readyPods = 0;

  if (!desired) {
    // Suspended (or nothing valid to run): stop every pod.
    deletePods(live, valid ? "the job is suspended" : "the spec cannot be run");
    if (pods.length > 0) {
      state = activeRun ? "Upgrading" : (previous.state ?? "Deploying");
      if (valid && activeRun)
        upgrade = upgrade?.kind === "suspend" ? upgrade : startOperation("suspend", activeRun, now);
    } else {
      state = valid ? "Suspended" : "Failed";
      if (previous.state !== state && valid)
        events.push({ type: "Normal", reason: "Suspended", message: "all pods stopped" });
      upgrade = undefined;
    }
  } else if (activeRun && activeRun.specHash === desired.hash) {
    // The run in place is the right one: keep exactly its pods, one per subtask.
    const p = desired.spec.parallelism;
    const ref = runRef(job, activeRun, desired);
    const others = pods.filter((pod) => pod.run !== activeRun.id || !pod.ownedByJob);
    deletePods(
      others.filter((pod) => !pod.terminating),
      "it belongs to another run",
    );
    const mine = pods.filter((pod) => pod.run === activeRun.id && pod.ownedByJob);
    const keep = new Map<number, ObservedPod>();
    // A subtask whose pod is going (terminating, or deleted now) gets its pod back once it is gone.
    const going = new Set<number>();
    for (const pod of mine) {
      const i = pod.subtask;
      if (pod.terminating) {
        if (i !== undefined) going.add(i);
      } else if (i === undefined || i >= p || keep.has(i)) {
        deletePods([pod], "no such subtask in this run");
      } else if (pod.phase === "Failed" || pod.phase === "Succeeded") {
        deletePods([pod], `its phase is ${pod.phase}; it is replaced`);
        going.add(i);
      } else keep.set(i, pod);
    }
    // A missing pod is recreated, but never next to a pod of another run.
    if (others.length === 0) {
      const missing = range(p).filter((i) => !keep.has(i) && !going.has(i));
      if (missing.length > 0) actions.push({ kind: "create", object: buildConfigMap(ref) });
      for (const i of missing) {
        const pod = buildPod(ref, i);
        actions.push({ kind: "create", object: pod });
        events.push({
          type: "Normal",
          reason: "CreatedPod",
          message: `created pod ${pod.metadata?.name}`,
        });
      }
    }
    readyPods = [...keep.values()].filter((pod) => pod.ready).length;
    const allReady = others.length === 0 && readyPods === p;
    if (allReady) {
      state = "Running";
      if (previous.state !== "Running") {
        const what = upgrade ? `${upgrade.kind} completed: ` : "";
        events.push({
          type: "Normal",
          reason: "RunReady",
          message: `${what}run ${activeRun.id} has all ${p} pods ready`,
        });
      }
      upgrade = undefined;
    } else {
      state = upgrade ? "Upgrading" : "Deploying";
    }
  } else if (pods.length > 0) {
    // A new run is due: first every pod of the old one goes.
    deletePods(live, `run ${activeRun?.id ?? "(previous)"} is replaced`);
    if (activeRun) {
      const change = classifyChange(runSpecFrom(activeRun), desired.spec);
      // Different hashes mean some field differs; "none" cannot come out of it.
      const kind = change === "none" ? "upgrade" : change;
      if (upgrade?.toSpecHash !== desired.hash) {
        upgrade = { ...startOperation(kind, activeRun, now), toSpecHash: desired.hash };
        events.push({
          type: "Normal",
          reason: "Replacing",
          message: `${kind}: stopping run ${activeRun.id} (spec ${activeRun.specHash} → ${desired.hash}) before starting the next`,
        });
      }
      state = "Upgrading";
    } else {
      state = "Deploying";
    }
  } else {
    // No pod of the job is left: start the new run.
    const next: Run = {
      id: nextRunId(previous.run?.id),
      spec: desired.spec as unknown as Record<string, unknown>,
      specHash: desired.hash,
      parallelism: desired.spec.parallelism,
      image: desired.spec.image,
      startTime: now.toISOString(),
    };
    run = next;
    const ref = runRef(job, next, desired);
    actions.push(
      { kind: "deleteConfigMaps", keepRun: next.id },
      { kind: "create", object: buildConfigMap(ref) },
    );
    for (const i of range(desired.spec.parallelism))
      actions.push({ kind: "create", object: buildPod(ref, i) });
    const why = upgrade ? `${upgrade.kind}` : previous.state === "Suspended" ? "resume" : "start";
    if (upgrade) upgrade = { ...upgrade, step: "starting" };
    events.push({
      type: "Normal",
      reason: "RunStarted",
      message: `${why}: started run ${next.id} with ${next.parallelism} pods of ${next.image} (spec ${next.specHash})`,
    });
    state = upgrade ? "Upgrading" : "Deploying";
  }

  const problems = live.filter((p) => p.problem).map((p) => `${p.name}: ${p.problem}`);
  const degraded: ConditionInput = !valid
    ? {
        type: "Degraded",
        status: "True",
        reason: "InvalidSpec",
        message: truncate(
          `${o.specErrors.join("; ")}${activeRun ? ` (run ${activeRun.id} keeps running as it was)` : ""}`,
        ),
      }
    : problems.length > 0
      ? {
          type: "Degraded",
          status: "True",
          reason: "PodsFailing",
          message: truncate(problems.join("; ")),
        }
      : { type: "Degraded", status: "False", reason: "AsExpected", message: "" };
  const before = conditionOf(previous.conditions, "Degraded");
  if (
    degraded.status === "True" &&
    (before?.message !== degraded.message || before?.observedGeneration !== generation)
  ) {
    events.push({ type: "Warning", reason: degraded.reason, message: degraded.message });
  }

  const activeAfter = state === "Suspended" || state === "Failed" ? undefined : run;
  const ready: ConditionInput =
    state === "Running"
      ? {
          type: "Ready",
          status: "True",
          reason: "RunReady",
          message: `run ${activeAfter?.id}: ${readyPods}/${readyPods} pods ready`,
        }
      : {
          type: "Ready",
          status: "False",
          reason: state,
          message: notReadyMessage(state, readyPods, activeAfter),
        };
  const progressing: ConditionInput =
    state === "Running" || state === "Suspended" || state === "Failed"
      ? { type: "Progressing", status: "False", reason: state, message: "" }
      : {
          type: "Progressing",
          status: "True",
          reason: upgrade
            ? `${capitalize(upgrade.kind ?? "upgrade")}${capitalize(upgrade.step ?? "")}`
            : state,
          message: upgrade
            ? `${upgrade.kind} at step ${upgrade.step}`
            : `run ${activeAfter?.id ?? "(next)"} starting`,
        };

  let conditions = previous.conditions;
  for (const c of [ready, progressing, degraded])
    conditions = setCondition(conditions, c, generation, now);

  const status: StreamJobStatus = dropUndefined({
    ...previous,
    observedGeneration: generation,
    conditions,
    state,
    run,
    upgrade,
    parallelism: activeAfter?.parallelism ?? 0,
    selector: jobSelector(job.metadata?.name ?? ""),
    lastStableSpecHash: state === "Running" ? run?.specHash : previous.lastStableSpecHash,
  });
  return {
    status,
    actions,
    events,
    requeueAfterMs:
      state === "Running" || state === "Suspended" ? SETTLED_RESYNC_MS : BUSY_RESYNC_MS,
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

type Operation = NonNullable<StreamJobStatus["upgrade"]>;

function startOperation(
  kind: Exclude<ChangeKind, "none"> | "suspend",
  from: Run,
  now: Date,
): Operation {
  return { kind, step: "stopping", fromRun: from.id, startTime: now.toISOString(), attempt: 1 };
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
