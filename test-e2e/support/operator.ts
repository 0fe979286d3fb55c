// The operator as a test runs it: `node operator/src/main.ts` against the local cluster with the
// admin kubeconfig, its JSON log lines kept for assertions; and the StreamJob a test applies.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1Pod,
} from "@kubernetes/client-node";
import { Admin } from "@platformatic/kafka";
import { stringify } from "yaml";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { clusterPaths } from "../cluster/layout.ts";
import { httpGet } from "../cluster/probe.ts";
import { adminKubeConfig, cli, clusterEnv, uniqueName } from "./cluster.ts";
import { eventually } from "./wait.ts";

const repo = join(import.meta.dirname, "..", "..");
let nextPort = 18_080 + Math.floor(Math.random() * 500) * 2;

export interface OperatorProcess {
  process: ChildProcess;
  identity: string;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** SIGTERM, and waits for the exit (graceful: releases the Lease). */
  stop(): Promise<void>;
  /** SIGKILL, and waits for the exit (the Lease is left to expire). */
  kill(): Promise<void>;
}

export interface OperatorOptions {
  /** The kubeconfig it runs with (default: the cluster admin's). */
  kubeconfig?: string;
  /** Where its Lease lives (default: the watched namespace) and the Lease's name. */
  leaseNamespace?: string;
  leaseName?: string;
  /** Extra environment (e.g. the test-only crash hook). */
  env?: Record<string, string>;
}

/** Starts an operator watching `namespace`, leader-elected on a Lease. */
export async function startOperator(
  namespace: string,
  identity: string,
  options: OperatorOptions = {},
): Promise<OperatorProcess> {
  const port = nextPort;
  nextPort += 2;
  const child = spawn(
    process.execPath,
    [
      join(repo, "operator", "src", "main.ts"),
      `--namespace=${namespace}`,
      `--leader-election-namespace=${options.leaseNamespace ?? namespace}`,
      `--leader-election-id=${options.leaseName ?? "weir-operator"}`,
      `--http-address=127.0.0.1:${port}`,
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
      env: {
        ...process.env,
        KUBECONFIG: options.kubeconfig ?? clusterEnv().kubeconfig,
        POD_NAME: identity,
        ...options.env,
      },
    },
  );
  const logs: Record<string, unknown>[] = [];
  // Kept for whoever investigates a failure: .cluster/logs/operator-<identity>.log
  const logFile = createWriteStream(join(clusterPaths.logs, `operator-${identity}.log`), {
    flags: "a",
  });
  let buffered = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    logFile.write(chunk);
    buffered += chunk.toString("utf8");
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    }
  });
  const exited = once(child, "exit");
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const operator: OperatorProcess = {
    process: child,
    identity,
    url: `http://127.0.0.1:${port}`,
    logs,
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
  };
  await eventually("the operator to serve /readyz", async () => {
    if (child.exitCode !== null) throw new Error(`operator ${identity} exited (${child.exitCode})`);
    const answer = await httpGet(`${operator.url}/readyz`).catch(() => undefined);
    return answer?.status === 200 ? true : undefined;
  });
  return operator;
}

/** Where the plain manifests put the operator, and its service account. */
export const OPERATOR_NAMESPACE = "weir-system";
const OPERATOR_ACCOUNT = "weir-operator";

/**
 * Applies config/rbac (the operator's ServiceAccount and least-privilege RBAC) and writes a
 * kubeconfig that authenticates as that ServiceAccount with a fresh token: an operator run
 * with it can do exactly what the chart and the plain manifests allow, and no more.
 */
export async function operatorAccountKubeconfig(): Promise<string> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  await core
    .createNamespace({ body: { metadata: { name: OPERATOR_NAMESPACE } } })
    .catch((error: unknown) => {
      if (!(error instanceof ApiException && error.code === 409)) throw error;
    });
  await cli("kubectl", ["apply", "--server-side", "-k", join(repo, "config", "rbac")]);
  const token = await core.createNamespacedServiceAccountToken({
    name: OPERATOR_ACCOUNT,
    namespace: OPERATOR_NAMESPACE,
    body: { spec: { expirationSeconds: 3600 } },
  });
  const admin = adminKubeConfig();
  const cluster = admin.getCurrentCluster();
  if (!cluster || !token.status?.token) throw new Error("no cluster or token");
  const account = new KubeConfig();
  account.loadFromOptions({
    clusters: [cluster],
    users: [{ name: OPERATOR_ACCOUNT, token: token.status.token }],
    contexts: [{ name: "operator", cluster: cluster.name, user: OPERATOR_ACCOUNT }],
    currentContext: "operator",
  });
  const file = join(mkdtempSync(join(tmpdir(), "weir-operator-")), "kubeconfig");
  writeFileSync(file, account.exportConfig(), { mode: 0o600 });
  return file;
}

/** Server-side applies the generated CRDs (idempotent) and waits until they are served. */
export async function installCrds(): Promise<void> {
  await cli("kubectl", ["apply", "--server-side", "--force-conflicts", "-f", join(repo, "crds")]);
  await cli("kubectl", [
    "wait",
    "--for=condition=Established",
    "crd/streamjobs.weir.dev",
    "crd/streamsavepoints.weir.dev",
    "--timeout=60s",
  ]);
}

const custom = () => adminKubeConfig().makeApiClient(CustomObjectsApi);
const streamjobs = { group: "weir.dev", version: "v1alpha1", plural: "streamjobs" } as const;

export async function readJob(namespace: string, name: string): Promise<StreamJob> {
  return (await custom().getNamespacedCustomObject({
    ...streamjobs,
    namespace,
    name,
  })) as StreamJob;
}

