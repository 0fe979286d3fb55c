import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamJob } from "../../api/types.ts";
import { decide } from "../reconcile.ts";
import { runSpecOf, specHash } from "../run-spec.ts";
import {
  after,
  condition,
  created,
  deleted,
  observe,
  pod,
  podsOf,
  reachablePods,
  runningJob,
  withSpec,
} from "../test-fixtures.ts";

describe("replace: a change replaces the run", () => {
  for (const [what, change, kind] of [
    ["image", { image: "weir/runtime:2" }, "upgrade"],
    ["job configuration", { job: { entry: "/app/job.ts", config: { a: 1 } } }, "upgrade"],
    ["parallelism", { parallelism: 3 }, "rescale"],
    ["restartNonce", { restartNonce: 7 }, "restart"],
  ] as const) {
    test(`a change of ${what} stops every old pod first (${kind}, last-state), then starts the next run`, () => {
      const job = runningJob();
      const changed = {
        ...job,
        spec: { ...job.spec, upgradeMode: "last-state", ...change },
      } as StreamJob;
      const stopping = decide(observe(changed, podsOf("r1")));
      assert.deepEqual(deleted(stopping).sort(), ["wc-r1-0", "wc-r1-1"]);
      assert.deepEqual(created(stopping), [], "no new pod while an old one is there");
      assert.equal(stopping.status.state, "Upgrading");
      assert.equal(stopping.status.upgrade?.kind, kind);
      assert.equal(stopping.status.upgrade?.step, "stopping");
      assert.ok(
        stopping.events.some((e) => e.reason === "OperationStarted" && e.message.startsWith(kind)),
      );

      const terminating = decide(
        observe(after(changed, stopping), [pod("r1", 0, { terminating: true })]),
      );
      assert.deepEqual(created(terminating), [], "terminating pods still block the next run");
      assert.deepEqual(deleted(terminating), []);

      const starting = decide(observe(after(changed, terminating)));
      assert.equal(starting.status.run?.id, "r2");
      assert.equal(starting.status.upgrade?.step, "starting");
      assert.equal(starting.status.run?.specHash, specHash(runSpecOf(changed)));
      assert.ok(created(starting).includes("Pod/wc-r2-0"));

      const p = starting.status.run?.parallelism ?? 0;
      const pods = Array.from({ length: p }, (_, i) => pod("r2", i));
      const done = decide(observe(after(changed, starting), pods));
      assert.equal(done.status.state, "Running");
      assert.equal(done.status.upgrade, undefined);
      assert.ok(
        done.events.some((e) => e.reason === "RunReady" && e.message.includes(`${kind} completed`)),
      );
    });
  }

  test("a change of settings no pod carries (autoscaler, retention) keeps the run", () => {
    const job = runningJob();
    const changed = {
      ...job,
      spec: {
        ...job.spec,
        readinessTimeout: "5m",
        autoscaler: { ...job.spec.autoscaler, scaleDownDelay: "1h" },
      },
    };
    const d = decide(observe(changed, podsOf("r1")));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.state, "Running");
  });

  test("a stateless upgrade starts the next run without state (WEIR_RESTORE_FROM=none)", () => {
    const job = runningJob();
    const changed = {
      ...job,
      spec: { ...job.spec, image: "weir/runtime:2", upgradeMode: "stateless" as const },
    };
    const stopping = decide(observe(changed, podsOf("r1")));
    assert.equal(stopping.status.upgrade?.mode, "stateless");
    const next = decide(observe(after(changed, stopping)));
    assert.equal(next.status.run?.restoredFrom, "none");
  });

  test("a target that moves half-way keeps the operation's progress: an upgrade becomes a suspend", () => {
    const job = runningJob();
    const changed = {
      ...job,
      spec: { ...job.spec, image: "weir/runtime:2", upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(changed, podsOf("r1")));
    const operation = stopping.status.upgrade;
    assert.equal(operation?.kind, "upgrade");
    const suspend = after(changed, stopping, { state: "suspended" });
    const moved = decide(observe(suspend, [pod("r1", 0, { terminating: true })]));
    assert.equal(moved.status.upgrade?.kind, "suspend");
    assert.equal(moved.status.upgrade?.startTime, operation?.startTime, "the same operation");
    assert.ok(!moved.events.some((e) => e.reason === "OperationStarted"));
    const rested = decide(observe(after(suspend, moved)));
    assert.equal(rested.status.state, "Suspended");
    assert.equal(rested.status.upgrade?.step, "suspended");
  });
});

describe("replace: how state crosses to the next run", () => {
  test("a run that is not running well hands over its checkpoints instead (last-state)", () => {
    const job = runningJob();
    const changed = withSpec(job, { image: "weir/runtime:2" });
    const d = decide(observe(changed, [pod("r1", 0), pod("r1", 1, { ready: false })]));
    assert.equal(d.status.upgrade?.mode, "last-state");
    assert.equal(d.status.upgrade?.step, "stopping");
  });

  test("a run that is running well goes through a savepoint (upgradeMode savepoint)", () => {
    const job = runningJob();
    const changed = withSpec(job, { image: "weir/runtime:2" });
    const d = decide(observe(changed, reachablePods()));
    assert.equal(d.status.upgrade?.mode, "savepoint");
    assert.equal(d.status.upgrade?.step, "savepoint");
    assert.ok(
      d.events.some(
        (e) =>
          e.reason === "OperationStarted" && e.message === "upgrade of run r1 (mode savepoint)",
      ),
    );
  });
});

describe("replace: what the source can take", () => {
  test("a rescale above the source's partitions is refused before any pod stops", () => {
    const job = runningJob();
    const withPartitions = { ...job, status: { ...job.status, partitions: 3 } };
    const scaled = { ...withPartitions, spec: { ...job.spec, parallelism: 5 } };
    const d = decide(observe(scaled, podsOf("r1")));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.state, "Running");
    assert.equal(condition(d, "Degraded")?.reason, "ParallelismAbovePartitions");
    assert.match(
      condition(d, "Degraded")?.message ?? "",
      /^spec\.parallelism: 5 pods are more than the 3 partitions of the job's source .*run r1 keeps 2/,
    );
    const three = decide(
      observe({ ...scaled, spec: { ...job.spec, parallelism: 3 } }, podsOf("r1")),
    );
    assert.equal(three.status.upgrade?.kind, "rescale");

    // A run of another spec may read another source: its partitions are forgotten.
    const upgraded = {
      ...withPartitions,
      spec: { ...job.spec, image: "weir/runtime:2", upgradeMode: "stateless" as const },
    };
    const stopping = decide(observe(upgraded, podsOf("r1")));
    assert.equal(stopping.status.partitions, 3);
    const started = decide(observe(after(upgraded, stopping)));
    assert.equal(started.status.run?.id, "r2");
    assert.equal(started.status.partitions, undefined);
  });

  test("when the autoscaler's minParallelism is what asks for too many, it is the field named", () => {
    const job = runningJob();
    const scaled = {
      ...job,
      spec: {
        ...job.spec,
        autoscaler: { ...job.spec.autoscaler, enabled: true, minParallelism: 5 },
      },
      status: { ...job.status, partitions: 3 },
    };
    const d = decide(observe(scaled, podsOf("r1")));
    assert.deepEqual(d.actions, []);
    assert.match(
      condition(d, "Degraded")?.message ?? "",
      /^spec\.autoscaler\.minParallelism: 5 pods are more than the 3 partitions/,
    );
  });
});
