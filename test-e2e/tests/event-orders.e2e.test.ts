// Any order of events converges (issue 14), with input arriving all the while and every
// running count checked exactly once at the end:
// - operators that each make a single write (the status, an action or an Event) and die, one
//   after another, through an upgrade, a rescale, a manual savepoint and a suspend/resume: the
//   operator killed between any two of its API calls;
// - the spec reverted to the running one with the savepoint step on record, with the pods asked
//   to stop, and with the stop under way (GitOps self-heal after `kubectl scale`);
// - an operation whose kind changes half-way (upgrade → suspend → delete);
// - the savepoint storage moved while an upgrade is in flight;
// - a rolled-back spec is not retried by a rescale;
// - foreground cascading deletion (Argo CD's prune) still takes the onDelete savepoint;
// - a watch cache that lags never starts a run beside one that may exist;
// - a paused leader that wakes up never writes.
// Operators run as local processes here: a test goes through dozens of them.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { StreamJob, StreamSavepoint } from "../../operator/src/api/types.ts";
import { Informer } from "../../operator/src/machinery/informer.ts";
import { cli, clusterEnv } from "../support/cluster.ts";
import {
  jobReady,
  type Operator,
  type OperatorProcess,
  OperatorTestbed,
  patchJobSpec,
  readJob,
} from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

const bed = new OperatorTestbed("orders", { operators: "process" });
before(() => bed.setUp());
after(() => bed.tearDown());

/** Short leases, so that a successor takes over within seconds of a death. */
const QUICK_LEASE = [
  "--leader-election-lease-duration=4s",
  "--leader-election-renew-deadline=3s",
  "--leader-election-retry-period=500ms",
];

async function savepointsOf(job: string): Promise<StreamSavepoint[]> {
  const list = JSON.parse(
    await cli("kubectl", ["get", "ssp", "-n", bed.namespace, "-o", "json"]),
  ) as { items: StreamSavepoint[] };
  return list.items.filter((s) => s.spec.jobName === job);
}

/** The job has done what its current spec asks, nothing under way, no savepoint left open. */
async function settled(
  name: string,
  expect: (job: StreamJob) => boolean,
): Promise<StreamJob | undefined> {
  const job = await readJob(bed.namespace, name);
  const status = job.status;
  // A suspended job keeps its suspension on record (where it resumes from).
  const underWay = status?.upgrade && status.upgrade.step !== "suspended";
  if (!status || underWay || status.observedGeneration !== job.metadata.generation)
    return undefined;
  if (status.state !== "Running" && status.state !== "Suspended") return undefined;
  if (!expect(job)) return undefined;
  const open = (await savepointsOf(name)).filter((s) => s.status?.state === "InProgress");
  return open.length === 0 ? job : undefined;
}

async function replaceOperator(identity: string, env: Record<string, string> = {}) {
  await bed.operator?.stop();
  bed.operator = await bed.startOperator(identity, env, QUICK_LEASE);
  return bed.operator;
}

/**
 * With no operator running, `change` (a user's change); then an operator that exits once it
 * has recorded `step` of the operation under way; returns when it has.
 */
async function dyingAtStep(identity: string, step: string, change: () => Promise<unknown>) {
  await bed.operator?.stop();
  bed.operator = undefined;
  await change();
  const doomed = await bed.startOperator(identity, { WEIR_TEST_EXIT_AT_STEP: step }, [
    "--no-leader-election",
  ]);
  // One that never reaches the step must not stay: without leader election it would act
  // beside every later operator of the namespace.
  const deadline = setTimeout(() => void doomed.kill(), 120_000);
  try {
    assert.equal(await doomed.exited(), 99, `${identity} exited at step ${step}`);
  } finally {
    clearTimeout(deadline);
  }
}

/** What a crash hook's operator wrote last before it exited (its last log line says). */
async function lastWrite(operator: Operator): Promise<string> {
  const line = (await operator.logs()).findLast(
    (l) => l.msg === "test hook: exiting after this write",
  );
  return String(line?.write ?? "(not logged)");
}

/**
 * With no operator running, `change` (a user's change); then operators that each make exactly
 * one write and die, one after another, until `converged` (or `stopAfter` matches the write
 * just made): each finds what the last left half-done. Returns what each wrote.
 */
