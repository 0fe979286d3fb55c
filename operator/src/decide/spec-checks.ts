// What the CRD schema cannot say but the operator must refuse before it builds a run: such a
// spec leaves the last good run as it was and is reported as `Degraded` (InvalidSpec).
import type { StreamJob } from "../api/types.ts";
import { CONFIG_KEY, configFile, RESERVED_ENV } from "../build/run-objects.ts";
import { runSpecOf } from "./run-spec.ts";

/** Pod names `<job>-r<run>-<subtask>` and the job's label value must fit in 63 characters. */
export const MAX_JOB_NAME = 45;
const WEIR_PREFIX = "weir.dev/";
/** What the API server lets a ConfigMap's data hold, in bytes. */
const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;

export function operatorChecks(job: StreamJob): string[] {
  const errors: string[] = [];
  const name = job.metadata?.name ?? "";
  if (name.length > MAX_JOB_NAME)
    errors.push(`metadata.name: at most ${MAX_JOB_NAME} characters (pods are named after it)`);
  if (!job.spec.savepoints?.storage)
    errors.push(
      "spec.savepoints.storage: required — the runtime keeps its checkpoints there, even for stateless upgrades",
    );
  const env = job.spec.podTemplate?.spec?.env ?? [];
  for (const [i, variable] of env.entries()) {
    if (RESERVED_ENV.includes(variable.name))
      errors.push(
        `spec.podTemplate.spec.env[${i}].name: ${variable.name} is set by the operator (the runtime contract) and cannot be overridden`,
      );
  }
  for (const key of Object.keys(job.spec.podTemplate?.metadata?.labels ?? {})) {
    if (key.startsWith(WEIR_PREFIX))
      errors.push(`spec.podTemplate.metadata.labels: ${key} is reserved for the operator`);
  }
  // The configuration file goes into a ConfigMap: measured as it will be written.
  const bytes = Buffer.byteLength(
    CONFIG_KEY + configFile({ job, id: "r1", spec: runSpecOf(job), specHash: "" }),
  );
  if (bytes > CONFIGMAP_LIMIT_BYTES)
    errors.push(
      `spec.job.config: the run's configuration file would be ${bytes} bytes; a ConfigMap holds at most ${CONFIGMAP_LIMIT_BYTES} (1 MiB)`,
    );
  return errors;
}
