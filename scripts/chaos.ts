// npm run chaos -- [--faults N] [--seed S] [--gap MIN-MAX]
//
// A randomized soak on the local cluster (brought up if it is not): the word count at
// parallelism 3 on 6 partitions, input arriving throughout, and a fault every few seconds,
// drawn from every fault of the fault matrix (test-e2e/support/faults.ts): a pod's runtime
// process killed, a pod force-deleted, a rescale, an upgrade, the operator killed, the job's
// object store frozen, the Kafka broker restarted. The seed decides the sequence of faults,
// their parameters and the gaps between them, so a seed reproduces a run's faults (the
// cluster's own timing still varies, and with it which pod a kill finds). At the end: records
// in, running counts out, how many were lost and duplicated (per word: values missing from
// 1..n, values repeated or beyond n), and exit status 1 if any was or if the job did not
// process all of its input (it names the partitions it is stuck on). Ctrl-C stops the faults
// early and still checks the output.

import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { up } from "../test-e2e/cluster/cluster.ts";
import {
  describeBacklog,
  type FaultTarget,
  forceDeletePod,
  freezeStorage,
  inputBacklog,
  jobRecovered,
  killOperator,
  killPodProcess,
  rescale,
  restartBroker,
  seededRandom,
  upgrade,
} from "../test-e2e/support/faults.ts";
import { committedGrowth, readTopicSettled } from "../test-e2e/support/kafka.ts";
import { PrivateMinio } from "../test-e2e/support/minio.ts";
import { OperatorTestbed } from "../test-e2e/support/operator.ts";
import { eventually } from "../test-e2e/support/wait.ts";
import {
  checkRunningCounts,
  describeDiscrepancy,
  LINES_PER_ROUND,
  produceContinuously,
} from "../test-e2e/support/word-count.ts";

const USAGE = "usage: npm run chaos -- [--faults N] [--seed S] [--gap MIN-MAX (seconds)]";

const { values: flags } = parseArgs({
  options: {
    faults: { type: "string", default: "20" },
    seed: { type: "string" },
    gap: { type: "string", default: "3-8" },
  },
});
const faultCount = Number(flags.faults);
const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(flags.seed);
const [minGapS, maxGapS] = (flags.gap ?? "").split("-").map(Number);
if (
  !Number.isInteger(faultCount) ||
  faultCount < 0 ||
  !Number.isInteger(seed) ||
  minGapS === undefined ||
  maxGapS === undefined ||
  !(minGapS >= 0 && maxGapS >= minGapS)
) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

const began = Date.now();
function say(line: string): void {
  const s = Math.floor((Date.now() - began) / 1000);
  const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  process.stdout.write(`${clock.padStart(6)}  ${line}\n`);
}

/** Every fault of the matrix, with its parameters drawn from the seeded sequence. */
const FAULTS: Record<string, (target: FaultTarget) => Promise<string>> = {
  "kill -9": (target) => killPodProcess(target),
  "force delete": (target) => forceDeletePod(target),
  rescale: (target) => rescale(target),
  upgrade: (target) => upgrade(target, target.random() < 0.5 ? "image" : "config"),
  "operator killed": (target) => killOperator(target),
  "storage frozen": (target) => freezeStorage(target, 2_000 + target.random() * 13_000),
  "broker restarted": (target) => restartBroker({ hard: target.random() < 0.5 }),
};

let stopping = false;
process.once("SIGINT", () => {
  stopping = true;
  say("Ctrl-C: no more faults; checking the output (Ctrl-C again to abandon)");
});

await up();
const bed = new OperatorTestbed("chaos");
let storage: PrivateMinio | undefined;
let exitCode = 1;
try {
  await bed.setUp();
  storage = await PrivateMinio.start();
  const job = await bed.wordCountJob(
    "wc",
    { parallelism: 3, checkpoints: { interval: "1s" } },
    { partitions: 6 },
  );
  const spec = job.manifest.spec as { savepoints: { storage: { endpoint: string } } };
  spec.savepoints.storage.endpoint = storage.endpoint;
  const random = seededRandom(seed);
  const target: FaultTarget = { bed, job: "wc", storage, random };
  say(
    `seed ${seed} (--seed ${seed} draws the same faults): ${faultCount} faults, ${flags.gap} s apart`,
  );
  await bed.apply(job.manifest);
  await jobRecovered(target, 180_000);
  say(`job wc running in namespace ${bed.namespace}: parallelism 3, 6 partitions`);

  const traffic = produceContinuously(job.input, 6);
  let rounds = 0;
  let injected = 0;
  try {
    await committedGrowth(job.output, 200, 300_000);
    const names = Object.keys(FAULTS);
    for (let i = 1; i <= faultCount && !stopping; i++) {
      await sleep((minGapS + random() * (maxGapS - minGapS)) * 1000);
      const name = names[Math.floor(random() * names.length)] ?? "";
      const fault = FAULTS[name];
      if (!fault || stopping) break;
      say(`fault ${i}/${faultCount}: ${name}`);
      try {
        say(`  ${await fault(target)}`);
        injected++;
      } catch (error) {
        say(`  could not inject it: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    say(`${injected} faults injected; waiting for the job to recover`);
    // A job that does not recover is a finding too: its output is checked all the same.
    await jobRecovered(target, 600_000)
      .then(() => committedGrowth(job.output, 200, 300_000))
      .catch((error: Error) => say(`  it did not: ${error.message}`));
  } finally {
    rounds = await traffic.stop();
  }
  say(`input stopped after ${rounds} rounds; waiting for the job to process all of it`);
  const backlog = await eventually(
    "the job to process its whole input",
    async () => ((await inputBacklog(target, job.input)).length === 0 ? [] : undefined),
    180_000,
  ).catch(() => inputBacklog(target, job.input));
  if (backlog.length > 0) say(`  it did not, within 180 s: ${describeBacklog(backlog)}`);
  say("reading the output once it has settled");
  const expected = checkRunningCounts([], rounds).expected;
  // With input left unprocessed the output cannot reach its count: no waiting for it then.
  const contents = await readTopicSettled(job.output, backlog.length > 0 ? 0 : expected, {
    timeoutMs: 300_000,
  });
  const check = checkRunningCounts(
    contents.records.map((r) => r.value),
    rounds,
  );
  const summary = [
    `records in:          ${(rounds * LINES_PER_ROUND).toLocaleString("en-US")} lines`,
    `running counts out:  ${check.read.toLocaleString("en-US")} (exactly once: ${check.expected.toLocaleString("en-US")})`,
    `lost:                ${check.lost.toLocaleString("en-US")}${backlog.length > 0 ? " (counting input the job never processed)" : ""}`,
    `duplicated:          ${check.duplicated.toLocaleString("en-US")}`,
    ...check.discrepancies.map((d) => `  ${describeDiscrepancy(d)}`),
    ...(backlog.length > 0 ? [`input not processed: ${describeBacklog(backlog)}`] : []),
  ];
  process.stdout.write(`\nseed ${seed}, ${injected} faults\n${summary.join("\n")}\n`);
  exitCode = check.lost === 0 && check.duplicated === 0 && backlog.length === 0 ? 0 : 1;
} catch (error) {
  say(`the soak failed: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await bed.tearDown().catch(() => {});
  await storage?.remove();
}
process.exit(exitCode);