async function oneWritePerLife(
  label: string,
  change: () => Promise<unknown>,
  converged: () => Promise<unknown>,
  stopAfter?: RegExp,
  maxLives = 80,
): Promise<string[]> {
  await bed.operator?.stop();
  bed.operator = undefined;
  await change();
  const writes: string[] = [];
  for (let life = 1; life <= maxLives; life++) {
    if (await converged()) return writes;
    const operator = await bed.startOperator(
      `${label}-${life}`,
      { WEIR_TEST_EXIT_AFTER_WRITES: "1" },
      ["--no-leader-election"],
    );
    let code: number | null | undefined;
    void operator.exited().then((c) => {
      code = c;
    });
    try {
      await eventually(
        `life ${life} of ${label} to write once, or the job to converge`,
        async () => (code !== undefined || (await converged()) ? true : undefined),
        90_000,
      );
    } catch (error) {
      // Not one life left behind to act on the tests that follow.
      await operator.stop();
      throw error;
    }
    if (code === undefined) {
      // Converged with nothing left to write.
      await operator.stop();
      return writes;
    }
    assert.equal(code, 99, `life ${life} of ${label} exited through the hook`);
    writes.push(await lastWrite(operator));
    if (stopAfter?.test(writes.at(-1) ?? "")) return writes;
  }
  throw new Error(`${label}: not converged after ${maxLives} lives: ${writes.join("; ")}`);
}

describe("an operator killed between any two of its writes", { concurrency: false }, () => {
  const name = "wc-lives";
  let output = "";
  let traffic: ReturnType<typeof produceContinuously> | undefined;

  before(async () => {
    const job = await bed.wordCountJob(name, {}, { partitions: 4 });
    output = job.output;
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    traffic = produceContinuously(job.input, 3);
  });
  after(() => traffic?.stop());

  test("an upgrade through a savepoint completes", async () => {
    const before = await readJob(bed.namespace, name);
    const writes = await oneWritePerLife(
      "upgrade",
      () => patchJobSpec(bed.namespace, name, { image: "weir/runtime:lives" }),
      () => settled(name, (j) => j.status?.run?.image === "weir/runtime:lives"),
    );
    const job = await readJob(bed.namespace, name);
    assert.notEqual(job.status?.run?.id, before.status?.run?.id);
    assert.equal(job.status?.lastSavepoint?.run, before.status?.run?.id);
    assert.equal(job.status?.run?.restoredFrom, job.status?.lastSavepoint?.path);
    assert.ok(
      writes.some((w) => w.startsWith("ask ")),
      `the pods were asked: ${writes}`,
    );
    assert.ok(
      writes.some((w) => w.startsWith("completeSavepoint")),
      `${writes}`,
    );
    process.stdout.write(`# upgrade: ${writes.length} lives: ${writes.join("; ")}\n`);
  });

  test("a rescale completes", async () => {
    const writes = await oneWritePerLife(
      "rescale",
      () => patchJobSpec(bed.namespace, name, { parallelism: 3 }),
      () => settled(name, (j) => j.status?.parallelism === 3 && j.status.state === "Running"),
    );
    process.stdout.write(`# rescale: ${writes.length} lives\n`);
  });

  test("a manual savepoint completes and the job goes on", async () => {
    const request = {
      apiVersion: "weir.dev/v1alpha1",
      kind: "StreamSavepoint",
      metadata: { name: `${name}-by-hand`, namespace: bed.namespace },
      spec: { jobName: name, trigger: "manual" },
    };
    const writes = await oneWritePerLife(
      "savepoint",
      () => bed.apply(request),
      async () => {
        const done = (await savepointsOf(name)).find((s) => s.metadata.name === `${name}-by-hand`);
        return done?.status?.state === "Completed" && settled(name, () => true);
      },
    );
    process.stdout.write(`# manual savepoint: ${writes.length} lives\n`);
  });

  test("a suspension and a resumption complete", async () => {
    await oneWritePerLife(
      "suspend",
      () => patchJobSpec(bed.namespace, name, { state: "suspended" }),
      () => settled(name, (j) => j.status?.state === "Suspended"),
    );
    const suspended = await readJob(bed.namespace, name);
    assert.equal((await bed.podsOf(name)).length, 0);
    await oneWritePerLife(
      "resume",
      () => patchJobSpec(bed.namespace, name, { state: "running" }),
      () => settled(name, (j) => j.status?.state === "Running"),
    );
    const resumed = await readJob(bed.namespace, name);
    assert.equal(resumed.status?.run?.restoredFrom, suspended.status?.lastSavepoint?.path);
  });

  test("every running count exactly once", async () => {
    bed.operator = await bed.startOperator("lives-after", {}, QUICK_LEASE);
    const rounds = (await traffic?.stop()) ?? 0;
    traffic = undefined;
    await assertExactlyOnce(output, rounds, { timeoutMs: 180_000 });
  });
});

