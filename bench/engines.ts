// The runtime benchmark's other engines, each a child process of its own whose CPU time is
// what counts (/proc/<pid>/stat: for a JVM every thread, JIT and GC included): Kafka Streams
// and Flink (bench/peers.ts builds them) and the pass-through (bench/peers/pass-through.ts).
// Each prints "ready" on stdout when it is about to read; the benchmark times from then.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { PeerBuild } from "./peers.ts";
import { log4jConfig } from "./peers.ts";

/** A job's process, started and ready. */
export interface EngineProcess {
  pid: number;
  /** Resolves with `work`, or fails as soon as the process exits before it is done. */
  whileRunning<T>(work: Promise<T>): Promise<T>;
  /** SIGTERM, then SIGKILL after a grace period; resolves once it has exited. */
  stop(): Promise<void>;
}

/** Where a job reads and writes, and its name (application id, group, transactional ids). */
export interface JobTopics {
  name: string;
  input: string;
  output: string;
}

export type JobKind = "filter-enrich" | "clicks-per-user";

/** The JVM peers' heap: fixed, and far above what either job's state needs. */
export const JVM_HEAP = "2g";
const JVM_OPTIONS = [
  `-Xms${JVM_HEAP}`,
  `-Xmx${JVM_HEAP}`,
  "-XX:+UseG1GC",
  `-Dlog4j2.configurationFile=${log4jConfig}`,
];
/** What Flink's own distribution passes to a Java 17 JVM (its config.yaml's default opts). */
const FLINK_JAVA_17_OPTIONS = [
  "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
  "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
  "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
  ...[
    "java.lang",
    "java.net",
    "java.io",
    "java.nio",
    "sun.nio.ch",
    "java.lang.reflect",
    "java.text",
    "java.time",
    "java.util",
    "java.util.concurrent",
    "java.util.concurrent.atomic",
    "java.util.concurrent.locks",
  ].map((pkg) => `--add-opens=java.base/${pkg}=ALL-UNNAMED`),
];
const STOP_GRACE_MS = 20_000;
const READY_TIMEOUT_MS = 180_000;

/**
 * Starts `command` and waits for its "ready" line. Its stderr is kept (the last few KB) to say
 * why it failed. `running` holds it until it exits, for the benchmark to kill if it fails.
 */
export async function startProcess(
  label: string,
  command: string,
  args: string[],
  running: Set<ChildProcess>,
): Promise<EngineProcess> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-6_000);
  });
  const exited = once(child, "exit").finally(() => running.delete(child)) as Promise<
    [number | null, NodeJS.Signals | null]
  >;
  const failure = (what: string) => (result: [number | null, NodeJS.Signals | null]) => {
    throw new Error(
      `${label} exited (${result[0] ?? result[1]}) ${what}; its stderr ends:\n${stderr.trim().split("\n").slice(-20).join("\n")}`,
    );
  };
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const ready = new Promise<void>((resolve) => {
    lines.on("line", (line) => {
      if (line.trim() === "ready") resolve();
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label}: not ready after ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([ready, exited.then(failure("before it was ready")), timeout]);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    pid: child.pid as number,
    whileRunning: (work) =>
      Promise.race([work, exited.then(failure("before the run was over"))]) as typeof work,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Kafka Streams running `job` (bench/peers/kafka-streams/KafkaStreamsJobs.java). */
export function startKafkaStreams(
  peer: PeerBuild,
  job: JobKind,
  topics: JobTopics,
  bootstrap: string,
  running: Set<ChildProcess>,
): Promise<EngineProcess> {
  return startProcess(
    `Kafka Streams (${job})`,
    "java",
    [
      ...JVM_OPTIONS,
      "-cp",
      peer.classpath,
      peer.mainClass,
      job,
      bootstrap,
      topics.name,
      topics.input,
      topics.output,
    ],
    running,
  );
}

/** Flink's MiniCluster running `job` (bench/peers/flink/FlinkJobs.java). */
export function startFlink(
  peer: PeerBuild,
  job: JobKind,
  topics: JobTopics,
  bootstrap: string,
  checkpointDir: string,
  running: Set<ChildProcess>,
): Promise<EngineProcess> {
  return startProcess(
    `Flink (${job})`,
    "java",
    [
      ...JVM_OPTIONS,
      ...FLINK_JAVA_17_OPTIONS,
      "-cp",
      peer.classpath,
      peer.mainClass,
      job,
      bootstrap,
      topics.name,
      topics.input,
      topics.output,
      checkpointDir,
    ],
    running,
  );
}

/** The pass-through baseline over `topics` (bench/peers/pass-through.ts). */
export function startPassThrough(
  topics: JobTopics,
  bootstrap: string,
  running: Set<ChildProcess>,
): Promise<EngineProcess> {
  return startProcess(
    "pass-through",
    process.execPath,
    [
      join(import.meta.dirname, "peers", "pass-through.ts"),
      bootstrap,
      topics.name,
      topics.input,
      topics.output,
    ],
    running,
  );
}
