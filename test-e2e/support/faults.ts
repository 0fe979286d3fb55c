// The faults a running StreamJob meets, one function each, and the jobs they meet, for the
// fault matrix (tests/fault-matrix.e2e.test.ts) and the randomized soak (scripts/chaos.ts):
// its pods killed or force-deleted, rescales and upgrades, the operator killed, its object
// store frozen, the Kafka broker restarted. Each injects its fault and returns a line saying
// what it did; it waits only as long as the fault itself lasts, so that faults can pile up on
// each other, and `jobRecovered` waits for the job to be whole again.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { clicksPerUser } from "../../runtime/examples/clicks-per-user.ts";
import { wordCount } from "../../runtime/examples/word-count.ts";
import { taskGroupId } from "../../runtime/src/connectors/kafka/task-io.ts";
import { COMPONENTS } from "../cluster/components.ts";
import { clusterPaths, logFile } from "../cluster/layout.ts";
import { Pki } from "../cluster/pki.ts";
import { isRunning, readRecords, startProcess, stopProcess } from "../cluster/processes.ts";
import { ensureBinaries } from "../cluster/toolchain.ts";
import { cli } from "./cluster.ts";
import { lastStableOffsets } from "./kafka.ts";
import type { PrivateMinio } from "./minio.ts";
import { isReady, type OperatorTestbed, patchJobSpec, readJob } from "./operator.ts";
import { eventually } from "./wait.ts";

/** The job faults are injected into, and what they need to reach it. */
export interface FaultTarget {
  bed: OperatorTestbed;
  /** The StreamJob's name (in the testbed's namespace). */
  job: string;
  /** The job's object store (the job's own, so that freezing it disturbs nobody else). */
  storage: PrivateMinio;
  /** Where pods to hit and lengths of outages are drawn from: seeded, so a run can be redone. */
  random: () => number;
}

/** The examples' seeded PRNG (mulberry32): the same seed gives the same faults. */
export { seededRandom } from "../../runtime/examples/golden.ts";

/** A job faults meet: the word count, or clicks-per-user (event-time windows). */
export interface FaultJob {
  target: FaultTarget;
  input: string;
  output: string;
  /** Committed output records that a few seconds of processing add: how to see it move on. */
  growth: number;
}

const EXAMPLES = {
  "word-count": { build: wordCount, growth: 200 },
  "clicks-per-user": { build: clicksPerUser, growth: 20 },
};

/**
 * Applies the fault job `name`: `example` (each repartitions its records to a keyed step) at
 * parallelism 3 on 6 partitions, checkpoints every second, its savepoints and checkpoints in
 * `storage`; jobRecovered tells when it runs.
 */
export async function faultJob(
  bed: OperatorTestbed,
  storage: PrivateMinio,
  example: keyof typeof EXAMPLES,
  name: string,
  random: () => number,
): Promise<FaultJob> {
  const { build, growth } = EXAMPLES[example];
  const job = await bed.jobOnTopics(
    name,
    `/app/runtime/examples/${example}.ts`,
    { parallelism: 3, checkpoints: { interval: "1s" } },
    { partitions: 6 },
  );
  // The runtime creates the job's internal topics; they go with the testbed's.
  bed.topics.push(...build({ name: job.internal }).describe().internalTopics);
  const spec = job.manifest.spec as { savepoints: { storage: { endpoint: string } } };
  spec.savepoints.storage.endpoint = storage.endpoint;
  await bed.apply(job.manifest);
  return {
    target: { bed, job: name, storage, random },
    input: job.input,
    output: job.output,
    growth,
  };
}

/** `fault` into each of `targets` in turn (a pod of each killed, each rescaled …). */
export async function onEach(
  targets: readonly FaultTarget[],
  fault: (target: FaultTarget) => Promise<string>,
): Promise<string> {
  const lines: string[] = [];
  for (const target of targets) lines.push(`${target.job}: ${await fault(target)}`);
  return lines.join("; ");
}

