// `npm run demo`: the whole product on the local cluster. Brings the cluster up, installs the
// chart (the operator runs as a pod), applies a word count with autoscaling on the secure
// listeners (Kafka SASL_SSL, MinIO over TLS; the demo's own load and reads use the plaintext
// listener of the same broker), drives load through it in phases (low, an upgrade through a savepoint, high, low) with a progress line
// every few seconds, and ends with a summary and a plot (.cluster/demo/demo.png). Everything
// is left running; `npm run demo -- down` uninstalls the chart and stops the cluster.
import { createHash } from "node:crypto";
import { globSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Admin } from "@platformatic/kafka";
import { stringify } from "yaml";
import { down, status, up } from "../test-e2e/cluster/cluster.ts";
import { clusterDir, clusterPaths, repoRoot } from "../test-e2e/cluster/layout.ts";
import { helmRelease, keepOperatorLogs, type WeirRelease } from "../test-e2e/support/chart.ts";
import { cli, clusterEnv, secureKafkaEnv } from "../test-e2e/support/cluster.ts";
import { deleteTopicsOf, readTopicSettled } from "../test-e2e/support/kafka.ts";
import { patchJobSpec } from "../test-e2e/support/operator.ts";
import { eventually } from "../test-e2e/support/wait.ts";
import { countMismatches, expectedCounts, total } from "./demo/check.ts";
import { startLoad } from "./demo/load.ts";
import { Observer } from "./demo/observe.ts";
import {
  type CompletedOperation,
  DEMO,
  demoManifests,
  goalReached,
  type Observation,
  PHASES,
  type PhaseOutcome,
  type PhaseResult,
  parseRunReady,
  phaseProgress,
  summaryLines,
  topicsOf,
  whyNot,
} from "./demo/plan.ts";
import { clock, type PlotData, renderPlot } from "./demo/plot.ts";

const outDir = join(clusterDir, "demo");
const files = {
  manifest: join(outDir, "word-count.yaml"),
  plot: join(outDir, "demo.png"),
  samples: join(outDir, "demo.csv"),
};
const release: WeirRelease = {
  name: DEMO.release,
  namespace: DEMO.namespace,
  operatorName: `${DEMO.release}-operator`,
  account: `system:serviceaccount:${DEMO.namespace}:${DEMO.release}-operator`,
  selector: `app.kubernetes.io/instance=${DEMO.release}`,
};
const ns = ["-n", DEMO.namespace];
const show = (path: string) => relative(process.cwd(), path) || path;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const command = process.argv[2];
if (command === "down") {
  await demoDown();
} else if (command === undefined) {
  await demo();
} else {
  process.stderr.write(`usage: npm run demo [-- down] (not ${JSON.stringify(command)})\n`);
  process.exit(2);
}

async function demo(): Promise<void> {
  const began = performance.now();
  await up();
  const admin = new Admin({
    clientId: "weir-demo",
    bootstrapBrokers: [clusterEnv().kafkaBootstrap],
  });
  try {
    await install();
    const run = await deployJob(admin);
    await drive(admin, run);
  } catch (error) {
    await failed(error);
  } finally {
    await admin.close();
  }
  say(`\nThe demo took ${clock((performance.now() - began) / 1000)} in all.`);
  say(instructions());
}

/** Says what failed and where to look, keeps the operator's logs, and exits 1. */
async function failed(error: unknown): Promise<never> {
  const { message, stderr } = error as { message?: string; stderr?: string };
  const what = (stderr || message || String(error)).trim();
  await keepOperatorLogs(release).catch(() => {});
  process.stderr.write(
    `\nThe demo failed: ${what}\n` +
      `  the operator's logs are kept in ${show(join(clusterPaths.logs, "chart-*.log"))}\n` +
      `  source ${show(clusterPaths.env)}; kubectl -n ${DEMO.namespace} describe sj ${DEMO.job}\n`,
  );
  process.exit(1);
}

