// Running the runtime process as a pod would (without a cluster around it): for tests that
// drive the runtime's contract directly.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { httpGet } from "../cluster/probe.ts";
import { clusterEnv } from "./cluster.ts";
import { eventually } from "./wait.ts";

const repo = join(import.meta.dirname, "..", "..");

export interface RuntimePod {
  process: ChildProcess;
  ip: string;
  url: string;
}

/** Starts `node runtime/src/main.ts <module>` as subtask `subtask` of `parallelism`. */
export function startRuntime(options: {
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
}): RuntimePod {
  const env = clusterEnv();
  const config = join(mkdtempSync(join(tmpdir(), "weir-runtime-")), "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      kafka: { bootstrap: [env.kafkaBootstrap] },
      storage: {
        endpoint: env.s3Endpoint,
        bucket: env.s3Bucket,
        prefix: options.prefix ?? "runtime-tests",
        region: env.s3Region,
      },
      checkpointIntervalMs: options.checkpointIntervalMs ?? 500,
    }),
  );
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), join(repo, "runtime", "src", "main.ts"), options.module],
    {
      stdio: ["ignore", "ignore", "inherit"],
      env: {
        ...process.env,
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
