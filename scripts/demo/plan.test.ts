// The demo's pure parts: the phase plan and when a phase has made its point, the StreamJob it
// applies (valid by the operator's own schema), the RunReady Event it reads, the summary.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { validateStreamJob } from "../../operator/src/api/validate.ts";
import {
  DEMO,
  demoManifests,
  goalReached,
  type Observation,
  PHASES,
  type Phase,
  parseRunReady,
  phaseProgress,
  summaryLines,
  whyNot,
} from "./plan.ts";

const repo = join(import.meta.dirname, "..", "..");

const observation = (fields: Partial<Observation> = {}): Observation => ({
  t: 0,
  state: "Running",
  ready: true,
  image: DEMO.image,
  parallelism: 1,
  produced: 0,
  processed: 0,
  backlog: 0,
  inputRate: 100,
  processedRate: 100,
  ...fields,
});

const phase = (fields: Partial<Phase>): Phase => ({
  name: "p",
  rate: 100,
  goal: "running",
  minSeconds: 10,
  holdSeconds: 5,
  maxSeconds: 60,
  ...fields,
});

test("the plan: low load while the job starts and is upgraded, then high, then low again", () => {
  assert.deepEqual(
    PHASES.map((p) => p.goal),
    ["running", "upgraded", "scaled-up", "scaled-down"],
  );
  const [start, upgrade, high, last] = PHASES as [Phase, Phase, Phase, Phase];
  assert.equal(upgrade.upgrade, true);
  assert.equal(PHASES.filter((p) => p.upgrade).length, 1);
  assert.ok(high.rate >= 4 * start.rate, "high load is several times the low load");
  assert.equal(last.rate, start.rate);
  // Every phase can end before its deadline; all deadlines together stay within ten minutes.
  for (const p of PHASES) assert.ok(p.minSeconds + p.holdSeconds < p.maxSeconds, p.name);
  assert.ok(PHASES.reduce((sum, p) => sum + p.maxSeconds + p.holdSeconds, 0) <= 600);
});

test("a phase goes on until its minimum, then until its goal has held, or its deadline", () => {
  const p = phase({});
  assert.equal(phaseProgress(p, 5, 1, 1), "continue", "before the minimum even if reached");
  assert.equal(phaseProgress(p, 10, 8, 1), "continue", "reached at 8 s, held 2 s of 5");
  assert.equal(phaseProgress(p, 13, 8, 1), "done");
  assert.equal(phaseProgress(p, 59, undefined, 1), "continue");
  assert.equal(phaseProgress(p, 60, undefined, 1), "missed");
  // Reached just before the deadline: held past it rather than missed.
  assert.equal(phaseProgress(p, 60, 58, 1), "continue");
});

test("no scale-down is waited for when the job never scaled up", () => {
  const down = phase({ goal: "scaled-down" });
  assert.equal(phaseProgress(down, 5, undefined, 1), "continue", "the minimum still holds");
  assert.equal(phaseProgress(down, 10, undefined, 1), "skipped");
  assert.equal(phaseProgress(down, 10, undefined, 3), "continue");
  assert.equal(phaseProgress(down, 60, undefined, 3), "missed");
});

test("goals: what each phase waits for, never on a job that is not Ready", () => {
  const start = observation({ processed: 500 });
  assert.equal(goalReached("running", observation({ processed: 600 }), start), true);
  assert.equal(goalReached("running", observation({ processed: 500 }), start), false);
  assert.equal(goalReached("running", observation({ processed: 600, ready: false }), start), false);

  assert.equal(goalReached("upgraded", observation({ image: DEMO.upgradeImage }), start), true);
  assert.equal(goalReached("upgraded", observation({ image: DEMO.image }), start), false);

  const high = { inputRate: 800 };
  const scaledUp = (fields: Partial<Observation>) =>
    goalReached("scaled-up", observation({ ...high, ...fields }), start);
  assert.equal(scaledUp({ parallelism: 3, backlog: 1_000 }), true);
  assert.equal(scaledUp({ parallelism: 3, backlog: 20_000 }), false, "backlog not drained yet");
  assert.equal(scaledUp({ parallelism: 1, backlog: 0 }), false, "no more pods than at the start");
  assert.equal(scaledUp({ parallelism: 3, backlog: 0, ready: false }), false);

  const from3 = observation({ parallelism: 3 });
  assert.equal(goalReached("scaled-down", observation({ parallelism: 1 }), from3), true);
  assert.equal(goalReached("scaled-down", observation({ parallelism: 2 }), from3), false);
});

