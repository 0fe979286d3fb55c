import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamJob } from "../../api/types.ts";
import { decide } from "../reconcile.ts";
import {
  after,
  later,
  observe,
  pod,
  podsOf,
  reachablePods,
  runningJob,
  sampleJob,
  withSpec,
} from "../test-fixtures.ts";

describe("autoscale: who owns parallelism", () => {
  const withRecommendation = (enabled: boolean, dryRun: boolean, recommended: number) =>
    sampleJob(
      {
        autoscaler: {
          ...sampleJob().spec.autoscaler,
          enabled,
          dryRun,
          minParallelism: 1,
          maxParallelism: 4,
        },
      },
      { autoscaler: { recommendedParallelism: recommended } },
    );
  test("the autoscaler's recommendation runs while it is enabled, clamped to its limits", () => {
    assert.equal(decide(observe(withRecommendation(true, false, 3))).status.run?.parallelism, 3);
    assert.equal(decide(observe(withRecommendation(true, false, 9))).status.run?.parallelism, 4);
  });
  test("a dry run or a disabled autoscaler leaves spec.parallelism in charge", () => {
    assert.equal(decide(observe(withRecommendation(true, true, 3))).status.run?.parallelism, 2);
    assert.equal(decide(observe(withRecommendation(false, false, 3))).status.run?.parallelism, 2);
  });
});

describe("autoscale: decisions on the load", () => {
  const busy = {
    complete: true as const,
    subtasks: 2,
    tasks: 8,
    spanSeconds: 120,
    recordsInRate: 2_000,
    arrivalRate: 3_000,
    backlog: 50_000,
    backlogRate: 1_000,
    intervalArrivalRates: [3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000],
    busyRatio: { mean: 1, max: 1 },
    trueRatePerSubtask: 1_000,
  };
  function autoscaled(
    dryRun: boolean,
    upgradeMode: StreamJob["spec"]["upgradeMode"] = "savepoint",
  ): StreamJob {
    const job = runningJob();
    job.spec.upgradeMode = upgradeMode;
    job.spec.autoscaler = {
      ...job.spec.autoscaler,
      enabled: true,
      dryRun,
      minParallelism: 1,
      maxParallelism: 4,
    };
    return job;
  }
  const pods = reachablePods();

  test("a backlog the run cannot keep up with scales it up, through a savepoint rescale", () => {
    const d = decide({
      ...observe(autoscaled(false), pods),
      autoscaling: { summary: busy, partitions: 4 },
    });
    assert.equal(d.status.autoscaler?.reason, "ScaleUp");
    assert.equal(d.status.autoscaler?.recommendedParallelism, 4);
    assert.ok(d.events.some((e) => e.reason === "Autoscaler" && e.message.startsWith("ScaleUp")));
    assert.deepEqual(d.measurements.autoscalerDecisions, ["ScaleUp"], "counted in the metrics");
    assert.equal(d.status.upgrade?.kind, "rescale");
    assert.equal(d.status.upgrade?.step, "savepoint");
  });

  test("in a dry run the recommendation is recorded, not acted on", () => {
    const d = decide({
      ...observe(autoscaled(true), pods),
      autoscaling: { summary: busy, partitions: 4 },
    });
    assert.equal(d.status.autoscaler?.recommendedParallelism, 4);
    assert.equal(d.status.upgrade, undefined);
    assert.ok(d.events.some((e) => e.message.startsWith("dry run, not applied")));
  });

  test("incomplete metrics decide nothing", () => {
    const d = decide({
      ...observe(autoscaled(false), pods),
      autoscaling: { summary: { complete: false, why: "no samples of run r1 yet" }, partitions: 4 },
    });
    assert.equal(d.status.upgrade, undefined);
    assert.equal(d.status.autoscaler?.reason, "MetricsIncomplete");
    assert.deepEqual(d.events, []);
  });

  test("the next look at the load is asked for within metricsInterval", () => {
    const d = decide(observe(autoscaled(false), pods));
    assert.equal(d.requeueAfterMs, 15_000);
  });

  test("nothing is decided while an operation is under way", () => {
    const job = autoscaled(false);
    const changed = withSpec(job, { image: "weir/runtime:2" });
    const upgrading = decide(observe(changed, pods));
    const d = decide({
      ...observe(after(changed, upgrading), pods),
      autoscaling: { summary: busy, partitions: 4 },
    });
    assert.deepEqual(d.measurements.autoscalerDecisions, []);
    assert.equal(d.status.autoscaler?.recommendedParallelism, undefined);
  });

  test("a rescale it made is remembered with its downtime, for the next plan", () => {
    const job = autoscaled(false, "last-state");
    const up = decide({ ...observe(job, pods), autoscaling: { summary: busy, partitions: 4 } });
    assert.equal(up.status.upgrade?.kind, "rescale");
    const starting = decide({ ...observe(after(job, up)), now: later(1_000) });
    const ready = decide({
      ...observe(
        after(job, starting),
        [0, 1, 2, 3].map((i) => pod("r2", i)),
      ),
      now: later(4_000),
    });
    assert.equal(ready.status.state, "Running");
    const rescales = ready.status.autoscaler?.rescales ?? [];
    assert.equal(rescales.length, 1);
    assert.equal(rescales[0]?.from, 2);
    assert.equal(rescales[0]?.to, 4);
    assert.equal(rescales[0]?.downtimeSeconds, 4);
    assert.equal(ready.status.autoscaler?.rescalesInLastHour, 1);
    assert.equal(ready.status.autoscaler?.lastRescaleTime, up.status.upgrade?.startTime);
  });
});

