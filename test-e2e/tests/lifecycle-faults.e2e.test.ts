// The lifecycle when things go wrong, with input arriving all the while: an operator killed at
// each step of an upgrade resumes where it stopped; a new run that never gets Ready is rolled
// back; storage that is down holds an upgrade back while the old run keeps processing, and the
// upgrade completes once it is back; a new job starts from an old job's savepoint. Every
// running count comes out exactly once.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { httpGet } from "../cluster/probe.ts";
import { seriesValues } from "../support/metrics-text.ts";
import { PrivateMinio } from "../support/minio.ts";
import { jobReady, OperatorTestbed, patchJobSpec, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously, produceRounds } from "../support/word-count.ts";

const bed = new OperatorTestbed("faults");
before(() => bed.setUp());
after(() => bed.tearDown());

/** Records read so far by the job's pods (their /metrics: /v1/status wants the job's token). */
async function recordsIn(name: string): Promise<number> {
  let total = 0;
  for (const pod of await bed.podsOf(name)) {
    const answer = await httpGet(`http://${pod.status?.podIP}:9249/metrics`).catch(() => undefined);
    if (answer?.status !== 200) continue;
    total += seriesValues(answer.body).get("weir_records_in_total") ?? 0;
  }
  return total;
}

/** Waits until the job runs `image` in a run other than `fromRun`, with nothing under way. */
async function runningWith(name: string, image: string, fromRun?: string): Promise<StreamJob> {
  return eventually(
    `${name} to run ${image}`,
    async () => {
      const job = await readJob(bed.namespace, name);
      return job.status?.state === "Running" &&
        job.status.run?.image === image &&
        job.status.run.id !== fromRun &&
        !job.status.upgrade
        ? job
        : undefined;
    },
    180_000,
  );
}

describe("an upgrade that goes wrong", { concurrency: false }, () => {
  const name = "wc";
  let output = "";
  let traffic: ReturnType<typeof produceContinuously> | undefined;

  before(async () => {
    // Stop, then start: the steps and the rollback of a run that started (a warm standby's
    // faults are warm-standby.e2e's).
    const job = await bed.wordCountJob(name, { readinessTimeout: "20s", warmStandby: false });
    output = job.output;
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, name);
    traffic = produceContinuously(job.input, 3);
  });
  after(() => traffic?.stop());

  for (const step of ["savepoint", "stopping", "starting"]) {
    test(`an operator killed once it recorded step "${step}" is resumed there by the next`, async () => {
      const before = await readJob(bed.namespace, name);
      await bed.operator?.stop();
      const doomed = await bed.startOperator(`operator-dies-at-${step}`, {
        WEIR_TEST_EXIT_AT_STEP: step,
      });
      bed.operator = doomed;
      await patchJobSpec(bed.namespace, name, { image: `weir/runtime:${step}` });
      assert.equal(await doomed.exited(), 99, "the test hook stopped it");
      const recorded = await readJob(bed.namespace, name);
      assert.equal(recorded.status?.upgrade?.step, step, "the step was on record before it died");

      bed.operator = await bed.startOperator(`operator-after-${step}`);
      const sj = await runningWith(name, `weir/runtime:${step}`, before.status?.run?.id);
      assert.equal(sj.status?.lastSavepoint?.run, before.status?.run?.id);
      assert.equal(sj.status?.run?.restoredFrom, sj.status?.lastSavepoint?.path);
    });
  }

  test("a new run that never gets Ready is rolled back to the last stable spec", async () => {
    const before = await readJob(bed.namespace, name);
    const stableImage = before.status?.run?.image ?? "";
    // Not in the local cluster's image catalog: its pods never start (ErrImagePull).
    await patchJobSpec(bed.namespace, name, { image: "weir/no-such-image:1" });
    const rolledBack = await eventually(
      "the rollback to complete",
      async () => {
        const job = await readJob(bed.namespace, name);
        return job.status?.rollback && job.status.state === "Running" && !job.status.upgrade
          ? job
          : undefined;
      },
      180_000,
    );
    assert.equal(rolledBack.status?.run?.image, stableImage);
    const degraded = rolledBack.status?.conditions?.find((c) => c.type === "Degraded");
    assert.equal(degraded?.reason, "RolledBack");
    assert.match(degraded?.message ?? "", /was not ready within 20s/);
    const failedRun = rolledBack.status?.rollback?.run;
    assert.ok(failedRun && failedRun !== before.status?.run?.id);
    assert.ok(
      (await bed.podsOf(name)).every((p) => p.metadata?.labels?.["weir.dev/run"] !== failedRun),
    );

    // A new change is tried again.
    await patchJobSpec(bed.namespace, name, { image: "weir/runtime:after-rollback" });
    await runningWith(name, "weir/runtime:after-rollback", rolledBack.status?.run?.id);
  });

  test("every running count exactly once across crashes and the rollback", async () => {
    const rounds = (await traffic?.stop()) ?? 0;
    traffic = undefined;
    await assertExactlyOnce(output, rounds, { timeoutMs: 180_000 });
  });
});

