import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob } from "../../api/types.ts";
import { type Decision, decide, type ObservedPod } from "../reconcile.ts";
import {
  actionsOf,
  after,
  bothParts,
  condition,
  created,
  deleted,
  later,
  now,
  observe,
  SAVEPOINT_PATH as path,
  pod,
  reachablePods,
  runningJob,
  savepointSeen,
  withSpec,
} from "../test-fixtures.ts";

/** A running job with its spec changed so, warm standby on. */
function changedJob(spec: Partial<StreamJob["spec"]> = { image: "weir/runtime:2" }): StreamJob {
  return withSpec(runningJob(), { warmStandby: true, ...spec });
}

/** A pod of the standby run r2, built as a standby, saying where its start is. */
function standbyPod(
  subtask: number,
  phase: NonNullable<ObservedPod["start"]>["phase"] = "standby",
  extra: Partial<ObservedPod> = {},
): ObservedPod {
  return pod("r2", subtask, {
    ready: false,
    standby: true,
    ip: `127.1.1.${subtask + 1}`,
    start: { phase },
    ...extra,
  });
}

const events = (d: Decision) => d.events.map((e) => e.reason);

/** Through the standby step: the changed job, the decision that created it, the one it got ready. */
function standbyReady(spec?: Partial<StreamJob["spec"]>) {
  const changed = changedJob(spec);
  const first = decide(observe(changed, reachablePods()));
  const job = after(changed, first);
  const ready = decide(observe(job, [...reachablePods(), standbyPod(0), standbyPod(1)]));
  return { changed, first, job, ready };
}

