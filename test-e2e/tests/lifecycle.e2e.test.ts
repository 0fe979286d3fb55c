// The savepoint-driven lifecycle end to end, with input arriving all the while: every change of
// a running StreamJob (image, job configuration, parallelism, suspend and resume) goes through
// a stop-with-savepoint and the next run restores it, a StreamSavepoint takes one on request,
// retention removes old ones from the bucket — and a read_committed reader of the output sees
// every running count exactly once across all of it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CustomObjectsApi } from "@kubernetes/client-node";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { adminKubeConfig, cli, clusterEnv, s3Client } from "../support/cluster.ts";
import {
  jobReady,
  nextRunRunning,
  OperatorTestbed,
  patchJobSpec,
  readJob,
} from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

const env = clusterEnv();
const bed = new OperatorTestbed("lifecycle");
const custom = adminKubeConfig().makeApiClient(CustomObjectsApi);
const name = "wc";
let output = "";
let traffic: ReturnType<typeof produceContinuously> | undefined;

before(async () => {
  await bed.setUp();
  const job = await bed.wordCountJob(name);
  output = job.output;
  await bed.apply(job.manifest);
  await jobReady(bed.namespace, name);
  traffic = produceContinuously(job.input, 3);
});

after(async () => {
  await traffic?.stop();
  await bed.tearDown();
});

interface SavepointObject {
  metadata: { name: string };
  spec: { trigger: string };
  status?: { state?: string; path?: string; sizeBytes?: number };
}

async function savepointObject(ssp: string): Promise<SavepointObject> {
  return (await custom.getNamespacedCustomObject({
    group: "weir.dev",
    version: "v1alpha1",
    plural: "streamsavepoints",
    namespace: bed.namespace,
    name: ssp,
  })) as SavepointObject;
}

/** Asks for a savepoint of the job, as a user would: a StreamSavepoint named `ssp`. */
async function requestSavepoint(ssp: string): Promise<void> {
  await bed.apply({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamSavepoint",
    metadata: { name: ssp, namespace: bed.namespace },
    spec: { jobName: name },
  });
}

/** The keys of the savepoints of the job that exist (have their `_metadata.json`) in the bucket. */
async function savepointsInBucket(): Promise<string[]> {
  const prefix = `operator-tests/${bed.namespace}/${name}/savepoints/`;
  const found: string[] = [];
  for await (const item of s3Client().listObjectsV2(env.s3Bucket, prefix, true)) {
    if (item.name?.endsWith("/_metadata.json"))
      found.push(item.name.slice(prefix.length).split("/")[0] ?? "");
  }
  return found.sort();
}

/** Applies `change` and waits until a new run is Running after going through a savepoint. */
async function throughSavepoint(change: () => Promise<void>, trigger: string): Promise<StreamJob> {
  const before = await readJob(bed.namespace, name);
  const roundsBefore = traffic?.rounds ?? 0;
  await change();
  // The operator never writes the spec: the generation moves with the user's change alone.
  const generation = (await readJob(bed.namespace, name)).metadata.generation;
  const sj = await nextRunRunning(bed.namespace, name, before.status?.run?.id, 180_000);
  assert.equal(sj.metadata.generation, generation, "the operation left the spec alone");
  const savepoint = sj.status?.lastSavepoint;
  assert.equal(savepoint?.trigger, trigger);
  assert.equal(savepoint?.run, before.status?.run?.id, "taken from the run that was replaced");
  assert.equal(sj.status?.run?.restoredFrom, savepoint?.path, "the new run restored it");
  const object = await savepointObject(savepoint?.name ?? "");
  assert.equal(object.status?.state, "Completed");
  assert.equal(object.status?.path, savepoint?.path);
  assert.ok((object.status?.sizeBytes ?? 0) > 0, "the savepoint holds state");
  assert.ok((traffic?.rounds ?? 0) > roundsBefore, "input kept arriving during the change");
  return sj;
}

