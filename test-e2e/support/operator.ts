// The operator as a test runs it, and the StreamJob a test applies. By default the operator runs
// in the cluster as users run it: a release of the chart, a pod with its service-account token
// (so every operator test proves the chart's RBAC is enough). WEIR_E2E_OPERATOR=process runs it
// as a local process instead (`node operator/src/main.ts` with config/rbac's account), which is
// quicker to debug; both look the same to a test (`Operator`).
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
import { helmRelease, keepOperatorLogs, operatorPods, weirRelease } from "./chart.ts";
import { adminKubeConfig, cli, clusterEnv, uniqueName } from "./cluster.ts";
import { eventually } from "./wait.ts";

const repo = join(import.meta.dirname, "..", "..");

/**
 * Job pods' defaults in tests (--job-resources, chart jobPods.resources): requests small enough
 * for the suites' dozens of pods at once on one 2-CPU node, and no memory limit, which the
 * process kubelet would not enforce anyway (so no heap sized from one either).
 */
const TEST_JOB_RESOURCES = { requests: { cpu: "10m", memory: "64Mi" } };
let nextPort = 18_080 + Math.floor(Math.random() * 500) * 2;

/** One operator a test controls, a local process or a pod of the chart's Deployment. */
export interface Operator {
  /** Its Lease holder identity (a pod's name in the cluster). */
  identity: string;
  /** Every JSON log line so far. */
  logs(): Promise<Record<string, unknown>[]>;
  /** SIGTERM, and waits until it is gone (graceful: releases the Lease). */
  stop(): Promise<void>;
  /** SIGKILL, and waits until it is gone (the Lease is left to expire). */
  kill(): Promise<void>;
  /** Waits until it exits on its own; its exit code. */
  exited(): Promise<number | null>;
  /** Its /metrics, as Prometheus scrapes them. */
  metrics(): Promise<string>;
}

export interface OperatorProcess extends Operator {
  process: ChildProcess;
  url: string;
}

export interface OperatorOptions {
  /** The kubeconfig it runs with (default: the cluster admin's). */
  kubeconfig?: string;
  /** Where its Lease lives (default: the watched namespace) and the Lease's name. */
  leaseNamespace?: string;
  leaseName?: string;
  /** Extra environment (e.g. the test-only crash hook). */
  env?: Record<string, string>;
  /** Extra command-line options (e.g. the Lease's timing). */
  args?: string[];
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
      `--job-resources=${JSON.stringify(TEST_JOB_RESOURCES)}`,
      ...(options.args ?? []),
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
    logs.push(...logLines(lines.join("\n")));
  });
  const exited = once(child, "exit") as Promise<[number | null]>;
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const operator: OperatorProcess = {
    process: child,
    identity,
    url: `http://127.0.0.1:${port}`,
    logs: async () => logs,
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
    exited: async () => (await exited)[0],
    metrics: async () => (await httpGet(`http://127.0.0.1:${port}/metrics`)).body,
  };
  await eventually("the operator to serve /readyz", async () => {
    // 99: a test hook's exit (after a write it was told to stop at), so it did start.
    if (child.exitCode === 99) return true;
    if (child.exitCode !== null) throw new Error(`operator ${identity} exited (${child.exitCode})`);
    const answer = await httpGet(`${operator.url}/readyz`).catch(() => undefined);
    return answer?.status === 200 ? true : undefined;
  });
  return operator;
}

/** The operator's JSON log lines (a line that is not JSON as `{ msg }`). */
function logLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        return { msg: line };
      }
    });
}

/**
 * The operator pods of a chart release that watches one namespace, as a test drives them:
 * started by scaling the Deployment up (or by `helm upgrade` when their environment changes:
 * operators of other settings never run alongside), stopped or killed one pod at a time with
 * the Deployment scaled down so nothing replaces it (a graceful stop marks the pod to go first,
 * `controller.kubernetes.io/pod-deletion-cost`).
 */
class InClusterOperators {
  readonly release = weirRelease();
  #installed = false;
  #replicas = 0;
  #env: Record<string, string> = {};

  readonly watchNamespace: string;

  constructor(watchNamespace: string) {
    this.watchNamespace = watchNamespace;
  }

