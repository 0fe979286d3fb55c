// What the reconciler needs to know about a pod of a job, read from the pod as the API has it;
// and a crashing runtime's last words, read from its previous container's log.
import { Writable } from "node:stream";
import { type KubeConfig, Log, type V1Pod } from "@kubernetes/client-node";
import { ANNOTATION_STANDBY, LABEL_JOB_UID, LABEL_RUN, LABEL_SUBTASK } from "../build/names.ts";
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
  const statuses = pod.status?.containerStatuses ?? [];
  const waiting = statuses
    .map((c) => c.state?.waiting)
    .find((w) => w?.reason && STUCK_REASONS.has(w.reason));
  // No node can take it (resources, selectors, taints): the scheduler says why.
  const unschedulable = (pod.status?.conditions ?? []).find(
    (c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable",
  );
  // A container that keeps exiting with an error: its log says why.
  const crashed = statuses.find(
    (c) => c.state?.waiting?.reason === "CrashLoopBackOff" && c.lastState?.terminated,
  );
  return {
    name: pod.metadata?.name ?? "",
    ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    run: pod.metadata?.labels?.[LABEL_RUN],
    subtask: subtask !== undefined && /^\d+$/.test(subtask) ? Number(subtask) : undefined,
    ownedByJob:
      pod.metadata?.labels?.[LABEL_JOB_UID] === jobUid ||
      (pod.metadata?.ownerReferences ?? []).some((ref) => ref.controller && ref.uid === jobUid),
    phase: pod.status?.phase ?? "Pending",
    ready: (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    terminating: pod.metadata?.deletionTimestamp !== undefined,
    ...(pod.status?.podIP ? { ip: pod.status.podIP } : {}),
    ...(pod.metadata?.annotations?.[ANNOTATION_STANDBY] === "true" ? { standby: true } : {}),
    ...(pod.metadata?.creationTimestamp
      ? { createdAt: new Date(pod.metadata.creationTimestamp).getTime() }
      : {}),
    ...(waiting
      ? { problem: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}` }
      : unschedulable
        ? { problem: `Unschedulable: ${unschedulable.message ?? "no node fits the pod"}` }
        : {}),
    ...(crashed
      ? {
          crash: {
            uid: pod.metadata?.uid ?? "",
            container: crashed.name,
            restarts: crashed.restartCount,
            exitCode: crashed.lastState?.terminated?.exitCode ?? 0,
          },
        }
      : {}),
  };
}

/** At most this much of a crashed container's log is read: its last lines, not its history. */
const LAST_WORDS_BYTES = 16 * 1024;
const LAST_WORDS_LINES = 20;
const LAST_WORDS_TIMEOUT_MS = 5_000;

/**
 * Why a container exited, in its own words: the error of the last JSON line that has one (the
 * runtime logs `{"msg":"failed","error":…}`), or else its last line that is not a stack frame.
 * Undefined when the log cannot be read or says nothing.
 */
export async function lastWords(
  kubeConfig: KubeConfig,
  pod: { namespace: string; name: string; container: string },
): Promise<string | undefined> {
  let tail = "";
  let received = 0;
  const reading = new AbortController();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      tail = (tail + chunk.toString("utf8")).slice(-LAST_WORDS_BYTES);
      // A kubelet that ignores limitBytes: stop reading, the tail so far will do.
      if (received > 4 * LAST_WORDS_BYTES) reading.abort();
      done();
    },
  });
  const timer = setTimeout(() => reading.abort(), LAST_WORDS_TIMEOUT_MS);
  try {
    const request = await new Log(kubeConfig).log(pod.namespace, pod.name, pod.container, sink, {
      previous: true,
      tailLines: LAST_WORDS_LINES,
      limitBytes: LAST_WORDS_BYTES,
    });
    await new Promise<void>((resolve) => {
      const stop = () => {
        request.abort();
        resolve();
      };
      if (reading.signal.aborted) stop();
      reading.signal.addEventListener("abort", stop);
      sink.on("finish", resolve);
      sink.on("close", resolve);
    });
    return wordsOf(tail);
  } catch {
    // No previous container, or its log is gone: nothing to add.
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** The line of a log's tail that says why the process ended (see lastWords). */
export function wordsOf(log: string): string | undefined {
  const lines = log
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  for (const line of lines.toReversed()) {
    if (!line.startsWith("{")) continue;
    try {
      const { error } = JSON.parse(line) as { error?: unknown };
      if (typeof error === "string" && error) return cut(error);
    } catch {
      // not JSON after all
    }
  }
  const plain = lines.filter((line) => !/^at |^Node\.js v\d/.test(line)).at(-1);
  return plain ? cut(plain) : undefined;
}

function cut(text: string, max = 400): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
