// The fault matrix: two jobs side by side, each at parallelism 3 on 6 input partitions with a
// repartition step and input arriving all the while — the word count, and clicks-per-user
// (event-time windows) with one input partition 20 s behind the others in event time — meet
// one kind of fault per case, twice, each fault hitting both: a runtime process killed
// (kill -9), a pod force-deleted, a rescale, an upgrade, the operator killed, their object
// store frozen, the Kafka broker restarted. Then, read to the read_committed end with Kafka's
// Java client, every word's running counts must be exactly 1..n (no gap, no repeat, nothing
// beyond n), and every window exactly the batch answer over the clicks produced (each once,
// with its count, no other); and first, both jobs must process all of their input (a job
// stuck after a fault fails as such). Each case has jobs of its own, so a case that breaks
// fails alone. The faults are those of scripts/chaos.ts (support/faults.ts). The broker
// restarted is the cluster's own: tests running alongside see it go for a few seconds.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertWindows, type ClicksSent, produceClicks } from "../support/clicks.ts";
import { cli } from "../support/cluster.ts";
import {
  type FaultJob,
  type FaultTarget,
  faultJob,
  forceDeletePod,
  freezeStorage,
  inputProcessed,
  jobRecovered,
  killOperator,
  killPodProcess,
  onEach,
  rescale,
  restartBroker,
  seededRandom,
  upgrade,
} from "../support/faults.ts";
import { committedGrowth } from "../support/kafka.ts";
import { PrivateMinio } from "../support/minio.ts";
import { OperatorTestbed, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, LINES_PER_ROUND, produceContinuously } from "../support/word-count.ts";

const bed = new OperatorTestbed("fault-matrix");
let storage: PrivateMinio | undefined;

before(async () => {
  await bed.setUp();
  storage = await PrivateMinio.start();
});
after(async () => {
  await bed.tearDown();
  await storage?.remove();
});

/** Waits until the job is whole again and its committed output has moved on. */
async function recovered(job: FaultJob): Promise<void> {
  await jobRecovered(job.target);
  await committedGrowth(job.output, job.growth);
}

/** The current run's id (to see that a rescale or an upgrade did replace the run). */
async function runOf(target: FaultTarget): Promise<string | undefined> {
  return (await readJob(bed.namespace, target.job)).status?.run?.id;
}

const runsOf = (targets: readonly FaultTarget[]) => Promise.all(targets.map(runOf));

/** A case's jobs: the word count and clicks-per-user, and where faults go. */
interface Case {
  jobs: FaultJob[];
  targets: FaultTarget[];
}

/**
 * The case's two jobs (`name` and `name-clicks`), their savepoints and checkpoints in the
 * test's own MinIO; input throughout `faults`; then the input stops, and both jobs' output
 * must be exact. The jobs are deleted after.
 */
async function withFaults(name: string, faults: (c: Case) => Promise<void>): Promise<void> {
  if (!storage) throw new Error("no object store");
  // The cases name the pods they hit, so nothing is drawn from `random`.
  const random = seededRandom(13);
  const words = await faultJob(bed, storage, "word-count", name, random);
  const clicks = await faultJob(bed, storage, "clicks-per-user", `${name}-clicks`, random);
  const c: Case = { jobs: [words, clicks], targets: [words.target, clicks.target] };
  try {
    // Input from the start: a source partition at its end without records for the idle
    // timeout (30 s) goes idle, and the lagging partition's first clicks could then be late.
    const lines = produceContinuously(words.input, 6);
    const clickStream = produceClicks(clicks.input, { partitions: 6 });
    let rounds = 0;
    let sent: ClicksSent | undefined;
    try {
      await Promise.all(c.targets.map((target) => jobRecovered(target, 180_000)));
      await Promise.all(c.jobs.map((job) => committedGrowth(job.output, job.growth)));
      await faults(c);
    } finally {
      rounds = await lines.stop();
      sent = await clickStream.stop();
    }
    await Promise.all(c.jobs.map((job) => inputProcessed(job.target, job.input)));
    // Both checks, so that a case says everything that is wrong with it.
    const checks = await Promise.allSettled([
      assertExactlyOnce(words.output, rounds, { timeoutMs: 180_000 }),
      assertWindows(clicks.output, sent, { timeoutMs: 180_000 }),
    ]);
    const failed = checks.flatMap((check) => (check.status === "rejected" ? [check.reason] : []));
    if (failed.length > 0) assert.fail(failed.map((e) => (e as Error).message).join("\n"));
    const [, windows] = checks;
    if (windows.status === "fulfilled")
      process.stderr.write(
        `[fault matrix] ${name}: ${rounds * LINES_PER_ROUND} lines counted exactly once, ${windows.value.checked} windows equal to the batch answer\n`,
      );
  } finally {
    for (const target of c.targets)
      await cli("kubectl", ["delete", "sj", target.job, "-n", bed.namespace, "--timeout=120s"]);
  }
}

