import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultedAutoscaler } from "../api/validate.ts";
import {
  type AutoscalerDecision,
  type AutoscalerHistory,
  type AutoscalerInput,
  DEFAULT_RESCALE_DOWNTIME_SECONDS,
  decideParallelism,
  expectedDowntimeSeconds,
  rememberRecommendation,
} from "./autoscaler.ts";
import type { CompleteSummary } from "./metrics-window.ts";

const NOW = Date.parse("2030-01-01T12:00:00Z");
const ago = (minutes: number) => new Date(NOW - minutes * 60_000).toISOString();

// The API's defaults, enabled.
const SPEC = defaultedAutoscaler({ enabled: true });

/** One subtask processes 1000 records per busy second. */
const RATE = 1000;

/**
 * A complete window of a job of `parallelism` subtasks with `arrival` records/s arriving, of
 * which they read what they can (busy share follows), and `backlog` records waiting.
 */
function load(
  parallelism: number,
  arrival: number,
  extra: Partial<CompleteSummary> = {},
): CompleteSummary {
  const read = Math.min(arrival, parallelism * RATE);
  const busy = read / (parallelism * RATE);
  return {
    complete: true,
    subtasks: parallelism,
    tasks: 60,
    spanSeconds: 120,
    recordsInRate: read,
    arrivalRate: arrival,
    backlog: 0,
    backlogRate: arrival - read,
    intervalArrivalRates: new Array(8).fill(arrival),
    busyRatio: { mean: busy, max: busy },
    ...(read > 0 ? { trueRatePerSubtask: RATE } : {}),
    ...extra,
  };
}

/** History in which `parallelism` was recommended for the last hour: scale-downs may happen. */
const settled = (parallelism: number): AutoscalerHistory => ({
  recommendations: [{ time: ago(60), parallelism }],
});

function decide(input: Partial<AutoscalerInput> & { summary: AutoscalerInput["summary"] }) {
  return decideParallelism({
    spec: SPEC,
    partitions: 60,
    parallelism: 4,
    history: {},
    now: NOW,
    ...input,
  });
}

const brief = (d: AutoscalerDecision) => ({ to: d.recommendedParallelism, reason: d.reason });

test("scale up at once to carry the arrival rate at the target utilization (aligned to the partitions)", () => {
  // 8000/s at 1000/s per subtask and 70 %: 11.4 subtasks → 12 (60 partitions, 5 each).
  const d = decide({ summary: load(3, 8000), parallelism: 3, history: settled(3) });
  assert.deepEqual(brief(d), { to: 12, reason: "ScaleUp" });
  assert.equal(d.target, 12);
  assert.equal(d.stuck, false);
  assert.equal(d.inputs.steadyParallelism, 11.429);
  assert.match(d.message, /arrival 8000\/s.*3 → 12/);
});

test("a backlog is drained within catchUpDuration, counting what piles up during the rescale's downtime", () => {
  // 4000/s needs 5.7 subtasks steady; a backlog of 1.2M records plus 4000/s × 60 s of downtime
  // to drain in 300 s needs (4000 + 1_440_000/300)/1000 = 8.8 → 10 (60 partitions, 6 each).
  const summary = load(6, 4000, { backlog: 1_200_000, backlogRate: 100 });
  const d = decide({ summary, parallelism: 6 });
  assert.deepEqual(brief(d), { to: 10, reason: "ScaleUp" });
  assert.equal(d.inputs.catchUpParallelism, 8.8);
  assert.equal(d.inputs.expectedDowntimeSeconds, DEFAULT_RESCALE_DOWNTIME_SECONDS);
  // Measured rescales of 5 minutes leave more to drain: (4000 + 2_400_000/300)/1000 = 12.
  const slow = { rescales: [{ time: ago(90), from: 4, to: 6, downtimeSeconds: 300 }] };
  assert.deepEqual(brief(decide({ summary, parallelism: 6, history: slow })), {
    to: 12,
    reason: "ScaleUp",
  });
});

test("expected downtime: the mean of the last three measured rescales, the default before any", () => {
  assert.equal(expectedDowntimeSeconds({}), DEFAULT_RESCALE_DOWNTIME_SECONDS);
  const rescales = [100, 10, 20, 30].map((downtimeSeconds, i) => ({
    time: ago(50 - i),
    from: 2,
    to: 4,
    downtimeSeconds,
  }));
  assert.equal(
    expectedDowntimeSeconds({ rescales: [...rescales, { time: ago(1), from: 4, to: 6 }] }),
    20,
  );
});