describe("storage that is down", { concurrency: false }, () => {
  const name = "wc-storage";
  let minio: PrivateMinio | undefined;

  after(() => minio?.remove());

  test("holds an upgrade back while the old run keeps processing; it completes once storage is back", async () => {
    minio = await PrivateMinio.start();
    const job = await bed.wordCountJob(name);
    const storage = (job.manifest.spec.savepoints as { storage: Record<string, unknown> }).storage;
    storage.endpoint = minio.endpoint;
    await bed.apply(job.manifest);
    const running = await jobReady(bed.namespace, name);
    const traffic = produceContinuously(job.input, 3);
    try {
      await minio.kill();
      await patchJobSpec(bed.namespace, name, { image: "weir/runtime:v2" });
      const held = await eventually(
        "the upgrade to wait for storage",
        async () => {
          const sj = await readJob(bed.namespace, name);
          const degraded = sj.status?.conditions?.find((c) => c.type === "Degraded");
          return sj.status?.upgrade?.step === "retry-wait" && degraded?.reason === "SavepointFailed"
            ? sj
            : undefined;
        },
        120_000,
      );
      assert.match(held.status?.upgrade?.lastError ?? "", /storage/);
      assert.equal(held.status?.run?.id, running.status?.run?.id, "the old run is still the run");
      // The old run keeps processing while storage is down (its output waits, uncommitted,
      // for a checkpoint: nothing is emitted without its state).
      const seen = await recordsIn(name);
      await eventually("the old run to keep processing", async () =>
        (await recordsIn(name)) > seen + 100 ? true : undefined,
      );

      await minio.restart();
      const upgraded = await runningWith(name, "weir/runtime:v2", running.status?.run?.id);
      assert.equal(upgraded.status?.lastSavepoint?.trigger, "upgrade");
    } finally {
      const rounds = await traffic.stop();
      await assertExactlyOnce(job.output, rounds, { timeoutMs: 180_000 });
    }
  });
});

describe("initialSavepoint", () => {
  test("a new job starts from an old job's savepoint and carries its counts on", async () => {
    const old = await bed.wordCountJob("wc-old", { parallelism: 1 });
    await bed.apply(old.manifest);
    await jobReady(bed.namespace, "wc-old");
    await produceRounds(old.input, 3, 10);
    await assertExactlyOnce(old.output, 10);
    await patchJobSpec(bed.namespace, "wc-old", { state: "suspended" });
    const suspended = await eventually("the old job to be suspended", async () => {
      const sj = await readJob(bed.namespace, "wc-old");
      return sj.status?.state === "Suspended" ? sj : undefined;
    });
    const savepoint = suspended.status?.lastSavepoint?.path;
    assert.ok(savepoint);

    // The same job module and internal name (its repartition topic), on the same input.
    const fresh = await bed.wordCountJob(
      "wc-new",
      { parallelism: 2, initialSavepoint: savepoint },
      {
        internalName: `${bed.namespace}-wc-old`,
      },
    );
    const spec = fresh.manifest.spec as { job: { config: Record<string, string> } };
    spec.job.config.input = old.input;
    await bed.apply(fresh.manifest);
    const started = await jobReady(bed.namespace, "wc-new");
    assert.equal(started.status?.run?.restoredFrom, savepoint);
    await produceRounds(old.input, 3, 5);
    await assertExactlyOnce(fresh.output, 15, { fromRounds: 10 });
  });
});
