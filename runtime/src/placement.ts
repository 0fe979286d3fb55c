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
    /** TLS to the brokers; the files are mounted from the job's Secrets and ConfigMaps. */
    tls?: {
      /** PEM CA bundle the brokers' certificates must chain to; absent: Node's own CAs. */
      caFile?: string;
      /** PEM client certificate and key (mTLS). */
      certFile?: string;
      keyFile?: string;
      /** Whether the certificate must name the broker's host (default true). */
      verifyHostname?: boolean;
    };
    /** SASL; the password is read from a mounted Secret file, never written here. */
    sasl?: {
      mechanism: "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";
      username: string;
      passwordFile: string;
    };
    /** Further client properties (see connectors/kafka/client-properties.ts). */
    properties?: Record<string, string>;
  };
  storage: {
    endpoint: string;
    bucket: string;
    prefix?: string;
    region?: string;
    /** A storage request silent this long fails (and its checkpoint is retried). */
    timeoutMs?: number;
    /** `path` (default) or `virtual-host` addressing of the bucket. */
    addressing?: "path" | "virtual-host";
    /** A mounted PEM bundle trusted for the endpoint (and STS), besides the system's roots. */
    caFile?: string;
    /** `static`: S3_ACCESS_KEY/S3_SECRET_KEY from the job's Secret; `chain`: the AWS default chain. */
    credentials?: "static" | "chain";
    /** Where web identity asks STS for credentials (AssumeRoleWithWebIdentity). */
    stsEndpoint?: string;
  };
  checkpointIntervalMs?: number;
  /** Start from a savepoint even if it holds state of steps the job no longer has. */
  allowNonRestoredState?: boolean;
  /** Overrides the job's onFailure() settings, field by field. */
  failures?: FailureSettings;
  /** Handed to a job module that exports a function of its config (StreamJob spec.job). */
  job?: { config?: JobConfig };
  /**
   * The file holding the job's control token (mounted from its Secret): the control API then
   * acts only for requests that present it. Absent: the API is open (a local run).
   */
  control?: { tokenFile: string };
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
