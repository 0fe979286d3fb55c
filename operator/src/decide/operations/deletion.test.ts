import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StreamJob } from "../../api/types.ts";
import { decide } from "../reconcile.ts";
import {
  actionsOf,
  bothParts,
  deleted,
  now,
  observe,
  pod,
  reachablePods,
  runningJob,
  savepointSeen,
  withSpec,
} from "../test-fixtures.ts";

function deleting(job: StreamJob): StreamJob {
  return { ...job, metadata: { ...job.metadata, deletionTimestamp: now } };
}

function withOnDelete(job: StreamJob): StreamJob {
  const savepoints = job.spec.savepoints;
  return savepoints ? withSpec(job, { savepoints: { ...savepoints, onDelete: true } }) : job;
}

describe("deletion", () => {
  test("pods go first; once none is left the ConfigMaps go and the finalizer is removed", () => {
    const job = deleting(runningJob());
    const first = decide(observe(job, [pod("r1", 0), pod("r1", 1, { terminating: true })]));
    assert.deepEqual(deleted(first), ["wc-r1-0"]);
    assert.ok(!first.actions.some((a) => a.kind === "removeFinalizer"));
    assert.equal(first.status.state, "Deleting");
    const last = decide(observe({ ...job, status: first.status }));
    assert.deepEqual(
      last.actions.map((a) => a.kind),
      ["deleteConfigMaps", "removeFinalizer"],
    );
  });

  test("a job being deleted gets no finalizer", () => {
    const job = deleting(runningJob());
    job.metadata.finalizers = [];
    const d = decide(observe(job));
    assert.ok(!d.actions.some((a) => a.kind === "addFinalizer"));
  });

  test("without savepoints.onDelete a running job stops without a savepoint", () => {
    const d = decide(observe(deleting(runningJob()), reachablePods()));
    assert.equal(d.status.upgrade?.kind, "delete");
    assert.equal(d.status.upgrade?.mode, "last-state");
    assert.deepEqual(actionsOf(d, "triggerSavepoint"), []);
    assert.deepEqual(deleted(d).sort(), ["wc-r1-0", "wc-r1-1"]);
  });

  test("with savepoints.onDelete the pods stop with a savepoint first, kept after the job", () => {
    const job = withOnDelete(runningJob());
    const gone = deleting(job);
    const first = decide(observe(gone, reachablePods()));
    assert.equal(first.status.upgrade?.kind, "delete");
    assert.equal(first.status.upgrade?.step, "savepoint");
    assert.deepEqual(deleted(first), []);
    const record = actionsOf(first, "create").find((c) => c.object.kind === "StreamSavepoint");
    assert.equal(record?.object.metadata?.ownerReferences, undefined, "outlives the job");
    const saved = decide({
      ...observe({ ...gone, status: first.status }, reachablePods()),
      savepoint: savepointSeen(first, bothParts(), { complete: true }),
    });
    assert.equal(saved.status.lastSavepoint?.trigger, "delete");
    assert.deepEqual(deleted(saved).sort(), ["wc-r1-0", "wc-r1-1"]);
    const last = decide(observe({ ...gone, status: saved.status }));
    assert.ok(last.actions.some((a) => a.kind === "removeFinalizer"));
  });

  test("deletion is not held hostage by storage: a failed savepoint falls back to stopping", () => {
    const job = withOnDelete(runningJob());
    const gone = deleting(job);
    const storageError = "the bucket b does not exist";
    const d = decide({ ...observe(gone, reachablePods()), storageError });
    assert.equal(d.status.upgrade?.step, "stopping");
    assert.equal(d.status.upgrade?.mode, "last-state");
    const next = decide({
      ...observe({ ...gone, status: d.status }, reachablePods()),
      storageError,
    });
    assert.deepEqual(deleted(next).sort(), ["wc-r1-0", "wc-r1-1"]);
  });
});