test("a job that keeps up and drains its backlog in time is not rescaled (the rescale would only add downtime)", () => {
  // 10 subtasks at 6000/s: 40 % headroom, and 600k records drain at 4000/s in 150 s < 5 min.
  const summary = load(10, 6000, { backlog: 600_000, backlogRate: -4000 });
  const d = decide({ summary, parallelism: 10, history: settled(10) });
  assert.deepEqual(brief(d), { to: 10, reason: "Steady" });
});

test("a burst shorter than a rescale is drained, not scaled for", () => {
  // The last interval saw a burst; the rate that held through the last intervals did not change.
  const summary = load(6, 4000, {
    intervalArrivalRates: [4000, 4000, 4000, 4000, 4000, 4000, 4000, 10_000],
    backlog: 80_000,
  });
  const d = decide({ summary, parallelism: 6, history: settled(6) });
  assert.deepEqual(brief(d), { to: 6, reason: "Steady" });
  assert.equal(d.inputs.sustainedArrivalRate, 4000);
});

test("with short measured rescales, a burst across two scrape intervals is still drained", () => {
  // Rescales of 6 s: the rate must hold through 3 intervals; a 20 s burst touches 2 at most.
  const history: AutoscalerHistory = {
    ...settled(6),
    rescales: [{ time: ago(50), from: 4, to: 6, downtimeSeconds: 6 }],
  };
  const burst = load(6, 4000, {
    intervalArrivalRates: [4000, 4000, 4000, 4000, 4000, 4000, 8000, 6000],
    backlog: 80_000,
  });
  assert.deepEqual(brief(decide({ summary: burst, parallelism: 6, history })), {
    to: 6,
    reason: "Steady",
  });
  // Through 3 intervals, it is a rise.
  const rise = load(6, 8000, {
    intervalArrivalRates: [4000, 4000, 4000, 4000, 4000, 8000, 8000, 8000],
  });
  assert.equal(decide({ summary: rise, parallelism: 6, history }).reason, "ScaleUp");
});

test("a rise that held longer than a rescale is sized for the rate now, so one rescale does", () => {
  // Over the last 6 intervals (60 s of downtime + two) at least 5000/s arrived; 8000/s now.
  const summary = load(3, 8000, {
    intervalArrivalRates: [2000, 2000, 5000, 6000, 6000, 8000, 8000, 8000],
  });
  const d = decide({ summary, parallelism: 3, history: settled(3) });
  assert.deepEqual(brief(d), { to: 12, reason: "ScaleUp" });
  assert.equal(d.inputs.sustainedArrivalRate, 5000);
  assert.match(d.message, /arrival 8000\/s now \(5000\/s sustained\)/);
});

test("no traffic: down to minParallelism, after the scale-down delay", () => {
  const idle = load(4, 0);
  const quietFor = (minutes: number, parallelism: number): AutoscalerHistory => ({
    recommendations: [
      { time: ago(60), parallelism: 4 },
      { time: ago(minutes), parallelism },
    ],
  });
  assert.deepEqual(brief(decide({ summary: idle, history: quietFor(5, 1) })), {
    to: 4,
    reason: "ScaleDownDelayed",
  });
  assert.deepEqual(brief(decide({ summary: idle, history: quietFor(11, 1) })), {
    to: 1,
    reason: "ScaleDown",
  });
  const atMin = decide({
    summary: idle,
    spec: { ...SPEC, minParallelism: 2 },
    history: quietFor(11, 2),
  });
  assert.deepEqual(brief(atMin), { to: 2, reason: "ScaleDown" });
  assert.deepEqual(brief(decide({ summary: idle, parallelism: 1, history: settled(1) })), {
    to: 1,
    reason: "Steady",
  });
});

test("no metrics or partial metrics: nothing is decided, nothing is recorded", () => {
  for (const why of ["no samples of run r2 yet", "subtask 1: latest sample is 45s old"]) {
    const d = decide({ summary: { complete: false, why }, parallelism: 4 });
    assert.deepEqual(brief(d), { to: 4, reason: "MetricsIncomplete" });
    assert.equal(d.target, undefined);
    assert.ok(d.message.includes(why));
    assert.deepEqual(rememberRecommendation([{ time: ago(1), parallelism: 4 }], d, NOW, 600_000), [
      { time: ago(1), parallelism: 4 },
    ]);
  }
});

test("a backlog with zero throughput is reported as stuck, not answered with more pods", () => {
  const summary = load(4, 3000, {
    recordsInRate: 0,
    backlog: 900_000,
    backlogRate: 3000,
    busyRatio: { mean: 0, max: 0 },
  });
  delete summary.trueRatePerSubtask;
  const d = decide({ summary, history: settled(4) });
  assert.deepEqual(brief(d), { to: 4, reason: "BacklogNotShrinking" });
  assert.equal(d.stuck, true);
  assert.match(d.message, /nothing processed/);
});

