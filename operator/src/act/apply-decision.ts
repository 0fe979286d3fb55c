// Carries out a Decision: the status first (so the step about to be taken is on record), then
// the actions in order, then the Events. Every write is idempotent: a pod that already exists
// or is already gone is what was wanted. A 409 on the StreamJob (someone changed it since it
// was read) surfaces as a Conflict, and the work queue retries from a fresh read.
import { isDeepStrictEqual } from "node:util";
import {
  type CoreV1Api,
  type CustomObjectsApi,
  type KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { GROUP, type StreamJob, type StreamJobStatus, VERSION } from "../api/types.ts";
import { FIELD_MANAGER, FINALIZER, LABEL_JOB, LABEL_RUN } from "../build/names.ts";
import type { Decision, EventSpec } from "../decide/reconcile.ts";
import { statusCodeOf } from "../machinery/api.ts";
import type { JobStorage } from "../observe/observe-job.ts";
import { triggerSavepoint } from "../observe/runtime-control.ts";

export interface ActClients {
  core: CoreV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
  storage: JobStorage;
  /** Called once the status is written, before any action (the test-only crash hook). */
  statusWritten?(status: StreamJobStatus): void;
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

async function ignoring<T>(codes: number[], call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (error) {
    if (codes.includes(statusCodeOf(error) ?? 0)) return undefined;
    throw error;
  }
}

export async function applyDecision(
  job: StreamJob,
  decision: Decision,
  clients: ActClients,
): Promise<void> {
  const name = job.metadata?.name ?? "";
  const namespace = job.metadata?.namespace ?? "";
  let resourceVersion = job.metadata?.resourceVersion;

  const patchFinalizers = async (finalizers: string[]) => {
    const patched = (await clients.custom.patchNamespacedCustomObject(
      {
        ...STREAMJOBS,
        namespace,
        name,
        fieldManager: FIELD_MANAGER,
        // The precondition makes a concurrent change a 409 instead of a lost finalizer.
        body: { metadata: { finalizers, resourceVersion } },
      },
      mergePatch,
    )) as StreamJob;
    resourceVersion = patched.metadata?.resourceVersion;
  };

  if (decision.actions.some((a) => a.kind === "addFinalizer"))
    await patchFinalizers([...(job.metadata?.finalizers ?? []), FINALIZER]);

  if (!isDeepStrictEqual(decision.status, job.status ?? {})) {
    // Server-side apply with Weir's own field manager: the status is the operator's, whole
    // (fields it leaves out are removed), and the resourceVersion makes it conditional, so a
    // job changed since it was read is a 409 and a fresh reconcile, never a blind overwrite.
    const updated = (await clients.custom.patchNamespacedCustomObjectStatus(
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
    )) as StreamJob;
    resourceVersion = updated.metadata?.resourceVersion;
    clients.statusWritten?.(decision.status);
  }

  for (const action of decision.actions) {
    switch (action.kind) {
      case "create":
        await ignoring([409], () =>
          clients.objects.create(action.object, undefined, undefined, FIELD_MANAGER),
        );
        break;
      case "deletePod":
        await ignoring([404], () =>
          clients.core.deleteNamespacedPod({ name: action.name, namespace }),
        );
        break;
      case "deleteConfigMaps":
        await clients.core.deleteCollectionNamespacedConfigMap({
          namespace,
          labelSelector: `${LABEL_JOB}=${name}${action.keepRun ? `,${LABEL_RUN}!=${action.keepRun}` : ""}`,
        });
        break;
      case "removeFinalizer":
        await ignoring([404], () =>
          patchFinalizers((job.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER)),
        );
        break;
      case "triggerSavepoint":
        // A pod that cannot be asked now is asked again at the next poll.
        await triggerSavepoint(action.ip, action.id, action.stop).catch(() => {});
        break;
      case "completeSavepoint":
        await (await clients.storage.store()).completeSavepoint(
          action.id,
          action.operators,
          action.parallelism,
        );
        break;
      case "savepointStatus":
        await ignoring([404], () =>
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
        break;
      case "deleteSavepoint": {
        const id = action.path ? savepointIdFromPath(action.path) : undefined;
        if (id) await (await clients.storage.store()).delete("savepoint", id);
        await ignoring([404], () =>
          clients.custom.deleteNamespacedCustomObject({
            ...STREAMSAVEPOINTS,
            namespace,
            name: action.name,
          }),
        );
        break;
      }
      case "addFinalizer":
        break;
    }
  }
  for (const event of decision.events) await clients.event(job, event);
}
