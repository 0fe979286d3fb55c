// Upgrades and rescales through a warm standby, end to end, with input arriving all the while:
// the next run's pods start and wait warm before the old run takes its stop-with-savepoint,
// then restore it. An image upgrade, a config upgrade and 2 → 3 → 1 go through a standby; a
// standby whose process is killed before the switch comes back and takes over; an operator
// killed during the standby phase leaves nothing stuck; a quota with no room for both runs
// falls back to stop-then-start and says so; a standby that cannot run is discarded while the
// old run never stops — and a read_committed reader sees every running count exactly once.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type CoreV1Event, SchedulingV1Api, type V1Pod } from "@kubernetes/client-node";
import { adminKubeConfig, cli } from "../support/cluster.ts";
import { killOperator, killPodProcess, seededRandom } from "../support/faults.ts";
import type { PrivateMinio } from "../support/minio.ts";
import {
  isReady,
  jobReady,
  nextRunRunning,
  OperatorTestbed,
  patchJobSpec,
  readJob,
} from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

const bed = new OperatorTestbed("standby");
const name = "wc";
const priorityClass = `${bed.namespace}-jobs`;
const scheduling = adminKubeConfig().makeApiClient(SchedulingV1Api);
let output = "";
let traffic: ReturnType<typeof produceContinuously> | undefined;
const target = {
  bed,
  job: name,
  storage: undefined as unknown as PrivateMinio,
  random: seededRandom(17),
};

before(async () => {
  await bed.setUp();
  // The job's pods get a class of their own, so that a quota can count them and nothing else.
  await scheduling.createPriorityClass({
    body: { metadata: { name: priorityClass }, value: 100, description: "warm-standby e2e" },
  });
  const job = await bed.wordCountJob(name, {
    podTemplate: { spec: { priorityClassName: priorityClass } },
  });
  output = job.output;
  await bed.apply(job.manifest);
  await jobReady(bed.namespace, name);
  traffic = produceContinuously(job.input, 3);
});

after(async () => {
  await traffic?.stop();
  await bed.tearDown();
  await scheduling.deletePriorityClass({ name: priorityClass }).catch(() => {});
});

/** The job's Events with `reason`, oldest first. */
async function eventsOf(reason: string): Promise<CoreV1Event[]> {
  const list = await bed.core.listNamespacedEvent({
    namespace: bed.namespace,
    fieldSelector: `involvedObject.name=${name},involvedObject.kind=StreamJob,reason=${reason}`,
  });
  return list.items.sort((a, b) =>
    String(a.lastTimestamp ?? a.eventTime).localeCompare(String(b.lastTimestamp ?? b.eventTime)),
  );
}

/** The message of the job's Event `reason` that mentions `text`, once it is there. */
function eventSaying(reason: string, text: string): Promise<string> {
  return eventually(`a ${reason} Event mentioning ${text}`, async () => {
    const found = (await eventsOf(reason)).find((e) => e.message?.includes(text));
    return found?.message;
  });
}

const podRun = (pod: V1Pod) => pod.metadata?.labels?.["weir.dev/run"];

/**
 * Applies `change` and waits until the next run is Running; checks that it went through a warm
 * standby: its pods waited warm, then were told the old run's savepoint. Returns the job and
 * the downtime the operator measured.
 */
async function throughStandby(change: () => Promise<void>, trigger: string) {
  const before = await readJob(bed.namespace, name);
  const from = before.status?.run?.id ?? "";
  const roundsBefore = traffic?.rounds ?? 0;
  await change();
  const sj = await nextRunRunning(bed.namespace, name, from, 180_000);
  const to = sj.status?.run?.id ?? "";
  const ready = await eventSaying("StandbyReady", `run ${to} waits warm`);
  assert.match(ready, new RegExp(`run ${from} stops now`));
  const started = await eventSaying("RunStarted", `started run ${to}`);
  assert.match(started, /from their warm standby/, "the standby pods took over");
  assert.equal(sj.status?.lastSavepoint?.trigger, trigger);
  assert.equal(sj.status?.lastSavepoint?.run, from, "taken from the run that was replaced");
  assert.equal(sj.status?.run?.restoredFrom, sj.status?.lastSavepoint?.path);
  const pods = await bed.podsOf(name);
  assert.deepEqual(
    [...new Set(pods.filter((p) => !p.metadata?.deletionTimestamp).map(podRun))],
    [to],
    "only the new run's pods are left",
  );
  assert.ok(pods.every((p) => p.metadata?.annotations?.["weir.dev/standby"] === "true"));
  const completed = await eventSaying("RunReady", `run ${to} has all`);
  const downtime = Number(/downtime ([\d.]+) s/.exec(completed)?.[1]);
  assert.ok(Number.isFinite(downtime), `the downtime is measured: ${completed}`);
  assert.ok((traffic?.rounds ?? 0) > roundsBefore, "input kept arriving during the change");
  return { sj, downtime, completed };
}

