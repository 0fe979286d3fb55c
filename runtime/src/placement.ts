// What a runtime process learns from its environment (the operator–runtime contract in
// DESIGN.md): its job, its place among the job's pods, and where its configuration is.
import type { FailureSettings, JobConfig } from "./api/job.ts";

export interface RuntimeConfig {
  kafka: {
    bootstrap: string[];
    /**
     * Replication factor of the topics the runtime creates (repartition, late records, dead
     * letters); default: the broker's own (default.replication.factor).
     */
    internalTopicReplicationFactor?: number;
  };
  storage: {
    endpoint: string;
    bucket: string;
    prefix?: string;
    region?: string;
    /** A storage request silent this long fails (and its checkpoint is retried). */
    timeoutMs?: number;
  };
  checkpointIntervalMs?: number;
  /** Start from a savepoint even if it holds state of steps the job no longer has. */
  allowNonRestoredState?: boolean;
  /** Overrides the job's onFailure() settings, field by field. */
  failures?: FailureSettings;
  /** Handed to a job module that exports a function of its config (StreamJob spec.job). */
  job?: { config?: JobConfig };
}

export function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** The pod's place in the job, from the environment the operator gives it. */
export function placement(env: NodeJS.ProcessEnv): {
  namespace: string;
  name: string;
  subtask: number;
  parallelism: number;
} {
  const [namespace, name] = (env.WEIR_JOB ?? "").split("/");
  const subtask = Number(env.WEIR_SUBTASK ?? "0");
  const parallelism = Number(env.WEIR_PARALLELISM ?? "1");
  if (!namespace || !name)
    throw new Error(`WEIR_JOB must be <namespace>/<name>, got "${env.WEIR_JOB ?? ""}"`);
  if (!Number.isInteger(parallelism) || parallelism < 1)
    throw new Error(`WEIR_PARALLELISM must be a positive integer`);
  if (!Number.isInteger(subtask) || subtask < 0 || subtask >= parallelism) {
    throw new Error(`WEIR_SUBTASK must be in [0, ${parallelism}), got "${env.WEIR_SUBTASK}"`);
  }
  return { namespace, name, subtask, parallelism };
}