describe("the spec reverted to the running one half-way", { concurrency: false }, () => {
  const name = "wc-revert";
  let output = "";
  let traffic: ReturnType<typeof produceContinuously> | undefined;
  const back = (job: StreamJob) =>
    job.status?.state === "Running" &&
    job.status.parallelism === 2 &&
    (job.status.run?.spec as { parallelism?: number } | undefined)?.parallelism === 2;

  before(async () => {
    await replaceOperator("revert-a");
    const job = await bed.wordCountJob(name, {}, { partitions: 4 });
    output = job.output;
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    traffic = produceContinuously(job.input, 3);
  });
  after(() => traffic?.stop());

  // With a warm standby a stop-with-savepoint hands over at once: a stopping step is on record
  // only without one.
  for (const step of ["standby", "savepoint", "stopping"]) {
    test(`with the ${step} step of a rescale on record`, async () => {
      const warmStandby = step !== "stopping";
      await dyingAtStep(`revert-at-${step}`, step, () =>
        patchJobSpec(bed.namespace, name, { parallelism: 3, warmStandby }),
      );
      assert.equal((await readJob(bed.namespace, name)).status?.upgrade?.step, step);
      await patchJobSpec(bed.namespace, name, { parallelism: 2, warmStandby: true });
      bed.operator = await bed.startOperator(`revert-after-${step}`, {}, QUICK_LEASE);
      await eventually(
        `the job back at parallelism 2 (${step})`,
        () => settled(name, back),
        180_000,
      );
    });
  }

  test("with the pods asked to stop with a savepoint", async () => {
    const writes = await oneWritePerLife(
      "revert-asked",
      () => patchJobSpec(bed.namespace, name, { parallelism: 3 }),
      async () => false,
      /^ask /,
    );
    assert.match(writes.at(-1) ?? "", /^ask /);
    await patchJobSpec(bed.namespace, name, { parallelism: 2 });
    bed.operator = await bed.startOperator("revert-after-asked", {}, QUICK_LEASE);
    await eventually("the job back at parallelism 2 (asked)", () => settled(name, back), 180_000);
  });

  test("every running count exactly once", async () => {
    const rounds = (await traffic?.stop()) ?? 0;
    traffic = undefined;
    await assertExactlyOnce(output, rounds, { timeoutMs: 180_000 });
  });
});

describe("an operation whose target moves", { concurrency: false }, () => {
  test("upgrade → suspend → delete: the job is gone, its savepoint completed", async () => {
    const name = "wc-kinds";
    await replaceOperator("kinds-a");
    const job = await bed.wordCountJob(name);
    job.manifest.spec.savepoints = { ...job.manifest.spec.savepoints, onDelete: true } as never;
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);

    await dyingAtStep("kinds-at-savepoint", "savepoint", () =>
      patchJobSpec(bed.namespace, name, { image: "weir/runtime:kinds" }),
    );
    await dyingAtStep("kinds-at-stopping", "stopping", () =>
      patchJobSpec(bed.namespace, name, { state: "suspended" }),
    );
    const stopping = await readJob(bed.namespace, name);
    assert.equal(stopping.status?.upgrade?.kind, "suspend");
    await cli("kubectl", ["delete", "sj", name, "-n", bed.namespace, "--wait=false"]);
    bed.operator = await bed.startOperator("kinds-after", {}, QUICK_LEASE);
    await eventually(
      "the job to be gone",
      async () =>
        (await cli("kubectl", ["get", "sj", "-n", bed.namespace, "-o", "name"])).includes(
          `/${name}\n`,
        )
          ? undefined
          : true,
      120_000,
    );
    const records = await savepointsOf(name);
    assert.deepEqual(
      records.filter((s) => s.status?.state === "InProgress").map((s) => s.metadata.name),
      [],
    );
    const taken = records.find((s) => s.metadata.name === stopping.status?.upgrade?.savepoint);
    assert.equal(taken?.status?.state, "Completed", "the savepoint in flight completed");
    assert.equal((await bed.podsOf(name)).length, 0);
  });

  test("the savepoint storage moved while an upgrade is in flight", async () => {
    const name = "wc-moved";
    const job = await bed.wordCountJob(name);
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    const traffic = produceContinuously(job.input, 3);
    try {
      await dyingAtStep("moved-at-savepoint", "savepoint", () =>
        patchJobSpec(bed.namespace, name, { image: "weir/runtime:moved" }),
      );
      const storage = job.manifest.spec.savepoints.storage;
      await patchJobSpec(bed.namespace, name, {
        savepoints: { storage: { ...storage, prefix: "operator-tests-moved" } },
      });
      bed.operator = await bed.startOperator("moved-after", {}, QUICK_LEASE);
      const moved = await eventually(
        "the upgrade to complete with the storage moved",
        () =>
          settled(
            name,
            (j) =>
              j.status?.state === "Running" &&
              j.status.run?.image === "weir/runtime:moved" &&
              (j.status.run.spec as { storage?: { prefix?: string } }).storage?.prefix ===
                "operator-tests-moved",
          ),
        180_000,
      );
      // The savepoint was taken where the old run kept its state, and restored from there.
      assert.match(moved.status?.lastSavepoint?.path ?? "", /\/operator-tests\//);
      assert.equal(moved.status?.run?.restoredFrom, moved.status?.lastSavepoint?.path);
    } finally {
      const rounds = await traffic.stop();
      await assertExactlyOnce(job.output, rounds, { timeoutMs: 180_000 });
    }
  });
});