test("the demo's StreamJob: the secure sample with autoscaling 1–3, valid by the operator's schema", () => {
  const sample = readFileSync(join(repo, "config", "samples", "word-count-sasl.yaml"), "utf8");
  const cas = { kafka: "KAFKA CA PEM", storage: "STORAGE CA PEM" };
  const docs = demoManifests(sample, "abc", cas) as {
    kind: string;
    metadata: { namespace: string; name: string };
    data?: Record<string, string>;
    spec: Record<string, unknown>;
  }[];
  assert.deepEqual(
    docs.map((d) => `${d.kind}/${d.metadata.namespace}/${d.metadata.name}`),
    [
      `Secret/${DEMO.namespace}/kafka-user`,
      `Secret/${DEMO.namespace}/weir-storage`,
      `ConfigMap/${DEMO.namespace}/kafka-ca`,
      `ConfigMap/${DEMO.namespace}/storage-ca`,
      `StreamJob/${DEMO.namespace}/${DEMO.job}`,
    ],
  );
  assert.deepEqual(docs[2]?.data, { "ca.crt": cas.kafka });
  assert.deepEqual(docs[3]?.data, { "ca.crt": cas.storage });
  const job = docs[4] as (typeof docs)[number];
  const validation = validateStreamJob(job);
  assert.ok(validation.ok, validation.ok ? "" : validation.errors.join("; "));
  assert.deepEqual(job.spec.autoscaler, {
    enabled: true,
    minParallelism: 1,
    maxParallelism: DEMO.partitions,
    metricsInterval: "2s",
    metricsWindow: "20s",
    scaleDownDelay: "30s",
    catchUpDuration: "1m",
  });
  assert.equal(job.spec.image, DEMO.image);
  assert.deepEqual(job.spec.job, {
    entry: "/app/scripts/demo/job.ts",
    config: {
      name: "weir-demo-abc",
      input: "weir-demo-abc-lines",
      output: "weir-demo-abc-counts",
      workMs: DEMO.workMs,
    },
  });
  // The runtime image is this repository at /app (test-e2e/image-catalog.yaml).
  assert.ok(existsSync(join(repo, "scripts", "demo", "job.ts")));
  // Storage and Kafka as the sample has them: the secure listeners.
  assert.deepEqual((job.spec.savepoints as { storage: unknown }).storage, {
    endpoint: "https://127.0.0.1:9443",
    bucket: "weir-savepoints",
    credentialsSecret: "weir-storage",
    caBundle: { configMapKeyRef: { name: "storage-ca", key: "ca.crt" } },
  });
  assert.deepEqual(job.spec.kafka, {
    bootstrapServers: ["127.0.0.1:9094"],
    tls: { ca: { configMapKeyRef: { name: "kafka-ca", key: "ca.crt" } } },
    sasl: {
      mechanism: "SCRAM-SHA-512",
      username: "weir",
      passwordSecret: { name: "kafka-user", key: "password" },
    },
    internalTopicReplicationFactor: 1,
  });
});

test("RunReady Events: the completed operation, its duration and downtime", () => {
  assert.deepEqual(
    parseRunReady("rescale completed in 8.6 s (downtime 5.9 s): run r3 has all 3 pods ready"),
    { kind: "rescale", seconds: 8.6, downtimeSeconds: 5.9, pods: 3 },
  );
  assert.deepEqual(
    parseRunReady("upgrade completed in 5 s (downtime 3 s): run r2 has all 1 pods ready"),
    { kind: "upgrade", seconds: 5, downtimeSeconds: 3, pods: 1 },
  );
  assert.equal(parseRunReady("run r1 has all 1 pods ready"), undefined);
});

test("the summary: counts, savepoints, operations, and a goal missed said plainly", () => {
  const [start, upgrade, high, low] = PHASES as [Phase, Phase, Phase, Phase];
  const lines = summaryLines({
    seconds: 190,
    produced: 45_448,
    processed: 45_275,
    exactlyOnce: "yes: 9 running counts",
    savepoints: { upgrade: 1, rescale: 1 },
    operations: [
      { kind: "upgrade", seconds: 5.3, downtimeSeconds: 3, pods: 1, t: 25, from: 1 },
      { kind: "rescale", seconds: 8.6, downtimeSeconds: 5.9, pods: 3, t: 53, from: 1 },
    ],
    outcomes: [
      { phase: start, result: "done", start: 0, end: 15, reachedAfter: 5 },
      { phase: upgrade, result: "done", start: 15, end: 30, reachedAfter: 10 },
      { phase: high, result: "done", start: 30, end: 80, reachedAfter: 45 },
      { phase: low, result: "missed", start: 80, end: 230 },
    ],
    autoscaler: { reason: "ScaleDownDelayed", recommendedParallelism: 3 },
    plot: ".cluster/demo/demo.png",
  }).join("\n");
  assert.match(lines, /lines produced +45,448/);
  assert.match(lines, /lines processed +45,275/);
  assert.match(lines, /exactly once +yes: 9 running counts/);
  assert.match(lines, /savepoints +2 \(upgrade 1, rescale 1\)/);
  assert.match(lines, /upgrade +at 0:25: 5\.3 s in all, downtime 3 s/);
  assert.match(lines, /1 → 3 pods at 0:53: 8\.6 s in all, downtime 5\.9 s/);
  assert.match(lines, /scale-up under high load +yes, 0:45 into "high load"/);
  assert.match(lines, /scale-down under low load +NO: not within 150 s/);
  assert.match(lines, /last decision: ScaleDownDelayed \(recommended parallelism 3\)/);
  assert.match(lines, /plot +\.cluster\/demo\/demo\.png/);
});

test("a goal missed: the autoscaler's last word, or the job's conditions", () => {
  assert.equal(
    whyNot("scaled-up", { autoscaler: { reason: "MetricsIncomplete", recommendedParallelism: 1 } }),
    "the autoscaler says MetricsIncomplete, recommends 1",
  );
  assert.equal(whyNot("scaled-down", {}), "the operator wrote no autoscaler decision");
  const condition = (type: string, status: "True" | "False", reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
  });
  assert.equal(
    whyNot("running", {
      state: "Deploying",
      conditions: [
        condition("Progressing", "True", "Deploying", "run r1: 0/1 pods ready"),
        condition("Degraded", "True", "PodsFailing", "word-count-r1-0: ErrImagePull"),
      ],
    }),
    "state Deploying, Degraded PodsFailing: word-count-r1-0: ErrImagePull",
  );
  assert.equal(
    whyNot("upgraded", {
      state: "Upgrading",
      conditions: [
        condition("Degraded", "False", "AsExpected", ""),
        condition("Progressing", "True", "UpgradeSavepoint", "upgrade of run r1 at step savepoint"),
      ],
    }),
    "state Upgrading, Progressing UpgradeSavepoint: upgrade of run r1 at step savepoint",
  );
});
