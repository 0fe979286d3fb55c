// Everything the decision needs to know about one StreamJob, gathered from the informers'
// caches, the job's pods (their control API, metrics and logs — in the background, see
// background.ts) and its storage.
import type { CoreV1Api, KubeConfig, V1Pod } from "@kubernetes/client-node";
import type { SnapshotStore } from "../../../runtime/src/state/snapshot-store.ts";
import type { StreamJob, StreamSavepoint } from "../api/types.ts";
import { LABEL_JOB } from "../build/names.ts";
import {
  type Observed,
  type ObservedPod,
  type ObservedSavepoint,
  type ObservedSavepointRecord,
  SAVEPOINT_POLL_MS,
  STANDBY_POLL_MS,
  savepointIdOf,
} from "../decide/reconcile.ts";
import { objectKey } from "../machinery/api.ts";
import type { BackgroundObservations } from "./background.ts";
import type { JobMetricsWindows } from "./job-metrics.ts";
import { lastWords, observePod } from "./pods.ts";
import {
  oldestCheckpointAgeSeconds,
  type PodSavepointState,
  podSavepointState,
  podStart,
} from "./runtime-control.ts";
import { describeStorageError, openStore } from "./storage.ts";

export interface ObserveInputs {
  job: StreamJob;
  specErrors: string[];
  /** Pods and StreamSavepoints of the job's namespace, from the informers. */
  pods: V1Pod[];
  savepoints: StreamSavepoint[];
  /** Nodes being drained (cordoned), from the Node informer (nodes.ts). */
  drainingNodes: ReadonlySet<string>;
  /** Ready nodes that take new pods (nodes.ts). */
  nodesToMoveTo: number;
}

/** What observing a job needs besides the job: the background observations and the API. */
export interface ObserveContext {
  observations: BackgroundObservations;
  metrics: JobMetricsWindows;
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  /** The job's control token, which the pods' control API wants (act/control-tokens.ts). */
  tokens: { read(job: StreamJob): Promise<string | undefined> };
}

/** How often a job's storage is checked in the background (its health is in Degraded). */
const STORAGE_CHECK_MS = 60_000;

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

/** What the pods of a run say about a savepoint, in one poll. */
interface SavepointPoll {
  pods: { name: string; state: PodSavepointState }[];
  checkpointAgeSeconds?: number;
}

export async function observeJob(
  inputs: ObserveInputs,
  storage: JobStorage,
  context: ObserveContext,
): Promise<Observed> {
  const { job } = inputs;
  const { namespace = "", name, uid } = job.metadata;
  const owner = objectKey(job);
  const pods = inputs.pods
    .filter(
      (pod) => pod.metadata?.namespace === namespace && pod.metadata?.labels?.[LABEL_JOB] === name,
    )
    .map((pod) => {
      const seen = observePod(pod, uid);
      const node = pod.spec?.nodeName;
      return node && inputs.drainingNodes.has(node) ? { ...seen, drainingNode: node } : seen;
    });
  explainCrash(pods, owner, namespace, context);
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
  const observed: Observed = {
    job,
    pods,
    specErrors: inputs.specErrors,
    savepoints,
    nodesToMoveTo: inputs.nodesToMoveTo,
    now,
  };
  const { load, autoscaling } = context.metrics.look(job, pods, now.getTime());
  if (load) observed.load = load;
  if (autoscaling) observed.autoscaling = autoscaling;
  const storageSpec = job.spec.savepoints?.storage;
  if (storageSpec) {
    // Keyed by the storage settings: a fixed endpoint or Secret name is checked at once.
    const health = context.observations.latest(
      owner,
      `storage:${uid}:${JSON.stringify(storageSpec)}`,
      STORAGE_CHECK_MS,
      () => new JobStorage(job, context.core).problem(),
    );
    if (health?.value) observed.storageHealth = health.value;
  }

  const op = job.status?.upgrade;
  await observeStarts(pods, owner, job, context);
  if (op?.step !== "savepoint" || !op.startTime) return observed;
  const id = savepointIdOf(op);
  const from = pods.filter((p) => p.run === op.fromRun && !p.terminating && p.ip);
  const fallback = job.spec.savepoints?.fallbackToLastState ?? false;
  const poll = context.observations.latest(owner, `savepoint:${uid}:${id}`, SAVEPOINT_POLL_MS, () =>
    // Unreadable now: the pods say 401, which the poll reports, and the next poll reads again.
    context.tokens
      .read(job)
      .catch(() => undefined)
      .then((token) => pollSavepoint(from, id, fallback, token)),
  );
  if (!poll) return observed;
  const seen: ObservedSavepoint = { id, pods: poll.value.pods, complete: false };
  // Whether the run's checkpoints would do instead, should the savepoint fail.
  if (poll.value.checkpointAgeSeconds !== undefined)
    seen.checkpointAgeSeconds = poll.value.checkpointAgeSeconds;
  const done = seen.pods.filter((s) => s.state.state === "completed");
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
  return observed;
}

/**
 * Where each standby-built pod is in its start — waiting warm, restoring, processing — from the
 * latest poll, fresh every STANDBY_POLL_MS: those not Ready (one that restarted waits to be
 * told again), and all of them while their run starts (when they began processing ends the
 * downtime).
 */
async function observeStarts(
  pods: ObservedPod[],
  owner: string,
  job: StreamJob,
  context: ObserveContext,
): Promise<void> {
  const starting = job.status?.upgrade?.step === "starting";
  const polled = pods.filter((p) => p.standby && (starting || !p.ready) && !p.terminating && p.ip);
  if (polled.length === 0) return;
  const token = await context.tokens.read(job).catch(() => undefined);
  for (const pod of polled) {
    const start = context.observations.latest(owner, `start:${pod.uid}`, STANDBY_POLL_MS, () =>
      podStart(pod.ip ?? "", token),
    );
    if (start) pod.start = start.value;
  }
}

/** Asks every pod of the run how savepoint `id` is going (and how old its checkpoints are). */
async function pollSavepoint(
  pods: ObservedPod[],
  id: string,
  withCheckpointAges: boolean,
  token: string | undefined,
): Promise<SavepointPoll> {
  const states = Promise.all(
    pods.map(async (p) => ({
      name: p.name,
      state: await podSavepointState(p.ip ?? "", id, token),
    })),
  );
  if (!withCheckpointAges) return { pods: await states };
  const ages = await Promise.all(pods.map((p) => oldestCheckpointAgeSeconds(p.ip ?? "", token)));
  const known = ages.length > 0 && ages.every((age) => age !== undefined);
  return {
    pods: await states,
    ...(known ? { checkpointAgeSeconds: Math.max(...(ages as number[])) } : {}),
  };
}

/**
 * A crash-looping pod's problem in the runtime's own words (`exited with 1: parallelism 5
 * exceeds the partition count 3`), read once per restart from its previous log; the first such
 * pod of the job only, as a run's pods crash alike.
 */
function explainCrash(
  pods: ObservedPod[],
  owner: string,
  namespace: string,
  context: ObserveContext,
): void {
  const pod = pods.find((p) => p.crash && !p.terminating);
  const crash = pod?.crash;
  if (!pod || !crash) return;
  const words = context.observations.latest(
    owner,
    `crash:${crash.uid}:${crash.restarts}`,
    Number.POSITIVE_INFINITY,
    () => lastWords(context.kubeConfig, { namespace, name: pod.name, container: crash.container }),
  );
  if (words?.value) pod.problem = `CrashLoopBackOff: exited with ${crash.exitCode}: ${words.value}`;
}
