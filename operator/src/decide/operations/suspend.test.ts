import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide } from "../reconcile.ts";
import {
  after,
  bothParts,
  condition,
  deleted,
  observe,
  SAVEPOINT_PATH as path,
  podsOf,
  reachablePods,
  runningJob,
  savepointSeen,
  withSpec,
} from "../test-fixtures.ts";

describe("suspend and resume", () => {
  test("suspended → every pod stops, then Suspended; running again → a new run", () => {
    const job = runningJob();
    const suspended = {
      ...job,
      spec: { ...job.spec, state: "suspended" as const, upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(suspended, podsOf("r1")));
    assert.deepEqual(deleted(stopping).sort(), ["wc-r1-0", "wc-r1-1"]);
    assert.equal(stopping.status.upgrade?.kind, "suspend");
    const done = decide(observe(after(suspended, stopping)));
    assert.equal(done.status.state, "Suspended");
    assert.equal(done.status.parallelism, 0);
    assert.equal(condition(done, "Ready")?.reason, "Suspended");
    assert.equal(condition(done, "Progressing")?.status, "False");
    assert.ok(done.events.some((e) => e.reason === "Suspended"));

    const again = decide(observe(after(suspended, done)));
    assert.deepEqual(again.events, [], "Suspended is said once");
    assert.deepEqual(again.actions, []);

    const resumed = { ...job, status: done.status };
    const start = decide(observe(resumed));
    assert.equal(start.status.run?.id, "r2");
    assert.ok(start.events.some((e) => e.message.startsWith("resume")));
    assert.equal(start.status.upgrade?.kind, "resume");
  });

  test("suspend takes a savepoint; resume starts from it", () => {
    const job = runningJob();
    const suspended = withSpec(job, { state: "suspended" as const });
    const pods = reachablePods();
    const first = decide(observe(suspended, pods));
    assert.equal(first.status.upgrade?.kind, "suspend");
    const done = decide({
      ...observe(after(suspended, first), pods),
      savepoint: savepointSeen(first, bothParts(), { complete: true }),
    });
    assert.equal(done.status.lastSavepoint?.trigger, "suspend");
    const rested = decide(observe(after(suspended, done)));
    assert.equal(rested.status.state, "Suspended");
    assert.equal(rested.status.upgrade?.step, "suspended");
    const resumed = decide(observe({ ...job, status: rested.status }));
    assert.equal(resumed.status.run?.restoredFrom, path);
    assert.ok(
      resumed.events.some((e) => e.reason === "RunStarted" && e.message.startsWith("resume")),
    );
  });

  test("a job that starts suspended runs no pod and has no operation", () => {
    const job = runningJob();
    const fresh = { ...job, spec: { ...job.spec, state: "suspended" as const }, status: {} };
    const d = decide(observe(fresh));
    assert.equal(d.status.state, "Suspended");
    assert.equal(d.status.upgrade, undefined);
    assert.equal(d.status.desiredParallelism, 0);
  });
});