describe("changes to a running job go through savepoints", { concurrency: false }, () => {
  test("a new image", async () => {
    const sj = await throughSavepoint(
      () => patchJobSpec(bed.namespace, name, { image: "weir/runtime:v2" }),
      "upgrade",
    );
    assert.equal(sj.status?.run?.image, "weir/runtime:v2");
    const events = await cli("kubectl", ["get", "events", "-n", bed.namespace, "-o", "json"]);
    assert.match(events, /upgrade of run r1 \(mode savepoint\)/);
    assert.match(events, /SavepointCompleted/);
  });

  test("a new job configuration", async () => {
    const job = await readJob(bed.namespace, name);
    await throughSavepoint(
      () =>
        patchJobSpec(bed.namespace, name, {
          job: { ...job.spec.job, config: { ...job.spec.job.config, note: "second version" } },
        }),
      "upgrade",
    );
  });

  test("kubectl scale 2 → 3 → 1", async () => {
    const three = await throughSavepoint(
      () =>
        cli("kubectl", ["scale", `sj/${name}`, "-n", bed.namespace, "--replicas=3"]).then(() => {}),
      "rescale",
    );
    assert.equal(three.status?.parallelism, 3);
    assert.equal((await bed.podsOf(name)).length, 3);
    const one = await throughSavepoint(
      () =>
        cli("kubectl", ["scale", `sj/${name}`, "-n", bed.namespace, "--replicas=1"]).then(() => {}),
      "rescale",
    );
    assert.equal(one.status?.parallelism, 1);
  });

  test("suspend and resume", async () => {
    const before = await readJob(bed.namespace, name);
    await patchJobSpec(bed.namespace, name, { state: "suspended" });
    const suspended = await eventually(
      "Suspended with no pods",
      async () => {
        const job = await readJob(bed.namespace, name);
        return job.status?.state === "Suspended" && (await bed.podsOf(name)).length === 0
          ? job
          : undefined;
      },
      120_000,
    );
    assert.equal(suspended.status?.lastSavepoint?.trigger, "suspend");
    assert.equal(suspended.status?.lastSavepoint?.run, before.status?.run?.id);
    await patchJobSpec(bed.namespace, name, { state: "running" });
    const resumed = await jobReady(bed.namespace, name);
    assert.equal(resumed.status?.run?.restoredFrom, suspended.status?.lastSavepoint?.path);
  });

  test("a StreamSavepoint takes one on request and the job goes on", async () => {
    const before = await readJob(bed.namespace, name);
    await requestSavepoint("on-request");
    const done = await eventually(
      "the requested savepoint to complete",
      async () => {
        const object = await savepointObject("on-request");
        return object.status?.state === "Completed" ? object : undefined;
      },
      120_000,
    );
    assert.match(done.status?.path ?? "", /^s3:\/\//);
    const sj = await readJob(bed.namespace, name);
    assert.equal(sj.status?.run?.id, before.status?.run?.id, "the run went on");
    assert.equal(sj.status?.lastSavepoint?.name, "on-request");
    assert.equal(sj.status?.lastSavepoint?.trigger, "manual");
    const listed = await cli("kubectl", ["get", "ssp", "-n", bed.namespace]);
    for (const trigger of ["upgrade", "rescale", "suspend", "manual"])
      assert.match(listed, new RegExp(trigger));
  });

  test("retention removes old savepoints from the bucket, keeping the newest", async () => {
    assert.ok((await savepointsInBucket()).length >= 5, "every savepoint so far is in the bucket");
    await patchJobSpec(bed.namespace, name, { savepoints: { retention: { maxCount: 2 } } });
    await requestSavepoint("after-retention");
    const sj = await eventually(
      "the bucket to hold two savepoints besides the one in use",
      async () => {
        const job = await readJob(bed.namespace, name);
        const inBucket = await savepointsInBucket();
        return job.status?.lastSavepoint?.name === "after-retention" && inBucket.length <= 3
          ? { job, inBucket }
          : undefined;
      },
      120_000,
    );
    const newest = sj.job.status?.lastSavepoint?.path ?? "";
    assert.ok(
      sj.inBucket.some((id) => newest.includes(`/savepoints/${id}/`)),
      "the newest stays",
    );
    const inUse = sj.job.status?.run?.restoredFrom ?? "";
    assert.ok(
      sj.inBucket.some((id) => inUse.includes(`/savepoints/${id}/`)),
      "the one in use stays",
    );
  });

  test("every running count exactly once across all of it", async () => {
    const rounds = (await traffic?.stop()) ?? 0;
    traffic = undefined;
    assert.ok(rounds > 0);
    await assertExactlyOnce(output, rounds, { timeoutMs: 180_000 });
  });
});
