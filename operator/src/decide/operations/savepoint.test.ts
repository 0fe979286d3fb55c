import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob } from "../../api/types.ts";
import { decide } from "../reconcile.ts";
import {
  actionsOf,
  after,
  bothParts,
  completedPart,
  condition,
  created,
  deleted,
  failedPart,
  inProgressPart,
  later,
  now,
  observe,
  SAVEPOINT_PATH as path,
  podsOf,
  reachablePods,
  runningJob,
  savepointSeen,
  withSpec,
} from "../test-fixtures.ts";

function startUpgrade() {
  const job = runningJob();
  const changed = withSpec(job, { image: "weir/runtime:2" });
  const first = decide(observe(changed, reachablePods()));
  return { changed, first };
}

describe("savepoint: the stop-with-savepoint of an upgrade", () => {
  test("a change first asks every pod of the running run for its part of a stop-with-savepoint", () => {
    const { first } = startUpgrade();
    assert.equal(first.status.upgrade?.step, "savepoint");
    assert.equal(first.status.upgrade?.mode, "savepoint");
    assert.deepEqual(deleted(first), [], "no pod goes before the savepoint is complete");
    assert.ok(created(first).some((c) => c.startsWith("StreamSavepoint/wc-upgrade-")));
    const triggers = first.actions.filter((a) => a.kind === "triggerSavepoint");
    assert.deepEqual(
      triggers.map((t) => (t.kind === "triggerSavepoint" ? [t.pod, t.ip, t.stop] : [])),
      [
        ["wc-r1-0", "127.1.0.1", true],
        ["wc-r1-1", "127.1.0.2", true],
      ],
    );
  });

  test("once every part is in, the operator completes it; then the old run stops; the next run restores it", () => {
    const { changed, first } = startUpgrade();
    const job = after(changed, first);
    const pods = reachablePods();

    const waiting = decide({
      ...observe(job, pods),
      savepoint: savepointSeen(first, [completedPart("wc-r1-0"), inProgressPart("wc-r1-1")]),
    });
    assert.deepEqual(
      waiting.actions.filter(
        (a) => a.kind === "triggerSavepoint" || a.kind === "completeSavepoint",
      ),
      [],
    );

    const seen = savepointSeen(first, bothParts());
    const parts = decide({ ...observe(job, pods), savepoint: seen });
    assert.deepEqual(
      parts.actions.find((a) => a.kind === "completeSavepoint"),
      { kind: "completeSavepoint", id: seen.id, operators: ["counts"], parallelism: 2 },
    );

    const done = decide({
      ...observe(job, pods),
      savepoint: savepointSeen(first, bothParts(), { complete: true }),
    });
    assert.equal(done.status.upgrade?.step, "stopping");
    assert.equal(done.status.upgrade?.savepointPath, path);
    assert.equal(done.status.lastSavepoint?.path, path);
    assert.equal(done.status.lastSavepoint?.trigger, "upgrade");
    assert.equal(done.status.lastSavepoint?.sizeBytes, 200);
    assert.deepEqual(deleted(done).sort(), ["wc-r1-0", "wc-r1-1"]);
    assert.ok(
      done.actions.some((a) => a.kind === "savepointStatus" && a.status.state === "Completed"),
    );

    const next = decide(observe(after(changed, done)));
    assert.equal(next.status.run?.id, "r2");
    assert.equal(next.status.run?.restoredFrom, path);
    const newPod = next.actions.find((a) => a.kind === "create" && a.object.kind === "Pod");
    const env = (newPod as { object: V1Pod } | undefined)?.object.spec?.containers[0]?.env ?? [];
    assert.equal(env.find((e) => e.name === "WEIR_RESTORE_FROM")?.value, path);
  });

  test("a pod that restarted meanwhile is asked again; the others are not", () => {
    const { changed, first } = startUpgrade();
    const d = decide({
      ...observe(after(changed, first), reachablePods()),
      savepoint: savepointSeen(first, [
        inProgressPart("wc-r1-0"),
        { name: "wc-r1-1", state: { state: "absent" } },
      ]),
    });
    assert.deepEqual(
      actionsOf(d, "triggerSavepoint").map((t) => t.pod),
      ["wc-r1-1"],
    );
  });

  test("a pod that fails its part: the run resumes, Degraded says why, and the savepoint is retried after a back-off", () => {
    const { changed, first } = startUpgrade();
    const job = after(changed, first);
    const pods = reachablePods();
    const failed = decide({
      ...observe(job, pods),
      savepoint: savepointSeen(first, [
        completedPart("wc-r1-0"),
        failedPart("wc-r1-1", "storage refused"),
      ]),
    });
    assert.equal(failed.status.upgrade?.step, "retry-wait");
    assert.match(failed.status.upgrade?.lastError ?? "", /wc-r1-1: storage refused/);
    assert.deepEqual(
      deleted(failed).sort(),
      ["wc-r1-0", "wc-r1-1"],
      "stopped pods restart from their checkpoints",
    );
    assert.equal(condition(failed, "Degraded")?.reason, "SavepointFailed");
    assert.ok(
      failed.actions.some((a) => a.kind === "savepointStatus" && a.status.state === "Failed"),
    );

    // While waiting, the old run comes back as it was.
    const waiting = decide(observe(after(changed, failed)));
    assert.deepEqual(created(waiting), ["ConfigMap/wc-r1-config", "Pod/wc-r1-0", "Pod/wc-r1-1"]);
    assert.equal(waiting.status.upgrade?.step, "retry-wait");

    // After the back-off: a new attempt with a new savepoint.
    const retryAt = new Date(Date.parse(failed.status.upgrade?.retryTime ?? "") + 1);
    const retry = decide({ ...observe(after(changed, failed), pods), now: retryAt });
    assert.equal(retry.status.upgrade?.step, "savepoint");
    assert.equal(retry.status.upgrade?.attempt, 2);
    assert.notEqual(retry.status.upgrade?.savepoint, first.status.upgrade?.savepoint);
  });

  test("with fallbackToLastState, a failed savepoint goes on from checkpoints recent enough — not from old ones", () => {
    const job = runningJob();
    job.spec.savepoints = {
      ...job.spec.savepoints,
      fallbackToLastState: true,
      maxCheckpointAge: "1m",
    } as StreamJob["spec"]["savepoints"];
    const changed = withSpec(job, { image: "weir/runtime:2" });
    const pods = reachablePods();
    const first = decide(observe(changed, pods));
    const failing = (checkpointAgeSeconds: number) =>
      decide({
        ...observe(after(changed, first), pods),
        savepoint: savepointSeen(first, [failedPart("wc-r1-0", "boom")], { checkpointAgeSeconds }),
      });
    const recent = failing(20);
    assert.equal(recent.status.upgrade?.mode, "last-state");
    assert.equal(recent.status.upgrade?.step, "stopping");
    assert.ok(recent.events.some((e) => e.reason === "FallingBackToLastState"));
    const stale = failing(300);
    assert.equal(stale.status.upgrade?.step, "retry-wait");
  });

  test("storage that cannot be used stops the savepoint before any pod is asked", () => {
    const job = runningJob();
    const changed = withSpec(job, { image: "weir/runtime:2" });
    const d = decide({
      ...observe(changed, reachablePods()),
      storageError: "the bucket b does not exist",
    });
    assert.deepEqual(
      d.actions.filter((a) => a.kind === "triggerSavepoint"),
      [],
    );
    assert.equal(condition(d, "Degraded")?.reason, "SavepointFailed");
    assert.match(condition(d, "Degraded")?.message ?? "", /bucket b does not exist/);
    assert.deepEqual(deleted(d), [], "no pod was asked: none stopped");
  });

  test("storage that fails once the pods were asked: the pods that may have stopped restart", () => {
    const { changed, first } = startUpgrade();
    const d = decide({
      ...observe(after(changed, first), reachablePods()),
      savepoint: savepointSeen(first, [inProgressPart("wc-r1-0")]),
      storageError: "the bucket b does not exist",
    });
    assert.equal(d.status.upgrade?.step, "retry-wait");
    assert.deepEqual(deleted(d).sort(), ["wc-r1-0", "wc-r1-1"]);
  });

  test("a savepoint that takes longer than savepoints.timeout fails", () => {
    const { changed, first } = startUpgrade();
    const d = decide({
      ...observe(after(changed, first), reachablePods()),
      savepoint: savepointSeen(first, [inProgressPart("wc-r1-0"), completedPart("wc-r1-1")]),
      now: later(6 * 60_000),
    });
    assert.match(d.status.upgrade?.lastError ?? "", /timed out after 5m waiting for wc-r1-0/);
  });
});