function pick<T>(items: readonly T[], random: () => number): T | undefined {
  return items[Math.floor(random() * items.length)];
}

const podName = (pod: V1Pod) => pod.metadata?.name ?? "";

/** The job's pods that are not being deleted (of whichever runs there are), by name. */
async function livePods(target: FaultTarget): Promise<V1Pod[]> {
  const pods = await target.bed.podsOf(target.job);
  return pods
    .filter((p) => !p.metadata?.deletionTimestamp)
    .sort((a, b) => podName(a).localeCompare(podName(b)));
}

/** The host pid of the pod's runtime process (the process kubelet's container id). */
function runtimePid(pod: V1Pod): number | undefined {
  const status = pod.status?.containerStatuses?.[0];
  if (!status?.state?.running) return undefined;
  const pid = Number(status.containerID?.replace("weir://", ""));
  return pid > 0 ? pid : undefined;
}

/**
 * True when `pid` is still the runtime process of `job` (a container id read from the API
 * may be stale, and the kernel reuses pids: never kill a process on a stale word).
 */
function isRuntimeOf(pid: number, job: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    return args.some((a) => a.endsWith("runtime/src/main.ts")) && env.includes(`WEIR_JOB=${job}`);
  } catch {
    return false;
  }
}

const restarts = (pod: V1Pod) => pod.status?.containerStatuses?.[0]?.restartCount ?? 0;

/**
 * `kill -9` of the runtime process of one of the job's pods; the kubelet restarts it in place.
 * Picks among the pods restarted least (the kubelet's back-off grows with every restart: 0 s,
 * 10 s, 20 s …), and waits until the kubelet has seen the process die.
 */
export async function killPodProcess(
  target: FaultTarget,
  podIndex?: number | ((pod: V1Pod) => boolean),
): Promise<string> {
  const candidates = (await livePods(target)).filter((p) => runtimePid(p) !== undefined);
  const fewest = Math.min(...candidates.map(restarts));
  const victim =
    podIndex === undefined
      ? pick(
          candidates.filter((p) => restarts(p) === fewest),
          target.random,
        )
      : candidates.find((p) =>
          typeof podIndex === "number"
            ? p.metadata?.labels?.["weir.dev/subtask"] === String(podIndex)
            : podIndex(p),
        );
  const pid = victim && runtimePid(victim);
  const job = `${target.bed.namespace}/${target.job}`;
  if (!victim || pid === undefined || !isRuntimeOf(pid, job)) {
    // A pod asked for by index must be hit (a test); a random pick may find none (a soak).
    if (podIndex !== undefined) throw new Error(`no pod of ${job} asked for has a runtime process`);
    return "kill -9: no pod with a running runtime process right now";
  }
  process.kill(pid, "SIGKILL");
  const name = podName(victim);
  await eventually(
    `the kubelet to see ${name}'s process killed`,
    async () => {
      const pod = await target.bed.core
        .readNamespacedPod({ namespace: target.bed.namespace, name })
        .catch(() => undefined);
      return !pod || restarts(pod) > restarts(victim) ? true : undefined;
    },
    30_000,
  );
  return `kill -9 of ${name}'s runtime process (pid ${pid})`;
}

/**
 * `kubectl delete pod --grace-period=0 --force` of one of the job's pods: the object goes at
 * once, the kubelet kills the process, and the operator creates the pod anew.
 */
export async function forceDeletePod(target: FaultTarget, podIndex?: number): Promise<string> {
  const pods = await livePods(target);
  const victim =
    podIndex === undefined
      ? pick(pods, target.random)
      : pods.find((p) => p.metadata?.labels?.["weir.dev/subtask"] === String(podIndex));
  if (!victim) {
    if (podIndex !== undefined) throw new Error(`${target.job} has no pod ${podIndex}`);
    return "force delete: no pod right now";
  }
  const name = podName(victim);
  await cli("kubectl", [
    "delete",
    "pod",
    name,
    "-n",
    target.bed.namespace,
    "--grace-period=0",
    "--force",
    "--ignore-not-found",
  ]);
  return `force deletion of pod ${name}`;
}