/** The chart, with the operator watching only the demo's namespace (other jobs are not its business). */
async function install(): Promise<void> {
  say(`\n▶ helm upgrade --install ${DEMO.release} helm/weir -n ${DEMO.namespace}`);
  const started = performance.now();
  await helmRelease("upgrade", release, [
    "--install",
    "--create-namespace",
    "--take-ownership",
    "--set-json",
    `watchNamespaces=["${DEMO.namespace}"]`,
    // The operator pod runs this checkout's code as it was when the pod started: a changed
    // source restarts it.
    "--set-string",
    `podAnnotations.weir\\.dev/source-hash=${sourceHash()}`,
  ]);
  say(`  the operator is ready (${seconds(started)})`);
}

function sourceHash(): string {
  const hash = createHash("sha256");
  for (const file of globSync("{operator,runtime}/src/**/*.ts", { cwd: repoRoot }).sort()) {
    hash.update(file).update(readFileSync(join(repoRoot, file)));
  }
  return hash.digest("hex").slice(0, 16);
}

/** A fresh job on fresh topics (a previous demo's job, savepoints and topics go first). */
async function deployJob(admin: Admin): Promise<string> {
  const started = performance.now();
  say("▶ removing the previous demo's job, savepoints and topics (if any)");
  await cli("kubectl", ["delete", "sj", DEMO.job, ...ns, "--ignore-not-found", "--timeout=2m"]);
  await cli("kubectl", ["delete", "ssp", "--all", ...ns, "--ignore-not-found"]);
  await deleteTopicsOf(admin, [DEMO.topicPrefix]);
  const run = Date.now().toString(36);
  const topics = topicsOf(run);
  await admin.createTopics({
    topics: [topics.input, topics.output],
    partitions: DEMO.partitions,
    replicas: 1,
  });
  const sample = readFileSync(join(repoRoot, "config", "samples", "word-count-sasl.yaml"), "utf8");
  const cas = {
    kafka: readFileSync(secureKafkaEnv().caFile, "utf8"),
    storage: readFileSync(clusterEnv().s3CaFile, "utf8"),
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    files.manifest,
    demoManifests(sample, run, cas)
      .map((doc) => stringify(doc))
      .join("---\n"),
  );
  await cli("kubectl", ["apply", "-f", files.manifest]);
  say(
    `▶ kubectl apply -f ${show(files.manifest)}: StreamJob ${DEMO.job} reading ${topics.input} ` +
      `(${DEMO.partitions} partitions), autoscaling 1–${DEMO.partitions} pods (${seconds(started)})\n` +
      `  the job's Kafka clients: SASL_SSL (SCRAM-SHA-512) on ${secureKafkaEnv().bootstrap}, its ` +
      `savepoints: MinIO over TLS on ${clusterEnv().s3TlsEndpoint}, both CAs from ConfigMaps; ` +
      `the demo's own load and reads: plaintext ${clusterEnv().kafkaBootstrap}`,
  );
  return run;
}

