// The PodDisruptionBudget the operator keeps per job: no pod of the job may be evicted
// (maxUnavailable 0), so that a drain never stops a subtask behind the operator's back. The
// operator moves the pods off a node being drained itself, through a savepoint
// (decide/operations/drain.ts); the drain's evictions then find them gone.
import type { V1PodDisruptionBudget } from "@kubernetes/client-node";
import type { StreamJob } from "../api/types.ts";
import { jobLabels, LABEL_JOB } from "./names.ts";
import { ownerReference } from "./run-objects.ts";

export function buildDisruptionBudget(job: StreamJob): V1PodDisruptionBudget {
  const name = job.metadata?.name ?? "";
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: {
      name,
      namespace: job.metadata?.namespace,
      labels: { ...jobLabels(name), "app.kubernetes.io/component": "disruption-budget" },
      // Deleted with the job by the garbage collector (the operator needs no delete).
      ownerReferences: [ownerReference(job)],
    },
    spec: {
      maxUnavailable: 0,
      selector: { matchLabels: { [LABEL_JOB]: name } },
      // A pod that is not ready may go: it processes nothing, and a drain must not wait on it.
      unhealthyPodEvictionPolicy: "AlwaysAllow",
    },
  };
}