/**
 * `kubectl scale` of the job to `parallelism` (by default the other of 2 and 3, which divide
 * the 6 partitions evenly); the operator rescales through a savepoint.
 */
export async function rescale(target: FaultTarget, parallelism?: number): Promise<string> {
  const job = await readJob(target.bed.namespace, target.job);
  const from = job.spec.parallelism ?? 1;
  const to = parallelism ?? (from === 3 ? 2 : 3);
  await cli("kubectl", [
    "scale",
    `sj/${target.job}`,
    "-n",
    target.bed.namespace,
    `--replicas=${to}`,
  ]);
  return `rescale ${from} → ${to}`;
}

let upgrades = 0;

/**
 * A change to the job's spec that the operator rolls out as an upgrade through a savepoint:
 * a new image tag, or a new job configuration (a field the word count ignores).
 */
export async function upgrade(target: FaultTarget, change: "image" | "config"): Promise<string> {
  const job = await readJob(target.bed.namespace, target.job);
  const version = `${Date.now().toString(36)}-${++upgrades}`;
  if (change === "image") {
    const image = `weir/runtime:${version}`;
    await patchJobSpec(target.bed.namespace, target.job, { image });
    return `upgrade of the image to ${image}`;
  }
  const config = { ...job.spec.job.config, note: `version ${version}` };
  await patchJobSpec(target.bed.namespace, target.job, { job: { ...job.spec.job, config } });
  return `upgrade of the job configuration (note: version ${version})`;
}

/**
 * The operator killed (in the cluster: its pod force-deleted) and a new one started, which
 * takes over the job where the last one left it. Returns once the new one is ready.
 */
export async function killOperator(target: FaultTarget): Promise<string> {
  const { bed } = target;
  const killed = bed.operator?.identity ?? "(none)";
  await bed.operator?.kill();
  bed.operator = await bed.startOperator(`operator-${Date.now().toString(36)}`);
  return `operator ${killed} killed, ${bed.operator.identity} started`;
}

/**
 * The job's object store frozen (SIGSTOP: connections are accepted, nothing answers) for
 * `ms`, then resumed: checkpoints and savepoints hang until the runtime's storage timeout
 * (10 s) and are retried. The freeze is the fault, so this waits it out.
 */
export async function freezeStorage(target: FaultTarget, ms: number): Promise<string> {
  target.storage.hang();
  try {
    await sleep(ms);
  } finally {
    target.storage.resume();
  }
  return `object store frozen for ${(ms / 1000).toFixed(1)} s`;
}

/**
 * The local cluster's Kafka broker stopped (SIGTERM, a controlled shutdown; with `hard`,
 * SIGKILL) and started again on the same data, the way `cluster up` launched it; returns once
 * it answers again. The broker is the cluster's own: everyone using the cluster sees it go.
 */
export async function restartBroker(options: { hard?: boolean } = {}): Promise<string> {
  const kafka = COMPONENTS.find((c) => c.name === "kafka");
  const record = readRecords(clusterPaths.pids).find((r) => r.name === "kafka");
  if (!kafka || !record || !isRunning(record))
    throw new Error("the local cluster's Kafka broker is not running");
  const started = Date.now();
  if (options.hard) {
    process.kill(-record.pid, "SIGKILL");
    await eventually("the broker to be gone", async () => (isRunning(record) ? undefined : true));
  } else if (!(await stopProcess(record, 30_000))) {
    throw new Error(`the Kafka broker (pid ${record.pid}) did not stop`);
  }
  // The launch spec of `cluster up`, without its one-off preparation (which formats storage).
  const ctx = { bin: await ensureBinaries(), pki: new Pki(clusterPaths.pki) };
  const launch = kafka.launch(ctx);
  const restarted = startProcess({
    name: kafka.name,
    command: launch.command,
    args: launch.args,
    env: launch.env,
    logFile: logFile(kafka.name),
    pidDir: clusterPaths.pids,
  });
  await eventually(
    "the restarted Kafka broker to answer",
    async () => {
      if (!isRunning(restarted))
        throw new Error(`the restarted broker exited; see ${logFile("kafka")}`);
      return (await kafka.healthy(ctx)) ? true : undefined;
    },
    120_000,
  );
  const how = options.hard ? "killed (SIGKILL)" : "stopped";
  return `Kafka broker ${how} and restarted, answering again after ${((Date.now() - started) / 1000).toFixed(1)} s`;
}

