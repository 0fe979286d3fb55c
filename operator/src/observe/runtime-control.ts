// The operator's side of the runtime's control API (port 9249 of each pod, DESIGN.md "Runtime
// and its contract with the operator"): start a savepoint on a pod and ask how it is going.
// Every call has a short timeout: a pod that does not answer is "unreachable", never a hang.
// Each carries the job's control token (build/control-token.ts) when it has one.
import type { SavepointState, StartPhase } from "../../../runtime/src/control/server.ts";
import { CONTROL_PORT } from "../build/run-objects.ts";
import type { PodStart } from "../decide/types.ts";
import { boundedFetch } from "../machinery/http.ts";

/** What a pod says about one savepoint id, including that it never heard of it. */
export type PodSavepointState =
  | SavepointState
  | { state: "absent" }
  | { state: "unreachable"; reason: string };

const TIMEOUT_MS = 3_000;
/** A savepoint's state lists a file per task; a status, a line per task. */
const MAX_ANSWER_BYTES = 1 << 20;
const limits = (token: string | undefined) => ({
  timeoutMs: TIMEOUT_MS,
  maxBytes: MAX_ANSWER_BYTES,
  ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
});
/** What a 401 means here (the answer is the pod's; it never holds the token). */
const REFUSED = "the pod refused the operator's control token (401)";

function url(podIP: string, path: string): string {
  return `http://${podIP}:${CONTROL_PORT}${path}`;
}

/** Asks the pod to take its part of savepoint `id` (idempotent per id on the pod's side). */
export async function triggerSavepoint(
  podIP: string,
  id: string,
  stop: boolean,
  token: string | undefined,
): Promise<void> {
  const response = await boundedFetch(url(podIP, "/v1/savepoints"), {
    ...limits(token),
    method: "POST",
    json: { id, stop },
  });
  if (response.status !== 202)
    throw new Error(`${podIP} refused savepoint ${id}: ${response.status} ${response.text}`);
}

export async function podSavepointState(
  podIP: string,
  id: string,
  token: string | undefined,
): Promise<PodSavepointState> {
  try {
    const response = await boundedFetch(
      url(podIP, `/v1/savepoints/${encodeURIComponent(id)}`),
      limits(token),
    );
    if (response.status === 404) return { state: "absent" };
    if (response.status === 401) return { state: "unreachable", reason: REFUSED };
    if (response.status !== 200) return { state: "unreachable", reason: `HTTP ${response.status}` };
    return JSON.parse(response.text) as SavepointState;
  } catch (error) {
    return { state: "unreachable", reason: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * How old the oldest last checkpoint of the pod's tasks is (its `/v1/status`), or undefined when
 * the pod does not answer: what a fall-back to last-state must know is recent enough.
 */
export async function oldestCheckpointAgeSeconds(
  podIP: string,
  token: string | undefined,
): Promise<number | undefined> {
  try {
    const response = await boundedFetch(url(podIP, "/v1/status"), limits(token));
    if (response.status !== 200) return undefined;
    const status = JSON.parse(response.text) as { tasks?: { checkpointAgeSeconds?: number }[] };
    const ages = (status.tasks ?? []).map((t) => t.checkpointAgeSeconds);
    if (ages.some((age) => typeof age !== "number")) return undefined;
    return Math.max(0, ...(ages as number[]));
  } catch {
    return undefined;
  }
}

/** Tells a standby pod its restore source (the runtime starts it once; a repeat is a no-op). */
export async function startPod(
  podIP: string,
  restoreFrom: string,
  token: string | undefined,
): Promise<void> {
  const response = await boundedFetch(url(podIP, "/v1/start"), {
    ...limits(token),
    method: "POST",
    json: { restoreFrom },
  });
  if (response.status !== 202 && response.status !== 200)
    throw new Error(`${podIP} refused to start: ${response.status} ${response.text}`);
}

/** Where a standby-built pod's start is (its `/v1/status`); unreachable while it boots. */
export async function podStart(podIP: string, token: string | undefined): Promise<PodStart> {
  try {
    const response = await boundedFetch(url(podIP, "/v1/status"), limits(token));
    if (response.status !== 200) return { phase: "unreachable" };
    const status = JSON.parse(response.text) as { phase?: StartPhase; processingSince?: number };
    return {
      phase: status.phase ?? "running",
      ...(typeof status.processingSince === "number"
        ? { processingSince: status.processingSince }
        : {}),
    };
  } catch {
    return { phase: "unreachable" };
  }
}