async function drive(admin: Admin, run: string): Promise<void> {
  const topics = topicsOf(run);
  const load = startLoad(topics.input, DEMO.partitions);
  const observer = new Observer(admin, topics.input);
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  const samples: Observation[] = [];
  const operations: (CompletedOperation & { t: number; from: number })[] = [];
  const outcomes: PhaseOutcome[] = [];
  const marks: PlotData["marks"][number][] = [];
  let peak = 0;
  /** Pods of the last settled run (Ready, no operation): where a rescale starts from. */
  let settled = 1;
  let stopping = false;
  let phaseName = "";
  process.once("SIGINT", () => {
    stopping = true;
    say("  stopping: summary and plot of what ran so far…");
  });

  const look = async (): Promise<Observation> => {
    const now = await observer.observe(elapsed(), load.produced);
    samples.push(now);
    peak = Math.max(peak, now.parallelism);
    for (const event of await observer.newEvents()) {
      say(`  ${clock(now.t).padStart(5)}  » ${event.reason}: ${event.message}`);
      const op = event.reason === "RunReady" ? parseRunReady(event.message) : undefined;
      if (!op) continue;
      operations.push({ ...op, t: now.t, from: settled });
      const label =
        op.kind === "upgrade"
          ? `upgrade ${tag(DEMO.image)} > ${tag(DEMO.upgradeImage)}`
          : `${op.kind} ${settled} > ${op.pods}`;
      marks.push({ t: Math.max(0, now.t - op.seconds), label });
    }
    if (now.ready && !now.operation) settled = now.parallelism;
    if (samples.length % 2 === 1) say(progressLine(now, phaseName));
    return now;
  };

  say(
    `\n  ${"time".padStart(5)}  ${"phase".padEnd(15)} ${"in/s".padStart(6)} ${"done/s".padStart(7)} ` +
      `${"backlog".padStart(8)}  pods  state`,
  );
  let next = performance.now();
  const tick = async () => {
    next += DEMO.sampleSeconds * 1000;
    await sleep(Math.max(0, next - performance.now()));
    return look();
  };
  try {
    let current: Observation | undefined;
    for (const phase of PHASES) {
      if (stopping) break;
      load.setRate(phase.rate);
      phaseName = phase.name;
      const began = elapsed();
      say(
        `  ${clock(began).padStart(5)}  ── ${phase.name}: ${phase.rate} lines/s${phaseNote(phase.goal)}`,
      );
      const start = current ?? (await look());
      if (phase.upgrade) {
        await patchJobSpec(DEMO.namespace, DEMO.job, { image: DEMO.upgradeImage });
        say(
          `  ${clock(elapsed()).padStart(5)}  » spec.image: ${DEMO.image} → ${DEMO.upgradeImage}`,
        );
      }
      let result: PhaseResult | "continue" = "continue";
      let reachedAt: number | undefined;
      let now = start;
      while (result === "continue") {
        now = await tick();
        if (reachedAt === undefined && goalReached(phase.goal, now, start)) {
          reachedAt = now.t - began;
        }
        result = stopping
          ? reachedAt === undefined
            ? "stopped"
            : "done"
          : phaseProgress(phase, now.t - began, reachedAt, peak);
      }
      current = now;
      outcomes.push({
        phase,
        result,
        start: began,
        end: now.t,
        ...(reachedAt === undefined ? {} : { reachedAfter: reachedAt }),
      });
      if (result === "missed") {
        say(
          `  ${clock(now.t).padStart(5)}  ! ${phase.goal} not seen within ${phase.maxSeconds} s: ` +
            whyNot(phase.goal, observer.job?.status ?? {}),
        );
        // Nothing else can be shown without a running job.
        if (phase.goal === "running") break;
      }
    }
  } finally {
    await load.stop();
  }

  const plot: PlotData = {
    title: `Weir demo: ${DEMO.job} in ${DEMO.namespace}, autoscaling 1-${DEMO.partitions} pods`,
    samples: samples.map((s) => ({
      t: s.t,
      inputRate: s.inputRate,
      processedRate: s.processedRate,
      backlog: s.backlog,
      parallelism: s.parallelism,
      ...(s.recommended === undefined ? {} : { recommended: s.recommended }),
    })),
    phases: outcomes.map((o) => ({ name: o.phase.name, start: o.start, end: o.end })),
    marks,
  };
  writeFileSync(files.plot, await renderPlot(plot));
  writeFileSync(files.samples, samplesCsv(samples));
  say(`\n▶ load stopped; waiting for the job to process every line, then reading its output back`);
  const { processed, exactlyOnce } = await verify(observer, topics.output, load.produced, elapsed);
  const autoscaler = observer.job?.status?.autoscaler;
  say("");
  for (const line of summaryLines({
    seconds: samples.at(-1)?.t ?? 0,
    produced: load.produced,
    processed,
    exactlyOnce,
    savepoints: await observer.savepoints(),
    operations,
    outcomes,
    ...(autoscaler ? { autoscaler } : {}),
    plot: `${show(files.plot)} (samples: ${show(files.samples)})`,
  })) {
    say(line);
  }
}

/**
 * Waits (30 s at most) until the job has committed every line produced, then reads the whole
 * output back to its read_committed end once it has settled (Kafka's Java client) and checks
 * every word's running counts (check.ts).
 */
