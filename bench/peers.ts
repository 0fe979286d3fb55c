// The runtime benchmark's JVM peers, built from Maven Central: for each peer a checked-in pom
// (bench/peers/<peer>/pom.xml) whose jars `mvn dependency:copy-dependencies` copies, and its
// job file compiled against them with javac. Each build lands in
// `~/.cache/weir/bench-peers/<peer>-<hash of its files>/` (a `.partial` folder renamed into
// place when complete), so a warm start reuses it and a change to a pom or a job rebuilds it.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { cacheDir } from "../test-e2e/cluster/layout.ts";

const execFileAsync = promisify(execFile);

export type PeerName = "kafka-streams" | "flink";

/** A built peer: how to start its JVM. */
export interface PeerBuild {
  name: PeerName;
  /** The class whose main runs a job. */
  mainClass: string;
  /** `-cp` for java. */
  classpath: string;
  /** Whether this call built it (false: found in the cache). */
  built: boolean;
}

const peersDir = join(import.meta.dirname, "peers");
export const log4jConfig = join(peersDir, "log4j2.properties");
const mainClasses: Record<PeerName, string> = {
  "kafka-streams": "KafkaStreamsJobs",
  flink: "FlinkJobs",
};
const COMPLETE_MARK = ".complete";

/** Builds (or finds) every peer, side by side; with the seconds it took. */
export async function preparePeers(): Promise<{
  peers: Record<PeerName, PeerBuild>;
  seconds: number;
  cold: boolean;
}> {
  const started = performance.now();
  const [kafkaStreams, flink] = await Promise.all([
    preparePeer("kafka-streams"),
    preparePeer("flink"),
  ]);
  return {
    peers: { "kafka-streams": kafkaStreams, flink },
    seconds: (performance.now() - started) / 1000,
    cold: kafkaStreams.built || flink.built,
  };
}

async function preparePeer(name: PeerName): Promise<PeerBuild> {
  const mainClass = mainClasses[name];
  const pom = join(peersDir, name, "pom.xml");
  const source = join(peersDir, name, `${mainClass}.java`);
  const hash = createHash("sha256")
    .update(readFileSync(pom))
    .update(readFileSync(source))
    .digest("hex")
    .slice(0, 12);
  const dir = join(cacheDir, "bench-peers", `${name}-${hash}`);
  const peer = (built: boolean): PeerBuild => ({
    name,
    mainClass,
    classpath: `${join(dir, "classes")}:${join(dir, "libs")}/*`,
    built,
  });
  if (existsSync(join(dir, COMPLETE_MARK))) return peer(false);

  const staging = `${dir}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(join(staging, "classes"), { recursive: true });
  const log = join(staging, "build.log");
  const step = async (command: string, args: string[]) => {
    try {
      const { stdout, stderr } = await execFileAsync(command, args, {
        // Maven writes nothing into the checkout: it runs in the staging folder.
        cwd: staging,
        maxBuffer: 64 * 1024 * 1024,
      });
      writeFileSync(log, stdout + stderr, { flag: "a" });
    } catch (error) {
      const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
      writeFileSync(log, stdout + stderr, { flag: "a" });
      const tail = `${stdout}${stderr}`.trim().split("\n").slice(-15).join("\n");
      throw new Error(`building the ${name} peer: ${command} failed (log: ${log}):\n${tail}`);
    }
  };
  await step("mvn", [
    "-B",
    "-q",
    "-f",
    pom,
    `-Dmaven.repo.local=${join(cacheDir, "maven")}`,
    "dependency:copy-dependencies",
    `-DoutputDirectory=${join(staging, "libs")}`,
    "-DincludeScope=runtime",
  ]);
  await step("javac", [
    "-nowarn",
    "-d",
    join(staging, "classes"),
    "-cp",
    `${join(staging, "libs")}/*`,
    source,
  ]);
  writeFileSync(join(staging, COMPLETE_MARK), `${name} ${hash}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(staging, dir);
  return peer(true);
}