test("a backlog that does not shrink while every pod is mostly idle is stuck (a failing sink), but a busy one scales", () => {
  const failingSink = load(4, 3000, { backlog: 500_000, backlogRate: 0 });
  failingSink.busyRatio = { mean: 0.2, max: 0.3 };
  const d = decide({ summary: failingSink, history: settled(4) });
  assert.deepEqual(brief(d), { to: 4, reason: "BacklogNotShrinking" });
  assert.equal(d.stuck, true);
  // The same backlog with saturated pods is a capacity problem.
  const saturated = load(4, 5000, { backlog: 500_000 });
  const up = decide({ summary: saturated, history: settled(4) });
  assert.equal(up.reason, "ScaleUp");
  assert.equal(up.stuck, false);
});

test("never above the partition count, even when maxParallelism is higher", () => {
  const d = decide({
    summary: load(2, 50_000),
    partitions: 4,
    parallelism: 2,
    spec: { ...SPEC, maxParallelism: 10 },
  });
  assert.deepEqual(brief(d), { to: 4, reason: "ScaleUp" });
});

test("within minParallelism/maxParallelism; a parallelism outside them is corrected even without metrics", () => {
  const capped = decide({
    summary: load(3, 50_000),
    parallelism: 3,
    spec: { ...SPEC, maxParallelism: 6 },
  });
  assert.deepEqual(brief(capped), { to: 6, reason: "ScaleUp" });
  const lowered = decide({
    summary: { complete: false, why: "no samples of run r3 yet" },
    parallelism: 12,
    spec: { ...SPEC, maxParallelism: 6 },
  });
  assert.deepEqual(brief(lowered), { to: 6, reason: "OutsideLimits" });
  const raised = decide({
    summary: load(1, 100),
    parallelism: 1,
    spec: { ...SPEC, minParallelism: 3 },
  });
  assert.deepEqual(brief(raised), { to: 3, reason: "OutsideLimits" });
});

test("aligned to the busiest subtask: 4.6 subtasks' worth of 12 partitions runs on 6", () => {
  // 3200/s at 70 % needs 4.6 evenly loaded subtasks, i.e. at most 2 partitions (533/s) each: 5
  // (or 4) would leave a subtask with 3 partitions, 800/s, 80 % busy.
  const d = decide({ summary: load(2, 3200), partitions: 12, parallelism: 2 });
  assert.deepEqual(brief(d), { to: 6, reason: "ScaleUp" });
  // 2500/s needs 3.6: 3 partitions (625/s, 63 %) each, on 4.
  assert.deepEqual(brief(decide({ summary: load(2, 2500), partitions: 12, parallelism: 2 })), {
    to: 4,
    reason: "ScaleUp",
  });
});

test("no pod that adds no capacity, and none missing: 6.5 subtasks' worth of 60 partitions runs on 7", () => {
  // 4550/s at 70 % is 6.5 evenly loaded subtasks: at most 9 partitions (682/s, 97 %) on any.
  // 7 pods own 9 or 8 each; a divisor of 60 would take 10.
  const d = decide({ summary: load(3, 4550), parallelism: 3 });
  assert.deepEqual(brief(d), { to: 7, reason: "ScaleUp" });
});

test("not back down to a parallelism the job outgrew within the hour at about this load", () => {
  // 15 was reached by a scale-up from 12 at 7700/s, 20 minutes ago: 12 fell behind then.
  const outgrew = (minutesAgo: number) => ({
    recommendations: [{ time: ago(60), parallelism: 8 }],
    rescales: [{ time: ago(minutesAgo), from: 12, to: 15, downtimeSeconds: 5, arrivalRate: 7700 }],
  });
  // At 7500/s the mean rate says 12 (10.7 subtasks' worth), but 12 was too few for 7700/s.
  const held = decide({ summary: load(15, 7500), parallelism: 15, history: outgrew(20) });
  assert.deepEqual(brief(held), { to: 15, reason: "Steady" });
  assert.equal(held.inputs.outgrownParallelism, 12);
  assert.match(held.message, /12 fell behind at this load within the hour/);
  // Much less load than 12 fell behind at: down it goes, past 12.
  assert.deepEqual(
    brief(decide({ summary: load(15, 5000), parallelism: 15, history: outgrew(20) })),
    {
      to: 8,
      reason: "ScaleDown",
    },
  );
  // An hour later the memory is gone.
  assert.deepEqual(
    brief(decide({ summary: load(15, 7500), parallelism: 15, history: outgrew(61) })),
    {
      to: 12,
      reason: "ScaleDown",
    },
  );
  // A scale-down says nothing about its `from` being too few.
  const down = {
    recommendations: [{ time: ago(60), parallelism: 8 }],
    rescales: [{ time: ago(20), from: 15, to: 12, downtimeSeconds: 5, arrivalRate: 7700 }],
  };
  assert.equal(
    decide({ summary: load(15, 7500), parallelism: 15, history: down }).reason,
    "ScaleDown",
  );
});

