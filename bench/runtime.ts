// `npm run bench -- runtime`: the runtime on the local cluster, exactly-once on.
//
// - throughput: N records pre-produced to a fresh topic, the real runtime process (parallelism
//   1) runs an example from them; records/s from readiness until the output is complete for a
//   read_committed reader, and records per CPU-second of the runtime process (per core);
// - latency: the stateless example at a fixed rate below saturation, produce time in each
//   record, p50/p99 of the time until a read_committed reader sees its output;
// - checkpoint writes: the runtime's SnapshotStore writing several tasks' state next to raw
//   putObject of the same bytes, in the same run.
//
// `--profile` runs the throughput jobs under `node --cpu-prof` and prints where their time goes.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Admin } from "@platformatic/kafka";
import { taskGroupId } from "../runtime/src/connectors/kafka/task-io.ts";
import { TaskState } from "../runtime/src/state/keyed-state.ts";
import { SnapshotStore, type TaskSnapshot } from "../runtime/src/state/snapshot-store.ts";
import { status } from "../test-e2e/cluster/cluster.ts";
import { httpGet } from "../test-e2e/cluster/probe.ts";
import { clusterEnv, s3Client, uniqueName } from "../test-e2e/support/cluster.ts";
import { inputProducer, readTopic, readTopicToEnd } from "../test-e2e/support/kafka.ts";
import { runtimeReady, startRuntime } from "../test-e2e/support/runtime.ts";
import { eventually } from "../test-e2e/support/wait.ts";
import { percentile, stopwatch, table } from "./measure.ts";
import { summarizeProfiles } from "./profile.ts";

// Sized for ~20 s of work each on a 2-core machine shared with the broker.
const STATELESS_RECORDS = 1_200_000;
const KEYED_RECORDS = 700_000;
/** Checkpoint interval of the throughput runs: output becomes visible at most this late. */
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

const jobModule = join(import.meta.dirname, "example-job.ts");
// One partition: a parallelism-1 job with one task per stage. (With several, the keyed job's
// second stage would see its partitions' records interleaved from several upstream tasks,
// out of event-time order beyond the example's bound.)
const PARTITIONS = 1;
const NAMESPACE = "tests"; // what startRuntime puts in WEIR_JOB

interface Run {
  job: string;
  input: string;
  output: string;
}

interface Throughput {
  records: number;
  seconds: number;
  runtimeCpu: number;
  brokerCpu: number;
}