describe("a rolled-back spec and a rescale", () => {
  test("the rescale runs the stable spec at the new parallelism; a new image is tried", async () => {
    const name = "wc-rolled";
    await replaceOperator("rolled-a");
    const job = await bed.wordCountJob(name, { readinessTimeout: "10s" }, { partitions: 4 });
    await bed.apply(job.manifest);
    const stable = await jobReady(bed.namespace, name);
    // Not in the local cluster's image catalog: its pods never start (ErrImagePull).
    await patchJobSpec(bed.namespace, name, { image: "weir/no-such-image:2" });
    await eventually(
      "the rollback",
      () =>
        settled(
          name,
          (j) => !!j.status?.rollback && j.status.run?.image === stable.status?.run?.image,
        ),
      180_000,
    );
    const rolledBack = await readJob(bed.namespace, name);
    await cli("kubectl", ["scale", "sj", name, "-n", bed.namespace, "--replicas=3"]);
    const rescaled = await eventually(
      "the stable spec at parallelism 3",
      () => settled(name, (j) => j.status?.parallelism === 3),
      180_000,
    );
    assert.equal(rescaled.status?.run?.image, stable.status?.run?.image, "the bad image stays out");
    const degraded = rescaled.status?.conditions?.find((c) => c.type === "Degraded");
    assert.equal(degraded?.reason, "RolledBack");
    const tried = JSON.parse(
      await cli("kubectl", ["get", "events", "-n", bed.namespace, "-o", "json"]),
    ) as { items: { reason?: string; message?: string; involvedObject?: { name?: string } }[] };
    // Its pods started once, as a warm standby that was discarded (the stable run never
    // stopped), not again by the rescale.
    const ofJob = (reason: string) =>
      tried.items.filter((e) => e.involvedObject?.name === name && e.reason === reason);
    assert.equal(ofJob("StandbyFailed").length, 1, "the bad spec's standby failed once");
    assert.match(ofJob("StandbyFailed")[0]?.message ?? "", /ErrImagePull|ImagePullBackOff/);
    assert.deepEqual(
      ofJob("RunStarted").filter((e) => e.message?.includes("no-such-image")),
      [],
      "the rolled-back spec never ran, not even once the rescale came",
    );
    assert.equal(ofJob("StandbyStarting").length, 2, "the bad spec's standby, the rescale's");
    assert.notEqual(rescaled.status?.run?.id, rolledBack.status?.run?.id);

    await patchJobSpec(bed.namespace, name, { image: "weir/runtime:after-rescale" });
    await eventually(
      "the new image to run",
      () =>
        settled(
          name,
          (j) =>
            j.status?.run?.image === "weir/runtime:after-rescale" && j.status.parallelism === 3,
        ),
      180_000,
    );
  });
});

describe("foreground cascading deletion", () => {
  test("still takes the onDelete savepoint before the pods go", async () => {
    const name = "wc-foreground";
    await replaceOperator("foreground-a");
    const job = await bed.wordCountJob(name);
    job.manifest.spec.savepoints = { ...job.manifest.spec.savepoints, onDelete: true } as never;
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    await cli("kubectl", [
      "delete",
      "sj",
      name,
      "-n",
      bed.namespace,
      "--cascade=foreground",
      "--timeout=120s",
    ]);
    const taken = (await savepointsOf(name)).filter((s) => s.spec.trigger === "delete");
    assert.equal(taken.length, 1, "one savepoint on delete");
    assert.equal(taken[0]?.status?.state, "Completed", taken[0]?.status?.message);
    assert.equal((await bed.podsOf(name)).length, 0);
  });
});

