// What an end-to-end test needs to reach the local cluster: read from `.cluster/env`, which
// `npm run cluster -- up` writes (and `npm test` runs for you).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { Client as MinioClient } from "minio";
import { readEnvFile } from "../cluster/cluster.ts";
import { clusterPaths } from "../cluster/layout.ts";

export interface ClusterEnv {
  kubeconfig: string;
  kafkaBootstrap: string;
  s3Endpoint: string;
  s3AccessKey: string;
  s3SecretKey: string;
  s3Bucket: string;
  s3Region: string;
  /** The same MinIO credentials and bucket name over TLS, with a certificate from S3_CA_FILE. */
  s3TlsEndpoint: string;
  s3CaFile: string;
  binDirs: string[];
}

function required(vars: Record<string, string>, name: string): string {
  const value = vars[name];
  if (value === undefined) throw new Error(`${clusterPaths.env} does not set ${name}`);
  return value;
}

export function clusterEnv(): ClusterEnv {
  if (!existsSync(clusterPaths.env)) {
    throw new Error(
      `no local cluster: ${clusterPaths.env} is missing (run \`npm run cluster -- up\`, or \`npm test\`)`,
    );
  }
  const vars = readEnvFile();
  return {
    kubeconfig: required(vars, "KUBECONFIG"),
    kafkaBootstrap: required(vars, "KAFKA_BOOTSTRAP"),
    s3Endpoint: required(vars, "S3_ENDPOINT"),
    s3AccessKey: required(vars, "S3_ACCESS_KEY"),
    s3SecretKey: required(vars, "S3_SECRET_KEY"),
    s3Bucket: required(vars, "S3_BUCKET"),
    s3Region: required(vars, "S3_REGION"),
    s3TlsEndpoint: required(vars, "S3_TLS_ENDPOINT"),
    s3CaFile: required(vars, "S3_CA_FILE"),
    binDirs: required(vars, "WEIR_CLUSTER_BIN").split(":"),
  };
}

/** The broker's SASL_SSL listener: its address, the SCRAM (and PLAIN) user, and its own CA. */
export interface SecureKafkaEnv {
  bootstrap: string;
  username: string;
  password: string;
  caFile: string;
}

/**
 * The variables of `.cluster/env` named by `names` (field → variable), each required: read
 * apart from clusterEnv() for the listeners only some tests use, so that an env file written
 * before a listener existed fails just those tests, naming the variable.
 */
function listenerEnv<T extends { [K in keyof T]: string }>(names: { [K in keyof T]: string }): T {
  const vars = readEnvFile();
  return Object.fromEntries(
    (Object.entries(names) as [string, string][]).map(([field, name]) => [
      field,
      required(vars, name),
    ]),
  ) as T;
}

export function secureKafkaEnv(): SecureKafkaEnv {
  return listenerEnv<SecureKafkaEnv>({
    bootstrap: "KAFKA_SASL_BOOTSTRAP",
    username: "KAFKA_SASL_USERNAME",
    password: "KAFKA_SASL_PASSWORD",
    caFile: "KAFKA_CA_FILE",
  });
}

/** The broker's mTLS (SSL) listener: its address, its CA, and a client certificate it signed. */
export interface MutualTlsKafkaEnv {
  bootstrap: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function mutualTlsKafkaEnv(): MutualTlsKafkaEnv {
  return listenerEnv<MutualTlsKafkaEnv>({
    bootstrap: "KAFKA_MTLS_BOOTSTRAP",
    caFile: "KAFKA_CA_FILE",
    certFile: "KAFKA_CLIENT_CERT_FILE",
    keyFile: "KAFKA_CLIENT_KEY_FILE",
  });
}

/** An S3 client for the cluster's MinIO with its credentials (another secret key for refusal tests). */
export function s3Client(secretKey?: string): MinioClient {
  const env = clusterEnv();
  const endpoint = new URL(env.s3Endpoint);
  return new MinioClient({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port),
    useSSL: endpoint.protocol === "https:",
    accessKey: env.s3AccessKey,
    secretKey: secretKey ?? env.s3SecretKey,
    region: env.s3Region,
  });
}

export function adminKubeConfig(): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(clusterEnv().kubeconfig);
  return kubeConfig;
}

/** A name no other test (or earlier run) uses: tests share one cluster. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

const execFileAsync = promisify(execFile);

/** Runs one of the cluster's CLIs (kubectl, helm) against it; resolves with stdout. */
export async function cli(tool: "kubectl" | "helm", args: string[]): Promise<string> {
  const env = clusterEnv();
  const binary = env.binDirs.map((dir) => join(dir, tool)).find((path) => existsSync(path));
  if (!binary) throw new Error(`${tool} not found in ${env.binDirs.join(", ")}`);
  const { stdout } = await execFileAsync(binary, args, {
    env: { ...process.env, KUBECONFIG: env.kubeconfig },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}
