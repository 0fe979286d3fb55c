// The fault matrix: the word count (which repartitions its words) at parallelism 3 on 6 input
// partitions, with input arriving all the while, meets one kind of fault per case, twice — its
// runtime process killed (kill -9), its pod force-deleted, a rescale, an upgrade, the operator
// killed, its object store frozen, the Kafka broker restarted — and every word's running counts
// must come out exactly once: 1..n read to the read_committed end with Kafka's Java client, no
// gap, no repeat, nothing beyond n (and first, the job must process all of its input: a job
// stuck after a fault fails as such). Each case has a job of its own, so a case that breaks
// exactly once fails alone. The faults are those of scripts/chaos.ts (support/faults.ts). The
// broker restarted is the cluster's own: tests running alongside see it go for a few seconds.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { cli } from "../support/cluster.ts";
import {
  type FaultTarget,
  forceDeletePod,
  freezeStorage,
  inputProcessed,
  jobRecovered,
  killOperator,
  killPodProcess,
  rescale,
  restartBroker,
  seededRandom,
  upgrade,
} from "../support/faults.ts";
import { committedGrowth } from "../support/kafka.ts";
import { PrivateMinio } from "../support/minio.ts";
import { OperatorTestbed, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

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

/** Waits until the job's committed output has grown by a few hundred running counts. */
const outputGrows = (topic: string) => committedGrowth(topic, 200);

/** The current run's id (to see that a rescale or an upgrade did replace the run). */
async function runOf(target: FaultTarget): Promise<string | undefined> {
  return (await readJob(bed.namespace, target.job)).status?.run?.id;
}

/** A case's job: where faults go, and its output. */
interface Case {
  target: FaultTarget;
  output: string;
}

/**
 * A word-count job of its own at parallelism 3 on 6 partitions, checkpoints every second, its
 * savepoints and checkpoints in the test's own MinIO; input throughout `faults`; then the
 * input stops and every running count must be there exactly once. The job is deleted after.
 */
async function withFaults(name: string, faults: (job: Case) => Promise<void>): Promise<void> {
  if (!storage) throw new Error("no object store");
  const job = await bed.wordCountJob(
    name,
    { parallelism: 3, checkpoints: { interval: "1s" } },
    { partitions: 6 },
  );
  const spec = job.manifest.spec as { savepoints: { storage: { endpoint: string } } };
  spec.savepoints.storage.endpoint = storage.endpoint;
  // The cases name the pods they hit, so nothing is drawn from `random`.
  const target: FaultTarget = { bed, job: name, storage, random: seededRandom(13) };
  await bed.apply(job.manifest);
  try {
    await jobRecovered(target, 180_000);
    const traffic = produceContinuously(job.input, 6);
    let rounds = 0;
    try {
      await outputGrows(job.output);
      await faults({ target, output: job.output });
    } finally {
      rounds = await traffic.stop();
    }
    await inputProcessed(target, job.input);
    await assertExactlyOnce(job.output, rounds, { timeoutMs: 180_000 });
  } finally {
    await cli("kubectl", ["delete", "sj", name, "-n", bed.namespace, "--timeout=120s"]);
  }
}

/**
 * Injects `fault`, then waits until the job has recovered and its output has moved on again
 * (so that the next fault, or the end of the input, meets a job that is processing).
 */
async function inject(job: Case, fault: (target: FaultTarget) => Promise<string>): Promise<void> {
  const started = Date.now();
  const what = await fault(job.target);
  await jobRecovered(job.target);
  await outputGrows(job.output);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stderr.write(`[fault matrix] ${job.target.job}: ${what}; recovered in ${seconds} s\n`);
}

test("exactly once through kill -9 of a pod's runtime process, twice", () =>
  withFaults("kill", async (job) => {
    await inject(job, (target) => killPodProcess(target, 0));
    await inject(job, (target) => killPodProcess(target, 1));
  }));

test("exactly once through force deletion of a pod, twice", () =>
  withFaults("force-delete", async (job) => {
    await inject(job, (target) => forceDeletePod(target, 1));
    await inject(job, (target) => forceDeletePod(target, 2));
  }));

test("exactly once through rescales 3 → 2 → 3", () =>
  withFaults("rescale", async (job) => {
    for (const parallelism of [2, 3]) {
      const run = await runOf(job.target);
      await inject(job, (target) => rescale(target, parallelism));
      assert.notEqual(await runOf(job.target), run, "a new run");
    }
  }));

test("exactly once through upgrades of the image and of the job configuration", () =>
  withFaults("upgrade", async (job) => {
    for (const change of ["image", "config"] as const) {
      const run = await runOf(job.target);
      await inject(job, (target) => upgrade(target, change));
      assert.notEqual(await runOf(job.target), run, "a new run");
    }
  }));

test("exactly once through the operator pod killed, while steady and during an upgrade", () =>
  withFaults("operator", async (job) => {
    await inject(job, killOperator);
    const run = await runOf(job.target);
    await upgrade(job.target, "image");
    await eventually("the upgrade to be under way", async () =>
      (await readJob(bed.namespace, job.target.job)).status?.upgrade ? true : undefined,
    );
    await inject(job, killOperator);
    assert.notEqual(await runOf(job.target), run, "the next operator completed the upgrade");
  }));

test("exactly once through the object store frozen for longer than the storage timeout, twice", () =>
  withFaults("storage", async (job) => {
    await inject(job, (target) => freezeStorage(target, 12_000));
    await inject(job, (target) => freezeStorage(target, 12_000));
  }));

test("exactly once through the Kafka broker restarted, gracefully and killed", () =>
  withFaults("broker", async (job) => {
    await inject(job, () => restartBroker());
    await inject(job, () => restartBroker({ hard: true }));
  }));