async function verify(
  observer: Observer,
  output: string,
  produced: number,
  elapsed: () => number,
): Promise<{ processed: number; exactlyOnce: string }> {
  let processed = 0;
  const drained = await eventually(
    "the job to process every line",
    async () => {
      processed = (await observer.observe(elapsed(), produced)).processed;
      return processed >= produced ? true : undefined;
    },
    30_000,
  ).then(
    () => true,
    () => false,
  );
  if (!drained) {
    return {
      processed,
      exactlyOnce: `not checked: ${(produced - processed).toLocaleString("en-US")} lines still unprocessed after 30 s`,
    };
  }
  const expected = expectedCounts(produced);
  const records = total(expected);
  const read = await readTopicSettled(output, records, { timeoutMs: 60_000 }).catch(
    (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
  );
  if (read instanceof Error) return { processed, exactlyOnce: `NO: ${read.message}` };
  const values = read.records.map((r) => r.value ?? "");
  const mismatches = countMismatches(values, expected);
  return {
    processed,
    exactlyOnce:
      mismatches.length === 0
        ? `yes: ${records.toLocaleString("en-US")} running counts read back, each word's 1..n once`
        : `NO, ${mismatches.length} words: ${mismatches.slice(0, 3).join("; ")}`,
  };
}

function progressLine(o: Observation, phaseName: string): string {
  const pods =
    o.recommended !== undefined && o.recommended !== o.parallelism
      ? `${o.parallelism}→${o.recommended}`
      : String(o.parallelism);
  const state = [o.state, o.operation, o.autoscalerReason && `autoscaler: ${o.autoscalerReason}`]
    .filter(Boolean)
    .join(", ");
  return (
    `  ${clock(o.t).padStart(5)}  ${phaseName.padEnd(15)} ${Math.round(o.inputRate).toString().padStart(6)} ` +
    `${Math.round(o.processedRate).toString().padStart(7)} ${o.backlog.toLocaleString("en-US").padStart(8)}  ` +
    `${pods.padEnd(4)}  ${state}`
  );
}

function phaseNote(goal: string): string {
  switch (goal) {
    case "running":
      return " until the job processes them";
    case "upgraded":
      return ", upgrading the image through a savepoint";
    case "scaled-up":
      return ", more than one pod can carry: waiting for the autoscaler to scale up";
    default:
      return ": waiting for the autoscaler to scale down";
  }
}

function tag(image: string): string {
  return image.slice(image.lastIndexOf(":") + 1);
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

function samplesCsv(samples: readonly Observation[]): string {
  const columns = [
    "t",
    "state",
    "ready",
    "parallelism",
    "recommended",
    "produced",
    "processed",
    "backlog",
    "inputRate",
    "processedRate",
  ] as const;
  const rows = samples.map((s) => columns.map((c) => String(s[c] ?? "")).join(","));
  return `${[columns.join(","), ...rows].join("\n")}\n`;
}

function instructions(): string {
  const commands: [string, string][] = [
    [`source ${show(clusterPaths.env)}`, "KUBECONFIG, and kubectl/helm on PATH"],
    [`kubectl -n ${DEMO.namespace} get sj -w`, "state, parallelism, readiness"],
    [`kubectl -n ${DEMO.namespace} describe sj ${DEMO.job}`, "conditions, autoscaler, Events"],
    [`kubectl -n ${DEMO.namespace} get ssp`, "the savepoints taken"],
    [`kubectl -n ${DEMO.namespace} get pods`, "the operator and the job's pods"],
    [`kubectl -n ${DEMO.namespace} logs deploy/${release.operatorName}`, "the operator's log"],
    ["npm run demo", "again, with a fresh job"],
    ["npm run demo -- down", "uninstall the chart, stop the local cluster"],
  ];
  const width = Math.max(...commands.map(([command]) => command.length)) + 2;
  return [
    "",
    "Everything is still running (the load generator has stopped). To look around:",
    "",
    ...commands.map(([command, what]) => `  ${command.padEnd(width)}# ${what}`),
    "",
  ].join("\n");
}

async function demoDown(): Promise<void> {
  if ((await status()).every((component) => component.healthy)) {
    say(`▶ deleting the demo's StreamJobs and uninstalling ${DEMO.release}`);
    // Jobs go while the operator still runs (their finalizers need it).
    await cli("kubectl", ["delete", "sj", "--all", ...ns, "--ignore-not-found", "--timeout=2m"]);
    await cli("helm", ["uninstall", DEMO.release, ...ns, "--ignore-not-found", "--wait"]);
  }
  await down();
}
