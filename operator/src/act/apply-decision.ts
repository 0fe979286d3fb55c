// Carries out a Decision: the status first (so the step about to be taken is on record), then
// the actions in order, then the Events. Every write is idempotent: a pod that already exists
// or is already gone is what was wanted. A 409 on the StreamJob (someone changed it since it
// was read) surfaces as a Conflict, and the work queue retries from a fresh read. A run's pod
// or ConfigMap the API server refuses for what it is (invalid, forbidden: quota, PodSecurity)
// ends the actions and is handed back, in the API server's words, for a decision on it.
import { isDeepStrictEqual } from "node:util";
import {
  type CoreV1Api,
  type CustomObjectsApi,
  type KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import { GROUP, type StreamJob, type StreamJobStatus, VERSION } from "../api/types.ts";
import { buildDisruptionBudget } from "../build/disruption-budget.ts";
import { type JobPodDefaults, withJobPodDefaults } from "../build/job-pod-defaults.ts";
import { configMapName, FIELD_MANAGER, FINALIZER, LABEL_JOB, LABEL_RUN } from "../build/names.ts";
import { enforcePodSecurity, type PodSecurityLevel } from "../build/pod-security.ts";
import type { Action, Decision, EventSpec, ObservedRefusal } from "../decide/reconcile.ts";
import { apiStatusOf, statusCodeOf } from "../machinery/api.ts";
import type { JobStorage } from "../observe/observe-job.ts";
import { startPod, triggerSavepoint } from "../observe/runtime-control.ts";
import type { ControlTokens } from "./control-tokens.ts";

export interface ActClients {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
  storage: JobStorage;
  /** The jobs' control tokens (a job's Secret is created with its first pods). */
  tokens: Pick<ControlTokens, "read" | "ensure">;
  /** What job pods may ask for (the operator's --pod-security). */
  podSecurity: PodSecurityLevel;
  /** What job pods get where their StreamJob names nothing (--job-resources, --job-priority-class). */
  jobPodDefaults: JobPodDefaults;
  /**
   * Asked before every write: false once this replica may no longer act (its lease ran out,
   * e.g. a process that was paused wakes up). The write is not sent; the reconcile fails.
   */
  mayWrite?(): boolean;
  /** Called after every write that succeeded (the test-only crash hooks). */
  wrote?(write: Write): void;
  /** Records an Event on the job; never throws (a lost Event must not fail a reconcile). */
  event(job: StreamJob, event: EventSpec): Promise<void>;
}

const STREAMJOBS = { group: GROUP, version: VERSION, plural: "streamjobs" } as const;
const STREAMSAVEPOINTS = { group: GROUP, version: VERSION, plural: "streamsavepoints" } as const;

/** `s3://<bucket>/<prefix>/<ns>/<job>/savepoints/<id>/` → `<id>`. */
export function savepointIdFromPath(path: string): string | undefined {
  return /\/savepoints\/([^/]+)\/?$/.exec(path)?.[1];
}
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const serverSideApply = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

/** What a write answers when it changed nothing: the object was there, or gone, already. */
const UNCHANGED = Symbol("unchanged");

async function ignoring<T>(codes: number[], call: () => Promise<T>): Promise<T | typeof UNCHANGED> {
  try {
    return await call();
  } catch (error) {
    if (codes.includes(statusCodeOf(error) ?? 0)) return UNCHANGED;
    throw error;
  }
}

/** One write of a decision: the status, an action or an Event. */
export interface Write {
  what: string;
  /** False when it changed nothing (a create of what exists, a delete of what is gone). */
  changed: boolean;
  /** The status, when the write was the status. */
  status?: StreamJobStatus;
}

/** A write refused because this replica no longer leads. */
export class NotLeading extends Error {
  constructor(what: string) {
    super(`not leading: ${what} not written`);
  }
}

function describeAction(
  action: Exclude<Action, { kind: "triggerSavepoint" | "startPod" | "removeFinalizer" }>,
): string {
  switch (action.kind) {
    case "create":
      return `create ${action.object.kind} ${action.object.metadata?.name}`;
    case "deletePod":
      return `delete pod ${action.name}`;
    case "savepointStatus":
      return `StreamSavepoint ${action.name} ${action.status.state}`;
    case "deleteSavepoint":
    case "completeSavepoint":
      return `${action.kind} ${"name" in action ? action.name : action.id}`;
    default:
      return action.kind;
  }
}

/** A status without what is only observed of the running job (not what it is doing). */
function withoutObservations(status: StreamJobStatus): StreamJobStatus {
  const { lag: _lag, partitions: _partitions, ...rest } = status;
  return rest;
}

/** What carrying out a decision left: the job as it is now, and what the API server refused. */
export interface ActResult {
  /** The job with the decision's status and the resourceVersion of the last write. */
  job: StreamJob;
  refused?: ObservedRefusal;
}

/**
 * Answers by which the API server refuses an object for what it is, not for a passing reason
 * (409, 429 and 5xx are retried): bad request, forbidden (quota, PodSecurity, admission), too
 * large, invalid.
 */
const REFUSALS = new Set([400, 403, 413, 422]);

/** The refusal of a run's object, or undefined when `error` is not one (and must be thrown). */
function refusalOf(
  error: unknown,
  object: Extract<Action, { kind: "create" }>["object"],
): ObservedRefusal | undefined {
  const status = apiStatusOf(error);
  const kind = object.kind;
  if (!status || !REFUSALS.has(status.code) || (kind !== "Pod" && kind !== "ConfigMap"))
    return undefined;
  const field = status.causes.find((c) => c.field)?.field;
  return {
    kind,
    name: object.metadata?.name ?? "",
    run: object.metadata?.labels?.[LABEL_RUN] ?? "",
    code: status.code,
    message: status.message ?? status.reason ?? `HTTP ${status.code}`,
    ...(field ? { field } : {}),
  };
}

export async function applyDecision(
  job: StreamJob,
  decision: Decision,
  clients: ActClients,
): Promise<ActResult> {
  const name = job.metadata?.name ?? "";
  const namespace = job.metadata?.namespace ?? "";
  let resourceVersion = job.metadata?.resourceVersion;
  let finalizers = job.metadata?.finalizers;

  // Every write asks first whether this replica may still act, and is reported once done.
  const write = async <T>(what: string, call: () => Promise<T>, status?: StreamJobStatus) => {
    if (clients.mayWrite && !clients.mayWrite()) throw new NotLeading(what);
    const result = await call();
    const changed = result !== UNCHANGED && result !== false;
    clients.wrote?.({ what, changed, ...(status ? { status } : {}) });
    return result;
  };

  const patchFinalizers = (next: string[]) =>
    write(`finalizers [${next.join(", ")}]`, async () => {
      const patched = (await clients.custom.patchNamespacedCustomObject(
        {
          ...STREAMJOBS,
          namespace,
          name,
          fieldManager: FIELD_MANAGER,
          // The precondition makes a concurrent change a 409 instead of a lost finalizer.
          body: { metadata: { finalizers: next, resourceVersion } },
        },
        mergePatch,
      )) as StreamJob;
      resourceVersion = patched.metadata?.resourceVersion;
      finalizers = next;
    });

  if (decision.actions.some((a) => a.kind === "addFinalizer"))
    await patchFinalizers([...(job.metadata?.finalizers ?? []), FINALIZER]);

  // Server-side apply with Weir's own field manager: the status is the operator's, whole
  // (fields it leaves out are removed), and the resourceVersion makes it conditional, so a
  // job changed since it was read is a 409 and a fresh reconcile, never a blind overwrite.
  const writeStatus = async () => {
    const updated = (await write(
      `status (state ${decision.status.state}, step ${decision.status.upgrade?.step ?? "-"})`,
      () =>
        clients.custom.patchNamespacedCustomObjectStatus(
          {
            ...STREAMJOBS,
            namespace,
            name,
            fieldManager: FIELD_MANAGER,
            force: true,
            body: {
              apiVersion: job.apiVersion,
              kind: job.kind,
              metadata: { name, namespace, resourceVersion },
              status: decision.status,
            },
          },
          serverSideApply,
        ),
      decision.status,
    )) as StreamJob;
    resourceVersion = updated.metadata?.resourceVersion;
  };
  // What the actions are about to do is on record before they start; a status that only
  // observed anew (lag, partitions) is written after them, so a new look at the load never
  // stands between a decision and its actions.
  const statusChanged = !isDeepStrictEqual(decision.status, job.status ?? {});
  const observationsOnly =
    statusChanged &&
    isDeepStrictEqual(withoutObservations(decision.status), withoutObservations(job.status ?? {}));
  if (statusChanged && !observationsOnly) await writeStatus();

  // A run's pods: their job's token Secret first (a pod cannot start without it) and its
  // disruption budget (no pod is evicted without the operator: drain.ts), and no more
  // privilege than the operator allows, whatever the template asked for (said in an Event).
  const overridden = new Set<string>();
  let jobObjectsEnsured = false;
  const prepare = async (object: Extract<Action, { kind: "create" }>["object"]) => {
    if (object.kind !== "Pod") return object;
    if (!jobObjectsEnsured) {
      await write(`control token Secret of ${name}`, () => clients.tokens.ensure(job));
      await write(`PodDisruptionBudget ${name}`, () =>
        ignoring([409], () =>
          clients.objects.create(buildDisruptionBudget(job), undefined, undefined, FIELD_MANAGER),
        ),
      );
      jobObjectsEnsured = true;
    }
    const secured = enforcePodSecurity(
      withJobPodDefaults(object as V1Pod, clients.jobPodDefaults),
      clients.podSecurity,
    );
    for (const field of secured.overridden) overridden.add(field);
    return secured.pod;
  };

  let refused: ObservedRefusal | undefined;
  // Pods are asked for their savepoint parts at once: a pod that does not answer costs its
  // timeout once, not once per pod.
  const asking: Extract<Action, { kind: "triggerSavepoint" }>[] = [];
  // Standby pods are told their restore source together too: the downtime runs meanwhile.
  const starting: Extract<Action, { kind: "startPod" }>[] = [];
  for (const action of decision.actions) {
    if (action.kind === "triggerSavepoint") {
      asking.push(action);
      continue;
    }
    if (action.kind === "startPod") {
      starting.push(action);
      continue;
    }
    if (action.kind === "removeFinalizer") {
      await ignoring([404], () =>
        patchFinalizers((job.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER)),
      );
      continue;
    }
    const object = action.kind === "create" ? await prepare(action.object) : undefined;
    await write(describeAction(action), async () => {
      switch (action.kind) {
        case "create":
          try {
            return await clients.objects.create(
              object ?? action.object,
              undefined,
              undefined,
              FIELD_MANAGER,
            );
          } catch (error) {
            if (statusCodeOf(error) === 409) return UNCHANGED;
            refused = refusalOf(error, action.object);
            if (!refused) throw error;
            return UNCHANGED;
          }
        case "deletePod":
          return ignoring([404, 409], () =>
            clients.core.deleteNamespacedPod({
              name: action.name,
              namespace,
              // A namesake created since (same name, another uid) is not the pod decided on:
              // the API server answers 409 and it stays.
              ...(action.uid ? { body: { preconditions: { uid: action.uid } } } : {}),
            }),
          );
        case "deleteConfigMaps": {
          const { keepRun, run } = action;
          // One run's: looked up first, as nothing to delete is no write (a standby's decision
          // asks again until its pods exist).
          if (run) {
            const exists = await ignoring([404], () =>
              clients.core.readNamespacedConfigMap({ namespace, name: configMapName(name, run) }),
            );
            if (exists === UNCHANGED) return UNCHANGED;
          }
          await clients.core.deleteCollectionNamespacedConfigMap({
            namespace,
            labelSelector: `${LABEL_JOB}=${name}${keepRun ? `,${LABEL_RUN}!=${keepRun}` : ""}${run ? `,${LABEL_RUN}=${run}` : ""}`,
          });
          break;
        }
        case "completeSavepoint":
          await (await clients.storage.store()).completeSavepoint(
            action.id,
            action.operators,
            action.parallelism,
          );
          break;
        case "savepointStatus":
          return ignoring([404], () =>
            clients.custom.patchNamespacedCustomObjectStatus(
              {
                ...STREAMSAVEPOINTS,
                namespace,
                name: action.name,
                fieldManager: FIELD_MANAGER,
                body: { status: action.status },
              },
              mergePatch,
            ),
          );
        case "deleteSavepoint": {
          const id = action.path ? savepointIdFromPath(action.path) : undefined;
          if (id) await (await clients.storage.store()).delete("savepoint", id);
          return ignoring([404], () =>
            clients.custom.deleteNamespacedCustomObject({
              ...STREAMSAVEPOINTS,
              namespace,
              name: action.name,
            }),
          );
        }
        case "addFinalizer":
          return UNCHANGED;
      }
    });
    // The rest would be refused alike (one template, one quota): decided on first.
    if (refused) break;
  }
  if (starting.length > 0) {
    const token = await clients.tokens.read(job).catch(() => undefined);
    await write(`start ${starting.map((a) => a.pod).join(", ")} from their standby`, () =>
      // A pod that cannot be told now is told again at the next look (it still waits).
      Promise.all(starting.map((a) => startPod(a.ip, a.restoreFrom, token).catch(() => {}))),
    );
  }
  if (asking.length > 0) {
    // Without it (unreadable now) the pods say 401, and are asked again at the next poll.
    const token = await clients.tokens.read(job).catch(() => undefined);
    await write(`ask ${asking.map((a) => a.pod).join(", ")} for savepoint ${asking[0]?.id}`, () =>
      // A pod that cannot be asked now is asked again at the next poll.
      Promise.all(asking.map((a) => triggerSavepoint(a.ip, a.id, a.stop, token).catch(() => {}))),
    );
  }
  const events: EventSpec[] = [...decision.events];
  if (overridden.size > 0)
    events.push({
      type: "Warning",
      reason: "PodSecurityOverridden",
      message: `job pods run at Pod Security "${clients.podSecurity}" (the operator's --pod-security), so the pod template's ${[...overridden].join(", ")} did not apply`,
    });
  for (const event of events) await write(`event ${event.reason}`, () => clients.event(job, event));
  if (observationsOnly) await writeStatus();
  return {
    job: {
      ...job,
      metadata: { ...job.metadata, resourceVersion, ...(finalizers ? { finalizers } : {}) },
      status: decision.status,
    },
    ...(refused ? { refused } : {}),
  };
}