describe("autoscale: kubectl scale while the autoscaler owns parallelism", () => {
  function autoscaledRunning(): StreamJob {
    const job = runningJob();
    job.spec.autoscaler = {
      ...job.spec.autoscaler,
      enabled: true,
      minParallelism: 1,
      maxParallelism: 3,
    };
    const seen = decide(observe(job, podsOf("r1")));
    assert.equal(seen.status.autoscaler?.specParallelism, 2, "spec.parallelism as first seen");
    return after(job, seen);
  }

  test("a change of spec.parallelism is a manual override: the job rescales to it, said in an Event", () => {
    const job = autoscaledRunning();
    const scaled = withSpec(job, { parallelism: 3 });
    const d = decide(observe(scaled, podsOf("r1")));
    assert.equal(d.status.autoscaler?.reason, "ManualOverride");
    assert.equal(d.status.autoscaler?.recommendedParallelism, 3);
    assert.equal(d.status.desiredParallelism, 3);
    assert.equal(d.status.upgrade?.kind, "rescale");
    assert.ok(
      d.events.some(
        (e) =>
          e.reason === "Autoscaler" &&
          /ManualOverride: spec.parallelism changed from 2 to 3: the job runs 3/.test(e.message),
      ),
    );
  });

  test("beyond the autoscaler's limits it is clamped, and says so; the same value again changes nothing", () => {
    const job = autoscaledRunning();
    const scaled = withSpec(job, { parallelism: 9 });
    const d = decide(observe(scaled, podsOf("r1")));
    assert.equal(d.status.autoscaler?.recommendedParallelism, 3);
    assert.ok(
      d.events.some((e) =>
        /runs 3 \(the autoscaler's limits and the partitions allow 1\.\.3\)/.test(e.message),
      ),
    );
    const again = decide(observe(after(scaled, d), podsOf("r1")));
    assert.ok(!again.events.some((e) => e.message.startsWith("ManualOverride")));
  });

  test("in a dry run spec.parallelism stays in charge: a change is no override", () => {
    const job = autoscaledRunning();
    const dry = {
      ...job,
      spec: { ...job.spec, autoscaler: { ...job.spec.autoscaler, dryRun: true } },
    };
    const scaled = withSpec(dry, { parallelism: 3 });
    const d = decide(observe(scaled, podsOf("r1")));
    assert.notEqual(d.status.autoscaler?.reason, "ManualOverride");
    assert.equal(d.status.autoscaler?.specParallelism, 3);
    assert.equal(d.status.upgrade?.kind, "rescale");
  });
});

describe("autoscale: the next look at the load", () => {
  // Fails before the fix: the periodic savepoint's schedule replaced the autoscaler's
  // (60 s instead of metricsInterval), so its scrapes slowed to one a minute.
  test("a periodic savepoint not yet due does not put off the next look at the load", () => {
    const job = runningJob();
    const savepoints = job.spec.savepoints;
    assert.ok(savepoints);
    const both = withSpec(job, {
      savepoints: { ...savepoints, interval: "1h" },
      autoscaler: { ...job.spec.autoscaler, enabled: true },
    });
    const d = decide(observe(both, podsOf("r1")));
    assert.equal(d.status.upgrade, undefined);
    assert.equal(d.requeueAfterMs, 15_000, "metricsInterval");
  });
});
