// `npm run bench -- runtime`: the runtime on the local cluster, exactly-once on, next to its
// peers on the same broker and inputs (docs/architecture.md, "Benchmarks").
//
// - throughput: N records pre-produced to a fresh topic; the real runtime process (parallelism
//   1) runs an example from them, and so do Kafka Streams and Flink (bench/peers.ts,
//   bench/engines.ts) and a pass-through of the runtime's Kafka I/O without processing; each
//   is timed from readiness until its output is complete for a read_committed reader, its
//   output checked record by record (bench/workloads.ts), and compared by records per
//   CPU-second of its process (bench/compare.ts); `--no-peers` leaves out the JVM peers;
// - latency: the stateless example at a fixed rate below saturation, produce time in each
//   record, p50/p99 of the time until a read_committed reader sees its output;
// - checkpoint writes: the runtime's SnapshotStore writing several tasks' state next to raw
//   putObject of the same bytes, in the same run.
//
// `--profile` runs Weir's throughput jobs under `node --cpu-prof` and prints where their time goes.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Admin, FetchIsolationLevels, ListOffsetTimestamps } from "@platformatic/kafka";
import { TaskReader, taskGroupId } from "../runtime/src/connectors/kafka/task-io.ts";
import { TaskState } from "../runtime/src/state/keyed-state.ts";
import { SnapshotStore, type TaskSnapshot } from "../runtime/src/state/snapshot-store.ts";
import { status } from "../test-e2e/cluster/cluster.ts";
import { httpGet } from "../test-e2e/cluster/probe.ts";
import { clusterEnv, s3Client, uniqueName } from "../test-e2e/support/cluster.ts";
import {
  deleteTopicsOf,
  inputProducer,
  readTopic,
  readTopicToEnd,
} from "../test-e2e/support/kafka.ts";
import { runtimeReady, startRuntime } from "../test-e2e/support/runtime.ts";
import { eventually } from "../test-e2e/support/wait.ts";
import {
  comparisonTable,
  type EngineName,
  type Figure,
  type Figures,
  type JobName,
  targetLines,
  targets,
} from "./compare.ts";
import {
  type EngineProcess,
  type JobKind,
  type JobTopics,
  JVM_HEAP,
  startFlink,
  startKafkaStreams,
  startPassThrough,
} from "./engines.ts";
import { percentile, stopwatch, table } from "./measure.ts";
import { type PeerBuild, type PeerName, preparePeers } from "./peers.ts";
import { summarizeProfiles } from "./profile.ts";
import {
  clickStream,
  copyProblems,
  filterEnrichProblems,
  type OutputRecord,
  pageView,
  produce,
  setProblems,
} from "./workloads.ts";

// Sized for ~20 s of Weir's work each on a 2-core machine shared with the broker.
const STATELESS_RECORDS = 1_200_000;
const KEYED_RECORDS = 700_000;
/** Checkpoint (commit) interval of every engine's throughput runs. */
const THROUGHPUT_INTERVAL_MS = 1_000;
/** Latency runs: a short interval, and a longer one to show how latency follows it. */
const LATENCY_INTERVALS_MS = [100, 1_000];
const LATENCY_SECONDS = 10;
/** The latency runs' rate, as a share of the stateless saturation throughput. */
const LATENCY_LOAD = 0.25;
const START_ATTEMPTS = 24;
const CHECKPOINT_TASKS = 4;
const CHECKPOINT_TASK_BYTES = 32 * 1024 * 1024;
const TARGETS = { stateless: 100_000, keyed: 50_000, checkpointRatio: 0.7 };
/** Longest a throughput run may take until its output is complete. */
const RUN_TIMEOUT_MS = 300_000;

const jobModule = join(import.meta.dirname, "example-job.ts");
// One partition: a parallelism-1 job with one task per stage. (With several, the keyed job's
// second stage would see its partitions' records interleaved from several upstream tasks,
// out of event-time order beyond the example's bound.)
const PARTITIONS = 1;
const NAMESPACE = "tests"; // what startRuntime (and the pass-through) put in the job's name