describe("savepoint: savepoints that leave the job running", () => {
  test("a StreamSavepoint request is taken without stopping, then the job goes on", () => {
    const job = runningJob();
    const pods = reachablePods();
    const request = {
      name: "before-migration",
      trigger: "manual" as const,
      stop: false,
      state: undefined,
    };
    const first = decide({ ...observe(job, pods), savepoints: [request] });
    assert.equal(first.status.upgrade?.kind, "savepoint");
    assert.equal(first.status.upgrade?.savepoint, "before-migration");
    assert.equal(first.status.state, "Running");
    assert.ok(first.actions.every((a) => a.kind !== "triggerSavepoint" || a.stop === false));
    assert.equal(first.actions.filter((a) => a.kind === "triggerSavepoint").length, 2);
    const done = decide({
      ...observe(after(job, first), pods),
      savepoints: [{ ...request, state: "InProgress" }],
      savepoint: savepointSeen(first, bothParts("s3://b/p/", 1, []), { complete: true }),
    });
    assert.equal(done.status.upgrade, undefined);
    assert.equal(done.status.lastSavepoint?.trigger, "manual");
    assert.deepEqual(deleted(done), []);
    assert.equal(done.status.state, "Running");
  });

  test("a request with stop: true is refused with what to do instead", () => {
    const d = decide({
      ...observe(runningJob(), podsOf("r1")),
      savepoints: [{ name: "s", trigger: "manual", stop: true, state: undefined }],
    });
    const status = d.actions.find((a) => a.kind === "savepointStatus");
    assert.ok(status && status.kind === "savepointStatus" && status.status.state === "Failed");
    assert.match(status.status.message ?? "", /spec.state to suspended/);
  });

  test("a failed request: Degraded while its back-off runs, then the job goes on and it is not taken again", () => {
    const job = runningJob();
    const pods = reachablePods();
    const request = { name: "req", trigger: "manual" as const, stop: false, state: undefined };
    const first = decide({ ...observe(job, pods), savepoints: [request] });
    const failed = decide({
      ...observe(after(job, first), pods),
      savepoints: [{ ...request, state: "InProgress" }],
      savepoint: savepointSeen(first, [failedPart("wc-r1-0", "boom")]),
    });
    assert.equal(failed.status.upgrade?.step, "retry-wait");
    assert.deepEqual(
      deleted(failed),
      [],
      "a savepoint that leaves the job running stopped nothing",
    );
    const asFailed = [{ ...request, state: "Failed" as const }];
    const waiting = decide({
      ...observe(after(job, failed), pods),
      savepoints: asFailed,
      now: later(5_000),
    });
    assert.equal(waiting.status.upgrade?.step, "retry-wait");
    assert.equal(condition(waiting, "Degraded")?.reason, "SavepointFailed");
    assert.equal(condition(waiting, "Progressing")?.reason, "RetryWait");
    const over = decide({
      ...observe(after(job, waiting), pods),
      savepoints: asFailed,
      now: later(11_000),
    });
    assert.equal(over.status.upgrade, undefined);
    assert.deepEqual(actionsOf(over, "triggerSavepoint"), []);
    const next = decide({
      ...observe(after(job, over), pods),
      savepoints: asFailed,
      now: later(12_000),
    });
    assert.equal(condition(next, "Degraded")?.status, "False");
  });

  test("savepoints.interval takes periodic savepoints", () => {
    const job = runningJob();
    job.spec.savepoints = {
      ...job.spec.savepoints,
      interval: "1h",
    } as StreamJob["spec"]["savepoints"];
    const early = decide(observe(job, podsOf("r1")));
    assert.equal(early.status.upgrade, undefined);
    const due = decide({
      ...observe(job, reachablePods()),
      now: new Date(now.getTime() + 3_600_001),
    });
    assert.equal(due.status.upgrade?.kind, "savepoint");
    assert.ok(created(due).some((c) => c.startsWith("StreamSavepoint/wc-savepoint-")));
  });

  test("retention keeps maxCount, drops what is older than maxAge, never what is in use", () => {
    const job = runningJob();
    job.spec.savepoints = {
      ...job.spec.savepoints,
      retention: { maxCount: 2, maxAge: "1d".replace("d", "h") },
    } as StreamJob["spec"]["savepoints"];
    const old = (name: string, hoursAgo: number, p = `s3://b/${name}/`) => ({
      name,
      trigger: "periodic" as const,
      stop: false,
      state: "Completed" as const,
      path: p,
      time: new Date(now.getTime() - hoursAgo * 3_600_000).toISOString(),
    });
    const pods = reachablePods();
    const request = { name: "now", trigger: "manual" as const, stop: false, state: undefined };
    const first = decide({ ...observe(job, pods), savepoints: [request] });
    const withRun = after(job, first);
    withRun.status = {
      ...withRun.status,
      run: { ...withRun.status?.run, restoredFrom: "s3://b/in-use/" },
    };
    const done = decide({
      ...observe(withRun, pods),
      savepoints: [
        { ...request, state: "InProgress" },
        old("recent", 0.1),
        old("older", 0.2),
        old("in-use", 5),
        old("ancient", 5),
      ],
      savepoint: savepointSeen(first, bothParts("s3://b/now/", 1, []), { complete: true }),
    });
    const removed = done.actions
      .filter((a) => a.kind === "deleteSavepoint")
      .map((a) => (a.kind === "deleteSavepoint" ? a.name : ""));
    assert.deepEqual(removed.sort(), ["ancient", "older"]);
  });
});
