import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob, StreamJobStatus } from "../api/types.ts";
import { validateStreamJob } from "../api/validate.ts";
import { FINALIZER } from "../build/names.ts";
import {
  type Action,
  type Decision,
  decide,
  type Observed,
  type ObservedPod,
  type ObservedRefusal,
  savepointIdOf,
} from "./reconcile.ts";
import { runSpecOf, specHash } from "./run-spec.ts";

const now = new Date("2026-11-25T12:00:00Z");

/** A job as the API server holds it: a minimal manifest with the schema's defaults filled in. */
function sampleJob(
  overrides: Partial<StreamJob["spec"]> = {},
  status?: StreamJobStatus,
): StreamJob {
  const checked = validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team" },
    spec: {
      image: "weir/runtime:1",
      job: { entry: "/app/job.ts" },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      parallelism: 2,
      savepoints: {
        storage: { endpoint: "http://127.0.0.1:9000", bucket: "bkt", credentialsSecret: "s3" },
      },
    },
  });
  assert.ok(checked.ok);
  const job = checked.job;
  return {
    ...job,
    metadata: {
      ...job.metadata,
      uid: "uid-1",
      generation: 1,
      finalizers: [FINALIZER],
      resourceVersion: "10",
    },
    spec: { ...job.spec, ...overrides },
    ...(status ? { status } : {}),
  };
}

function pod(run: string, subtask: number, extra: Partial<ObservedPod> = {}): ObservedPod {
  return {
    name: `wc-${run}-${subtask}`,
    run,
    subtask,
    ownedByJob: true,
    phase: "Running",
    ready: true,
    terminating: false,
    ...extra,
  };
}

function observe(job: StreamJob, pods: ObservedPod[] = [], specErrors: string[] = []): Observed {
  return { job, pods, specErrors, savepoints: [], now };
}

/** Applies a decision's status to the job, as the next reconcile would read it. */
function after(
  job: StreamJob,
  decision: Decision,
  spec: Partial<StreamJob["spec"]> = {},
): StreamJob {
  return { ...job, spec: { ...job.spec, ...spec }, status: decision.status };
}

const created = (d: Decision) =>
  d.actions
    .filter((a): a is Extract<Action, { kind: "create" }> => a.kind === "create")
    .map((a) => `${a.object.kind}/${a.object.metadata?.name}`);
const deleted = (d: Decision) =>
  d.actions
    .filter((a): a is Extract<Action, { kind: "deletePod" }> => a.kind === "deletePod")
    .map((a) => a.name);
const condition = (d: Decision, type: string) => d.status.conditions?.find((c) => c.type === type);

/** A job whose run r1 has all its pods ready. */
function runningJob(): StreamJob {
  const first = decide(observe(sampleJob()));
  const running = decide(observe(after(sampleJob(), first), [pod("r1", 0), pod("r1", 1)]));
  assert.equal(running.status.state, "Running");
  return after(sampleJob(), running);
}

