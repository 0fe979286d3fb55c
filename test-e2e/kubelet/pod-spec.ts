// Pure pieces of the process kubelet: image lookup, Kubernetes' command/args and $(VAR)
// semantics, restart back-off, and the pod phase and conditions that follow from its
// containers. No I/O here.
import type {
  V1Container,
  V1ContainerStatus,
  V1Pod,
  V1PodCondition,
} from "@kubernetes/client-node";

export interface CatalogImage {
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  env?: Record<string, string>;
  /** Container path → local folder (absolute once loaded). */
  mounts?: Record<string, string>;
}

/** `docker.io/library/busybox:1.36@sha256:…` → `busybox`. */
export function imageName(reference: string): string {
  let name = reference.split("@")[0] ?? reference;
  const lastSlash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  if (colon > lastSlash) name = name.slice(0, colon);
  return name.replace(/^docker\.io\//, "").replace(/^library\//, "");
}

export function lookupImage(
  catalog: Record<string, CatalogImage>,
  reference: string,
): CatalogImage | undefined {
  return catalog[imageName(reference)];
}

/**
 * Expands `$(NAME)` from `vars` as Kubernetes does: an unknown name stays as written, `$$`
 * escapes a `$`.
 */
export function expandVars(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name?: string) => {
    if (match === "$$") return "$";
    return name !== undefined && vars.has(name) ? (vars.get(name) as string) : match;
  });
}

/** The argv a container runs: command replaces ENTRYPOINT, args replace CMD. */
export function containerArgv(
  container: Pick<V1Container, "command" | "args">,
  image: CatalogImage,
  vars: ReadonlyMap<string, string>,
): string[] {
  const command = container.command ?? image.entrypoint ?? [];
  const args = container.args ?? (container.command ? [] : (image.cmd ?? []));
  return [...command, ...args].map((part) => expandVars(part, vars));
}

const BACKOFF_START_MS = 10_000;
const BACKOFF_MAX_MS = 300_000;

/** How long the kubelet waits before the restart after `restarts` earlier ones: 0, 10 s, 20 s … 5 min. */
export function restartBackoffMs(restarts: number): number {
  if (restarts <= 0) return 0;
  return Math.min(BACKOFF_START_MS * 2 ** (restarts - 1), BACKOFF_MAX_MS);
}

export function shouldRestart(restartPolicy: string | undefined, exitCode: number): boolean {
  switch (restartPolicy ?? "Always") {
    case "Always":
      return true;
    case "OnFailure":
      return exitCode !== 0;
    default:
      return false;
  }
}

/** Init containers are done when each has run to a successful end, in order. */
export function initialized(initStatuses: V1ContainerStatus[]): boolean {
  return initStatuses.every((s) => s.state?.terminated?.exitCode === 0);
}

/** The restart policy of a container: an init container under `Always` retries only failures. */
export function effectiveRestartPolicy(podPolicy: string | undefined, init: boolean): string {
  const policy = podPolicy ?? "Always";
  return init && policy === "Always" ? "OnFailure" : policy;
}

/** The pod's phase from its containers' statuses, as the kubelet reports it. */
export function podPhase(
  restartPolicy: string | undefined,
  statuses: V1ContainerStatus[],
  initStatuses: V1ContainerStatus[] = [],
): "Pending" | "Running" | "Succeeded" | "Failed" {
  const initFailed = initStatuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
  if (initFailed && (restartPolicy ?? "Always") === "Never") return "Failed";
  if (!initialized(initStatuses)) return "Pending";
  if (statuses.length === 0) return "Pending";
  const everStarted = statuses.some(
    (s) => s.state?.running || s.state?.terminated || s.lastState?.terminated,
  );
  if (!everStarted) return "Pending";
  const allTerminated = statuses.every((s) => s.state?.terminated);
  if (!allTerminated) return "Running";
  const failed = statuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
  if (!failed) return "Succeeded";
  // Terminated with a failure: only final when nothing is going to restart it.
  return (restartPolicy ?? "Always") === "Never" ? "Failed" : "Running";
}

/** The conditions the kubelet owns; the scheduler's PodScheduled (and others) are kept. */
export function podConditions(
  pod: V1Pod,
  statuses: V1ContainerStatus[],
  now: Date,
  initStatuses: V1ContainerStatus[] = [],
): V1PodCondition[] {
  const done = initialized(initStatuses);
  const allReady = done && statuses.length > 0 && statuses.every((s) => s.ready);
  const wanted: Record<string, boolean> = {
    PodReadyToStartContainers: true,
    Initialized: done,
    ContainersReady: allReady,
    Ready: allReady,
  };
  const falseReason = done ? "ContainersNotReady" : "ContainersNotInitialized";
  const previous = new Map((pod.status?.conditions ?? []).map((c) => [c.type, c]));
  const owned = Object.entries(wanted).map(([type, value]): V1PodCondition => {
    const status = value ? "True" : "False";
    const before = previous.get(type);
    return {
      type,
      status,
      lastTransitionTime: before?.status === status ? before.lastTransitionTime : now,
      ...(value ? {} : { reason: falseReason }),
    };
  });
  const kept = (pod.status?.conditions ?? []).filter((c) => !(c.type in wanted));
  return [...kept, ...owned];
}
