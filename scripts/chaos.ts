// npm run chaos -- [--faults N] [--seed S] [--gap MIN-MAX]
//
// A randomized soak on the local cluster (brought up if it is not): the two jobs of the fault
// matrix side by side, each at parallelism 3 on 6 partitions with input arriving throughout —
// the word count, and clicks-per-user with one partition 20 s behind in event time — and a
// fault every few seconds, drawn from every fault of the matrix (test-e2e/support/faults.ts),
// each hitting both jobs: a pod's runtime process killed, a pod force-deleted, a rescale, an
// upgrade, the operator killed, the jobs' object store frozen, the Kafka broker restarted.
// The seed decides the sequence of faults, their parameters and the gaps between them, so a
// seed reproduces a run's faults (the cluster's own timing still varies, and with it which pod
// a kill finds). At the end: records in, running counts out, how many were lost and
// duplicated (per word: values missing from 1..n, values repeated or beyond n), windows
// checked against the batch answer and how many are wrong (missing, repeated, a wrong count),
// and exit status 1 if anything was or if a job did not process all of its input (it names
// the partitions it is stuck on). Ctrl-C stops the faults early and still checks the output.

import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { up } from "../test-e2e/cluster/cluster.ts";
import {
  type ClicksSent,
  checkWindows,
  describeWindow,
  produceClicks,
} from "../test-e2e/support/clicks.ts";
import {
  describeBacklog,
  type FaultJob,
  type FaultTarget,
  faultJob,
  forceDeletePod,
  freezeStorage,
  inputBacklog,
  jobRecovered,
  killOperator,
  killPodProcess,
  onEach,
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

/**
 * Every fault of the matrix, with its parameters drawn from the seeded sequence: a job's own
 * into each job in turn, the shared ones (operator, object store, broker) once.
 */
const FAULTS: Record<string, (targets: FaultTarget[], random: () => number) => Promise<string>> = {
  "kill -9": (targets) => onEach(targets, (target) => killPodProcess(target)),
  "force delete": (targets) => onEach(targets, (target) => forceDeletePod(target)),
  rescale: (targets) => onEach(targets, (target) => rescale(target)),
  upgrade: (targets, random) => {
    const change = random() < 0.5 ? "image" : "config";
    return onEach(targets, (target) => upgrade(target, change));
  },
  "operator killed": ([target]) => killOperator(target as FaultTarget),
  "storage frozen": ([target], random) =>
    freezeStorage(target as FaultTarget, 2_000 + random() * 13_000),
  "broker restarted": (_, random) => restartBroker({ hard: random() < 0.5 }),
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
  const random = seededRandom(seed);
  const words = await faultJob(bed, storage, "word-count", "wc", random);
  const clicks = await faultJob(bed, storage, "clicks-per-user", "clicks", random);
  const jobs: FaultJob[] = [words, clicks];
  const targets = jobs.map((job) => job.target);
  say(
    `seed ${seed} (--seed ${seed} draws the same faults): ${faultCount} faults, ${flags.gap} s apart`,
  );
  // Input from the start: a source partition at its end without records for the idle
  // timeout (30 s) goes idle, and the lagging partition's first clicks could then be late.
  const lines = produceContinuously(words.input, 6);
  // A round of clicks (10 s of event time) every 500 ms, not 200: the two days of event time
  // that produceClicks has before the broker's clock then last more than two hours.
  const clickStream = produceClicks(clicks.input, { partitions: 6, everyMs: 500 });
  let rounds = 0;
  let injected = 0;
  let sent: ClicksSent | undefined;
  try {
    await Promise.all(targets.map((target) => jobRecovered(target, 180_000)));
    say(`jobs wc and clicks running in namespace ${bed.namespace}: parallelism 3, 6 partitions`);
    await Promise.all(jobs.map((job) => committedGrowth(job.output, job.growth, 300_000)));
    const names = Object.keys(FAULTS);
    for (let i = 1; i <= faultCount && !stopping; i++) {
      await sleep((minGapS + random() * (maxGapS - minGapS)) * 1000);
      const name = names[Math.floor(random() * names.length)] ?? "";
      const fault = FAULTS[name];
      if (!fault || stopping) break;
      say(`fault ${i}/${faultCount}: ${name}`);
      try {
        say(`  ${await fault(targets, random)}`);
        injected++;
      } catch (error) {
        say(`  could not inject it: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    say(`${injected} faults injected; waiting for the jobs to recover`);
    // A job that does not recover is a finding too: its output is checked all the same.
    await Promise.all(
      jobs.map((job) =>
        jobRecovered(job.target, 600_000)
          .then(() => committedGrowth(job.output, job.growth, 300_000))
          .catch((error: Error) => say(`  ${job.target.job} did not: ${error.message}`)),
      ),
    );
  } finally {
    rounds = await lines.stop();
    sent = await clickStream.stop();
  }
  say(
    `input stopped after ${rounds} rounds of lines and ${sent.rounds} of clicks; waiting for the jobs to process all of it`,
  );
  const backlogs = await Promise.all(
    jobs.map(async ({ target, input }) => {
      const backlog = await eventually(
        `${target.job} to process its whole input`,
        async () => ((await inputBacklog(target, input)).length === 0 ? [] : undefined),
        180_000,
      ).catch(() => inputBacklog(target, input));
      if (backlog.length > 0)
        say(`  ${target.job} did not, within 180 s: ${describeBacklog(backlog)}`);
      return backlog;
    }),
  );
  const [wordsStuck, clicksStuck] = backlogs.map((backlog) => backlog.length > 0);
  say("reading the outputs once they have settled");
  // With input left unprocessed an output cannot reach its count: no waiting for it then.
  const [counted, windowed] = await Promise.all([
    readTopicSettled(words.output, wordsStuck ? 0 : checkRunningCounts([], rounds).expected, {
      timeoutMs: 300_000,
    }),
    readTopicSettled(clicks.output, clicksStuck ? 0 : checkWindows([], sent).checked, {
      timeoutMs: 300_000,
    }),
  ]);
  const check = checkRunningCounts(
    counted.records.map((r) => r.value),
    rounds,
  );
  const windows = checkWindows(windowed.records, sent);
  const summary = [
    `records in:          ${(rounds * LINES_PER_ROUND).toLocaleString("en-US")} lines, ${sent.clicks.length.toLocaleString("en-US")} clicks`,
    `running counts out:  ${check.read.toLocaleString("en-US")} (exactly once: ${check.expected.toLocaleString("en-US")})`,
    `lost:                ${check.lost.toLocaleString("en-US")}${wordsStuck ? " (counting input the job never processed)" : ""}`,
    `duplicated:          ${check.duplicated.toLocaleString("en-US")}`,
    ...check.discrepancies.map((d) => `  ${describeDiscrepancy(d)}`),
    `windows checked:     ${windows.checked.toLocaleString("en-US")} against the batch answer (${windows.read.toLocaleString("en-US")} results out)`,
    `windows wrong:       ${windows.wrong.toLocaleString("en-US")}${clicksStuck ? " (counting input the job never processed)" : ""}`,
    ...windows.discrepancies.slice(0, 20).map((d) => `  ${describeWindow(d)}`),
    ...(windows.wrong > 20 ? [`  and ${windows.wrong - 20} more`] : []),
    ...jobs.flatMap(({ target }, i) => {
      const backlog = backlogs[i] ?? [];
      return backlog.length > 0
        ? [`input not processed by ${target.job}: ${describeBacklog(backlog)}`]
        : [];
    }),
  ];
  process.stdout.write(`\nseed ${seed}, ${injected} faults\n${summary.join("\n")}\n`);
  exitCode =
    check.lost === 0 && check.duplicated === 0 && windows.wrong === 0 && !wordsStuck && !clicksStuck
      ? 0
      : 1;
} catch (error) {
  say(`the soak failed: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await bed.tearDown().catch(() => {});
  await storage?.remove();
}
process.exit(exitCode);
