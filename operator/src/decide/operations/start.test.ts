import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide } from "../reconcile.ts";
import {
  after,
  condition,
  created,
  deleted,
  later,
  observe,
  pod,
  podsOf,
  replacing,
  runningJob,
  sampleJob,
} from "../test-fixtures.ts";

describe("start: a job's first run", () => {
  test("a new job gets its finalizer first, then run r1: a ConfigMap and one pod per subtask", () => {
    const job = sampleJob();
    job.metadata.finalizers = [];
    const d = decide(observe(job));
    assert.deepEqual(d.actions[0], { kind: "addFinalizer" });
    assert.deepEqual(created(d), ["ConfigMap/wc-r1-config", "Pod/wc-r1-0", "Pod/wc-r1-1"]);
    assert.equal(d.status.state, "Deploying");
    assert.equal(d.status.run?.id, "r1");
    assert.equal(d.status.run?.parallelism, 2);
    assert.equal(d.status.selector, "weir.dev/job=wc");
    assert.equal(d.status.observedGeneration, 1);
    assert.equal(condition(d, "Ready")?.status, "False");
    assert.equal(condition(d, "Progressing")?.status, "True");
    assert.equal(condition(d, "Degraded")?.status, "False");
    assert.ok(d.events.some((e) => e.reason === "RunStarted" && e.message.includes("run r1")));
  });

  test("pods not yet ready keep it Deploying and create nothing twice", () => {
    const first = decide(observe(sampleJob()));
    const d = decide(
      observe(after(sampleJob(), first), [pod("r1", 0, { ready: false }), pod("r1", 1)]),
    );
    assert.equal(d.status.state, "Deploying");
    assert.deepEqual(created(d), []);
    assert.equal(d.status.run?.id, "r1");
  });

  test("all pods ready → Running, Ready=True, one RunReady event; a later look changes nothing", () => {
    const job = runningJob();
    assert.equal(job.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    const again = decide(observe(job, podsOf("r1")));
    assert.deepEqual(again.actions, []);
    assert.deepEqual(again.events, []);
    assert.deepEqual(again.status, job.status, "a settled job's status is stable");
  });

  test("a brand-new job starts from its initialSavepoint", () => {
    const d = decide(observe(sampleJob({ initialSavepoint: "s3://b/old-job/savepoints/x/" })));
    assert.equal(d.status.run?.restoredFrom, "s3://b/old-job/savepoints/x/");
  });
});

describe("start: keeping the run whole", () => {
  test("a deleted pod is recreated with the same name", () => {
    const d = decide(observe(runningJob(), [pod("r1", 0)]));
    assert.deepEqual(created(d), ["ConfigMap/wc-r1-config", "Pod/wc-r1-1"]);
    assert.equal(d.status.state, "Deploying");
  });

  test("a failed pod is deleted (and recreated on the next look)", () => {
    const d = decide(
      observe(runningJob(), [pod("r1", 0), pod("r1", 1, { phase: "Failed", ready: false })]),
    );
    assert.deepEqual(deleted(d), ["wc-r1-1"]);
    assert.deepEqual(created(d), []);
  });

  test("a pod that ran to its end is replaced too, and its subtask waits until it is gone", () => {
    const d = decide(
      observe(runningJob(), [pod("r1", 0), pod("r1", 1, { phase: "Succeeded", ready: false })]),
    );
    assert.deepEqual(deleted(d), ["wc-r1-1"]);
    assert.ok(d.events.some((e) => e.message.includes("its phase is Succeeded")));
    assert.deepEqual(created(d), []);
  });

  test("a pod beyond the run's parallelism, a duplicate and a namesake's pod are deleted", () => {
    const d = decide(
      observe(runningJob(), [
        pod("r1", 0),
        pod("r1", 1),
        pod("r1", 2),
        { ...pod("r1", 1), name: "wc-r1-1-copy" },
        { ...pod("r1", 0), name: "other", ownedByJob: false },
      ]),
    );
    assert.deepEqual(deleted(d).sort(), ["other", "wc-r1-1-copy", "wc-r1-2"]);
  });

  test("no pod is recreated while a pod of another run is still there", () => {
    const d = decide(observe(runningJob(), [pod("r1", 0), pod("r0", 1, { terminating: true })]));
    assert.deepEqual(created(d), []);
    assert.deepEqual(deleted(d), [], "a terminating pod is not deleted again");
    assert.equal(d.status.state, "Deploying");
  });
});

describe("start: a run's pods start slowly, on readiness", () => {
  test("eight at first, then as many more as are ready; a first batch that never gets ready holds the rest back", () => {
    const job = sampleJob({ parallelism: 20 });
    const first = decide(observe(job));
    assert.equal(created(first).filter((c) => c.startsWith("Pod/")).length, 8);
    const eight = (ready: boolean) => Array.from({ length: 8 }, (_, i) => pod("r1", i, { ready }));
    const stuck = decide(observe(after(job, first), eight(false)));
    assert.deepEqual(created(stuck), [], "none more while the first are not ready");
    const next = decide(observe(after(job, first), eight(true)));
    assert.deepEqual(
      created(next).filter((c) => c.startsWith("Pod/")),
      Array.from({ length: 8 }, (_, i) => `Pod/wc-r1-${i + 8}`),
    );
  });
});

describe("start: the next run of an operation", () => {
  test("a run due while pods of the earlier one are still there deletes them first", () => {
    const job = runningJob();
    const suspend = {
      ...job,
      spec: { ...job.spec, state: "suspended" as const, upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(suspend, podsOf("r1")));
    const suspended = decide(observe(after(suspend, stopping)));
    assert.equal(suspended.status.state, "Suspended");
    // Resumed while a pod of r1 is somehow still there.
    const resumed = decide(observe({ ...job, status: suspended.status }, [pod("r1", 0)]));
    assert.deepEqual(deleted(resumed), ["wc-r1-0"]);
    assert.deepEqual(created(resumed), [], "no run next to another");
    assert.equal(resumed.status.state, "Deploying");
  });

  test("once the next run is Ready the operation ends, measured: its duration and downtime", () => {
    const { changed, starting } = replacing({ image: "weir/runtime:2" });
    const ready = decide({
      ...observe(after(changed, starting), podsOf("r2")),
      now: later(5_200),
    });
    assert.equal(ready.status.upgrade, undefined);
    assert.deepEqual(ready.measurements.operations, [
      { kind: "upgrade", seconds: 5.2, downtimeSeconds: 5.2 },
    ]);
    assert.ok(
      ready.events.some(
        (e) =>
          e.reason === "RunReady" &&
          e.message === "upgrade completed in 5.2 s (downtime 5.2 s): run r2 has all 2 pods ready",
      ),
    );
    assert.equal(ready.status.lastStableSpecHash, ready.status.run?.specHash);
  });
});
