import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide } from "../reconcile.ts";
import {
  actionsOf,
  after,
  bothParts,
  created,
  deleted,
  later,
  observe,
  SAVEPOINT_PATH as path,
  pod,
  reachablePods,
  runningJob,
  savepointSeen,
  withSpec,
} from "../test-fixtures.ts";

/** Run r1's pods, wc-r1-1 on node n2, which is being drained. */
function onDrainingNode() {
  return reachablePods().map((p) => (p.name === "wc-r1-1" ? { ...p, drainingNode: "n2" } : p));
}

describe("drain: a run with pods on a node being drained moves off it", () => {
  test("through a stop-with-savepoint, then a run of the same spec restoring it", () => {
    const job = runningJob();
    const first = decide(observe(job, onDrainingNode()));
    assert.equal(first.status.upgrade?.kind, "drain");
    assert.equal(first.status.upgrade?.step, "savepoint");
    assert.equal(first.status.state, "Upgrading");
    assert.deepEqual(
      actionsOf(first, "triggerSavepoint").map((t) => [t.pod, t.stop]),
      [
        ["wc-r1-0", true],
        ["wc-r1-1", true],
      ],
      "the whole run, from one savepoint",
    );
    assert.ok(
      first.events.some((e) => e.reason === "NodeDraining" && /wc-r1-1 on n2/.test(e.message)),
    );
    assert.ok(created(first).some((c) => c.startsWith("StreamSavepoint/wc-drain-")));

    // The drain goes on whether or not the pods still report the node (they are what moves).
    const saved = decide({
      ...observe(after(job, first), reachablePods()),
      savepoint: savepointSeen(first, bothParts(), { complete: true }),
    });
    assert.equal(saved.status.upgrade?.kind, "drain");
    assert.equal(saved.status.upgrade?.step, "stopping");
    assert.equal(saved.status.lastSavepoint?.trigger, "drain");
    assert.deepEqual(deleted(saved).sort(), ["wc-r1-0", "wc-r1-1"]);

    const next = decide({ ...observe(after(job, saved)), now: later(3_000) });
    assert.equal(next.status.run?.id, "r2");
    assert.equal(next.status.run?.restoredFrom, path);
    assert.equal(next.status.run?.specHash, job.status?.run?.specHash, "the same spec");
    assert.ok(created(next).includes("Pod/wc-r2-1"));

    const ready = decide({
      ...observe(after(job, next), [pod("r2", 0), pod("r2", 1)]),
      now: later(5_000),
    });
    assert.equal(ready.status.state, "Running");
    assert.equal(ready.status.upgrade, undefined);
    assert.ok(
      ready.events.some((e) => e.reason === "RunReady" && /^drain completed/.test(e.message)),
    );
    assert.equal(ready.measurements.operations[0]?.kind, "drain");
  });

  test("with no ready node to move to, the run stays put and says so; it moves once one is", () => {
    const job = runningJob();
    const held = decide({ ...observe(job, onDrainingNode()), nodesToMoveTo: 0 });
    assert.equal(held.status.upgrade, undefined, "no savepoint, no stop");
    assert.equal(held.status.state, "Running");
    assert.deepEqual(actionsOf(held, "deletePod"), []);
    const warning = held.events.find((e) => e.reason === "DrainWaits");
    assert.equal(warning?.type, "Warning");
    assert.match(warning?.message ?? "", /wc-r1-1 on n2.*no ready node takes new pods/);

    const moving = decide({ ...observe(after(job, held), onDrainingNode()), nodesToMoveTo: 1 });
    assert.equal(moving.status.upgrade?.kind, "drain");
    assert.equal(moving.status.upgrade?.step, "savepoint");
  });

  test("pods on nodes that are not being drained stay where they are", () => {
    const d = decide(observe(runningJob(), reachablePods()));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.upgrade, undefined);
  });

  test("a change of the spec meanwhile takes the drain over: its savepoint still counts", () => {
    const job = runningJob();
    const first = decide(observe(job, onDrainingNode()));
    const changed = withSpec(after(job, first), { image: "weir/runtime:2" });
    const d = decide({
      ...observe(changed, onDrainingNode()),
      savepoint: savepointSeen(first, bothParts(), { complete: true }),
    });
    assert.equal(d.status.upgrade?.kind, "upgrade");
    assert.equal(d.status.upgrade?.step, "stopping");
    assert.equal(d.status.upgrade?.savepointPath, path);
  });
});
