// Autoscaling end to end on the local cluster: a job whose pods can take ~500 lines/s each (the
// demo's job, scripts/demo/job.ts: the word count with a wait per line) gets more input than one
// pod can handle → its backlog grows → it scales up through a savepoint rescale → the backlog
// drains → the input drops → after the scale-down delay it scales back down. Every running
// count comes out exactly once, and the decisions are in `kubectl describe sj`.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { cli } from "../support/cluster.ts";
import { jobReady, OperatorTestbed, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

const bed = new OperatorTestbed("autoscaler");
const name = "slow";
before(() => bed.setUp());
after(() => bed.tearDown());

test("scales up with the backlog, back down after the load drops, exactly once throughout", async () => {
  const job = await bed.wordCountJob(name, {
    parallelism: 1,
    autoscaler: {
      enabled: true,
      minParallelism: 1,
      maxParallelism: 3,
      metricsInterval: "2s",
      metricsWindow: "8s",
      scaleDownDelay: "20s",
      catchUpDuration: "30s",
      maxRescalesPerHour: 20,
    },
  });
  const spec = job.manifest.spec as { job: { entry: string; config: Record<string, unknown> } };
  spec.job.entry = "/app/scripts/demo/job.ts";
  spec.job.config.workMs = 2;
  await bed.apply(job.manifest);
  const applied = await jobReady(bed.namespace, name);

  // 4 lines a round, 3 rounds every 20 ms: ~600 lines/s against ~500 a pod can do.
  const traffic = produceContinuously(job.input, 3, 20, 3);
  try {
    const up = await eventually(
      "the autoscaler to scale up",
      async () => {
        const sj = await readJob(bed.namespace, name);
        return (sj.status?.parallelism ?? 1) > 1 && sj.status?.state === "Running" ? sj : undefined;
      },
      240_000,
    );
    assert.equal(up.spec.parallelism, 1, "the operator never writes the spec");
    assert.equal(up.status?.lastSavepoint?.trigger, "rescale");
    const recorded = up.status?.autoscaler?.rescales?.at(-1);
    assert.equal(recorded?.from, 1);
    assert.ok((recorded?.downtimeSeconds ?? -1) >= 0, "the rescale's downtime was measured");
    assert.ok((recorded?.arrivalRate ?? 0) > 0, "the load the scale-up was sized for is kept");
    // The decision in the operator's metrics too.
    const metrics = (await bed.operator?.metrics()) ?? "";
    const labels = `namespace="${bed.namespace}",weir_job="${name}"`;
    assert.match(
      metrics,
      new RegExp(`weir_operator_streamjob_parallelism\\{${labels}\\} ${up.status?.parallelism}`),
    );
    assert.match(
      metrics,
      new RegExp(`weir_operator_autoscaler_recommended_parallelism\\{${labels}\\} \\d`),
    );
    assert.match(metrics, /weir_operator_autoscaler_decisions_total\{reason="ScaleUp"\} [1-9]/);

    const drained = await eventually(
      "the backlog to drain",
      async () => {
        const sj = await readJob(bed.namespace, name);
        const backlog = Number(sj.status?.autoscaler?.inputs?.backlog ?? Number.POSITIVE_INFINITY);
        return backlog < 200 ? sj : undefined;
      },
      240_000,
    );
    assert.ok((drained.status?.parallelism ?? 1) > 1);

    traffic.setRoundsPerTick(0);
    const down = await eventually(
      "the autoscaler to scale back down after its delay",
      async () => {
        const sj = await readJob(bed.namespace, name);
        return sj.status?.parallelism === 1 && sj.status.state === "Running" ? sj : undefined;
      },
      240_000,
    );
    assert.equal(down.status?.autoscaler?.rescales?.at(-1)?.to, 1);
    assert.equal(
      down.metadata.generation,
      applied.metadata.generation,
      "autoscaling never wrote the spec (GitOps tools see no drift)",
    );

    const described = await cli("kubectl", ["describe", "sj", name, "-n", bed.namespace]);
    assert.match(described, /Recommended Parallelism/);
    assert.match(described, /ScaleUp/);
    assert.match(described, /ScaleDown/);
  } finally {
    const rounds = await traffic.stop();
    await assertExactlyOnce(job.output, rounds, { timeoutMs: 240_000 });
  }
});