describe("a watch cache that lags", () => {
  test("never starts a run beside pods of another run that may exist", async () => {
    const name = "wc-lagging";
    await replaceOperator("lagging-a", { WEIR_TEST_POD_WATCH_DELAY_MS: "3000" });
    // Stop, then start: a warm standby's pods wait beside the old run's by design.
    const job = await bed.wordCountJob(name, { warmStandby: false });
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    const traffic = produceContinuously(job.input, 3);
    // The pods as the API server orders their comings and goings (a watch of its own).
    const alive = new Map<string, string>();
    const overlaps: string[] = [];
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(clusterEnv().kubeconfig);
    const pods = new Informer<V1Pod>(
      kubeConfig,
      { group: "", version: "v1", plural: "pods", kind: "Pod" },
      { namespace: bed.namespace, labelSelector: `weir.dev/job=${name}` },
    );
    pods.on("add", (pod) => {
      const run = pod.metadata?.labels?.["weir.dev/run"] ?? "";
      const others = [...alive].filter(([, r]) => r !== run).map(([p]) => p);
      if (others.length > 0) overlaps.push(`${pod.metadata?.name} beside ${others.join(", ")}`);
      alive.set(pod.metadata?.name ?? "", run);
    });
    pods.on("delete", (pod) => alive.delete(pod.metadata?.name ?? ""));
    pods.start();
    await pods.synced;
    try {
      const first = await readJob(bed.namespace, name);
      await patchJobSpec(bed.namespace, name, { image: "weir/runtime:lag-1" });
      // The second change lands while the new run's pods are not in the operator's cache yet.
      await eventually("the first upgrade's run to start", async () => {
        const sj = await readJob(bed.namespace, name);
        return sj.status?.run?.id !== first.status?.run?.id ? true : undefined;
      });
      await patchJobSpec(bed.namespace, name, { image: "weir/runtime:lag-2" });
      await eventually(
        "the second upgrade to complete",
        () =>
          settled(
            name,
            (j) => j.status?.run?.image === "weir/runtime:lag-2" && j.status.state === "Running",
          ),
        180_000,
      );
      assert.deepEqual(overlaps, [], "no pod of one run was created beside a pod of another");
    } finally {
      await pods.stop();
      const rounds = await traffic.stop();
      await assertExactlyOnce(job.output, rounds, { timeoutMs: 180_000 });
    }
  });
});

describe("a paused leader", () => {
  test("that wakes up after another took over never writes", async () => {
    const name = "wc-paused";
    await replaceOperator("paused-leader", {});
    // A leader that logs every write, and a stand-by.
    await bed.operator?.stop();
    const paused = (await bed.startOperator("paused-leader", {}, [
      ...QUICK_LEASE,
      "--log-level=debug",
    ])) as OperatorProcess;
    const job = await bed.wordCountJob(name);
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    const standby = await bed.startOperator("paused-standby", {}, QUICK_LEASE);
    bed.operator = standby;
    const writesSince = async (time: number) =>
      (await paused.logs()).filter((l) => l.msg === "wrote" && Date.parse(String(l.time)) >= time);
    // Paused in the middle of an upgrade: its reconciles are in flight.
    await patchJobSpec(bed.namespace, name, { image: "weir/runtime:paused" });
    await eventually("the upgrade to start", async () =>
      (await readJob(bed.namespace, name)).status?.upgrade ? true : undefined,
    );
    paused.process.kill("SIGSTOP");
    const pausedAt = Date.now();
    await eventually(
      "the stand-by to finish the upgrade",
      () =>
        settled(
          name,
          (j) => j.status?.run?.image === "weir/runtime:paused" && j.status.state === "Running",
        ),
      180_000,
    );
    // Something for the woken one to act on, were it to act.
    await patchJobSpec(bed.namespace, name, { parallelism: 3 });
    paused.process.kill("SIGCONT");
    assert.equal(await paused.exited(), 1, "it exits: it lost the lease");
    assert.deepEqual(await writesSince(pausedAt), [], "not one write after it woke up");
    assert.ok((await writesSince(0)).length > 0, "it did write while it led");
    assert.ok((await paused.logs()).some((l) => l.msg === "lost the lease; exiting"));
    await eventually(
      "the rescale by the stand-by",
      () => settled(name, (j) => j.status?.parallelism === 3 && j.status.state === "Running"),
      180_000,
    );
  });
});