export async function runtimeBenchmark(): Promise<void> {
  const profile = process.argv.includes("--profile");
  const env = clusterEnv();
  const admin = new Admin({ clientId: "weir-bench", bootstrapBrokers: [env.kafkaBootstrap] });
  const brokerPid = (await status()).find((component) => component.name === "kafka")?.pid;
  const topics: string[] = [];
  /** Runtime processes not yet exited: killed if the benchmark fails half-way. */
  const running = new Set<ChildProcess>();

  /** Fresh topics for one run of an example. */
  const newRun = async (prefix: string): Promise<Run> => {
    const job = uniqueName(prefix);
    const run = { job, input: `${job}-in`, output: `${job}-out` };
    topics.push(run.input, run.output);
    await admin.createTopics({
      topics: [run.input, run.output],
      partitions: PARTITIONS,
      replicas: 1,
    });
    return run;
  };

  /** Starts the runtime on `run` and waits until it consumes. */
  const startJob = async (
    example: string,
    run: Run,
    checkpointIntervalMs: number,
    nodeArgs: string[] = [],
  ) => {
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
        env: {
          BENCH_EXAMPLE: example,
          BENCH_JOB: run.job,
          BENCH_INPUT: run.input,
          BENCH_OUTPUT: run.output,
        },
      });
      running.add(pod.process);
      const exited = once(pod.process, "exit").finally(() => running.delete(pod.process));
      try {
        await runtimeReady(pod, 60_000);
        // What answered may be that other process (listening on every address), not ours.
        const answer = JSON.parse((await httpGet(`${pod.url}/v1/status`)).body);
        if (answer.job?.name !== run.job) throw new Error(`another runtime answers at ${pod.ip}`);
      } catch (error) {
        pod.process.kill("SIGKILL");
        if (attempt >= START_ATTEMPTS) throw error;
        process.stderr.write(`[bench] ${error}; starting again in 5 s\n`);
        await sleep(5_000);
        continue;
      }
      return {
        pid: pod.process.pid,
        /** Resolves with `work`, or fails as soon as the runtime exits before it is done. */
        whileRunning: <T>(work: Promise<T>) =>
          Promise.race([
            work,
            exited.then(([code]) => {
              throw new Error(`the runtime of ${run.job} exited (${code}) before the run was over`);
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

  /** Runs `example` over what `run.input` holds; timed until `complete()` resolves. */
  const throughput = async (
    example: string,
    run: Run,
    records: number,
    complete: () => Promise<void>,
  ): Promise<Throughput> => {
    const profileDir = profile ? mkdtempSync(join(tmpdir(), `weir-bench-${example}-`)) : "";
    const job = await startJob(
      example,
      run,
      THROUGHPUT_INTERVAL_MS,
      profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
    );
    const watch = stopwatch({ runtime: job.pid, broker: brokerPid });
    await job.whileRunning(complete());
    const { seconds, cpu } = watch.stop();
    await job.stop();
    if (profile) process.stdout.write(`\n${example}: ${summarizeProfiles(profileDir)}`);
    return { records, seconds, runtimeCpu: cpu.runtime ?? 0, brokerCpu: cpu.broker ?? 0 };
  };

  /** Resolves once the tasks of the job's first stage have committed every input record. */
  const inputCommitted = async (run: Run, records: number) => {
    const groups = Array.from({ length: PARTITIONS }, (_, partition) =>
      taskGroupId({ namespace: NAMESPACE, name: run.job }, { topic: run.input, partition }),
    );
    await eventually(
      `${run.job} to commit ${records} input records`,
      async () => {
        const offsets = await admin.listConsumerGroupOffsets({ groups });
        const committed = offsets
          .flatMap((group) => group.topics.flatMap((topic) => topic.partitions))
          .reduce((sum, p) => sum + (p.committedOffset > 0n ? Number(p.committedOffset) : 0), 0);
        return committed >= records ? true : undefined;
      },
      300_000,
    );
  };

  try {
    // Stateless: filter/enrich. Every 20th record is a bot's, every 20th+1 has no valid URL.
    const statelessRun = await newRun("bench-fe");
    await produce(statelessRun.input, STATELESS_RECORDS, pageView);
    const stateless = await throughput("filter-enrich", statelessRun, STATELESS_RECORDS, () =>
      inputCommitted(statelessRun, STATELESS_RECORDS),
    );
    const enriched = (await readAll(statelessRun.output)).length;
    check(
      enriched === expectedPageViews(STATELESS_RECORDS),
      `filter-enrich: ${enriched} outputs, expected ${expectedPageViews(STATELESS_RECORDS)}`,
    );

    // Keyed windowed: clicks per user per minute, then a click far ahead in event time that
    // moves the watermark past every window (it sits in a window that never fires).
    const keyedRun = await newRun("bench-cpu");
    const clicks = clickStream(KEYED_RECORDS);
    await produce(keyedRun.input, KEYED_RECORDS + 1, (i) =>
      i < KEYED_RECORDS ? clicks.click(i) : clicks.closing(),
    );
    const keyed = await throughput("clicks-per-user", keyedRun, KEYED_RECORDS + 1, async () => {
      let counted = 0;
      await readTopic(
        keyedRun.output,
        (values) => {
          counted += (JSON.parse(values.at(-1) ?? "{}") as { clicks: number }).clicks;
          return counted >= KEYED_RECORDS;
        },
        { timeoutMs: 300_000 },
      );
    });
    const windows = await readAll(keyedRun.output);
    const distinct = new Set(
      windows.map((w) => {
        const out = JSON.parse(w) as { user: string; start: number };
        return `${out.user}@${out.start}`;
      }),
    );
    check(
      windows.length === clicks.windows() && distinct.size === windows.length,
      `clicks-per-user: ${windows.length} windows (${distinct.size} distinct), expected ${clicks.windows()}`,
    );

    // Latency at a fixed rate below saturation.
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

    const perCore = (t: Throughput) => t.records / t.runtimeCpu;
    const mark = (ok: boolean) => (ok ? "yes" : "NO");
    process.stdout.write(
      `\nRuntime benchmark (exactly-once, parallelism 1, ${PARTITIONS} partition, checkpoint every ${THROUGHPUT_INTERVAL_MS} ms; machine shared: figures are noisy)\n\n`,
    );
    process.stdout.write(
      table([
        [
          "throughput",
          "records",
          "wall s",
          "records/s",
          "runtime CPU s",
          "records/s per core",
          "target",
          "met",
          "broker CPU s",
        ],
        ...(
          [
            ["stateless (filter-enrich)", stateless, TARGETS.stateless],
            ["keyed windowed (clicks-per-user)", keyed, TARGETS.keyed],
          ] as const
        ).map(([name, t, target]) => [
          name,
          String(t.records),
          t.seconds.toFixed(1),
          fmt(t.records / t.seconds),
          t.runtimeCpu.toFixed(1),
          fmt(perCore(t)),
          fmt(target),
          mark(perCore(t) >= target),
          t.brokerCpu.toFixed(1),
        ]),
      ]),
    );
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
  } finally {
    for (const child of running) child.kill("SIGKILL");
    await admin.deleteTopics({ topics }).catch(() => {});
    await admin.close();
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(`wrong output: ${message}`);
}

// ---- inputs ----

function pageView(i: number): string {
  const agent = i % 20 === 0 ? "Googlebot/2.1" : "Mozilla/5.0 (X11; Linux x86_64)";
  const url = i % 20 === 1 ? "not a url" : `https://shop${i % 50}.example.com/item/${i}`;
  return JSON.stringify({ user: `u${i % 10_000}`, url, agent });
}

function expectedPageViews(records: number): number {
  let kept = 0;
  for (let i = 0; i < records; i++) if (i % 20 > 1) kept++;
  return kept;
}

/** Clicks of 5,000 users over 10 minutes of event time, in order; and the windows they fill. */
function clickStream(records: number) {
  const users = 5_000;
  const start = Date.UTC(2025, 0, 1);
  const span = 10 * 60_000;
  const ts = (i: number) => start + Math.floor((i * span) / records);
  const user = (i: number) => `u${(i * 7_919) % users}`;
  return {
    click: (i: number) => JSON.stringify({ user: user(i), url: `/item/${i % 1_000}`, ts: ts(i) }),
    // Beyond every window's end, out-of-orderness bound and allowed lateness.
    closing: () => JSON.stringify({ user: "closing", url: "/", ts: start + span + 10 * 60_000 }),
    windows: () => {
      const seen = new Set<string>();
      for (let i = 0; i < records; i++) seen.add(`${user(i)}@${Math.floor(ts(i) / 60_000)}`);
      return seen.size;
    },
  };
}

/** Produces `count` records (`value(i)`) to a topic, in order, in large batches. */
async function produce(topic: string, count: number, value: (i: number) => string): Promise<void> {
  const producer = inputProducer();
  try {
    for (let from = 0; from < count; from += 5_000) {
      const messages = [];
      for (let i = from; i < Math.min(count, from + 5_000); i++)
        messages.push({ topic, partition: i % PARTITIONS, value: value(i) });
      await producer.send({ messages });
    }
  } finally {
    await producer.close();
  }
}

/**
 * The whole output of a job that has stopped (nothing more can come), read to its
 * read_committed end with Kafka's Java client: what the exactly-once checks count.
 */
async function readAll(topic: string): Promise<string[]> {
  const { records } = await readTopicToEnd(topic, { timeoutMs: 300_000 });
  return records.map((r) => r.value ?? "");
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