describe("decide: starting a job", () => {
  test("a new job gets its finalizer first, then run r1: a ConfigMap and one pod per subtask", () => {
    const job = sampleJob();
    job.metadata.finalizers = [];
    const d = decide(observe(job));
    assert.deepEqual(d.actions[0], { kind: "addFinalizer" });
    assert.deepEqual(created(d), ["ConfigMap/wc-r1-config", "Pod/wc-r1-0", "Pod/wc-r1-1"]);
    assert.equal(d.status.state, "Deploying");
    assert.equal(d.status.run?.id, "r1");
    assert.equal(d.status.run?.parallelism, 2);
    assert.equal(d.status.selector, "weir.dev/job=wc");
    assert.equal(d.status.observedGeneration, 1);
    assert.equal(condition(d, "Ready")?.status, "False");
    assert.equal(condition(d, "Progressing")?.status, "True");
    assert.equal(condition(d, "Degraded")?.status, "False");
    assert.ok(d.events.some((e) => e.reason === "RunStarted" && e.message.includes("run r1")));
  });

  test("pods not yet ready keep it Deploying and create nothing twice", () => {
    const first = decide(observe(sampleJob()));
    const d = decide(
      observe(after(sampleJob(), first), [pod("r1", 0, { ready: false }), pod("r1", 1)]),
    );
    assert.equal(d.status.state, "Deploying");
    assert.deepEqual(created(d), []);
    assert.equal(d.status.run?.id, "r1");
  });

  test("all pods ready → Running, Ready=True, one RunReady event; a later look changes nothing", () => {
    const job = runningJob();
    assert.equal(condition({ status: job.status ?? {} } as Decision, "Ready")?.status, "True");
    const again = decide(observe(job, [pod("r1", 0), pod("r1", 1)]));
    assert.deepEqual(again.actions, []);
    assert.deepEqual(again.events, []);
    assert.deepEqual(again.status, job.status, "a settled job's status is stable");
  });

  test("a condition keeps its lastTransitionTime while its status stays", () => {
    const job = runningJob();
    const later = decide({
      ...observe(job, [pod("r1", 0), pod("r1", 1)]),
      now: new Date(now.getTime() + 60_000),
    });
    assert.equal(condition(later, "Ready")?.lastTransitionTime, now.toISOString());
  });
});

describe("decide: keeping the run whole", () => {
  test("a deleted pod is recreated with the same name", () => {
    const d = decide(observe(runningJob(), [pod("r1", 0)]));
    assert.deepEqual(created(d), ["ConfigMap/wc-r1-config", "Pod/wc-r1-1"]);
    assert.equal(d.status.state, "Deploying");
  });

  test("a failed pod is deleted (and recreated on the next look)", () => {
    const d = decide(
      observe(runningJob(), [pod("r1", 0), pod("r1", 1, { phase: "Failed", ready: false })]),
    );
    assert.deepEqual(deleted(d), ["wc-r1-1"]);
    assert.deepEqual(created(d), []);
  });

  test("a pod beyond the run's parallelism, a duplicate and a namesake's pod are deleted", () => {
    const d = decide(
      observe(runningJob(), [
        pod("r1", 0),
        pod("r1", 1),
        pod("r1", 2),
        { ...pod("r1", 1), name: "wc-r1-1-copy" },
        { ...pod("r1", 0), name: "other", ownedByJob: false },
      ]),
    );
    assert.deepEqual(deleted(d).sort(), ["other", "wc-r1-1-copy", "wc-r1-2"]);
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
});

describe("decide: replacing the run on a change", () => {
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
      const stopping = decide(observe(changed, [pod("r1", 0), pod("r1", 1)]));
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
    const d = decide(observe(changed, [pod("r1", 0), pod("r1", 1)]));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.state, "Running");
  });
});

