// Running the runtime process as a pod would (without a cluster around it): for tests that
// drive the runtime's contract directly.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Admin } from "@platformatic/kafka";
import type { taskStatus } from "../../runtime/src/metrics.ts";
import { httpGet } from "../cluster/probe.ts";
import { clusterEnv, uniqueName } from "./cluster.ts";
import { deleteTopicsOf, inputProducer } from "./kafka.ts";
import { seriesValues } from "./metrics-text.ts";
import { eventually } from "./wait.ts";

const repo = join(import.meta.dirname, "..", "..");

export interface RuntimePod {
  process: ChildProcess;
  ip: string;
  url: string;
}

export interface RuntimeOptions {
  module: string;
  job: string;
  subtask: number;
  parallelism: number;
  ip: string;
  env?: Record<string, string>;
  prefix?: string;
  checkpointIntervalMs?: number;
  /** Options for node itself (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** Merged over the configuration file's defaults (`storage` field by field). */
  config?: Record<string, unknown> & { storage?: Record<string, unknown> };
  /** "pipe" to read what the process writes to stderr (see exitOf). */
  stderr?: "inherit" | "pipe";
  /** "pipe" to read its log lines (`running`, `savepoint part taken`); default: ignored. */
  stdout?: "ignore" | "pipe";
}

/** Starts `node runtime/src/main.ts <module>` as subtask `subtask` of `parallelism`. */
export function startRuntime(options: RuntimeOptions): RuntimePod {
  const env = clusterEnv();
  const config = join(mkdtempSync(join(tmpdir(), "weir-runtime-")), "config.json");
  writeFileSync(config, JSON.stringify(runtimeConfig(options)));
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), join(repo, "runtime", "src", "main.ts"), options.module],
    {
      stdio: ["ignore", options.stdout ?? "ignore", options.stderr ?? "inherit"],
      env: {
        ...process.env,
        // A pod of one CPU, as the operator would say (WEIR_CPU_LIMIT_MILLICORES): its tasks
        // on the main thread, unless a test gives it more (runtime-worker-threads). Tests run
        // several pods at once on a small machine: a worker each would only slow them down.
        WEIR_CPU_LIMIT_MILLICORES: "1000",
        ...options.env,
        WEIR_JOB: `tests/${options.job}`,
        WEIR_SUBTASK: String(options.subtask),
        WEIR_PARALLELISM: String(options.parallelism),
        WEIR_CONFIG: config,
        S3_ACCESS_KEY: env.s3AccessKey,
        S3_SECRET_KEY: env.s3SecretKey,
        POD_IP: options.ip,
      },
    },
  );
  return { process: child, ip: options.ip, url: `http://${options.ip}:9249` };
}

/** The runtime's configuration file for the local cluster's Kafka and MinIO, `config` merged over it. */
export function runtimeConfig(
  options: Pick<RuntimeOptions, "config" | "prefix" | "checkpointIntervalMs">,
): Record<string, unknown> {
  const env = clusterEnv();
  const { storage, ...settings } = options.config ?? {};
  return {
    kafka: { bootstrap: [env.kafkaBootstrap] },
    storage: {
      endpoint: env.s3Endpoint,
      bucket: env.s3Bucket,
      prefix: options.prefix ?? "runtime-tests",
      region: env.s3Region,
      ...storage,
    },
    checkpointIntervalMs: options.checkpointIntervalMs ?? 500,
    ...settings,
  };
}

/** Waits until the pod's /readyz answers 200 (and fails at once if the process died). */
export async function runtimeReady(pod: RuntimePod, timeoutMs = 30_000): Promise<void> {
  await eventually(
    `runtime on ${pod.ip} to be ready`,
    async () => {
      if (pod.process.exitCode !== null)
        throw new Error(`runtime on ${pod.ip} exited (${pod.process.exitCode})`);
      const answer = await httpGet(`${pod.url}/readyz`).catch(() => undefined);
      return answer?.status === 200 ? true : undefined;
    },
    timeoutMs,
  );
}

/** The pod's metrics as Prometheus prints them: series (with its labels) → value. */
export async function scrape(pod: RuntimePod): Promise<Map<string, number>> {
  return seriesValues((await httpGet(`${pod.url}/metrics`)).body);
}

/** The pod's /v1/status (each task as the runtime's taskStatus reports it, through JSON). */
export async function runtimeStatus(pod: RuntimePod): Promise<{
  tasks: ReturnType<typeof taskStatus>;
}> {
  return JSON.parse((await httpGet(`${pod.url}/v1/status`)).body);
}

