// Everything the decision needs to know about one StreamJob, gathered from the informers'
// caches, the job's pods (their control API, while a savepoint is in flight) and its storage.
import type { CoreV1Api, V1Pod } from "@kubernetes/client-node";
import type { SnapshotStore } from "../../../runtime/src/state/snapshot-store.ts";
import type { StreamJob, StreamSavepoint } from "../api/types.ts";
import { LABEL_JOB } from "../build/names.ts";
import {
  type Observed,
  type ObservedSavepoint,
  type ObservedSavepointRecord,
  savepointIdOf,
} from "../decide/reconcile.ts";
import type { JobMetricsWindows } from "./job-metrics.ts";
import { observePod } from "./pods.ts";
import { oldestCheckpointAgeSeconds, podSavepointState } from "./runtime-control.ts";
import { describeStorageError, openStore } from "./storage.ts";

export interface ObserveInputs {
  job: StreamJob;
  specErrors: string[];
  /** Pods and StreamSavepoints of the job's namespace, from the informers. */
  pods: V1Pod[];
  savepoints: StreamSavepoint[];
  core: CoreV1Api;
}

/** The job's storage, opened at most once per reconcile (it reads the credentials Secret). */
export class JobStorage {
  readonly #job: StreamJob;
  readonly #core: CoreV1Api;
  #store: Promise<SnapshotStore> | undefined;

  constructor(job: StreamJob, core: CoreV1Api) {
    this.#job = job;
    this.#core = core;
  }

  store(): Promise<SnapshotStore> {
    this.#store ??= openStore(this.#job, this.#core);
    return this.#store;
  }

  /** Undefined when the bucket is there and the credentials work; otherwise why not. */
  async problem(): Promise<string | undefined> {
    try {
      const store = await this.store();
      await store.assertUsable();
      return undefined;
    } catch (error) {
      return describeStorageError(error, this.#job);
    }
  }
}

export async function observeJob(
  inputs: ObserveInputs,
  storage: JobStorage,
  metrics: JobMetricsWindows,
): Promise<Observed> {
  const { job } = inputs;
  const { namespace, name, uid } = job.metadata;
  const pods = inputs.pods
    .filter(
      (pod) => pod.metadata?.namespace === namespace && pod.metadata?.labels?.[LABEL_JOB] === name,
    )
    .map((pod) => observePod(pod, uid));
  const savepoints: ObservedSavepointRecord[] = inputs.savepoints
    .filter((s) => s.metadata.namespace === namespace && s.spec.jobName === name)
    .map((s) => ({
      name: s.metadata.name ?? "",
      trigger: s.spec.trigger,
      stop: s.spec.stop,
      state: s.status?.state,
      ...(s.status?.path ? { path: s.status.path } : {}),
      ...(s.status?.completionTime ? { time: s.status.completionTime } : {}),
    }));
  const now = new Date();
  const observed: Observed = { job, pods, specErrors: inputs.specErrors, savepoints, now };
  const autoscaling = await metrics.observe(job, pods, now.getTime());
  if (autoscaling) observed.autoscaling = autoscaling;

  const op = job.status?.upgrade;
  if (op?.step === "savepoint" && op.startTime) {
    const id = savepointIdOf(op);
    const states = await Promise.all(
      pods
        .filter((p) => p.run === op.fromRun && !p.terminating && p.ip)
        .map(async (p) => ({ name: p.name, state: await podSavepointState(p.ip ?? "", id) })),
    );
    const seen: ObservedSavepoint = { id, pods: states, complete: false };
    // Whether the run's checkpoints would do instead, should the savepoint fail.
    if (job.spec.savepoints?.fallbackToLastState) {
      const ages = await Promise.all(
        pods
          .filter((p) => p.run === op.fromRun && !p.terminating && p.ip)
          .map((p) => oldestCheckpointAgeSeconds(p.ip ?? "")),
      );
      if (ages.length > 0 && ages.every((age) => age !== undefined))
        seen.checkpointAgeSeconds = Math.max(...(ages as number[]));
    }
    const done = states.filter((s) => s.state.state === "completed");
    const path = done[0]?.state.state === "completed" ? done[0].state.path : undefined;
    // Complete once `_metadata.json` exists — worth asking storage only when every part is in.
    if (path && done.length === job.status?.run?.parallelism) {
      try {
        seen.complete = (await (await storage.store()).readAt(path)) !== undefined;
      } catch (error) {
        observed.storageError = describeStorageError(error, job);
      }
    }
    observed.savepoint = seen;
  }
  return observed;
}