describe("decide: suspend and resume", () => {
  test("suspended → every pod stops, then Suspended; running again → a new run", () => {
    const job = runningJob();
    const suspended = {
      ...job,
      spec: { ...job.spec, state: "suspended" as const, upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(suspended, [pod("r1", 0), pod("r1", 1)]));
    assert.deepEqual(deleted(stopping).sort(), ["wc-r1-0", "wc-r1-1"]);
    assert.equal(stopping.status.upgrade?.kind, "suspend");
    const done = decide(observe(after(suspended, stopping)));
    assert.equal(done.status.state, "Suspended");
    assert.equal(done.status.parallelism, 0);
    assert.equal(condition(done, "Ready")?.reason, "Suspended");
    assert.equal(condition(done, "Progressing")?.status, "False");

    const resumed = { ...job, status: done.status };
    const start = decide(observe(resumed));
    assert.equal(start.status.run?.id, "r2");
    assert.ok(start.events.some((e) => e.message.startsWith("resume")));
  });
});

describe("decide: a spec the operator refuses", () => {
  test("with a run in place: Degraded + a Warning, and the run keeps going untouched", () => {
    const job = runningJob();
    const bad = {
      ...job,
      spec: { ...job.spec, image: "weir/runtime:broken" },
      metadata: { ...job.metadata, generation: 2 },
    };
    const d = decide(observe(bad, [pod("r1", 0), pod("r1", 1)], ["spec.x: bad"]));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.state, "Running");
    assert.equal(d.status.run?.image, "weir/runtime:1");
    assert.equal(condition(d, "Degraded")?.reason, "InvalidSpec");
    assert.match(condition(d, "Degraded")?.message ?? "", /spec.x: bad.*run r1 keeps running/);
    assert.ok(d.events.some((e) => e.type === "Warning" && e.reason === "InvalidSpec"));
    assert.equal(d.status.observedGeneration, 2);

    // The same refusal seen again: no second Warning.
    const again = decide(
      observe({ ...bad, status: d.status }, [pod("r1", 0), pod("r1", 1)], ["spec.x: bad"]),
    );
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
});

describe("decide: deletion", () => {
  test("pods go first; once none is left the ConfigMaps go and the finalizer is removed", () => {
    const job = runningJob();
    const deleting = { ...job, metadata: { ...job.metadata, deletionTimestamp: now } };
    const first = decide(observe(deleting, [pod("r1", 0), pod("r1", 1, { terminating: true })]));
    assert.deepEqual(deleted(first), ["wc-r1-0"]);
    assert.ok(!first.actions.some((a) => a.kind === "removeFinalizer"));
    assert.equal(first.status.state, "Deleting");
    const last = decide(observe({ ...deleting, status: first.status }));
    assert.deepEqual(
      last.actions.map((a) => a.kind),
      ["deleteConfigMaps", "removeFinalizer"],
    );
  });
});

describe("decide: parallelism owner", () => {
  const withRecommendation = (enabled: boolean, dryRun: boolean, recommended: number) =>
    sampleJob(
      {
        autoscaler: {
          ...sampleJob().spec.autoscaler,
          enabled,
          dryRun,
          minParallelism: 1,
          maxParallelism: 4,
        },
      },
      { autoscaler: { recommendedParallelism: recommended } },
    );
  test("the autoscaler's recommendation runs while it is enabled, clamped to its limits", () => {
    assert.equal(decide(observe(withRecommendation(true, false, 3))).status.run?.parallelism, 3);
    assert.equal(decide(observe(withRecommendation(true, false, 9))).status.run?.parallelism, 4);
  });
  test("a dry run or a disabled autoscaler leaves spec.parallelism in charge", () => {
    assert.equal(decide(observe(withRecommendation(true, true, 3))).status.run?.parallelism, 2);
    assert.equal(decide(observe(withRecommendation(false, false, 3))).status.run?.parallelism, 2);
  });
});

describe("decide: upgrades through a savepoint", () => {
  const path = "s3://b/weir/team/wc/savepoints/x/";
  const completed = (name: string) => ({
    name,
    state: { state: "completed" as const, path, files: [], bytes: 100, operators: ["counts"] },
  });
  const inProgress = (name: string) => ({ name, state: { state: "in_progress" as const } });

  function startUpgrade() {
    const job = runningJob();
    const changed = { ...job, spec: { ...job.spec, image: "weir/runtime:2" } };
    const first = decide(
      observe(changed, [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })]),
    );
    return { changed, first };
  }

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
    const op = first.status.upgrade;
    assert.ok(op);
    const id = savepointIdOf(op);
    const job = after(changed, first);
    const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];

    const waiting = decide({
      ...observe(job, pods),
      savepoint: { id, pods: [completed("wc-r1-0"), inProgress("wc-r1-1")], complete: false },
    });
    assert.deepEqual(
      waiting.actions.filter(
        (a) => a.kind === "triggerSavepoint" || a.kind === "completeSavepoint",
      ),
      [],
    );

    const parts = decide({
      ...observe(job, pods),
      savepoint: { id, pods: [completed("wc-r1-0"), completed("wc-r1-1")], complete: false },
    });
    assert.deepEqual(
      parts.actions.find((a) => a.kind === "completeSavepoint"),
      { kind: "completeSavepoint", id, operators: ["counts"], parallelism: 2 },
    );

    const done = decide({
      ...observe(job, pods),
      savepoint: { id, pods: [completed("wc-r1-0"), completed("wc-r1-1")], complete: true },
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

  test("a pod that fails its part: the run resumes, Degraded says why, and the savepoint is retried after a back-off", () => {
    const { changed, first } = startUpgrade();
    const op = first.status.upgrade;
    assert.ok(op);
    const job = after(changed, first);
    const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];
    const failed = decide({
      ...observe(job, pods),
      savepoint: {
        id: savepointIdOf(op),
        pods: [
          completed("wc-r1-0"),
          { name: "wc-r1-1", state: { state: "failed", reason: "storage refused" } },
        ],
        complete: false,
      },
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
    const later = new Date(Date.parse(failed.status.upgrade?.retryTime ?? "") + 1);
    const retry = decide({ ...observe(after(changed, failed), pods), now: later });
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
    const changed = { ...job, spec: { ...job.spec, image: "weir/runtime:2" } };
    const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];
    const first = decide(observe(changed, pods));
    const op = first.status.upgrade;
    assert.ok(op);
    const failing = (checkpointAgeSeconds: number) =>
      decide({
        ...observe(after(changed, first), pods),
        savepoint: {
          id: savepointIdOf(op),
          pods: [{ name: "wc-r1-0", state: { state: "failed", reason: "boom" } }],
          complete: false,
          checkpointAgeSeconds,
        },
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
    const changed = { ...job, spec: { ...job.spec, image: "weir/runtime:2" } };
    const d = decide({
      ...observe(changed, [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })]),
      storageError: "the bucket b does not exist",
    });
    assert.deepEqual(
      d.actions.filter((a) => a.kind === "triggerSavepoint"),
      [],
    );
    assert.equal(condition(d, "Degraded")?.reason, "SavepointFailed");
    assert.match(condition(d, "Degraded")?.message ?? "", /bucket b does not exist/);
  });

  test("a savepoint that takes longer than savepoints.timeout fails", () => {
    const { changed, first } = startUpgrade();
    const op = first.status.upgrade;
    assert.ok(op);
    const late = new Date(now.getTime() + 6 * 60_000);
    const d = decide({
      ...observe(after(changed, first), [
        pod("r1", 0, { ip: "127.1.0.1" }),
        pod("r1", 1, { ip: "127.1.0.2" }),
      ]),
      savepoint: {
        id: savepointIdOf(op),
        pods: [inProgress("wc-r1-0"), completed("wc-r1-1")],
        complete: false,
      },
      now: late,
    });
    assert.match(d.status.upgrade?.lastError ?? "", /timed out after 5m waiting for wc-r1-0/);
  });

  test("a run that is not running well hands over its checkpoints instead (last-state)", () => {
    const job = runningJob();
    const changed = { ...job, spec: { ...job.spec, image: "weir/runtime:2" } };
    const d = decide(observe(changed, [pod("r1", 0), pod("r1", 1, { ready: false })]));
    assert.equal(d.status.upgrade?.mode, "last-state");
    assert.equal(d.status.upgrade?.step, "stopping");
  });

  test("suspend takes a savepoint; resume starts from it", () => {
    const job = runningJob();
    const suspended = { ...job, spec: { ...job.spec, state: "suspended" as const } };
    const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];
    const first = decide(observe(suspended, pods));
    assert.equal(first.status.upgrade?.kind, "suspend");
    const op = first.status.upgrade;
    assert.ok(op);
    const id = savepointIdOf(op);
    const done = decide({
      ...observe(after(suspended, first), pods),
      savepoint: { id, pods: [completed("wc-r1-0"), completed("wc-r1-1")], complete: true },
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
});

describe("decide: savepoints that leave the job running", () => {
  test("a StreamSavepoint request is taken without stopping, then the job goes on", () => {
    const job = runningJob();
    const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];
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
    const op = first.status.upgrade;
    assert.ok(op);
    const completedPart = (name: string) => ({
      name,
      state: { state: "completed" as const, path: "s3://b/p/", files: [], bytes: 1, operators: [] },
    });
    const done = decide({
      ...observe(after(job, first), pods),
      savepoints: [{ ...request, state: "InProgress" }],
      savepoint: {
        id: savepointIdOf(op),
        pods: [completedPart("wc-r1-0"), completedPart("wc-r1-1")],
        complete: true,
      },
    });
    assert.equal(done.status.upgrade, undefined);
    assert.equal(done.status.lastSavepoint?.trigger, "manual");
    assert.deepEqual(deleted(done), []);
    assert.equal(done.status.state, "Running");
  });

  test("a request with stop: true is refused with what to do instead", () => {
    const d = decide({
      ...observe(runningJob(), [pod("r1", 0), pod("r1", 1)]),
      savepoints: [{ name: "s", trigger: "manual", stop: true, state: undefined }],
    });
    const status = d.actions.find((a) => a.kind === "savepointStatus");
    assert.ok(status && status.kind === "savepointStatus" && status.status.state === "Failed");
    assert.match(status.status.message ?? "", /spec.state to suspended/);
  });

  test("savepoints.interval takes periodic savepoints", () => {
    const job = runningJob();
    job.spec.savepoints = {
      ...job.spec.savepoints,
      interval: "1h",
    } as StreamJob["spec"]["savepoints"];
    const early = decide(observe(job, [pod("r1", 0), pod("r1", 1)]));
    assert.equal(early.status.upgrade, undefined);
    const due = decide({
      ...observe(job, [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })]),
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
    const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];
    const request = { name: "now", trigger: "manual" as const, stop: false, state: undefined };
    const first = decide({ ...observe(job, pods), savepoints: [request] });
    const op = first.status.upgrade;
    assert.ok(op);
    const part = (name: string) => ({
      name,
      state: {
        state: "completed" as const,
        path: "s3://b/now/",
        files: [],
        bytes: 1,
        operators: [],
      },
    });
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
      savepoint: {
        id: savepointIdOf(op),
        pods: [part("wc-r1-0"), part("wc-r1-1")],
        complete: true,
      },
    });
    const removed = done.actions
      .filter((a) => a.kind === "deleteSavepoint")
      .map((a) => (a.kind === "deleteSavepoint" ? a.name : ""));
    assert.deepEqual(removed.sort(), ["ancient", "older"]);
  });

  test("a stateless upgrade starts the next run without state (WEIR_RESTORE_FROM=none)", () => {
    const job = runningJob();
    const changed = {
      ...job,
      spec: { ...job.spec, image: "weir/runtime:2", upgradeMode: "stateless" as const },
    };
    const stopping = decide(observe(changed, [pod("r1", 0), pod("r1", 1)]));
    assert.equal(stopping.status.upgrade?.mode, "stateless");
    const next = decide(observe(after(changed, stopping)));
    assert.equal(next.status.run?.restoredFrom, "none");
  });

  test("a brand-new job starts from its initialSavepoint", () => {
    const d = decide(observe(sampleJob({ initialSavepoint: "s3://b/old-job/savepoints/x/" })));
    assert.equal(d.status.run?.restoredFrom, "s3://b/old-job/savepoints/x/");
  });
});