describe("standby: the next run waits warm before the old one stops", () => {
  test("an upgrade first creates the next run's pods as standbys and stops nothing", () => {
    const changed = changedJob();
    const first = decide(observe(changed, reachablePods()));
    assert.equal(first.status.upgrade?.step, "standby");
    assert.equal(first.status.upgrade?.standbyRun, "r2");
    assert.deepEqual(created(first), ["ConfigMap/wc-r2-config", "Pod/wc-r2-0", "Pod/wc-r2-1"]);
    assert.deepEqual(
      actionsOf(first, "deleteConfigMaps"),
      [{ kind: "deleteConfigMaps", run: "r2" }],
      "what an earlier standby under this id left goes first",
    );
    assert.deepEqual(deleted(first), []);
    assert.deepEqual(actionsOf(first, "triggerSavepoint"), [], "the old run is not asked yet");
    const pods = actionsOf(first, "create")
      .map((a) => a.object)
      .filter((o): o is V1Pod => o.kind === "Pod");
    for (const p of pods) {
      assert.equal(p.metadata?.annotations?.["weir.dev/standby"], "true");
      const env = p.spec?.containers[0]?.env ?? [];
      assert.deepEqual(
        env.filter((e) => e.name === "WEIR_STANDBY"),
        [{ name: "WEIR_STANDBY", value: "true" }],
      );
    }
    assert.ok(events(first).includes("StandbyStarting"));
    // Pods that boot, one of them still unreachable: nothing more happens, nothing is recreated.
    const booting = decide(
      observe(after(changed, first), [
        ...reachablePods(),
        standbyPod(0),
        standbyPod(1, "unreachable"),
      ]),
    );
    assert.equal(booting.status.upgrade?.step, "standby");
    assert.deepEqual(created(booting), []);
    assert.deepEqual(actionsOf(booting, "triggerSavepoint"), []);
  });

  test("once every standby pod waits, the old run takes its stop-with-savepoint, timed from then", () => {
    const { ready } = standbyReady();
    const op = ready.status.upgrade;
    assert.equal(op?.step, "savepoint");
    assert.ok(events(ready).includes("StandbyReady"));
    assert.deepEqual(ready.measurements.standbys, [{ result: "ready", seconds: 0 }]);
    assert.equal(op?.standbyReadyTime, now.toISOString());
    assert.deepEqual(
      actionsOf(ready, "triggerSavepoint").map((t) => [t.pod, t.stop]),
      [
        ["wc-r1-0", true],
        ["wc-r1-1", true],
      ],
    );
  });

  test("once the savepoint is complete the standby is told it at once, as the old pods go: downtime ends as its pods say", () => {
    const { changed, ready, job } = standbyReady();
    const standbys = [standbyPod(0), standbyPod(1)];
    const start = decide({
      ...observe(after(job, ready), [...reachablePods(), ...standbys]),
      savepoint: savepointSeen(ready, bothParts(), { complete: true }),
    });
    assert.deepEqual(deleted(start), ["wc-r1-0", "wc-r1-1"], "the old run's pods go");
    assert.equal(start.status.upgrade?.step, "starting");
    assert.equal(start.status.run?.id, "r2");
    assert.equal(start.status.run?.restoredFrom, path);
    assert.deepEqual(
      actionsOf(start, "startPod").map((a) => [a.pod, a.ip, a.restoreFrom]),
      [
        ["wc-r2-0", "127.1.1.1", path],
        ["wc-r2-1", "127.1.1.2", path],
      ],
    );
    assert.deepEqual(
      created(start).filter((c) => c.startsWith("Pod/")),
      [],
      "no pod is created again",
    );
    // The old pods still going: the new run is not Ready before they are gone, nothing deleted.
    const going = decide(
      observe(after(changed, start), [pod("r1", 0, { terminating: true }), ...standbys]),
    );
    assert.deepEqual(deleted(going), [], "a standby pod is never deleted for the old run's stop");
    assert.equal(going.status.upgrade?.step, "starting");

    // Ready: the downtime runs from the savepoint's start to the last pod processing.
    const stop = Date.parse(ready.status.upgrade?.standbyReadyTime ?? "");
    const processing = (subtask: number, ms: number) =>
      pod("r2", subtask, {
        standby: true,
        start: { phase: "running", processingSince: stop + ms },
      });
    const readyNow = decide({
      ...observe(after(changed, start), [processing(0, 400), processing(1, 700)]),
      now: later(3_000),
    });
    assert.equal(readyNow.status.state, "Running");
    assert.deepEqual(
      readyNow.measurements.operations.map((o) => o.downtimeSeconds),
      [0.7],
    );
    // A standby-built pod of the running run whose container restarted waits again: it is told.
    const restarted = decide(
      observe(after(changed, readyNow), [standbyPod(0), processing(1, 700)]),
    );
    assert.deepEqual(
      actionsOf(restarted, "startPod").map((a) => [a.pod, a.restoreFrom]),
      [["wc-r2-0", path]],
    );
  });

  test("in last-state mode the old pods are told to stop once the standby waits; downtime counts from then", () => {
    const { ready } = standbyReady({ image: "weir/runtime:2", upgradeMode: "last-state" });
    assert.equal(ready.status.upgrade?.step, "stopping");
    assert.equal(ready.status.upgrade?.stopTime, now.toISOString());
    assert.deepEqual(deleted(ready), ["wc-r1-0", "wc-r1-1"]);
  });

  test("a quota that refuses a standby pod: stop, then start, said in an Event", () => {
    const changed = changedJob({ parallelism: 1 });
    const first = decide(observe(changed, reachablePods()));
    const refused = decide({
      ...observe(after(changed, first), [...reachablePods()]),
      refusal: {
        kind: "Pod",
        name: "wc-r2-0",
        run: "r2",
        code: 403,
        message:
          'pods "wc-r2-0" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2',
      },
    });
    const op = refused.status.upgrade;
    assert.equal(op?.step, "savepoint");
    assert.equal(op?.standbyRun, undefined);
    assert.match(op?.standbySkipped ?? "", /exceeded quota/);
    assert.ok(events(refused).includes("StandbySkipped"));
    assert.deepEqual(
      refused.measurements.standbys.map((m) => m.result),
      ["skipped"],
    );
    assert.deepEqual(actionsOf(refused, "deleteConfigMaps"), [
      { kind: "deleteConfigMaps", run: "r2" },
    ]);
    // Once the standby is on record, a look creates what is missing and deletes nothing.
    const again = decide(observe(after(changed, first), reachablePods()));
    assert.deepEqual(actionsOf(again, "deleteConfigMaps"), []);
    assert.equal(actionsOf(refused, "triggerSavepoint").length, 2);
  });

  test("a standby that cannot run is discarded: the old run goes on, the spec is held back", () => {
    const changed = changedJob();
    const first = decide(observe(changed, reachablePods()));
    const job = after(changed, first);
    const failing = decide(
      observe(job, [
        ...reachablePods(),
        standbyPod(0, "unreachable", { problem: "ErrImagePull: no such image" }),
        standbyPod(1),
      ]),
    );
    assert.equal(failing.status.upgrade, undefined);
    assert.equal(failing.status.run?.id, "r1");
    assert.equal(failing.status.state, "Running");
    assert.deepEqual(deleted(failing).sort(), ["wc-r2-0", "wc-r2-1"]);
    assert.deepEqual(actionsOf(failing, "triggerSavepoint"), [], "the old run never stopped");
    assert.match(failing.status.rollback?.reason ?? "", /ErrImagePull/);
    assert.ok(events(failing).includes("StandbyFailed"));
    assert.deepEqual(
      failing.measurements.standbys.map((m) => m.result),
      ["discarded"],
    );
    assert.equal(condition(failing, "Degraded")?.reason, "RolledBack");
    // The same spec is not tried again.
    const next = decide(observe(after(changed, failing), reachablePods()));
    assert.equal(next.status.upgrade, undefined);
    assert.deepEqual(created(next), []);
    assert.equal(condition(next, "Degraded")?.reason, "RolledBack");
  });

  test("a standby pod refused for what it is: discarded, in the StreamJob's words", () => {
    const changed = changedJob({
      podTemplate: { metadata: { labels: { team: "web analytics!" } } },
    });
    const first = decide(observe(changed, reachablePods()));
    const refused = decide({
      ...observe(after(changed, first), reachablePods()),
      refusal: {
        kind: "Pod",
        name: "wc-r2-0",
        run: "r2",
        code: 422,
        field: "metadata.labels",
        message: 'Pod "wc-r2-0" is invalid: metadata.labels: Invalid value: "web analytics!"',
      },
    });
    assert.equal(refused.status.upgrade, undefined);
    assert.equal(refused.status.run?.id, "r1");
    assert.match(
      condition(refused, "Degraded")?.message ?? "",
      /^standby spec\.podTemplate\.metadata\.labels: the API server refused Pod wc-r2-0 \(422\)/,
    );
  });

  test("a standby not waiting within readinessTimeout is discarded", () => {
    const changed = changedJob({ image: "weir/runtime:2", readinessTimeout: "30s" });
    const first = decide(observe(changed, reachablePods()));
    const late = decide({
      ...observe(after(changed, first), [
        ...reachablePods(),
        standbyPod(0),
        standbyPod(1, "unreachable"),
      ]),
      now: later(31_000),
    });
    assert.equal(late.status.upgrade, undefined);
    assert.match(late.status.rollback?.reason ?? "", /not ready within 30s \(wc-r2-1\)/);
  });

  test("the spec back to the running run during the standby: called off, the standby goes", () => {
    const changed = changedJob();
    const first = decide(observe(changed, reachablePods()));
    const back = decide(
      observe(after(changed, first, { image: "weir/runtime:1" }), [
        ...reachablePods(),
        standbyPod(0),
        standbyPod(1),
      ]),
    );
    assert.equal(back.status.upgrade, undefined);
    assert.ok(events(back).includes("OperationCalledOff"));
    assert.deepEqual(deleted(back).sort(), ["wc-r2-0", "wc-r2-1"]);
  });

  test("warmStandby false, a suspension or stateless mode: no standby", () => {
    for (const spec of [
      { image: "weir/runtime:2", warmStandby: false },
      { state: "suspended" as const },
      { image: "weir/runtime:2", upgradeMode: "stateless" as const },
    ]) {
      const first = decide(observe(changedJob(spec), reachablePods()));
      assert.notEqual(first.status.upgrade?.step, "standby", JSON.stringify(spec));
      assert.equal(first.status.upgrade?.standbyRun, undefined);
    }
  });
});
