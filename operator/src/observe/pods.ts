// What the reconciler needs to know about a pod of a job, read from the pod as the API has it.
import type { V1Pod } from "@kubernetes/client-node";
import { LABEL_RUN, LABEL_SUBTASK } from "../build/names.ts";
import type { ObservedPod } from "../decide/reconcile.ts";

/** Waiting reasons that will not clear by themselves: a person has to act. */
const STUCK_REASONS = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

export function observePod(pod: V1Pod, jobUid: string | undefined): ObservedPod {
  const subtask = pod.metadata?.labels?.[LABEL_SUBTASK];
  const waiting = (pod.status?.containerStatuses ?? [])
    .map((c) => c.state?.waiting)
    .find((w) => w?.reason && STUCK_REASONS.has(w.reason));
  return {
    name: pod.metadata?.name ?? "",
    run: pod.metadata?.labels?.[LABEL_RUN],
    subtask: subtask !== undefined && /^\d+$/.test(subtask) ? Number(subtask) : undefined,
    ownedByJob: (pod.metadata?.ownerReferences ?? []).some(
      (ref) => ref.controller && ref.uid === jobUid,
    ),
    phase: pod.status?.phase ?? "Pending",
    ready: (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    terminating: pod.metadata?.deletionTimestamp !== undefined,
    ...(pod.status?.podIP ? { ip: pod.status.podIP } : {}),
    ...(pod.metadata?.creationTimestamp
      ? { createdAt: new Date(pod.metadata.creationTimestamp).getTime() }
      : {}),
    ...(waiting
      ? { problem: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}` }
      : {}),
  };
}