describe("decide: rollback", () => {
  test("a new run not Ready within readinessTimeout is replaced by a run of the last stable spec, and that spec is not tried again", () => {
    const job = runningJob();
    const broken = {
      ...job,
      spec: { ...job.spec, image: "weir/runtime:broken", upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(broken, [pod("r1", 0), pod("r1", 1)]));
    const starting = decide(observe(after(broken, stopping)));
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
      ...observe(after(broken, back), [pod("r3", 0), pod("r3", 1)]),
      now: new Date(now.getTime() + 130_000),
    });
    assert.equal(stable.status.state, "Running");
    assert.equal(stable.status.upgrade, undefined);
    assert.equal(condition(stable, "Degraded")?.reason, "RolledBack");
    assert.match(condition(stable, "Degraded")?.message ?? "", /run r2 .* was not ready within 2m/);

    // The same (broken) spec is not tried again...
    const again = decide({
      ...observe(after(broken, stable), [pod("r3", 0), pod("r3", 1)]),
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
      ...observe(fixed, [pod("r3", 0), pod("r3", 1)]),
      now: new Date(now.getTime() + 210_000),
    });
    assert.equal(next.status.upgrade?.kind, "upgrade");
  });
});

describe("decide: the autoscaler", () => {
  const busy = {
    complete: true as const,
    subtasks: 2,
    tasks: 8,
    spanSeconds: 120,
    recordsInRate: 2_000,
    arrivalRate: 3_000,
    backlog: 50_000,
    backlogRate: 1_000,
    intervalArrivalRates: [3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000],
    busyRatio: { mean: 1, max: 1 },
    trueRatePerSubtask: 1_000,
  };
  function autoscaled(dryRun: boolean): StreamJob {
    const job = runningJob();
    job.spec.autoscaler = {
      ...job.spec.autoscaler,
      enabled: true,
      dryRun,
      minParallelism: 1,
      maxParallelism: 4,
    };
    return job;
  }
  const pods = [pod("r1", 0, { ip: "127.1.0.1" }), pod("r1", 1, { ip: "127.1.0.2" })];

  test("a backlog the run cannot keep up with scales it up, through a savepoint rescale", () => {
    const d = decide({
      ...observe(autoscaled(false), pods),
      autoscaling: { summary: busy, partitions: 4 },
    });
    assert.equal(d.status.autoscaler?.reason, "ScaleUp");
    assert.equal(d.status.autoscaler?.recommendedParallelism, 4);
    assert.ok(d.events.some((e) => e.reason === "Autoscaler" && e.message.startsWith("ScaleUp")));
    assert.deepEqual(d.measurements.autoscalerDecisions, ["ScaleUp"], "counted in the metrics");
    assert.equal(d.status.upgrade?.kind, "rescale");
    assert.equal(d.status.upgrade?.step, "savepoint");
  });

  test("in a dry run the recommendation is recorded, not acted on", () => {
    const d = decide({
      ...observe(autoscaled(true), pods),
      autoscaling: { summary: busy, partitions: 4 },
    });
    assert.equal(d.status.autoscaler?.recommendedParallelism, 4);
    assert.equal(d.status.upgrade, undefined);
    assert.ok(d.events.some((e) => e.message.startsWith("dry run, not applied")));
  });

  test("incomplete metrics decide nothing", () => {
    const d = decide({
      ...observe(autoscaled(false), pods),
      autoscaling: { summary: { complete: false, why: "no samples of run r1 yet" }, partitions: 4 },
    });
    assert.equal(d.status.upgrade, undefined);
    assert.equal(d.status.autoscaler?.reason, "MetricsIncomplete");
    assert.deepEqual(d.events, []);
  });
});