  async start(env: Record<string, string>): Promise<Operator> {
    const changed = JSON.stringify(env) !== JSON.stringify(this.#env);
    if (changed && this.#replicas > 0) await this.#scaleTo(0);
    const before = new Set((await this.#pods()).map((p) => p.metadata?.name));
    this.#replicas++;
    if (!this.#installed || changed) {
      const command = this.#installed ? "upgrade" : "install";
      this.#env = env;
      this.#installed = true;
      await helmRelease(command, this.release, this.#values());
    } else {
      await this.#scale();
    }
    const pod = await eventually(
      "a new operator pod to be ready",
      async () =>
        (await this.#pods()).find(
          (p) => !p.metadata?.deletionTimestamp && !before.has(p.metadata?.name) && isReady(p),
        ),
      180_000,
    );
    return this.#handle(pod.metadata?.name ?? "");
  }

  /** Keeps the pods' logs (.cluster/logs/chart-*), then uninstalls the release and its namespace. */
  async uninstall(): Promise<void> {
    if (!this.#installed) return;
    await keepOperatorLogs(this.release).catch(() => {});
    await cli("helm", ["uninstall", this.release.name, "-n", this.release.namespace, "--wait"]);
    await adminKubeConfig()
      .makeApiClient(CoreV1Api)
      .deleteNamespace({ name: this.release.namespace })
      .catch(() => {});
  }

  #values(): string[] {
    return [
      "--set",
      "crds.install=false",
      "--set-json",
      `watchNamespaces=${JSON.stringify([this.watchNamespace])}`,
      "--set",
      `replicaCount=${this.#replicas}`,
      // The chart's default limit goes too (a null key drops a default map's key).
      "--set-json",
      `jobPods.resources=${JSON.stringify({ ...TEST_JOB_RESOURCES, limits: null })}`,
      "--set-json",
      `extraEnv=${JSON.stringify(Object.entries(this.#env).map(([name, value]) => ({ name, value })))}`,
    ];
  }

  #handle(pod: string): Operator {
    const { namespace } = this.release;
    return {
      identity: pod,
      logs: async () => logLines(await cli("kubectl", ["logs", pod, "-n", namespace])),
      metrics: async () => {
        const [found] = (await this.#pods()).filter((p) => p.metadata?.name === pod);
        return (await httpGet(`http://${found?.status?.podIP}:8080/metrics`)).body;
      },
      stop: () => this.#remove(pod, false),
      kill: () => this.#remove(pod, true),
      exited: () =>
        eventually(
          `operator pod ${pod} to exit`,
          async () => {
            const [found] = (await this.#pods()).filter((p) => p.metadata?.name === pod);
            const status = found?.status?.containerStatuses?.[0];
            const ended = status?.state?.terminated ?? status?.lastState?.terminated;
            return ended ? ended.exitCode : undefined;
          },
          180_000,
        ),
    };
  }

  async #remove(pod: string, kill: boolean): Promise<void> {
    const args = ["-n", this.release.namespace];
    if (kill) await cli("kubectl", ["delete", "pod", pod, ...args, "--grace-period=0", "--force"]);
    else
      await cli("kubectl", [
        "annotate",
        "pod",
        pod,
        ...args,
        "controller.kubernetes.io/pod-deletion-cost=-1000",
        "--overwrite",
      ]);
    await this.#scaleTo(Math.max(0, this.#replicas - 1));
    await eventually(
      `operator pod ${pod} to be gone`,
      async () => ((await this.#pods()).some((p) => p.metadata?.name === pod) ? undefined : true),
      120_000,
    );
  }

  /** Scales the Deployment and waits until exactly that many pods exist (terminating ones too). */
  async #scaleTo(replicas: number): Promise<void> {
    this.#replicas = replicas;
    await this.#scale();
    await eventually(
      `${replicas} operator pods`,
      async () => ((await this.#pods()).length === replicas ? true : undefined),
      120_000,
    );
  }

  async #scale(): Promise<void> {
    await cli("kubectl", [
      "scale",
      "deployment",
      this.release.operatorName,
      "-n",
      this.release.namespace,
      `--replicas=${this.#replicas}`,
    ]);
  }

  /** The release's operator pods, terminating ones included. */
  #pods(): Promise<V1Pod[]> {
    return operatorPods(this.release, { terminating: true });
  }
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
 * Waits until a run other than `previousRun` is Running with no operation left, for the job's
 * current generation (an upgrade or rescale has completed); returns the job.
 */
export async function nextRunRunning(
  namespace: string,
  name: string,
  previousRun: string | undefined,
  timeoutMs: number,
): Promise<StreamJob> {
  return eventually(
    `StreamJob ${namespace}/${name} to run a new run after its operation`,
    async () => {
      const job = await readJob(namespace, name);
      return job.status?.run?.id !== previousRun &&
        job.status?.state === "Running" &&
        !job.status.upgrade &&
        job.status.observedGeneration === job.metadata.generation
        ? job
        : undefined;
    },
    timeoutMs,
  );
}

/** Where operator tests run the operator: in the cluster (the default) or as a local process. */
const IN_CLUSTER = (process.env.WEIR_E2E_OPERATOR ?? "in-cluster") !== "process";

/**
 * A namespace of its own for an operator test: the storage Secret, operators with exactly the
 * RBAC users get (in the cluster: a release of the chart watching only this namespace; as a
 * process: the ServiceAccount of config/rbac), with a Lease of their own, word-count StreamJobs
 * on topics of their own, and a cleanup that leaves nothing.
 */
export class OperatorTestbed {
  readonly namespace: string;
  readonly core = adminKubeConfig().makeApiClient(CoreV1Api);
  readonly admin: Admin;
  readonly topics: string[] = [];
  operator: Operator | undefined;
  /** The operator's user (for `kubectl auth can-i --as`), and where its Lease is. */
  readonly account: string;
  readonly leaseNamespace: string;
  readonly leaseName: string;
  readonly #inCluster: InClusterOperators | undefined;
  #kubeconfig = "";

  /** `operators`: where its operators run (default: WEIR_E2E_OPERATOR, else in the cluster). */
  constructor(prefix: string, options: { operators?: "in-cluster" | "process" } = {}) {
    this.namespace = uniqueName(prefix);
    this.admin = new Admin({
      clientId: "weir-test-admin",
      bootstrapBrokers: [clusterEnv().kafkaBootstrap],
    });
    if (options.operators ? options.operators === "in-cluster" : IN_CLUSTER) {
      this.#inCluster = new InClusterOperators(this.namespace);
      const { release } = this.#inCluster;
      this.account = release.account;
      this.leaseNamespace = release.namespace;
      this.leaseName = release.operatorName;
    } else {
      this.account = `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_ACCOUNT}`;
      this.leaseNamespace = OPERATOR_NAMESPACE;
      this.leaseName = this.namespace;
    }
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
    if (!this.#inCluster) this.#kubeconfig = await operatorAccountKubeconfig();
    this.operator = await this.startOperator("operator-a");
  }

  /**
   * Starts one more operator (`identity` names a process; a pod names itself). `args` are extra
   * command-line options, for operators run as processes only.
   */
  startOperator(
    identity: string,
    env: Record<string, string> = {},
    args: string[] = [],
  ): Promise<Operator> {
    if (this.#inCluster) {
      if (args.length > 0) throw new Error("command-line options are for operator processes");
      return this.#inCluster.start(env);
    }
    return startOperator(this.namespace, identity, {
      kubeconfig: this.#kubeconfig,
      leaseNamespace: this.leaseNamespace,
      leaseName: this.leaseName,
      env,
      args,
    });
  }

  /** Jobs go while an operator still runs (their finalizers would hold the namespace otherwise). */
  async tearDown(): Promise<void> {
    await cli("kubectl", ["delete", "sj", "--all", "-n", this.namespace, "--timeout=90s"]).catch(
      () => {},
    );
    if (this.#inCluster) {
      await this.#inCluster.uninstall().catch(() => {});
    } else {
      await this.operator?.stop();
      await cli("kubectl", ["delete", "lease", this.leaseName, "-n", this.leaseNamespace]).catch(
        () => {},
      );
    }
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
