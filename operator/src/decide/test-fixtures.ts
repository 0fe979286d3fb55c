// What the decision's tests share: a job as the API server holds it, pods as observe/ reports
// them, and a job carried from one decision to the next as the controller would.
import assert from "node:assert/strict";
import type { StreamJob, StreamJobStatus } from "../api/types.ts";
import { validateStreamJob } from "../api/validate.ts";
import { FINALIZER } from "../build/names.ts";
import type { PodSavepointState } from "../observe/runtime-control.ts";
import {
  type Action,
  type Decision,
  decide,
  type Observed,
  type ObservedPod,
  type ObservedSavepoint,
  savepointIdOf,
} from "./reconcile.ts";

export const now = new Date("2026-11-25T12:00:00Z");

/** `now` plus this many milliseconds. */
export function later(ms: number): Date {
  return new Date(now.getTime() + ms);
}

/**
 * A job as the API server holds it: a minimal manifest with the schema's defaults filled in;
 * `overrides` replace fields of the defaulted spec as they are (unchecked).
 */
export function sampleJob(
  overrides: Partial<StreamJob["spec"]> = {},
  status?: StreamJobStatus,
): StreamJob {
  const checked = validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team" },
    spec: {
      image: "weir/runtime:1",
      job: { entry: "/app/job.ts" },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      parallelism: 2,
      // The operations' tests stop, then start; standby.test.ts has the warm standby's.
      warmStandby: false,
      savepoints: {
        storage: { endpoint: "http://127.0.0.1:9000", bucket: "bkt", credentialsSecret: "s3" },
      },
    },
  });
  assert.ok(checked.ok);
  const job = checked.job;
  return {
    ...job,
    metadata: {
      ...job.metadata,
      uid: "uid-1",
      generation: 1,
      finalizers: [FINALIZER],
      resourceVersion: "10",
    },
    spec: { ...job.spec, ...overrides },
    ...(status ? { status } : {}),
  };
}

/** A pod of the job, running and ready unless `extra` says otherwise. */
export function pod(run: string, subtask: number, extra: Partial<ObservedPod> = {}): ObservedPod {
  return {
    name: `wc-${run}-${subtask}`,
    run,
    subtask,
    ownedByJob: true,
    phase: "Running",
    ready: true,
    terminating: false,
    ...extra,
  };
}

/** The pods `<job>-<run>-0` … `-<n-1>`, running and ready. */
export function podsOf(run: string, n = 2): ObservedPod[] {
  return Array.from({ length: n }, (_, i) => pod(run, i));
}

/** Both pods of run r1 with their IPs (a savepoint asks them). */
export function reachablePods(): ObservedPod[] {
  return [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];
}

export function observe(
  job: StreamJob,
  pods: ObservedPod[] = [],
  specErrors: string[] = [],
): Observed {
  return { job, pods, specErrors, savepoints: [], now };
}

/** The job with some of its spec changed (as `kubectl apply` would). */
export function withSpec(job: StreamJob, spec: Partial<StreamJob["spec"]>): StreamJob {
  return { ...job, spec: { ...job.spec, ...spec } };
}

/** Applies a decision's status to the job, as the next reconcile would read it. */
export function after(
  job: StreamJob,
  decision: Decision,
  spec: Partial<StreamJob["spec"]> = {},
): StreamJob {
  return { ...job, spec: { ...job.spec, ...spec }, status: decision.status };
}

/** `Kind/name` of every object the decision creates. */
export const created = (d: Decision) =>
  d.actions
    .filter((a): a is Extract<Action, { kind: "create" }> => a.kind === "create")
    .map((a) => `${a.object.kind}/${a.object.metadata?.name}`);

/** The pods the decision deletes. */
export const deleted = (d: Decision) =>
  d.actions
    .filter((a): a is Extract<Action, { kind: "deletePod" }> => a.kind === "deletePod")
    .map((a) => a.name);

export const condition = (d: Decision, type: string) =>
  d.status.conditions?.find((c) => c.type === type);

/** The actions of one kind. */
export function actionsOf<K extends Action["kind"]>(d: Decision, kind: K) {
  return d.actions.filter((a): a is Extract<Action, { kind: K }> => a.kind === kind);
}

/** A job whose run r1 has all its pods ready. */
export function runningJob(): StreamJob {
  const first = decide(observe(sampleJob()));
  const running = decide(observe(after(sampleJob(), first), [pod("r1", 0), pod("r1", 1)]));
  assert.equal(running.status.state, "Running");
  return after(sampleJob(), running);
}

/**
 * Run r1 of a running job being replaced, in mode last-state, by a run of the spec changed so:
 * the changed job, the decision that stopped r1 and the one that started r2.
 */
export function replacing(spec: Partial<StreamJob["spec"]>, job = runningJob()) {
  const changed = withSpec(job, { upgradeMode: "last-state", ...spec });
  const stopping = decide(observe(changed, podsOf("r1")));
  const starting = decide(observe(after(changed, stopping)));
  assert.equal(starting.status.upgrade?.step, "starting");
  return { changed, stopping, starting };
}

export const SAVEPOINT_PATH = "s3://b/weir/team/wc/savepoints/x/";

/** A pod's part of a savepoint, taken. */
export function completedPart(
  name: string,
  path = SAVEPOINT_PATH,
  bytes = 100,
  operators = ["counts"],
): { name: string; state: PodSavepointState } {
  return { name, state: { state: "completed", path, files: [], bytes, operators } };
}

export function failedPart(
  name: string,
  reason: string,
): { name: string; state: PodSavepointState } {
  return { name, state: { state: "failed", reason } };
}

export function inProgressPart(name: string): { name: string; state: PodSavepointState } {
  return { name, state: { state: "in_progress" } };
}

/** Both pods of run r1 took their part. */
export function bothParts(path = SAVEPOINT_PATH, bytes = 100, operators = ["counts"]) {
  return [0, 1].map((i) => completedPart(`wc-r1-${i}`, path, bytes, operators));
}

/** What observe/ sees of the savepoint of the operation `decision` left under way. */
export function savepointSeen(
  decision: Decision,
  pods: ObservedSavepoint["pods"],
  more: Partial<Omit<ObservedSavepoint, "id" | "pods">> = {},
): ObservedSavepoint {
  const op = decision.status.upgrade;
  assert.ok(op, "an operation is under way");
  return { id: savepointIdOf(op), pods, complete: false, ...more };
}