/** How each peer runs, printed with the figures (docs/architecture.md says why it is fair). */
const PEER_SETUP = [
  "Same input topic (byte for byte) for every engine, one partition, parallelism 1, exactly-once with a 1 s commit/checkpoint interval, fetches of at most 256 KB, each timed from readiness until its output is complete for read_committed and then checked record by record.",
  "Weir: runtime/src/main.ts, state on the heap, checkpoints to S3 (MinIO) every 1 s; the keyed job repartitions through a Kafka topic.",
  `Kafka Streams 4.1.2: exactly_once_v2, commit.interval.ms 1000, one stream thread; keyed: selectKey-like process() → repartition topic → in-memory window store (with changelog, 10 MB record cache) → suppress(untilWindowCloses), grace 15 s (Weir's 5 s out-of-orderness + 10 s lateness): each window emitted once when it closes. JVM: ${JVM_HEAP} fixed heap, G1.`,
  `Flink 2.2.0 (embedded MiniCluster, one slot, parallelism 1), Kafka connector 5.0.0-2.2: EXACTLY_ONCE checkpoints every 1 s, KafkaSource read_committed, KafkaSink EXACTLY_ONCE (transactional id prefix per run, 60 s transaction timeout), HashMapStateBackend with full checkpoints to the local file system (Weir's go to S3), object reuse; keyed: keyBy inside the JVM, 60 s tumbling event-time windows, bounded out-of-orderness 5 s, allowed lateness 10 s. JVM: ${JVM_HEAP} fixed heap, G1.`,
  "pass-through: the runtime's TaskReader/TaskWriter (@platformatic/kafka) copying each record's value, one transaction per second carrying its offsets: no decoding, state or pipeline (the ceiling of Weir's design).",
];

interface Run {
  job: string;
  input: string;
  output: string;
}