/**
 * Injects `fault`, then waits until both jobs have recovered and their output has moved on
 * again (so that the next fault, or the end of the input, meets jobs that are processing).
 */
async function inject(c: Case, fault: (targets: FaultTarget[]) => Promise<string>): Promise<void> {
  const started = Date.now();
  const what = await fault(c.targets);
  await Promise.all(c.jobs.map(recovered));
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stderr.write(`[fault matrix] ${what}; recovered in ${seconds} s\n`);
}

test("exactly once through kill -9 of a pod's runtime process, twice", () =>
  withFaults("kill", async (c) => {
    await inject(c, (targets) => onEach(targets, (target) => killPodProcess(target, 0)));
    await inject(c, (targets) => onEach(targets, (target) => killPodProcess(target, 1)));
  }));

test("exactly once through force deletion of a pod, twice", () =>
  withFaults("force-delete", async (c) => {
    await inject(c, (targets) => onEach(targets, (target) => forceDeletePod(target, 1)));
    await inject(c, (targets) => onEach(targets, (target) => forceDeletePod(target, 2)));
  }));

test("exactly once through rescales 3 → 2 → 3", () =>
  withFaults("rescale", async (c) => {
    for (const parallelism of [2, 3]) {
      const runs = await runsOf(c.targets);
      await inject(c, (targets) => onEach(targets, (target) => rescale(target, parallelism)));
      for (const [i, run] of (await runsOf(c.targets)).entries())
        assert.notEqual(run, runs[i], `a new run of ${c.targets[i]?.job}`);
    }
  }));

test("exactly once through upgrades of the image and of the job configuration", () =>
  withFaults("upgrade", async (c) => {
    for (const change of ["image", "config"] as const) {
      const runs = await runsOf(c.targets);
      await inject(c, (targets) => onEach(targets, (target) => upgrade(target, change)));
      for (const [i, run] of (await runsOf(c.targets)).entries())
        assert.notEqual(run, runs[i], `a new run of ${c.targets[i]?.job}`);
    }
  }));

test("exactly once through the operator pod killed, while steady and during an upgrade", () =>
  withFaults("operator", async (c) => {
    await inject(c, ([target]) => killOperator(target as FaultTarget));
    const runs = await runsOf(c.targets);
    await onEach(c.targets, (target) => upgrade(target, "image"));
    // Under way for each (or, for the first, maybe done already: it went first).
    await eventually("the upgrades to be under way", async () => {
      const jobs = await Promise.all(c.targets.map((t) => readJob(bed.namespace, t.job)));
      return jobs.every((job, i) => job.status?.upgrade || job.status?.run?.id !== runs[i])
        ? true
        : undefined;
    });
    await inject(c, ([target]) => killOperator(target as FaultTarget));
    for (const [i, run] of (await runsOf(c.targets)).entries())
      assert.notEqual(
        run,
        runs[i],
        `the next operator completed the upgrade of ${c.targets[i]?.job}`,
      );
  }));

test("exactly once through the object store frozen for longer than the storage timeout, twice", () =>
  withFaults("storage", async (c) => {
    // One object store for both jobs: one freeze hits both.
    await inject(c, ([target]) => freezeStorage(target as FaultTarget, 12_000));
    await inject(c, ([target]) => freezeStorage(target as FaultTarget, 12_000));
  }));

test("exactly once through the Kafka broker restarted, gracefully and killed", () =>
  withFaults("broker", async (c) => {
    await inject(c, () => restartBroker());
    await inject(c, () => restartBroker({ hard: true }));
  }));
