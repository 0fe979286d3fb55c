import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide } from "./reconcile.ts";
import {
  after,
  condition,
  now,
  observe,
  pod,
  podsOf,
  reachablePods,
  runningJob,
  withSpec,
} from "./test-fixtures.ts";

describe("status: conditions", () => {
  test("a condition keeps its lastTransitionTime while its status stays", () => {
    const job = runningJob();
    const later = decide({
      ...observe(job, podsOf("r1")),
      now: new Date(now.getTime() + 60_000),
    });
    assert.equal(condition(later, "Ready")?.lastTransitionTime, now.toISOString());
  });

  test("a pod that cannot start makes the job Degraded, with the pod and reason named", () => {
    const d = decide(
      observe(runningJob(), [
        pod("r1", 0),
        pod("r1", 1, { ready: false, problem: "ErrImagePull: not found" }),
      ]),
    );
    assert.equal(condition(d, "Degraded")?.status, "True");
    assert.equal(condition(d, "Degraded")?.reason, "PodsFailing");
    assert.match(condition(d, "Degraded")?.message ?? "", /wc-r1-1: ErrImagePull/);
    assert.ok(d.events.some((e) => e.type === "Warning" && e.reason === "PodsFailing"));
  });

  test("storage the background check cannot use is Degraded, naming spec.savepoints.storage, once", () => {
    const job = runningJob();
    const pods = podsOf("r1");
    const storageHealth = "the bucket bkt does not exist";
    const d = decide({ ...observe(job, pods), storageHealth });
    assert.equal(condition(d, "Degraded")?.reason, "StorageUnusable");
    assert.equal(
      condition(d, "Degraded")?.message,
      "spec.savepoints.storage: the bucket bkt does not exist",
    );
    assert.equal(d.events.filter((e) => e.reason === "StorageUnusable").length, 1);
    const again = decide({ ...observe(after(job, d), pods), storageHealth });
    assert.deepEqual(again.events, [], "the same message is not said twice");
    assert.equal(d.status.state, "Running", "the run goes on");
  });

  test("Progressing names the operation and its step", () => {
    const job = runningJob();
    const changed = withSpec(job, { image: "weir/runtime:2" });
    const d = decide(observe(changed, reachablePods()));
    assert.equal(condition(d, "Progressing")?.status, "True");
    assert.equal(condition(d, "Progressing")?.reason, "UpgradeSavepoint");
    assert.equal(
      condition(d, "Progressing")?.message,
      "upgrade of run r1 (mode savepoint) at step savepoint",
    );
    assert.equal(condition(d, "Ready")?.reason, "Upgrading");
  });
});

describe("status: what the job runs and its load", () => {
  test("lag and partitions come from the latest whole scrape; desiredParallelism is what runs", () => {
    const job = runningJob();
    const d = decide({
      ...observe(job, podsOf("r1")),
      load: { lag: 42, partitions: 3 },
    });
    assert.equal(d.status.lag, 42);
    assert.equal(d.status.partitions, 3);
    assert.equal(d.status.desiredParallelism, 2);
    const suspended = decide(observe(after(job, d, { state: "suspended" }), []));
    assert.equal(suspended.status.desiredParallelism, 0);
  });

  test("a job that is not running has no lag", () => {
    const job = runningJob();
    const withLag = decide({
      ...observe(job, podsOf("r1")),
      load: { lag: 42, partitions: 3 },
    });
    const lost = decide(observe(after(job, withLag), [pod("r1", 0)]));
    assert.equal(lost.status.state, "Deploying");
    assert.equal(lost.status.lag, undefined);
    assert.equal(lost.status.partitions, 3, "partitions stay known");
  });

  test("a settled job is looked at again within a minute, one under way within 5 s", () => {
    const job = runningJob();
    assert.equal(decide(observe(job, podsOf("r1"))).requeueAfterMs, 60_000);
    assert.equal(decide(observe(job, [pod("r1", 0)])).requeueAfterMs, 5_000);
  });
});