test("dead band: a small relative change does nothing", () => {
  // 10 → 12 is 20 %.
  const summary = load(10, 8000);
  assert.deepEqual(brief(decide({ summary, parallelism: 10, spec: { ...SPEC, deadBand: 0.25 } })), {
    to: 10,
    reason: "WithinDeadBand",
  });
  assert.deepEqual(brief(decide({ summary, parallelism: 10, spec: { ...SPEC, deadBand: 0.1 } })), {
    to: 12,
    reason: "ScaleUp",
  });
});

test("scale down only after scaleDownDelay, to the highest recommendation of that time", () => {
  const quiet = load(12, 2000); // 2.9 subtasks' worth → 3
  // 12 was still recommended 9 minutes ago: not yet.
  const recent: AutoscalerHistory = {
    recommendations: [
      { time: ago(30), parallelism: 12 },
      { time: ago(9), parallelism: 6 },
    ],
  };
  const early = decide({ summary: quiet, parallelism: 12, history: recent });
  assert.deepEqual(brief(early), { to: 12, reason: "ScaleDownDelayed" });
  assert.equal(early.target, 3);
  // 6 and then 3 for the last 10 minutes: down to 6, the highest.
  const held: AutoscalerHistory = {
    recommendations: [
      { time: ago(30), parallelism: 12 },
      { time: ago(11), parallelism: 6 },
      { time: ago(4), parallelism: 3 },
    ],
  };
  assert.deepEqual(brief(decide({ summary: quiet, parallelism: 12, history: held })), {
    to: 6,
    reason: "ScaleDown",
  });
  // Without a history reaching back that far (a new job, a lost status), wait.
  assert.deepEqual(brief(decide({ summary: quiet, parallelism: 12, history: {} })), {
    to: 12,
    reason: "ScaleDownDelayed",
  });
});

test("scale up does not wait for the delay", () => {
  const history: AutoscalerHistory = { recommendations: [{ time: ago(1), parallelism: 2 }] };
  assert.equal(decide({ summary: load(4, 8000), history }).reason, "ScaleUp");
});

test("at most maxRescalesPerHour rescales within any hour", () => {
  const rescales = (minutesAgo: number[]) =>
    minutesAgo.map((m) => ({ time: ago(m), from: 2, to: 4, downtimeSeconds: 30 }));
  const busy = load(4, 8000);
  const capped = decide({
    summary: busy,
    history: { rescales: rescales([55, 45, 35, 25, 15, 5]) },
  });
  assert.deepEqual(brief(capped), { to: 4, reason: "RescaleLimit" });
  assert.equal(capped.target, 12);
  const older = decide({ summary: busy, history: { rescales: rescales([65, 45, 35, 25, 15, 5]) } });
  assert.deepEqual(brief(older), { to: 12, reason: "ScaleUp" });
});

test("the recommendation history: appended on change, what the delay needs kept, bounded", () => {
  const d = (target: number) =>
    decide({ summary: load(target, target * 700), parallelism: target });
  let list = rememberRecommendation(undefined, d(4), NOW - 20 * 60_000, 600_000);
  list = rememberRecommendation(list, d(4), NOW - 15 * 60_000, 600_000);
  assert.equal(list.length, 1, "no new entry while the recommendation holds");
  list = rememberRecommendation(list, d(6), NOW - 12 * 60_000, 600_000);
  list = rememberRecommendation(list, d(10), NOW, 600_000);
  // The entry of 20 minutes ago is superseded by the one in effect when the delay began (12 min ago).
  assert.deepEqual(
    list.map((r) => r.parallelism),
    [6, 10],
  );
  let long: ReturnType<typeof rememberRecommendation> = [];
  for (let i = 0; i < 150; i++) {
    long = rememberRecommendation(long, d(i % 2 === 0 ? 4 : 6), NOW - (150 - i) * 1000, 3_600_000);
  }
  assert.equal(long.length, 100);
});

test("before any pod has reported its partitions nothing is decided (and nothing throws)", () => {
  const d = decide({ summary: load(4, 8000), partitions: 0 });
  assert.deepEqual(brief(d), { to: 4, reason: "MetricsIncomplete" });
});
