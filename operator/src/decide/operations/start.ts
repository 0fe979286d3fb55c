// A run comes up and is kept whole: its first pods, then the rest in a slow start on readiness,
// a lost or failed pod recreated as it was, and the operation that started it completed once
// every pod is ready. Where its state comes from is decided when it starts.
import { nextRunId } from "../../build/names.ts";
import { buildConfigMap, buildPod } from "../../build/run-objects.ts";
import {
  autoscalerOwnsParallelism,
  type Draft,
  deletePods,
  emit,
  livePods,
  livePodsOf,
  runRef,
  secondsSince,
  stateDuring,
} from "../draft.ts";
import { classifyChange, type RunSpec } from "../run-spec.ts";
import type { ObservedPod, Run, RunTarget } from "../types.ts";
import { recordRescale } from "./autoscale.ts";
import { waitingOnRefusal, withoutRefusal } from "./refusal.ts";
import { rollBackIfFailed } from "./rollback.ts";
import { handsOverAtOnce, standbyPods } from "./standby.ts";

/**
 * A run's pods are created like a ReplicaSet's slow start, but on readiness: this many at
 * first, then as many more as are ready. A spec that cannot run fails on its first pods, not on
 * a thousand of them; a healthy run of up to this many starts at once.
 */
const SLOW_START_PODS = 8;

/** No pod of the job is left and it should run: start the next run. */
export function startRun(draft: Draft, target: RunTarget): void {
  const { job, previous } = draft;
  const op = draft.operation;
  // A warm standby of this very spec waits to be told its restore source.
  const standby = op?.standbyRun && op.toSpecHash === target.hash ? op.standbyRun : undefined;
  const others = draft.observed.pods.filter((p) => p.run !== standby || !p.ownedByJob);
  // The old run's pods, stopped by their savepoint, may still be going (handsOverAtOnce).
  const going = (p: ObservedPod) => handsOverAtOnce(op, target) && p.run === op?.fromRun;
  if (others.some((p) => !going(p))) {
    // Pods of an earlier run are still going (e.g. after a resume during a stop).
    deletePods(
      draft,
      others.filter((p) => !p.terminating),
      "a new run is due",
    );
    draft.state = "Deploying";
    return;
  }
  // Where the run's state comes from: the operation's savepoint; none at all for a stateless
  // operation (`none`: empty state from the committed offsets on); for a brand-new job its
  // initial savepoint; otherwise each task restores its checkpoint at its committed offset.
  const restoreFrom =
    op?.mode === "savepoint"
      ? op.savepointPath
      : op?.mode === "stateless"
        ? "none"
        : !previous.run
          ? job.spec.initialSavepoint
          : undefined;
  const next: Run = {
    id: standby ?? nextRunId(previous.run?.id),
    spec: target.spec as unknown as Record<string, unknown>,
    specHash: target.hash,
    parallelism: target.spec.parallelism,
    image: target.spec.image,
    startTime: draft.now.toISOString(),
    ...(restoreFrom ? { restoredFrom: restoreFrom } : {}),
  };
  // A run of another spec may read another source: its partitions are not known yet.
  const previousSpec = previous.run?.spec as RunSpec | undefined;
  if (previousSpec && classifyChange(previousSpec, target.spec) === "upgrade")
    draft.partitions = undefined;
  draft.run = next;
  const ref = runRef(job, next, target);
  // Only a standby's own ConfigMap stays: one left by a standby that was dropped may bear this
  // run's id with another spec's configuration.
  draft.actions.push(
    { kind: "deleteConfigMaps", ...(standby ? { keepRun: next.id } : {}) },
    { kind: "create", object: buildConfigMap(ref) },
  );
  const waiting = standby ? standbyPods(draft, standby) : [];
  const taken = new Set(waiting.map((p) => p.subtask));
  startStandbys(draft, waiting, next);
  for (const i of range(Math.min(target.spec.parallelism, SLOW_START_PODS)))
    if (!taken.has(i)) draft.actions.push({ kind: "create", object: buildPod(ref, i) });
  const resuming = op?.step === "suspended";
  if (op) draft.operation = { ...op, kind: resuming ? "resume" : op.kind, step: "starting" };
  const why = resuming ? "resume" : (op?.kind ?? "start");
  const restoring = restoreFrom ? `, restoring ${restoreFrom}` : "";
  const warm = waiting.length > 0 ? ` (${waiting.length} of them from their warm standby)` : "";
  emit(
    draft,
    "Normal",
    "RunStarted",
    `${why}: started run ${next.id} with ${next.parallelism} pods${warm} of ${next.image} (spec ${next.specHash})${restoring}`,
  );
  draft.state = draft.operation ? stateDuring(draft.operation) : "Deploying";
}