/** A JSON line the runtime logged to stderr. */
export type LogLine = { msg: string } & Record<string, unknown>;

/**
 * How a process started with `stderr: "pipe"` ended: its exit code, what it wrote to stderr,
 * and the JSON lines of that. Call it right after starting the process, so nothing is missed.
 */
export async function exitOf(
  pod: RuntimePod,
): Promise<{ code: number | null; stderr: string; logs: LogLine[] }> {
  let stderr = "";
  pod.process.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] =
    pod.process.exitCode === null ? await once(pod.process, "exit") : [pod.process.exitCode];
  // The pipe may still hold the last lines after "exit".
  if (pod.process.stderr && !pod.process.stderr.readableEnded)
    await once(pod.process.stderr, "end");
  const logs = stderr
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
  return { code, stderr, logs };
}

/** A loopback address of its own for a test's pod (every pod's control API is on port 9249). */
export function podIp(): string {
  const byte = () => 1 + Math.floor(Math.random() * 250);
  return `127.77.${byte()}.${byte()}`;
}

/**
 * What a runtime test file shares: an admin client, the pods it started (killed by tearDown)
 * and its jobs' unique names (tearDown deletes every topic starting with `<name>-`, the
 * runtime's internal ones too).
 */
export class RuntimeTestbed {
  readonly admin = new Admin({
    clientId: "weir-test-admin",
    bootstrapBrokers: [clusterEnv().kafkaBootstrap],
  });
  readonly #pods: RuntimePod[] = [];
  readonly #jobs: string[] = [];

  /** A unique job name (`uniqueName(prefix)`) whose topics tearDown deletes. */
  jobName(prefix: string): string {
    const name = uniqueName(prefix);
    this.#jobs.push(name);
    return name;
  }

  /** A job of its own: jobName(prefix), and its topics `<name>-in`, `<name>-out` (1 partition). */
  async job(prefix: string): Promise<{ name: string; input: string; output: string }> {
    const name = this.jobName(prefix);
    const input = `${name}-in`;
    const output = `${name}-out`;
    await this.admin.createTopics({
      topics: [input, output],
      partitions: 1,
      replicas: 1,
      configs: [NO_TIME_RETENTION],
    });
    return { name, input, output };
  }

  /** startRuntime, by default as subtask 0 of 1 on a loopback address of its own. */
  start(
    options: Omit<RuntimeOptions, "subtask" | "parallelism" | "ip"> &
      Partial<Pick<RuntimeOptions, "subtask" | "parallelism" | "ip">>,
  ): RuntimePod {
    const pod = startRuntime({ subtask: 0, parallelism: 1, ip: podIp(), ...options });
    this.#pods.push(pod);
    return pod;
  }

  async tearDown(): Promise<void> {
    for (const pod of this.#pods) pod.process.kill("SIGKILL");
    await deleteTopicsOf(this.admin, this.#jobs).catch(() => {});
    await this.admin.close();
  }
}

/** Input of the count job (fixtures/runtime-count-job.ts): a `{"word": …}` record per word. */
export async function produceWords(topic: string, words: readonly string[]): Promise<void> {
  const producer = inputProducer();
  await producer.send({
    messages: words.map((word) => ({ topic, partition: 0, value: JSON.stringify({ word }) })),
  });
  await producer.close();
}

/**
 * Topic configuration for tests whose records carry event times of long ago (the goldens' 5 ms
 * after 1970, say): the broker's 7-day retention, checked every 5 minutes, would otherwise
 * delete them between their write and the test's read.
 */
export const NO_TIME_RETENTION = { name: "retention.ms", value: "-1" };

/**
 * fixtures/run-task.ts (one task runner as a process of its own) with `args`, kept in
 * `children` for the test's clean-up; `started` resolves with its "started: …" line.
 */
export function startTaskProcess(
  args: readonly string[],
  children: ChildProcess[],
): { child: ChildProcess; started: Promise<string>; logged: () => string } {
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, "..", "fixtures", "run-task.ts"), ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  // Its log lines still reach the test's output, and the test can read what it logged.
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log += chunk.toString();
    process.stderr.write(chunk);
  });
  const started = new Promise<string>((resolve, reject) => {
    let text = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      const line = /started: .*/.exec(text)?.[0];
      if (line) resolve(line);
    });
    child.once("exit", (code) => reject(new Error(`task exited (${code}) before starting`)));
  });
  return { child, started, logged: () => log };
}
