// Names and labels of what the operator creates for a StreamJob (DESIGN.md, "Runtime and its
// contract with the operator"): one run = pods `<job>-<run>-<index>` labelled with the job,
// the run and the subtask, and the run's configuration in a ConfigMap `<job>-<run>-config`.

export const LABEL_JOB = "weir.dev/job";
export const LABEL_RUN = "weir.dev/run";
export const LABEL_SUBTASK = "weir.dev/subtask";
/** The uid of the StreamJob a run's object belongs to (with or without an owner reference). */
export const LABEL_JOB_UID = "weir.dev/job-uid";
export const ANNOTATION_SPEC_HASH = "weir.dev/spec-hash";
/** On a pod built as a warm standby: it waits for its restore source (POST /v1/start). */
export const ANNOTATION_STANDBY = "weir.dev/standby";
/** Held on every StreamJob until the operator has removed what the job owns. */
export const FINALIZER = "weir.dev/cleanup";
/** The field manager the operator writes with (server-side apply and updates). */
export const FIELD_MANAGER = "weir-operator";

/** Labels every object of a job carries, so it can be listed and selected. */
export function jobLabels(job: string): Record<string, string> {
  return {
    [LABEL_JOB]: job,
    "app.kubernetes.io/name": "weir-job",
    "app.kubernetes.io/instance": job,
    "app.kubernetes.io/managed-by": "weir",
  };
}

/** The scale subresource's selector: every pod of the job, whatever its run. */
export function jobSelector(job: string): string {
  return `${LABEL_JOB}=${job}`;
}

export function podName(job: string, run: string, subtask: number): string {
  return `${job}-${run}-${subtask}`;
}

export function configMapName(job: string, run: string): string {
  return `${job}-${run}-config`;
}

/** Runs are numbered: `r1`, `r2`, … — each start of the job (first, after a change, resume). */
export function nextRunId(previous: string | undefined): string {
  const n = previous ? Number(previous.replace(/^r/, "")) : 0;
  return `r${Number.isFinite(n) ? n + 1 : 1}`;
}

/** Where a pod finds its job's token. */
export const CONTROL_TOKEN_DIR = "/var/run/secrets/weir.dev/control";
export const CONTROL_TOKEN_KEY = "token";
export const CONTROL_TOKEN_FILE = `${CONTROL_TOKEN_DIR}/${CONTROL_TOKEN_KEY}`;

/**
 * `<job>-control-<uid prefix>`: a job deleted and created again under its name gets a Secret of
 * its own, never the old one still waiting for garbage collection.
 */
export function controlTokenSecretName(job: { name?: string; uid?: string }): string {
  return `${job.name ?? ""}-control-${(job.uid ?? "").slice(0, 8)}`;
}
