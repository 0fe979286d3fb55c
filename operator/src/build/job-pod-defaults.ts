// What a cluster admin expects of a job pod that its StreamJob leaves unsaid: requests and a
// memory limit (never BestEffort: first evicted, and unschedulable under a quota that asks for
// requests), the admin's priority class, and a Node heap sized from the memory limit. The
// operator's --job-resources and --job-priority-class (chart `jobPods`) set them; applied to
// each pod as it is created (act/apply-decision.ts), as a LimitRange applies at admission.
import type { V1Container, V1Pod, V1ResourceRequirements } from "@kubernetes/client-node";

export interface JobPodDefaults {
  /** Requests and limits of the runtime container, per resource the StreamJob does not name. */
  resources: V1ResourceRequirements;
  priorityClassName?: string;
}

/**
 * The runtime's needs at rest: a quarter of a CPU (Kafka clients, checkpoints, the control API;
 * no CPU limit, which would throttle catch-up after a restart while the node has CPU to spare)
 * and 512 MiB, limit = request for memory, so the pod is never OOM-killed for memory it was
 * promised (its heap gets 384 MiB of it, below).
 */
export const DEFAULT_JOB_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: "250m", memory: "512Mi" },
  limits: { memory: "512Mi" },
};

/**
 * The heap's share of the container's memory limit. Node reads the cgroup's limit at start
 * (`--max-old-space-size-percentage`, nodejs/node#59082; the pinned Node 24.21 has it), so a
 * limit a VPA changed is followed by the next pod. Left alone, Node 24 sizes the heap from the
 * cgroup too, but badly for a stateful job: 259 MiB under a 256 MiB limit (killed before a JS
 * OutOfMemory error can say why), 560 MiB of 1 GiB, and never more than 2240 MiB (measured with
 * Node 24.21). The other quarter is for what lives outside the heap: Kafka batches, serialized
 * checkpoints in flight, code.
 */
export const HEAP_PERCENTAGE = 75;

/**
 * The pod with the defaults filled in where the StreamJob named nothing: a resource's request and
 * limit come from the defaults only when the container names neither (so a job's own
 * `requests.memory` is never capped by a default limit below it); the priority class only when the
 * template names none; and `NODE_OPTIONS` only when the container has a memory limit and its
 * template sets no `NODE_OPTIONS` of its own.
 */
export function withJobPodDefaults(pod: V1Pod, defaults: JobPodDefaults): V1Pod {
  const spec = pod.spec;
  if (!spec) return pod;
  return {
    ...pod,
    spec: {
      ...spec,
      ...(!spec.priorityClassName && defaults.priorityClassName
        ? { priorityClassName: defaults.priorityClassName }
        : {}),
      containers: spec.containers.map((container, index) =>
        index === 0 ? runtimeContainer(container, defaults.resources) : container,
      ),
    },
  };
}

function runtimeContainer(container: V1Container, defaults: V1ResourceRequirements): V1Container {
  const resources = withDefaultResources(container.resources ?? {}, defaults);
  const env = container.env ?? [];
  const sizesHeap = resources.limits?.memory !== undefined;
  return {
    ...container,
    ...(resources.requests || resources.limits ? { resources } : {}),
    ...(sizesHeap && !env.some((v) => v.name === "NODE_OPTIONS")
      ? {
          env: [
            ...env,
            { name: "NODE_OPTIONS", value: `--max-old-space-size-percentage=${HEAP_PERCENTAGE}` },
          ],
        }
      : {}),
  };
}

function withDefaultResources(
  own: V1ResourceRequirements,
  defaults: V1ResourceRequirements,
): V1ResourceRequirements {
  const requests = { ...own.requests };
  const limits = { ...own.limits };
  const names = new Set([
    ...Object.keys(defaults.requests ?? {}),
    ...Object.keys(defaults.limits ?? {}),
  ]);
  for (const name of names) {
    if (name in requests || name in limits) continue;
    const request = defaults.requests?.[name];
    const limit = defaults.limits?.[name];
    if (request !== undefined) requests[name] = request;
    if (limit !== undefined) limits[name] = limit;
  }
  return {
    ...own,
    ...(Object.keys(requests).length > 0 ? { requests } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  };
}

/**
 * `--job-resources`: a JSON ResourceRequirements (`{"requests": {...}, "limits": {...}}`), or
 * `none` for no defaults (a namespace's LimitRange then decides). Quantities are checked by the
 * API server when the first pod is created; here only the shape.
 */
export function parseJobResources(flag: string): V1ResourceRequirements {
  if (flag === "none") return {};
  const refuse = () =>
    new Error(
      `--job-resources must be "none" or {"requests": {name: quantity}, "limits": {name: quantity}}: ${flag}`,
    );
  const parsed: unknown = JSON.parse(flag);
  if (!isMap(parsed)) throw refuse();
  const resources: V1ResourceRequirements = {};
  for (const [key, quantities] of Object.entries(parsed)) {
    if ((key !== "requests" && key !== "limits") || !isMap(quantities)) throw refuse();
    const entries = Object.entries(quantities);
    // YAML's `cpu: 1` reaches the flag as a JSON number.
    if (entries.some(([, q]) => typeof q !== "string" && typeof q !== "number")) throw refuse();
    resources[key] = Object.fromEntries(entries.map(([name, q]) => [name, String(q)]));
  }
  return resources;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