describe("decide: objects the API server refuses", () => {
  const refusal = (run: string, extra: Partial<ObservedRefusal> = {}): ObservedRefusal => ({
    kind: "Pod",
    name: `wc-${run}-0`,
    run,
    code: 422,
    message: 'Pod "wc-r1-0" is invalid: metadata.labels: Invalid value: "a b": name part must …',
    field: "metadata.labels",
    ...extra,
  });

  test("a first run's refused pod: Degraded in the API server's words naming the job's field, asked again after a back-off", () => {
    const bad = sampleJob({ podTemplate: { metadata: { labels: { team: "a b" } } } });
    const first = decide(observe(bad));
    const refused = decide({ ...observe(after(bad, first)), refusal: refusal("r1") });
    assert.deepEqual(created(refused), [], "nothing more is created for the refused run");
    const degraded = condition(refused, "Degraded");
    assert.equal(degraded?.reason, "PodsRefused");
    assert.match(
      degraded?.message ?? "",
      /^spec\.podTemplate\.metadata\.labels: the API server refused Pod wc-r1-0 \(422\): Pod "wc-r1-0" is invalid: metadata\.labels: Invalid value/,
    );
    assert.ok(refused.events.some((e) => e.type === "Warning" && e.reason === "PodsRefused"));
    assert.equal(refused.status.run?.refused?.attempt, 1);
    assert.equal(
      refused.status.run?.refused?.retryTime,
      new Date(now.getTime() + 10_000).toISOString(),
    );

    const waiting = decide({
      ...observe(after(bad, refused)),
      now: new Date(now.getTime() + 5_000),
    });
    assert.deepEqual(created(waiting), []);
    assert.ok(waiting.requeueAfterMs <= 5_000);
    assert.equal(condition(waiting, "Degraded")?.reason, "PodsRefused");

    const retry = decide({
      ...observe(after(bad, refused)),
      now: new Date(now.getTime() + 11_000),
    });
    assert.deepEqual(created(retry), ["ConfigMap/wc-r1-config", "Pod/wc-r1-0", "Pod/wc-r1-1"]);
    const again = decide({
      ...observe(after(bad, retry)),
      refusal: refusal("r1"),
      now: new Date(now.getTime() + 11_000),
    });
    assert.equal(again.status.run?.refused?.attempt, 2, "backing off: 20 s now");

    // Allowed at last (a quota raised): every pod exists, the refusal is forgotten.
    const whole = decide({ ...observe(after(bad, again), [pod("r1", 0), pod("r1", 1)]) });
    assert.equal(whole.status.run?.refused, undefined);
    assert.equal(condition(whole, "Degraded")?.status, "False");
  });

  test("a new run's refused pod rolls back to the last stable spec at once", () => {
    const job = runningJob();
    const quota = {
      ...job,
      spec: { ...job.spec, parallelism: 3, upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(quota, [pod("r1", 0), pod("r1", 1)]));
    const starting = decide(observe(after(quota, stopping)));
    assert.equal(starting.status.run?.id, "r2");
    const message =
      'pods "wc-r2-2" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2';
    const refused = decide({
      ...observe(after(quota, starting), [
        pod("r2", 0, { ready: false }),
        pod("r2", 1, { ready: false }),
      ]),
      refusal: refusal("r2", { name: "wc-r2-2", code: 403, message, field: undefined }),
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
});

describe("decide: a run's pods start slowly, on readiness", () => {
  test("eight at first, then as many more as are ready; a first batch that never gets ready holds the rest back", () => {
    const job = sampleJob({ parallelism: 20 });
    const first = decide(observe(job));
    assert.equal(created(first).filter((c) => c.startsWith("Pod/")).length, 8);
    const eight = (ready: boolean) => Array.from({ length: 8 }, (_, i) => pod("r1", i, { ready }));
    const stuck = decide(observe(after(job, first), eight(false)));
    assert.deepEqual(created(stuck), [], "none more while the first are not ready");
    const next = decide(observe(after(job, first), eight(true)));
    assert.deepEqual(
      created(next).filter((c) => c.startsWith("Pod/")),
      Array.from({ length: 8 }, (_, i) => `Pod/wc-r1-${i + 8}`),
    );
  });

  test("an upgrade's run whose first pods never get ready is rolled back after readinessTimeout", () => {
    const base = runningJob();
    const big = {
      ...base,
      spec: { ...base.spec, parallelism: 20, upgradeMode: "last-state" as const },
    };
    const stopping = decide(observe(big, [pod("r1", 0), pod("r1", 1)]));
    const starting = decide(observe(after(big, stopping)));
    const crashing = Array.from({ length: 8 }, (_, i) =>
      pod("r2", i, { ready: false, createdAt: now.getTime(), problem: "CrashLoopBackOff: …" }),
    );
    const late = decide({
      ...observe(after(big, starting), crashing),
      now: new Date(now.getTime() + 121_000),
    });
    assert.equal(late.status.upgrade?.kind, "rollback");
  });
});

describe("decide: what the source can take", () => {
  test("a rescale above the source's partitions is refused before any pod stops", () => {
    const job = runningJob();
    const withPartitions = { ...job, status: { ...job.status, partitions: 3 } };
    const scaled = { ...withPartitions, spec: { ...job.spec, parallelism: 5 } };
    const d = decide(observe(scaled, [pod("r1", 0), pod("r1", 1)]));
    assert.deepEqual(d.actions, []);
    assert.equal(d.status.state, "Running");
    assert.equal(condition(d, "Degraded")?.reason, "ParallelismAbovePartitions");
    assert.match(
      condition(d, "Degraded")?.message ?? "",
      /^spec\.parallelism: 5 pods are more than the 3 partitions of the job's source .*run r1 keeps 2/,
    );
    const three = decide(
      observe({ ...scaled, spec: { ...job.spec, parallelism: 3 } }, [pod("r1", 0), pod("r1", 1)]),
    );
    assert.equal(three.status.upgrade?.kind, "rescale");

    // A run of another spec may read another source: its partitions are forgotten.
    const upgraded = {
      ...withPartitions,
      spec: { ...job.spec, image: "weir/runtime:2", upgradeMode: "stateless" as const },
    };
    const stopping = decide(observe(upgraded, [pod("r1", 0), pod("r1", 1)]));
    assert.equal(stopping.status.partitions, 3);
    const started = decide(observe(after(upgraded, stopping)));
    assert.equal(started.status.run?.id, "r2");
    assert.equal(started.status.partitions, undefined);
  });

  test("lag and partitions come from the latest whole scrape; desiredParallelism is what runs", () => {
    const job = runningJob();
    const d = decide({
      ...observe(job, [pod("r1", 0), pod("r1", 1)]),
      load: { lag: 42, partitions: 3 },
    });
    assert.equal(d.status.lag, 42);
    assert.equal(d.status.partitions, 3);
    assert.equal(d.status.desiredParallelism, 2);
    const suspended = decide(observe(after(job, d, { state: "suspended" }), []));
    assert.equal(suspended.status.desiredParallelism, 0);
  });
});

describe("decide: kubectl scale while the autoscaler owns parallelism", () => {
  function autoscaledRunning(): StreamJob {
    const job = runningJob();
    job.spec.autoscaler = {
      ...job.spec.autoscaler,
      enabled: true,
      minParallelism: 1,
      maxParallelism: 3,
    };
    const seen = decide(observe(job, [pod("r1", 0), pod("r1", 1)]));
    assert.equal(seen.status.autoscaler?.specParallelism, 2, "spec.parallelism as first seen");
    return after(job, seen);
  }

  test("a change of spec.parallelism is a manual override: the job rescales to it, said in an Event", () => {
    const job = autoscaledRunning();
    const scaled = { ...job, spec: { ...job.spec, parallelism: 3 } };
    const d = decide(observe(scaled, [pod("r1", 0), pod("r1", 1)]));
    assert.equal(d.status.autoscaler?.reason, "ManualOverride");
    assert.equal(d.status.autoscaler?.recommendedParallelism, 3);
    assert.equal(d.status.desiredParallelism, 3);
    assert.equal(d.status.upgrade?.kind, "rescale");
    assert.ok(
      d.events.some(
        (e) =>
          e.reason === "Autoscaler" &&
          /ManualOverride: spec.parallelism changed from 2 to 3: the job runs 3/.test(e.message),
      ),
    );
  });

  test("beyond the autoscaler's limits it is clamped, and says so; the same value again changes nothing", () => {
    const job = autoscaledRunning();
    const scaled = { ...job, spec: { ...job.spec, parallelism: 9 } };
    const d = decide(observe(scaled, [pod("r1", 0), pod("r1", 1)]));
    assert.equal(d.status.autoscaler?.recommendedParallelism, 3);
    assert.ok(
      d.events.some((e) =>
        /runs 3 \(the autoscaler's limits and the partitions allow 1\.\.3\)/.test(e.message),
      ),
    );
    const again = decide(observe(after(scaled, d), [pod("r1", 0), pod("r1", 1)]));
    assert.ok(!again.events.some((e) => e.message.startsWith("ManualOverride")));
  });
});