describe("upgrades and rescales through a warm standby", { concurrency: false }, () => {
  test("a new image", async (t) => {
    const { sj, completed } = await throughStandby(
      () => patchJobSpec(bed.namespace, name, { image: "weir/runtime:v2" }),
      "upgrade",
    );
    assert.equal(sj.status?.run?.image, "weir/runtime:v2");
    t.diagnostic(completed);
  });

  test("a new job configuration", async (t) => {
    const job = await readJob(bed.namespace, name);
    const { completed } = await throughStandby(
      () =>
        patchJobSpec(bed.namespace, name, {
          job: { ...job.spec.job, config: { ...job.spec.job.config, note: "second version" } },
        }),
      "upgrade",
    );
    t.diagnostic(completed);
  });

  test("kubectl scale 2 → 3 → 1", async (t) => {
    for (const replicas of [3, 1, 2]) {
      const { sj, completed } = await throughStandby(
        () =>
          cli("kubectl", [
            "scale",
            `sj/${name}`,
            "-n",
            bed.namespace,
            `--replicas=${replicas}`,
          ]).then(() => {}),
        "rescale",
      );
      assert.equal(sj.status?.parallelism, replicas);
      t.diagnostic(completed);
    }
  });

  test("a standby whose process is killed before the switch comes back and takes over", async () => {
    const from = (await readJob(bed.namespace, name)).status?.run?.id;
    await patchJobSpec(bed.namespace, name, { image: "weir/runtime:v3" });
    // As soon as a standby pod's runtime runs, and before it can have been told anything.
    const killed = await eventually(
      "a standby pod's runtime process",
      async () => {
        const job = await readJob(bed.namespace, name);
        if (job.status?.upgrade?.step !== "standby") return undefined;
        const standby = (pod: V1Pod) => podRun(pod) !== from;
        return killPodProcess(target, standby).catch(() => undefined);
      },
      60_000,
    );
    const victim = /kill -9 of (wc-r\d+-\d)/.exec(killed)?.[1];
    assert.ok(victim, killed);
    const sj = await nextRunRunning(bed.namespace, name, from, 180_000);
    await eventSaying("StandbyReady", `run ${sj.status?.run?.id} waits warm`);
    const restarted = (await bed.podsOf(name)).find((p) => p.metadata?.name === victim);
    assert.ok((restarted?.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, killed);
  });

  test("an operator killed during the standby phase: its successor carries on", async () => {
    const from = (await readJob(bed.namespace, name)).status?.run?.id;
    await patchJobSpec(bed.namespace, name, { image: "weir/runtime:v4" });
    await eventually("the standby step", async () =>
      (await readJob(bed.namespace, name)).status?.upgrade?.step === "standby" ? true : undefined,
    );
    await killOperator(target);
    const sj = await nextRunRunning(bed.namespace, name, from, 180_000);
    await eventSaying("StandbyReady", `run ${sj.status?.run?.id} waits warm`);
    assert.equal(sj.status?.run?.image, "weir/runtime:v4");
  });

  test("no room for both runs (a ResourceQuota): stop, then start, said in an Event", async () => {
    const from = (await readJob(bed.namespace, name)).status?.run?.id;
    await bed.core.createNamespacedResourceQuota({
      namespace: bed.namespace,
      body: {
        metadata: { name: "one-run" },
        spec: {
          // Room for one pod more than the run's two: the standby's second is refused.
          hard: { pods: "3" },
          scopeSelector: {
            matchExpressions: [
              { scopeName: "PriorityClass", operator: "In", values: [priorityClass] },
            ],
          },
        },
      },
    });
    try {
      // Admission counts from the quota's status: it must have seen the pods of the run.
      await eventually("the quota to count the job's pods", async () => {
        const quota = await bed.core.readNamespacedResourceQuota({
          namespace: bed.namespace,
          name: "one-run",
        });
        return quota.status?.used?.pods === "2" ? true : undefined;
      });
      await patchJobSpec(bed.namespace, name, { image: "weir/runtime:v5" });
      const sj = await nextRunRunning(bed.namespace, name, from, 180_000);
      const skipped = await eventSaying("StandbySkipped", `next to run ${from}`);
      assert.match(skipped, /exceeded quota/);
      assert.equal(sj.status?.run?.image, "weir/runtime:v5");
      assert.equal(sj.status?.lastSavepoint?.run, from, "still through a savepoint");
    } finally {
      await bed.core.deleteNamespacedResourceQuota({ namespace: bed.namespace, name: "one-run" });
    }
  });

  test("a standby that cannot run is discarded: the old run never stops", async () => {
    const before = await readJob(bed.namespace, name);
    const from = before.status?.run?.id ?? "";
    const oldPods = (await bed.podsOf(name)).filter((p) => podRun(p) === from);
    const restartsOf = (pods: V1Pod[]) =>
      pods.map((p) => `${p.metadata?.uid}:${p.status?.containerStatuses?.[0]?.restartCount}`);
    const job = before.spec.job;
    await patchJobSpec(bed.namespace, name, {
      job: { ...job, entry: "/app/runtime/examples/no-such-job.ts" },
    });
    const failed = await eventually(
      "the standby discarded",
      async () => (await eventsOf("StandbyFailed"))[0]?.message,
      120_000,
    );
    assert.match(failed, new RegExp(`run ${from} goes on \\(it never stopped\\)`));
    const sj = await eventually("the job Running again, without the standby", async () => {
      const now = await readJob(bed.namespace, name);
      const pods = await bed.podsOf(name);
      return now.status?.state === "Running" && pods.every((p) => podRun(p) === from)
        ? now
        : undefined;
    });
    assert.equal(sj.status?.run?.id, from);
    assert.equal(sj.status?.upgrade, undefined);
    assert.equal(sj.status?.rollback?.run, `r${Number(from.slice(1)) + 1}`);
    const degraded = sj.status?.conditions?.find((c) => c.type === "Degraded");
    assert.equal(degraded?.reason, "RolledBack");
    const now = (await bed.podsOf(name)).filter((p) => podRun(p) === from);
    assert.deepEqual(restartsOf(now), restartsOf(oldPods), "the old run's pods never stopped");
    assert.ok(now.every(isReady));
    await patchJobSpec(bed.namespace, name, { job });
  });

  test("every running count exactly once across all of it", async () => {
    const rounds = (await traffic?.stop()) ?? 0;
    traffic = undefined;
    await assertExactlyOnce(output, rounds);
  });
});