export async function runtimeBenchmark(): Promise<boolean> {
  const profile = process.argv.includes("--profile");
  const withPeers = !process.argv.includes("--no-peers");
  const env = clusterEnv();
  const admin = new Admin({ clientId: "weir-bench", bootstrapBrokers: [env.kafkaBootstrap] });
  const brokerPid = (await status()).find((component) => component.name === "kafka")?.pid;
  const topics: string[] = [];
  /** Every job's name: their internal topics (`<name>-…`) are deleted at the end too. */
  const names: string[] = [];
  /** Processes not yet exited: killed if the benchmark fails half-way. */
  const running = new Set<ChildProcess>();
  /** Folders of the peers' state and checkpoints, deleted at the end. */
  const scratch: string[] = [];

  /** Fresh topics for one run of an example: its own input, unless it shares `input`. */
  const newRun = async (prefix: string, input?: string): Promise<Run> => {
    const job = uniqueName(prefix);
    names.push(job);
    const run = { job, input: input ?? `${job}-in`, output: `${job}-out` };
    const fresh = input ? [run.output] : [run.input, run.output];
    topics.push(...fresh);
    // No time retention: the windows' timestamps are their event time, in 2025, and the
    // broker's 7-day retention would delete them (a check every 5 minutes) before they are read.
    await admin.createTopics({
      topics: fresh,
      partitions: PARTITIONS,
      replicas: 1,
      configs: [{ name: "retention.ms", value: "-1" }],
    });
    return run;
  };

  /** Starts the runtime on `run` and waits until it consumes. */
  const startJob = async (
    example: string,
    run: Run,
    checkpointIntervalMs: number,
    nodeArgs: string[] = [],
  ): Promise<EngineProcess> => {
    // Another process may hold port 9249 on every address for a while (the shared machine
    // runs other tests' pods): a runtime that cannot listen, or is not the one answering, is
    // started again on another address.
    for (let attempt = 1; ; attempt++) {
      const byte = () => 1 + Math.floor(Math.random() * 250);
      const pod = startRuntime({
        module: jobModule,
        job: run.job,
        subtask: 0,
        parallelism: 1,
        ip: `127.4.${byte()}.${byte()}`,
        prefix: "bench",
        checkpointIntervalMs,
        nodeArgs,
        // Its log lines are kept (the last few KB), not printed: they would bury the figures.
        stderr: "pipe",
        env: {
          BENCH_EXAMPLE: example,
          BENCH_JOB: run.job,
          BENCH_INPUT: run.input,
          BENCH_OUTPUT: run.output,
        },
      });
      running.add(pod.process);
      let log = "";
      pod.process.stderr?.on("data", (chunk: Buffer) => {
        log = (log + chunk.toString()).slice(-6_000);
      });
      const exited = once(pod.process, "exit").finally(() => running.delete(pod.process));
      try {
        await runtimeReady(pod, 60_000);
        // What answered may be that other process (listening on every address), not ours.
        const answer = JSON.parse((await httpGet(`${pod.url}/v1/status`)).body);
        if (answer.job?.name !== run.job) throw new Error(`another runtime answers at ${pod.ip}`);
      } catch (error) {
        pod.process.kill("SIGKILL");
        const reason = `${error}; its log ends:\n${log.trim().split("\n").slice(-10).join("\n")}`;
        if (attempt >= START_ATTEMPTS) throw new Error(reason);
        process.stderr.write(`[bench] ${reason}\nstarting again in 5 s\n`);
        await sleep(5_000);
        continue;
      }
      return {
        pid: pod.process.pid as number,
        whileRunning: <T>(work: Promise<T>) =>
          Promise.race([
            work,
            exited.then(([code]) => {
              throw new Error(
                `the runtime of ${run.job} exited (${code}) before the run was over; its log ends:\n${log.trim().split("\n").slice(-20).join("\n")}`,
              );
            }),
          ]),
        stop: async () => {
          if (pod.process.exitCode !== null) return;
          pod.process.kill("SIGTERM");
          await exited;
        },
      };
    }
  };

  /** Times a started engine until `complete()` resolves: wall and CPU of its process. */
  const timed = async (
    engine: EngineProcess,
    records: number,
    complete: () => Promise<void>,
  ): Promise<Figure> => {
    const watch = stopwatch({ job: engine.pid, broker: brokerPid });
    await engine.whileRunning(complete());
    const { seconds, cpu } = watch.stop();
    return {
      records,
      seconds,
      cpuSeconds: cpu.job ?? 0,
      brokerCpuSeconds: cpu.broker ?? 0,
    };
  };

  /**
   * Resolves once `group` has committed `records` records of the input (each engine commits
   * its offsets in the transaction of the output they led to, or for Flink when the checkpoint
   * that holds them completes), and then no transaction is open on the output: what the input
   * led to is visible to read_committed.
   */
  const inputCommitted = async (group: string, run: Run, records: number) => {
    await eventually(
      `${run.job} to commit ${records} input records`,
      async () => {
        const offsets = await admin.listConsumerGroupOffsets({ groups: [group] });
        const committed = offsets
          .flatMap((g) => g.topics.filter((t) => t.name === run.input))
          .flatMap((topic) => topic.partitions)
          .reduce((sum, p) => sum + (p.committedOffset > 0n ? Number(p.committedOffset) : 0), 0);
        return committed >= records ? true : undefined;
      },
      RUN_TIMEOUT_MS,
    );
    await eventually(
      `${run.output} to have no open transaction`,
      async () => {
        const [stable, high] = await Promise.all([
          endOffset(admin, run.output, true),
          endOffset(admin, run.output, false),
        ]);
        return stable === high ? true : undefined;
      },
      RUN_TIMEOUT_MS,
    );
  };

  /**
   * Resolves once the windows a read_committed reader sees count every click. The reader is
   * the runtime's TaskReader, which drops aborted transactions' records even when their abort
   * marker comes in a later fetch (the test client's reader does not: a peer that aborted a
   * transaction, as Kafka Streams does on a rebalance, was taken for complete too early). A
   * window seen twice counts once.
   */
  const windowsComplete = async (run: Run) => {
    const reader = new TaskReader({
      kafka: { bootstrapBrokers: [env.kafkaBootstrap] },
      job: { namespace: NAMESPACE, name: `${run.job}-check` },
      task: { topic: run.output, partition: 0 },
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void reader.close();
    }, RUN_TIMEOUT_MS);
    const counts = new Map<string, number>();
    let total = 0;
    try {
      for await (const records of reader.start(0n)) {
        for (const record of records) {
          const window = JSON.parse(record.value?.toString() ?? "{}") as {
            user: string;
            start: number;
            clicks: number;
          };
          const id = `${window.user}@${window.start}`;
          total += window.clicks - (counts.get(id) ?? 0);
          counts.set(id, window.clicks);
        }
        if (total >= KEYED_RECORDS) return;
      }
      throw new Error(
        `${run.output}: ${timedOut ? `after ${RUN_TIMEOUT_MS} ms ` : ""}the windows count ${total} of ${KEYED_RECORDS} clicks`,
      );
    } finally {
      clearTimeout(timer);
      await reader.close().catch(() => {});
    }
  };

  const peerSetup = withPeers ? await preparePeers() : undefined;
  const peers: Record<PeerName, PeerBuild> | undefined = peerSetup?.peers;
  if (peerSetup)
    process.stderr.write(
      `[bench] peers ready in ${peerSetup.seconds.toFixed(1)} s (${peerSetup.cold ? "built" : "cached"})\n`,
    );

  const figures: Figures = { stateless: {}, keyed: {} };
  /** Peers whose run failed or whose output was wrong: the comparison is incomplete. */
  const failures: string[] = [];

  /**
   * Runs `engine` on `workload` and checks its output: Weir's failure fails the benchmark,
   * a peer's is reported and its row left out.
   */
  const runEngine = async (
    jobName: JobName,
    engine: EngineName,
    run: Run,
    records: number,
    start: () => Promise<EngineProcess>,
    complete: () => Promise<void>,
    problems: (output: OutputRecord[]) => string[],
  ) => {
    let started: EngineProcess | undefined;
    try {
      process.stderr.write(`[bench] ${jobName}: ${engine}\n`);
      started = await start();
      const figure = await timed(started, records, complete);
      // Checked while the engine still runs: output that shows up later than the check
      // above said it was complete is told apart from output that never comes.
      const read = await readAll(run.output);
      const found = problems(read.records);
      if (found.length > 0) {
        await sleep(5_000);
        const again = await readAll(run.output);
        const later = problems(again.records);
        const ends = again.partitions
          .map((p) => `read to offset ${p.lastStableOffset}, high watermark ${p.highWatermark}`)
          .join(", ");
        throw new Error(
          later.length === 0
            ? `output complete only after it was taken for complete (${found.join("; ")})`
            : `wrong output: ${later.join("; ")} (${ends}; 5 s before: ${found.join("; ")})`,
        );
      }
      figures[jobName][engine] = figure;
    } catch (error) {
      if (engine === "weir") throw error;
      failures.push(`${engine} (${jobName}): ${(error as Error).message}`);
      process.stderr.write(`[bench] ${engine} (${jobName}) failed: ${(error as Error).message}\n`);
    } finally {
      await started?.stop();
    }
  };

  /** The peers and the pass-through on a workload's input, after Weir. */
  const runOthers = async (
    jobName: JobName,
    kind: JobKind,
    input: string,
    records: number,
    complete: (group: string, run: Run) => () => Promise<void>,
    problems: (output: OutputRecord[]) => string[],
    copy: (output: OutputRecord[]) => string[],
  ) => {
    const topicsOf = (run: Run): JobTopics => ({
      name: run.job,
      input: run.input,
      output: run.output,
    });
    if (peers) {
      const streams = await newRun(`bench-ks-${jobName}`, input);
      scratch.push(join(tmpdir(), streams.job));
      await runEngine(
        jobName,
        "kafka-streams",
        streams,
        records,
        () =>
          startKafkaStreams(
            peers["kafka-streams"],
            kind,
            topicsOf(streams),
            env.kafkaBootstrap,
            running,
          ),
        complete(streams.job, streams),
        problems,
      );
      const flink = await newRun(`bench-flink-${jobName}`, input);
      const checkpoints = mkdtempSync(join(tmpdir(), "weir-bench-flink-"));
      scratch.push(checkpoints);
      await runEngine(
        jobName,
        "flink",
        flink,
        records,
        () =>
          startFlink(peers.flink, kind, topicsOf(flink), env.kafkaBootstrap, checkpoints, running),
        complete(flink.job, flink),
        problems,
      );
    }
    const pass = await newRun(`bench-pt-${jobName}`, input);
    await runEngine(
      jobName,
      "pass-through",
      pass,
      records,
      () => startPassThrough(topicsOf(pass), env.kafkaBootstrap, running),
      () =>
        inputCommitted(
          taskGroupId({ namespace: NAMESPACE, name: pass.job }, { topic: input, partition: 0 }),
          pass,
          records,
        ),
      copy,
    );
  };

  const weirGroup = (run: Run) =>
    taskGroupId({ namespace: NAMESPACE, name: run.job }, { topic: run.input, partition: 0 });
  const weir = async (example: JobKind, run: Run) => {
    const profileDir = profile ? mkdtempSync(join(tmpdir(), `weir-bench-${example}-`)) : "";
    const job = await startJob(
      example,
      run,
      THROUGHPUT_INTERVAL_MS,
      profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
    );
    return {
      job,
      profiled: () => {
        if (profile) process.stdout.write(`\n${example}: ${summarizeProfiles(profileDir)}`);
      },
    };
  };

  try {
    // Stateless: filter/enrich. Every 20th record is a bot's, every 20th+1 has no valid URL.
    const statelessRun = await newRun("bench-fe");
    await produce(statelessRun.input, STATELESS_RECORDS, pageView);
    const statelessProblems = (output: OutputRecord[]) =>
      filterEnrichProblems(output, STATELESS_RECORDS);
    let profiled = () => {};
    await runEngine(
      "stateless",
      "weir",
      statelessRun,
      STATELESS_RECORDS,
      async () => {
        const started = await weir("filter-enrich", statelessRun);
        profiled = started.profiled;
        return started.job;
      },
      () => inputCommitted(weirGroup(statelessRun), statelessRun, STATELESS_RECORDS),
      statelessProblems,
    );
    profiled();
    await runOthers(
      "stateless",
      "filter-enrich",
      statelessRun.input,
      STATELESS_RECORDS,
      (group, run) => () => inputCommitted(group, run, STATELESS_RECORDS),
      statelessProblems,
      (output) => copyProblems(output, pageView, STATELESS_RECORDS),
    );

    // Keyed windowed: clicks per user per minute, then a click far ahead in event time that
    // moves the watermark past every window (it sits in a window that never fires).
    const keyedRun = await newRun("bench-cpu");
    const clicks = clickStream(KEYED_RECORDS);
    await produce(keyedRun.input, KEYED_RECORDS + 1, clicks.value);
    const windows = clicks.windows();
    const keyedProblems = (output: OutputRecord[]) => setProblems(output, windows);
    await runEngine(
      "keyed",
      "weir",
      keyedRun,
      KEYED_RECORDS + 1,
      async () => {
        const started = await weir("clicks-per-user", keyedRun);
        profiled = started.profiled;
        return started.job;
      },
      () => windowsComplete(keyedRun),
      keyedProblems,
    );
    profiled();
    await runOthers(
      "keyed",
      "clicks-per-user",
      keyedRun.input,
      KEYED_RECORDS + 1,
      (_group, run) => () => windowsComplete(run),
      keyedProblems,
      (output) => copyProblems(output, clicks.value, KEYED_RECORDS + 1),
    );

    // Latency at a fixed rate below saturation.
    const stateless = figures.stateless.weir as Figure;
    const rate = Math.max(
      1_000,
      Math.round((stateless.records / stateless.seconds) * LATENCY_LOAD),
    );
    const latencies = [];
    for (const interval of LATENCY_INTERVALS_MS) {
      const run = await newRun("bench-lat");
      const job = await startJob("filter-enrich", run, interval);
      latencies.push({ interval, ...(await job.whileRunning(latency(run, rate))) });
      await job.stop();
    }

    const checkpoints = await checkpointWrites();

    const mark = (ok: boolean) => (ok ? "yes" : "NO");
    process.stdout.write(
      `\nRuntime benchmark (exactly-once, parallelism 1, ${PARTITIONS} partition, checkpoint every ${THROUGHPUT_INTERVAL_MS} ms; the machine is shared: figures are noisy, only ratios within one run mean much)\n\n`,
    );
    for (const line of withPeers ? PEER_SETUP : [...PEER_SETUP.slice(0, 2), PEER_SETUP[4]])
      process.stdout.write(`- ${line}\n`);
    if (peerSetup)
      process.stdout.write(
        `- Peers ${peerSetup.cold ? "built (Maven Central, javac)" : "found built"} in ${peerSetup.seconds.toFixed(1)} s.\n`,
      );
    process.stdout.write(`\n${comparisonTable(figures)}`);
    process.stdout.write(`\nTargets (issue 16):\n${targetLines(targets(figures))}`);
    const perCoreWeir = (job: JobName) => {
      const f = figures[job].weir as Figure;
      return f.records / f.cpuSeconds;
    };
    process.stdout.write(
      `Weir's own targets: stateless ${fmt(perCoreWeir("stateless"))} records/s per core (target ${fmt(TARGETS.stateless)}: ${mark(perCoreWeir("stateless") >= TARGETS.stateless)}), keyed ${fmt(perCoreWeir("keyed"))} (target ${fmt(TARGETS.keyed)}: ${mark(perCoreWeir("keyed") >= TARGETS.keyed)})\n`,
    );
    if (failures.length > 0)
      process.stdout.write(`\nNot compared (failed):\n${failures.map((f) => `  ${f}\n`).join("")}`);
    process.stdout.write(`\nLatency, filter-enrich at ${fmt(rate)} records/s:\n\n`);
    process.stdout.write(
      table([
        ["checkpoint interval ms", "records", "p50 ms", "p99 ms", "max ms"],
        ...latencies.map((l) => [
          String(l.interval),
          String(l.count),
          l.p50.toFixed(0),
          l.p99.toFixed(0),
          l.max.toFixed(0),
        ]),
      ]),
    );
    process.stdout.write(
      `\nCheckpoint writes, ${CHECKPOINT_TASKS} tasks × ${CHECKPOINT_TASK_BYTES / 2 ** 20} MB (best of ${checkpoints.rounds}):\n\n`,
    );
    const mbps = (bytes: number, seconds: number) => (bytes / 2 ** 20 / seconds).toFixed(0);
    const ratio = checkpoints.raw / checkpoints.store;
    process.stdout.write(
      table([
        ["write", "seconds", "MB/s", "vs raw PUT"],
        ["raw putObject", checkpoints.raw.toFixed(2), mbps(checkpoints.bytes, checkpoints.raw), ""],
        [
          "SnapshotStore.write",
          checkpoints.store.toFixed(2),
          mbps(checkpoints.bytes, checkpoints.store),
          `${(ratio * 100).toFixed(0)}% (target ≥ ${TARGETS.checkpointRatio * 100}%: ${mark(ratio >= TARGETS.checkpointRatio)})`,
        ],
        [
          `TaskState.snapshot (${fmt(checkpoints.serialized.keys)} keys)`,
          checkpoints.serialized.seconds.toFixed(2),
          mbps(checkpoints.serialized.bytes, checkpoints.serialized.seconds),
          "",
        ],
      ]),
    );
    return failures.length === 0;
  } finally {
    for (const child of running) child.kill("SIGKILL");
    await admin.deleteTopics({ topics }).catch(() => {});
    await deleteTopicsOf(admin, names).catch(() => {});
    await admin.close();
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** `topic`'s end (partition 0): its last stable offset with `committed`, else its high watermark. */
async function endOffset(admin: Admin, topic: string, committed: boolean): Promise<bigint> {
  const [listed] = await admin.listOffsets({
    topics: [
      {
        name: topic,
        partitions: [{ partitionIndex: 0, timestamp: ListOffsetTimestamps.LATEST }],
      },
    ],
    isolationLevel: committed
      ? FetchIsolationLevels.READ_COMMITTED
      : FetchIsolationLevels.READ_UNCOMMITTED,
  });
  return listed?.partitions[0]?.offset ?? -1n;
}

/**
 * The whole output of a job that has stopped (nothing more can come), read to its
 * read_committed end with Kafka's Java client: what the exactly-once checks count.
 */
async function readAll(topic: string) {
  const { records, partitions } = await readTopicToEnd(topic, { timeoutMs: RUN_TIMEOUT_MS });
  return {
    records: records.map((r): OutputRecord => ({ key: r.key, value: r.value })),
    partitions,
  };
}

// ---- latency ----

/**
 * Produces to `run.input` at `rate` records/s for LATENCY_SECONDS, each record carrying its
 * produce time, and measures when a read_committed reader sees each output. A first record
 * is seen through before timing starts, so that neither the reader's group join nor the
 * job's start counts; the first second is left out as warm-up.
 */
async function latency(run: Run, rate: number) {
  let warm: () => void = () => {};
  const reading = new Promise<void>((resolve) => {
    warm = resolve;
  });
  const total = rate * LATENCY_SECONDS;
  const latencies: number[] = [];
  const reader = readTopic(
    run.output,
    (values) => {
      const out = JSON.parse(values.at(-1) ?? "{}") as { n: number; sentAt: number };
      if (out.n < 0) warm();
      else if (out.n >= rate) latencies.push(Date.now() - out.sentAt);
      return out.n === total - 1;
    },
    { timeoutMs: 120_000 },
  );
  const producer = inputProducer();
  try {
    const send = (n: number[]) =>
      producer.send({
        messages: n.map((i) => ({
          topic: run.input,
          value: JSON.stringify({
            user: `u${i}`,
            url: `https://example.com/${i}`,
            n: i,
            sentAt: Date.now(),
          }),
        })),
      });
    await send([-1]);
    await reading;
    const started = performance.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      if (due > sent) {
        await send(Array.from({ length: due - sent }, (_, k) => sent + k));
        sent = due;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await reader;
  } finally {
    await producer.close();
  }
  return {
    count: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
  };
}

// ---- checkpoint writes ----

/**
 * The runtime's checkpoint write (each task's SnapshotStore.write: its state object, checksum
 * and `_metadata.json`, tasks in parallel) against raw putObject of the same bytes, alternated
 * over a few rounds; and how fast TaskState.snapshot serializes a large keyed state.
 */
async function checkpointWrites() {
  const env = clusterEnv();
  const client = s3Client();
  const job = { namespace: NAMESPACE, name: uniqueName("bench-ckpt") };
  const store = new SnapshotStore({ client, bucket: env.s3Bucket, prefix: "bench", job });
  const tasks: TaskSnapshot[] = Array.from({ length: CHECKPOINT_TASKS }, (_, partition) => ({
    task: { topic: "bench", partition },
    offsets: { [`bench-${partition}`]: 0 },
    state: randomBytes(CHECKPOINT_TASK_BYTES),
    operators: ["bench"],
  }));
  const rawPrefix = `bench/raw/${job.name}/`;
  const timed = async (write: () => Promise<unknown>) => {
    const started = performance.now();
    await write();
    return (performance.now() - started) / 1000;
  };
  const rounds = 3;
  let raw = Number.POSITIVE_INFINITY;
  let written = Number.POSITIVE_INFINITY;
  const ids: string[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const rawTime = await timed(() =>
        Promise.all(
          tasks.map((t) =>
            client.putObject(
              env.s3Bucket,
              `${rawPrefix}${round}/${t.task.partition}`,
              t.state,
              t.state.length,
            ),
          ),
        ),
      );
      raw = Math.min(raw, rawTime);
      const storeTime = await timed(() =>
        Promise.all(
          tasks.map((t) => {
            const id = `bench-${t.task.partition}-${round}`;
            ids.push(id);
            return store.write("checkpoint", id, ["bench"], [t]);
          }),
        ),
      );
      written = Math.min(written, storeTime);
    }
  } finally {
    for (const id of ids) await store.delete("checkpoint", id).catch(() => {});
    const keys: string[] = [];
    for await (const item of client.listObjectsV2(env.s3Bucket, rawPrefix, true))
      if (item.name) keys.push(item.name);
    await client.removeObjects(env.s3Bucket, keys).catch(() => {});
  }
  return {
    rounds,
    bytes: CHECKPOINT_TASKS * CHECKPOINT_TASK_BYTES,
    raw,
    store: written,
    serialized: serializeState(),
  };
}

/** A keyed state like a running count per user: 1M keys of one value store, snapshotted. */
function serializeState() {
  const keys = 1_000_000;
  const state = new TaskState();
  const counts = state.operator("counts").value<number>("count");
  for (let i = 0; i < keys; i++) counts.set(`user-${i}`, i, 0);
  const started = performance.now();
  const bytes = state.snapshot(0).length;
  return { keys, bytes, seconds: (performance.now() - started) / 1000 };
}
