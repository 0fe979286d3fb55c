import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide, type ObservedRefusal } from "../reconcile.ts";
import {
  after,
  condition,
  deleted,
  later,
  now,
  observe,
  pod,
  podsOf,
  replacing,
  runningJob,
} from "../test-fixtures.ts";

describe("rollback", () => {
  test("a new run not Ready within readinessTimeout is replaced by a run of the last stable spec, and that spec is not tried again", () => {
    const { changed: broken, starting } = replacing({ image: "weir/runtime:broken" });
    assert.equal(starting.status.run?.id, "r2");
    const notReady = [pod("r2", 0, { ready: false }), pod("r2", 1, { ready: false })];
    const early = decide({
      ...observe(after(broken, starting), notReady),
      now: new Date(now.getTime() + 60_000),
    });
    assert.equal(early.status.upgrade?.kind, "upgrade");
    assert.equal(early.status.state, "Upgrading");

    const late = decide({
      ...observe(after(broken, starting), notReady),
      now: new Date(now.getTime() + 121_000),
    });
    assert.equal(late.status.state, "RollingBack");
    assert.equal(late.status.upgrade?.kind, "rollback");
    assert.equal(late.status.rollback?.run, "r2");
    assert.deepEqual(deleted(late).sort(), ["wc-r2-0", "wc-r2-1"]);
    assert.ok(late.events.some((e) => e.type === "Warning" && e.reason === "RollingBack"));

    const back = decide({
      ...observe(after(broken, late)),
      now: new Date(now.getTime() + 125_000),
    });
    assert.equal(back.status.run?.id, "r3");
    assert.equal(back.status.run?.image, "weir/runtime:1", "the last stable spec");
    const stable = decide({
      ...observe(after(broken, back), podsOf("r3")),
      now: new Date(now.getTime() + 130_000),
    });
    assert.equal(stable.status.state, "Running");
    assert.equal(stable.status.upgrade, undefined);
    assert.equal(condition(stable, "Degraded")?.reason, "RolledBack");
    assert.match(condition(stable, "Degraded")?.message ?? "", /run r2 .* was not ready within 2m/);

    // The same (broken) spec is not tried again...
    const again = decide({
      ...observe(after(broken, stable), podsOf("r3")),
      now: new Date(now.getTime() + 200_000),
    });
    assert.deepEqual(
      again.actions.filter((a) => a.kind !== "savepointStatus"),
      [],
    );
    // ...a new change is.
    const fixed = {
      ...broken,
      spec: { ...broken.spec, image: "weir/runtime:fixed" },
      status: stable.status,
    };
    const next = decide({
      ...observe(fixed, podsOf("r3")),
      now: new Date(now.getTime() + 210_000),
    });
    assert.equal(next.status.upgrade?.kind, "upgrade");
  });

  test("a new run's refused pod rolls back to the last stable spec at once", () => {
    const { changed: quota, starting } = replacing({ parallelism: 3 });
    assert.equal(starting.status.run?.id, "r2");
    const message =
      'pods "wc-r2-2" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2';
    const refusal: ObservedRefusal = {
      kind: "Pod",
      name: "wc-r2-2",
      run: "r2",
      code: 403,
      message,
    };
    const refused = decide({
      ...observe(after(quota, starting), [
        pod("r2", 0, { ready: false }),
        pod("r2", 1, { ready: false }),
      ]),
      refusal,
    });
    assert.equal(refused.status.state, "RollingBack");
    assert.equal(refused.status.upgrade?.kind, "rollback");
    assert.deepEqual(deleted(refused).sort(), ["wc-r2-0", "wc-r2-1"]);
    assert.match(
      refused.status.rollback?.reason ?? "",
      /the API server refused Pod wc-r2-2 \(403\): pods "wc-r2-2" is forbidden: exceeded quota/,
    );
    assert.equal(condition(refused, "Degraded")?.reason, "RolledBack");
    const back = decide(observe(after(quota, refused)));
    assert.equal(back.status.run?.id, "r3");
    assert.equal(back.status.run?.parallelism, 2, "the last stable spec");
  });

  test("an upgrade's run whose first pods never get ready is rolled back after readinessTimeout", () => {
    const { changed: big, starting } = replacing({ parallelism: 20 });
    const crashing = Array.from({ length: 8 }, (_, i) =>
      pod("r2", i, { ready: false, createdAt: now.getTime(), problem: "CrashLoopBackOff: …" }),
    );
    const late = decide({
      ...observe(after(big, starting), crashing),
      now: new Date(now.getTime() + 121_000),
    });
    assert.equal(late.status.upgrade?.kind, "rollback");
  });

  test("the readiness clock starts at the last pod the operator created", () => {
    const { changed: broken, starting } = replacing({ image: "weir/runtime:broken" });
    // The operator was down for 10 minutes; the second pod was created a minute ago.
    const pods = [
      pod("r2", 0, { ready: false, createdAt: now.getTime() }),
      pod("r2", 1, { ready: false, createdAt: now.getTime() + 540_000 }),
    ];
    const d = decide({
      ...observe(after(broken, starting), pods),
      now: new Date(now.getTime() + 600_000),
    });
    assert.equal(d.status.upgrade?.kind, "upgrade", "not rolled back yet");
    assert.ok(d.requeueAfterMs <= 5_000, "looked at again while the clock runs");
  });

  test("a first run has no stable spec to go back to: it is never rolled back", () => {
    const job = runningJob();
    const first = {
      ...job,
      status: { ...job.status, lastStableSpec: undefined, lastStableSpecHash: undefined },
    };
    const { changed: broken, starting } = replacing({ image: "weir/runtime:broken" }, first);
    const late = decide({
      ...observe(after(broken, starting), [pod("r2", 0, { ready: false })]),
      now: new Date(now.getTime() + 600_000),
    });
    assert.equal(late.status.upgrade?.kind, "upgrade");
    assert.equal(late.status.rollback, undefined);
  });
});

describe("rollback: what status says meanwhile", () => {
  // Fails before the fix: the rollback's next run was reported as Upgrading for one decision
  // (RollingBack → Upgrading → RollingBack).
  test("the state stays RollingBack from the stop of the failed run to the stable run's readiness", () => {
    const { changed: broken, starting } = replacing({ image: "weir/runtime:broken" });
    const notReady = [pod("r2", 0, { ready: false }), pod("r2", 1, { ready: false })];
    const late = decide({ ...observe(after(broken, starting), notReady), now: later(121_000) });
    assert.equal(late.status.state, "RollingBack");
    const back = decide({ ...observe(after(broken, late)), now: later(125_000) });
    assert.equal(back.status.run?.id, "r3");
    assert.equal(back.status.state, "RollingBack");
    const waiting = decide({
      ...observe(after(broken, back), [pod("r3", 0, { ready: false })]),
      now: later(126_000),
    });
    assert.equal(waiting.status.state, "RollingBack");
  });
});