/** Merge-patches a StreamJob's spec as a user would (`kubectl patch --type=merge`). */
export async function patchJobSpec(
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await cli("kubectl", [
    "patch",
    "sj",
    name,
    "-n",
    namespace,
    "--type=merge",
    "-p",
    JSON.stringify({ spec }),
  ]);
}

/** Waits until the job reports `Ready=True` for its current generation; returns it. */
export async function jobReady(
  namespace: string,
  name: string,
  timeoutMs = 120_000,
): Promise<StreamJob> {
  return eventually(
    `StreamJob ${namespace}/${name} to be Ready`,
    async () => {
      const job = await readJob(namespace, name);
      const ready = job.status?.conditions?.find((c) => c.type === "Ready");
      return ready?.status === "True" && job.status?.observedGeneration === job.metadata.generation
        ? job
        : undefined;
    },
    timeoutMs,
  );
}

/**
 * A namespace of its own for an operator test: the storage Secret, operators run as the
 * ServiceAccount of config/rbac (so every test also proves that RBAC is enough, with a Lease of
 * its own), word-count StreamJobs on topics of their own, and a cleanup that leaves nothing.
 */
export class OperatorTestbed {
  readonly namespace: string;
  readonly core = adminKubeConfig().makeApiClient(CoreV1Api);
  readonly admin: Admin;
  readonly topics: string[] = [];
  operator: OperatorProcess | undefined;
  #kubeconfig = "";

  constructor(prefix: string) {
    this.namespace = uniqueName(prefix);
    this.admin = new Admin({
      clientId: "weir-test-admin",
      bootstrapBrokers: [clusterEnv().kafkaBootstrap],
    });
  }

  /** Creates the namespace and its storage Secret, and starts the first operator. */
  async setUp(): Promise<void> {
    const env = clusterEnv();
    await installCrds();
    await this.core.createNamespace({ body: { metadata: { name: this.namespace } } });
    await this.core.createNamespacedSecret({
      namespace: this.namespace,
      body: {
        metadata: { name: "weir-storage" },
        stringData: { accessKey: env.s3AccessKey, secretKey: env.s3SecretKey },
      },
    });
    this.#kubeconfig = await operatorAccountKubeconfig();
    this.operator = await this.startOperator("operator-a");
  }

  startOperator(identity: string, env: Record<string, string> = {}): Promise<OperatorProcess> {
    return startOperator(this.namespace, identity, {
      kubeconfig: this.#kubeconfig,
      leaseNamespace: OPERATOR_NAMESPACE,
      leaseName: this.namespace,
      env,
    });
  }

  /** Jobs go while an operator still runs (their finalizers would hold the namespace otherwise). */
  async tearDown(): Promise<void> {
    await cli("kubectl", ["delete", "sj", "--all", "-n", this.namespace, "--timeout=90s"]).catch(
      () => {},
    );
    await this.operator?.stop();
    await cli("kubectl", ["delete", "lease", this.namespace, "-n", OPERATOR_NAMESPACE]).catch(
      () => {},
    );
    await cli("kubectl", ["delete", "ssp", "--all", "-n", this.namespace]).catch(() => {});
    await this.core.deleteNamespace({ name: this.namespace }).catch(() => {});
    await this.admin.deleteTopics({ topics: this.topics }).catch(() => {});
    await this.admin.close();
  }

  /**
   * A StreamJob of the word-count example on topics of its own (`partitions` each); `spec`
   * overrides the defaults (parallelism 2, checkpoints every second, the cluster's MinIO).
   */
  async wordCountJob(
    name: string,
    spec: Record<string, unknown> = {},
    options: { partitions?: number; internalName?: string } = {},
  ) {
    const job = await this.jobOnTopics(name, "/app/runtime/examples/word-count.ts", spec, options);
    this.topics.push(`${job.internal}-counts-repartition`);
    return job;
  }

  /**
   * A StreamJob of the job module `entry` (a path under the repository, `/app` in its pods) on
   * topics of its own, which its config names as the examples take them (`name`, `input`,
   * `output`); `spec` and `partitions` as for wordCountJob.
   */
  async jobOnTopics(
    name: string,
    entry: string,
    spec: Record<string, unknown> = {},
    options: { partitions?: number; internalName?: string } = {},
  ) {
    const env = clusterEnv();
    const input = `${this.namespace}-${name}-in`;
    const output = `${this.namespace}-${name}-out`;
    const internal = options.internalName ?? `${this.namespace}-${name}`;
    await this.admin.createTopics({
      topics: [input, output],
      partitions: options.partitions ?? 3,
      replicas: 1,
    });
    this.topics.push(input, output);
    return {
      internal,
      input,
      output,
      manifest: {
        apiVersion: "weir.dev/v1alpha1",
        kind: "StreamJob",
        metadata: { name, namespace: this.namespace },
        spec: {
          image: "weir/runtime:dev",
          job: {
            entry,
            config: { name: internal, input, output },
          },
          kafka: { bootstrapServers: [env.kafkaBootstrap] },
          parallelism: 2,
          checkpoints: { interval: "1s" },
          savepoints: {
            storage: {
              endpoint: env.s3Endpoint,
              bucket: env.s3Bucket,
              prefix: "operator-tests",
              credentialsSecret: "weir-storage",
            },
          },
          ...spec,
        },
      },
    };
  }

  async apply(manifest: object): Promise<void> {
    const file = join(tmpdir(), `${uniqueName("manifest")}.yaml`);
    writeFileSync(file, stringify(manifest));
    await cli("kubectl", ["apply", "-f", file]);
  }

  async podsOf(job: string): Promise<V1Pod[]> {
    const list = await this.core.listNamespacedPod({
      namespace: this.namespace,
      labelSelector: `weir.dev/job=${job}`,
    });
    return list.items;
  }
}

export const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