/**
 * Tells the run's standby-built pods that wait their restore source: the run's (a pod that
 * restarted within the run continues from its own checkpoints, as the runtime decides).
 */
function startStandbys(draft: Draft, pods: ObservedPod[], run: Run): void {
  for (const pod of pods) {
    if (pod.terminating || !pod.ip || pod.ready) continue;
    // Before its first poll, or waiting: asking a pod that already starts changes nothing.
    if (pod.start && pod.start.phase !== "standby") continue;
    draft.actions.push({
      kind: "startPod",
      pod: pod.name,
      ip: pod.ip,
      restoreFrom: run.restoredFrom ?? "",
    });
  }
}

/** The run in place is the right one: keep exactly its pods, one per subtask. */
export function keepRunWhole(draft: Draft, active: Run, target: RunTarget): void {
  const p = target.spec.parallelism;
  const pods = draft.observed.pods;
  const others = pods.filter((pod) => pod.run !== active.id || !pod.ownedByJob);
  deletePods(
    draft,
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
      deletePods(draft, [pod], "no such subtask in this run");
    } else if (pod.phase === "Failed" || pod.phase === "Succeeded") {
      deletePods(draft, [pod], `its phase is ${pod.phase}; it is replaced`);
      going.add(i);
    } else keep.set(i, pod);
  }
  startStandbys(
    draft,
    [...keep.values()].filter((pod) => pod.standby && pod.start?.phase === "standby"),
    active,
  );
  draft.readyPods = [...keep.values()].filter((pod) => pod.ready).length;
  // A missing pod is recreated, but never next to a pod of another run, and only as many
  // at a time as the slow start allows.
  let created = 0;
  if (others.length === 0) {
    const missing = range(p).filter((i) => !keep.has(i) && !going.has(i));
    if (missing.length === 0 && active.refused) draft.run = withoutRefusal(active);
    else if (missing.length > 0 && !waitingOnRefusal(draft, active)) {
      const starting = keep.size - draft.readyPods;
      const room = Math.max(SLOW_START_PODS, draft.readyPods) - starting;
      const batch = missing.slice(0, Math.max(0, room));
      const ref = runRef(draft.job, active, target);
      if (batch.length > 0) draft.actions.push({ kind: "create", object: buildConfigMap(ref) });
      for (const i of batch) {
        const pod = buildPod(ref, i);
        draft.actions.push({ kind: "create", object: pod });
        emit(draft, "Normal", "CreatedPod", `created pod ${pod.metadata?.name}`);
      }
      created = batch.length;
    }
  }
  if (others.length === 0 && draft.readyPods === p) {
    runReady(draft, active, p);
  } else {
    draft.state = draft.operation ? stateDuring(draft.operation) : "Deploying";
    rollBackIfFailed(draft, draft.run ?? active, created > 0);
  }
}

/** Every pod of the run is ready: Running, and the operation that started it is complete. */
function runReady(draft: Draft, active: Run, parallelism: number): void {
  const op = draft.operation;
  // Ready again in the middle of an operation (a retry's wait) is not news.
  if (draft.previous.state !== "Running" && (!op || op.step === "starting")) {
    let what = "";
    if (op?.kind && op.step === "starting") {
      const seconds = secondsSince(draft, op.startTime);
      const downtimeSeconds = downtimeOf(draft, active, op.stopTime ?? op.startTime);
      draft.measurements.operations.push({ kind: op.kind, seconds, downtimeSeconds });
      if (op.kind === "rescale" && autoscalerOwnsParallelism(draft.job))
        recordRescale(draft, op, parallelism, downtimeSeconds);
      what = `${op.kind} completed in ${seconds} s (downtime ${downtimeSeconds} s): `;
    }
    emit(draft, "Normal", "RunReady", `${what}run ${active.id} has all ${parallelism} pods ready`);
  }
  draft.state = "Running";
  if (op?.step === "starting") draft.operation = undefined;
}

/**
 * Seconds from the old run's stop to the new run processing: when its pods say their tasks
 * began (a standby's start is polled), else now, when their readiness was seen.
 */
function downtimeOf(draft: Draft, run: Run, stopTime: string | undefined): number {
  const said = livePodsOf(draft, run).map((p) => p.start?.processingSince);
  const stop = Date.parse(stopTime ?? "");
  if (said.length === 0 || said.some((t) => t === undefined)) return secondsSince(draft, stopTime);
  const end = Math.max(...(said as number[]));
  if (!(end >= stop) || end > draft.now.getTime()) return secondsSince(draft, stopTime);
  return Math.round((end - stop) / 100) / 10;
}

/** Nothing valid to run and no run in place. */
export function nothingToRun(draft: Draft): void {
  deletePods(draft, livePods(draft), "the spec cannot be run");
  draft.state = "Failed";
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
