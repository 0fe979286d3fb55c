import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob, StreamJobStatus } from "../api/types.ts";
import { FINALIZER } from "../build/names.ts";
import {
  type Action,
  type Decision,
  decide,
  type Observed,
  type ObservedPod,
} from "./reconcile.ts";
import { runSpecOf, specHash } from "./run-spec.ts";

const now = new Date("2026-11-25T12:00:00Z");

function sampleJob(
  overrides: Partial<StreamJob["spec"]> = {},
  status?: StreamJobStatus,
): StreamJob {
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: {
      name: "wc",
      namespace: "team",
      uid: "uid-1",
      generation: 1,
      finalizers: [FINALIZER],
      resourceVersion: "10",
    },
    spec: {
      image: "weir/runtime:1",
      imagePullPolicy: "IfNotPresent",
      job: { entry: "/app/job.ts" },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      parallelism: 2,
      state: "running",
      upgradeMode: "savepoint",
      checkpoints: { interval: "10s" },
      savepoints: {
        storage: {
          endpoint: "http://127.0.0.1:9000",
          bucket: "b",
          prefix: "weir",
          region: "us-east-1",
          credentialsSecret: "s3",
        },
        retention: { maxCount: 10 },
        onDelete: false,
        timeout: "5m",
        fallbackToLastState: false,
        maxCheckpointAge: "5m",
      },
      allowNonRestoredState: false,
      readinessTimeout: "2m",
      autoscaler: {
        enabled: false,
        dryRun: false,
        minParallelism: 1,
        targetUtilization: 0.7,
        catchUpDuration: "5m",
        scaleDownDelay: "10m",
        metricsInterval: "15s",
        metricsWindow: "2m",
        maxRescalesPerHour: 6,
        deadBand: 0.1,
      },
      ...overrides,
    },
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
  return { job, pods, specErrors, now };
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
    test(`a change of ${what} stops every old pod first (${kind}), then starts the next run`, () => {
      const job = runningJob();
      const changed = { ...job, spec: { ...job.spec, ...change } } as StreamJob;
      const stopping = decide(observe(changed, [pod("r1", 0), pod("r1", 1)]));
      assert.deepEqual(deleted(stopping).sort(), ["wc-r1-0", "wc-r1-1"]);
      assert.deepEqual(created(stopping), [], "no new pod while an old one is there");
      assert.equal(stopping.status.state, "Upgrading");
      assert.equal(stopping.status.upgrade?.kind, kind);
      assert.equal(stopping.status.upgrade?.step, "stopping");
      assert.ok(
        stopping.events.some((e) => e.reason === "Replacing" && e.message.startsWith(kind)),
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
    const suspended = { ...job, spec: { ...job.spec, state: "suspended" as const } };
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