/**
 * Waits until the job is whole: Running its current spec with no operation under way, and
 * every pod of its run there, running and Ready (none from another run, none being deleted).
 */
export async function jobRecovered(target: FaultTarget, timeoutMs = 300_000): Promise<StreamJob> {
  const { bed } = target;
  return eventually(
    `${target.job} to be Running with every pod Ready`,
    async () => {
      const job = await readJob(bed.namespace, target.job);
      const status = job.status;
      if (
        status?.state !== "Running" ||
        status.upgrade ||
        status.observedGeneration !== job.metadata.generation ||
        status.run?.parallelism !== job.spec.parallelism ||
        status.run?.image !== job.spec.image
      )
        return undefined;
      const pods = await bed.podsOf(target.job);
      const whole =
        pods.length === status.run.parallelism &&
        pods.every(
          (p) =>
            !p.metadata?.deletionTimestamp &&
            p.metadata?.labels?.["weir.dev/run"] === status.run?.id &&
            runtimePid(p) !== undefined &&
            isReady(p),
        );
      return whole ? job : undefined;
    },
    timeoutMs,
  );
}

/** A source partition the job has not read to its end: where its task's committed offset is. */
export interface Backlog {
  partition: number;
  committed: bigint;
  end: bigint;
}

/**
 * The job's input partitions whose tasks have not committed their way to the input's end
 * (empty once every input record is processed and its output committed).
 */
export async function inputBacklog(target: FaultTarget, input: string): Promise<Backlog[]> {
  const ends = await lastStableOffsets(input);
  const job = { namespace: target.bed.namespace, name: target.job };
  const groups = ends.map((_, partition) => taskGroupId(job, { topic: input, partition }));
  const listed = await target.bed.admin.listConsumerGroupOffsets({ groups });
  const committed = new Map<string, bigint>();
  for (const group of listed) {
    const offset = group.topics.flatMap((t) => t.partitions)[0]?.committedOffset;
    if (offset !== undefined) committed.set(group.groupId, offset);
  }
  return ends.flatMap((end, partition) => {
    // -1 (or no entry): the task never committed.
    const offset = committed.get(groups[partition] ?? "") ?? -1n;
    const at = offset < 0n ? 0n : offset;
    return at < end ? [{ partition, committed: at, end }] : [];
  });
}

/** `partition 2 at 2318 of 3025, partition 3 at …`: a backlog in a few words. */
export function describeBacklog(backlog: readonly Backlog[]): string {
  return backlog.map((b) => `partition ${b.partition} at ${b.committed} of ${b.end}`).join(", ");
}

/**
 * Waits until the job has processed its whole input (after the input stopped); fails naming
 * the partitions it is stuck on: a job that stops making progress fails here, as such, rather
 * than as counts missing from its output.
 */
export async function inputProcessed(
  target: FaultTarget,
  input: string,
  timeoutMs = 120_000,
): Promise<void> {
  let backlog: Backlog[] = [];
  try {
    await eventually(
      `${target.job} to process its whole input`,
      async () => {
        backlog = await inputBacklog(target, input);
        return backlog.length === 0 ? true : undefined;
      },
      timeoutMs,
    );
  } catch {
    throw new Error(
      `${target.job} did not process its input within ${timeoutMs / 1000} s: ${describeBacklog(backlog)}`,
    );
  }
}
