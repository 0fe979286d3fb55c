// The orders of events the decision must converge through (issue 14): the spec going back to
// the run in place half-way through an operation, an operator that stopped right after asking
// the pods, StreamSavepoints an operation left open, a rolled-back spec and a rescale, a
// rollback whose target moves, and a deletion's savepoint whatever the upgrade mode.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide } from "../reconcile.ts";
import {
  actionsOf,
  after,
  bothParts,
  condition,
  created,
  deleted,
  inProgressPart,
  observe,
  pod,
  podsOf,
  reachablePods,
  replacing,
  runningJob,
  savepointSeen,
  withSpec,
} from "../test-fixtures.ts";

/** Run r1 asked to rescale to 3 through a savepoint: the job and the first decision. */
function rescaleBegun() {
  const job = runningJob();
  const changed = withSpec(job, { parallelism: 3 });
  const begun = decide(observe(changed, reachablePods()));
  assert.equal(begun.status.upgrade?.step, "savepoint");
  return { job, changed, begun };
}

describe("the spec back to the run in place half-way", () => {
  test("before the pods were looked at, nothing is asked and the operation waits for the look", () => {
    const { changed, begun } = rescaleBegun();
    const reverted = after(withSpec(changed, { parallelism: 2 }), begun);
    const waiting = decide(observe(reverted, reachablePods()));
    assert.deepEqual(actionsOf(waiting, "triggerSavepoint"), []);
    assert.equal(waiting.status.upgrade?.step, "savepoint", "still on record");
    assert.ok(waiting.requeueAfterMs <= 200);
  });

  test("no pod heard of the savepoint: the operation is called off and its record closed", () => {
    const { changed, begun } = rescaleBegun();
    const reverted = after(withSpec(changed, { parallelism: 2 }), begun);
    const absent = reachablePods().map((p) => ({
      name: p.name,
      state: { state: "absent" as const },
    }));
    const off = decide({
      ...observe(reverted, reachablePods()),
      savepoint: savepointSeen(begun, absent),
    });
    assert.equal(off.status.upgrade, undefined);
    assert.equal(off.status.state, "Running");
    assert.equal(off.status.run?.id, "r1", "the same run goes on");
    assert.deepEqual(deleted(off), []);
    const record = actionsOf(off, "savepointStatus").find(
      (a) => a.name === begun.status.upgrade?.savepoint,
    );
    assert.equal(record?.status.state, "Failed");
    assert.match(record?.status.message ?? "", /called off: the spec went back to run r1's/);
    assert.ok(off.events.some((e) => e.reason === "OperationCalledOff"));
    assert.equal(condition(off, "Progressing")?.status, "False");
  });

  test("a pod took its stop-with-savepoint: the operation goes on as a restart of the same spec", () => {
    const { changed, begun } = rescaleBegun();
    const reverted = after(withSpec(changed, { parallelism: 2 }), begun);
    const going = decide({
      ...observe(reverted, reachablePods()),
      savepoint: savepointSeen(begun, [
        inProgressPart("wc-r1-0"),
        { name: "wc-r1-1", state: { state: "absent" } },
      ]),
    });
    assert.equal(going.status.upgrade?.kind, "restart");
    assert.equal(going.status.upgrade?.step, "savepoint");
    // The pod that has not heard of it is asked: the savepoint completes, then r1 stops.
    assert.deepEqual(
      actionsOf(going, "triggerSavepoint").map((a) => a.pod),
      ["wc-r1-1"],
    );
  });

  test("at the stopping step the stop goes on and the same spec starts again", () => {
    const { changed, stopping } = replacing({ parallelism: 3 });
    const reverted = after(withSpec(changed, { parallelism: 2 }), stopping);
    const gone = decide(observe(reverted));
    assert.equal(gone.status.run?.id, "r2");
    assert.equal(gone.status.run?.parallelism, 2);
    assert.equal(gone.status.upgrade?.kind, "restart");
    assert.ok(created(gone).includes("Pod/wc-r2-0"));
    const ready = decide(observe(after(reverted, gone), podsOf("r2")));
    assert.equal(ready.status.upgrade, undefined, "the operation ends");
    assert.equal(ready.status.state, "Running");
  });
});

describe("an operator that stopped right after asking the pods", () => {
  test("its successor looks at the pods before it asks any again", () => {
    const { changed, begun } = rescaleBegun();
    assert.equal(actionsOf(begun, "triggerSavepoint").length, 2, "asked once");
    const next = decide(observe(after(changed, begun), reachablePods()));
    assert.deepEqual(actionsOf(next, "triggerSavepoint"), []);
    const looked = decide({
      ...observe(after(changed, begun), reachablePods()),
      savepoint: savepointSeen(begun, [
        inProgressPart("wc-r1-0"),
        { name: "wc-r1-1", state: { state: "absent" } },
      ]),
    });
    assert.deepEqual(
      actionsOf(looked, "triggerSavepoint").map((a) => a.pod),
      ["wc-r1-1"],
    );
  });
});

describe("StreamSavepoints an operation left open", () => {
  test("one no operation takes any more is closed as Failed; the operation's own stays", () => {
    const { changed, begun } = rescaleBegun();
    const own = begun.status.upgrade?.savepoint ?? "";
    const decision = decide({
      ...observe(after(changed, begun), reachablePods()),
      savepoints: [
        { name: own, trigger: "rescale", stop: true, state: "InProgress" },
        { name: "wc-left-behind", trigger: "upgrade", stop: true, state: "InProgress" },
      ],
    });
    const closed = actionsOf(decision, "savepointStatus").filter(
      (a) => a.status.state === "Failed",
    );
    assert.deepEqual(
      closed.map((a) => a.name),
      ["wc-left-behind"],
    );
    assert.match(closed[0]?.status.message ?? "", /abandoned/);
  });

  test("one the history has as completed is said Completed (never Failed from a stale cache)", () => {
    const job = runningJob();
    const name = "wc-done";
    const withHistory = {
      ...job,
      status: {
        ...job.status,
        savepointHistory: [
          { name, path: "s3://b/x/", time: job.status?.run?.startTime, run: "r1" },
        ],
      },
    };
    const decision = decide({
      ...observe(withHistory, podsOf("r1")),
      savepoints: [{ name, trigger: "manual", stop: false, state: "InProgress" }],
    });
    const [record] = actionsOf(decision, "savepointStatus");
    assert.equal(record?.name, name);
    assert.equal(record?.status.state, "Completed");
    assert.equal(record?.status.path, "s3://b/x/");
  });

  test("an operator that stopped before recording a completed savepoint's StreamSavepoint: the next one does", () => {
    const { changed, begun } = rescaleBegun();
    const own = begun.status.upgrade?.savepoint ?? "";
    const complete = decide({
      ...observe(after(changed, begun), reachablePods()),
      savepoint: savepointSeen(begun, bothParts(), { complete: true }),
    });
    assert.equal(complete.status.upgrade?.step, "stopping");
    // The status was written, the StreamSavepoint's Completed was not: it is written again.
    const next = decide({
      ...observe(after(changed, complete), reachablePods()),
      savepoints: [{ name: own, trigger: "rescale", stop: true, state: "InProgress" }],
    });
    const record = actionsOf(next, "savepointStatus").find((a) => a.name === own);
    assert.equal(record?.status.state, "Completed");
  });
});

describe("a rolled-back spec", () => {
  /** An upgrade to an image that never runs, past its readiness timeout: the rollback begins. */
  function rollingBack() {
    const { changed, starting } = replacing({ image: "weir/no-such-image:1" });
    const late = decide({
      ...observe(after(changed, starting), [
        pod("r2", 0, { ready: false, createdAt: 0 }),
        pod("r2", 1, { ready: false, createdAt: 0 }),
      ]),
      now: new Date(Date.now() + 3_600_000),
    });
    assert.equal(late.status.upgrade?.kind, "rollback");
    return { changed, late };
  }

  function rolledBackUpgrade() {
    const { changed, late } = rollingBack();
    const stopped = decide(observe(after(changed, late)));
    const ready = decide(observe(after(changed, stopped), podsOf("r3")));
    assert.equal(ready.status.state, "Running");
    assert.equal(ready.status.run?.image, "weir/runtime:1");
    return { changed, ready };
  }

  test("a rescale runs the stable spec at the new parallelism, not the failed image", () => {
    const { changed, ready } = rolledBackUpgrade();
    const scaled = withSpec(after(changed, ready), { parallelism: 3 });
    const stop = decide(observe(scaled, podsOf("r3")));
    assert.equal(stop.status.upgrade?.kind, "rescale");
    const start = decide(observe(after(scaled, stop)));
    assert.equal(start.status.run?.image, "weir/runtime:1");
    assert.equal(start.status.run?.parallelism, 3);
    assert.equal(condition(start, "Degraded")?.reason, "RolledBack");
  });

  test("a new image is tried", () => {
    const { changed, ready } = rolledBackUpgrade();
    const fixed = withSpec(after(changed, ready), { image: "weir/runtime:3" });
    const stop = decide(observe(fixed, podsOf("r3")));
    assert.equal(stop.status.upgrade?.kind, "upgrade");
    const start = decide(observe(after(fixed, stop)));
    assert.equal(start.status.run?.image, "weir/runtime:3");
  });

  test("a suspension during the rollback suspends the job", () => {
    const { changed, late } = rollingBack();
    const suspended = withSpec(after(changed, late), { state: "suspended" });
    const stopping = decide(observe(suspended, [pod("r2", 0, { terminating: true })]));
    assert.equal(stopping.status.upgrade?.kind, "suspend");
    const rested = decide(observe(after(suspended, stopping)));
    assert.equal(rested.status.state, "Suspended");
    assert.equal(rested.status.upgrade?.step, "suspended");
  });
});

describe("a deletion's savepoint", () => {
  test("is taken with savepoints.onDelete whatever the upgrade mode", () => {
    const job = runningJob();
    const deleting = withSpec(job, {
      upgradeMode: "last-state",
      savepoints: { ...job.spec.savepoints, onDelete: true },
    } as never);
    deleting.metadata = { ...job.metadata, deletionTimestamp: new Date() } as never;
    const decision = decide(observe(deleting, reachablePods()));
    assert.equal(decision.status.upgrade?.kind, "delete");
    assert.equal(decision.status.upgrade?.mode, "savepoint");
    assert.equal(actionsOf(decision, "triggerSavepoint").length, 2);
  });
});

describe("a periodic savepoint that keeps failing", () => {
  test("is tried again an interval after its failure, not at once", () => {
    const job = withSpec(runningJob(), {
      savepoints: { ...runningJob().spec.savepoints, interval: "10m", retention: { maxCount: 2 } },
    } as never);
    const failedAt = (minutesAgo: number) =>
      new Date(Date.now() - minutesAgo * 60_000).toISOString();
    const failures = [1, 20, 40, 60].map((m, i) => ({
      name: `wc-periodic-${i}`,
      trigger: "periodic" as const,
      stop: false,
      state: "Failed" as const,
      time: failedAt(m),
    }));
    const decision = decide({
      ...observe(job, podsOf("r1")),
      now: new Date(),
      savepoints: failures,
    });
    assert.equal(decision.status.upgrade, undefined, "not due: the last one failed a minute ago");
    const retried = decide({
      ...observe(job, podsOf("r1")),
      now: new Date(Date.now() + 10 * 60_000),
      savepoints: failures,
    });
    assert.equal(retried.status.upgrade?.kind, "savepoint", "due an interval after the failure");
  });
});
