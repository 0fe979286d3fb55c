// The dispatcher: what the job should become, and which operation takes the step. Each
// operation's own decisions are tested beside it in operations/.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { decide } from "./reconcile.ts";
import {
  actionsOf,
  after,
  bothParts,
  condition,
  created,
  deleted,
  now,
  observe,
  pod,
  podsOf,
  reachablePods,
  runningJob,
  sampleJob,
  savepointSeen,
} from "./test-fixtures.ts";

describe("decide: a spec the operator refuses", () => {
  test("with a run in place: Degraded + a Warning, and the run keeps going untouched", () => {
    const job = runningJob();
    const bad = {
      ...job,
      spec: { ...job.spec, image: "weir/runtime:broken" },
      metadata: { ...job.metadata, generation: 2 },
    };
    const d = decide(observe(bad, podsOf("r1"), ["spec.x: bad"]));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.state, "Running");
    assert.equal(d.status.run?.image, "weir/runtime:1");
    assert.equal(condition(d, "Degraded")?.reason, "InvalidSpec");
    assert.match(condition(d, "Degraded")?.message ?? "", /spec.x: bad.*run r1 keeps running/);
    assert.ok(d.events.some((e) => e.type === "Warning" && e.reason === "InvalidSpec"));
    assert.equal(d.status.observedGeneration, 2);

    // The same refusal seen again: no second Warning.
    const again = decide(observe({ ...bad, status: d.status }, podsOf("r1"), ["spec.x: bad"]));
    assert.deepEqual(again.events, []);

    // A pod of the last good run lost meanwhile comes back as it was.
    const lost = decide(observe({ ...bad, status: d.status }, [pod("r1", 0)], ["spec.x: bad"]));
    assert.deepEqual(created(lost), ["ConfigMap/wc-r1-config", "Pod/wc-r1-1"]);
    const rebuilt = lost.actions.find((a) => a.kind === "create" && a.object.kind === "Pod");
    assert.equal(
      (rebuilt as { object: V1Pod } | undefined)?.object.spec?.containers[0]?.image,
      "weir/runtime:1",
    );
  });

  test("without a run: Failed, nothing created", () => {
    const d = decide(observe(sampleJob(), [], ["spec.x: bad"]));
    assert.deepEqual(created(d), []);
    assert.equal(d.status.state, "Failed");
    assert.equal(condition(d, "Degraded")?.status, "True");
  });

  test("its autoscaler settings are not acted on either", () => {
    const job = runningJob();
    job.spec.autoscaler = { ...job.spec.autoscaler, enabled: true };
    const d = decide(observe(job, podsOf("r1"), ["spec.x: bad"]));
    assert.equal(d.status.autoscaler, undefined);
    assert.equal(d.requeueAfterMs, 60_000);
  });
});

describe("decide: one operation at a time", () => {
  function savepointUnderWay() {
    const job = runningJob();
    const request = { name: "req", trigger: "manual" as const, stop: false, state: undefined };
    const first = decide({ ...observe(job, reachablePods()), savepoints: [request] });
    assert.equal(first.status.upgrade?.kind, "savepoint");
    return { job, first, request };
  }

  test("a change during a savepoint that leaves the job running waits for it to end", () => {
    const { job, first, request } = savepointUnderWay();
    const changed = after(job, first, { image: "weir/runtime:2" });
    const d = decide({
      ...observe(changed, reachablePods()),
      savepoints: [{ ...request, state: "InProgress" }],
    });
    assert.equal(d.status.upgrade?.kind, "savepoint");
    assert.deepEqual(deleted(d), []);
    const done = decide({
      ...observe(after(changed, d), reachablePods()),
      savepoints: [{ ...request, state: "InProgress" }],
      savepoint: savepointSeen(first, bothParts(), { complete: true }),
    });
    assert.equal(done.status.upgrade, undefined, "the savepoint ended");
    const upgrade = decide(observe(after(changed, done), reachablePods()));
    assert.equal(upgrade.status.upgrade?.kind, "upgrade");
  });

  test("a deletion does not wait for a savepoint that leaves the job running", () => {
    const { job, first } = savepointUnderWay();
    const gone = { ...after(job, first), metadata: { ...job.metadata, deletionTimestamp: now } };
    const d = decide(observe(gone, reachablePods()));
    assert.equal(d.status.upgrade?.kind, "delete");
    assert.equal(d.status.state, "Deleting");
  });

  test("a savepoint of its own starts only once the job runs with nothing under way", () => {
    const request = { name: "req", trigger: "manual" as const, stop: false, state: undefined };
    const first = decide({ ...observe(sampleJob()), savepoints: [request] });
    assert.equal(first.status.upgrade, undefined, "Deploying: not yet");
    const running = decide({
      ...observe(after(sampleJob(), first), reachablePods()),
      savepoints: [request],
    });
    assert.equal(running.status.state, "Running");
    assert.equal(running.status.upgrade?.kind, "savepoint", "in the decision that saw it Running");
    assert.equal(actionsOf(running, "triggerSavepoint").length, 2);
  });
});
