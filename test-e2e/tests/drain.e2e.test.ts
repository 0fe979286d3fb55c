// A node drained under a running job: a job at parallelism 3 spread over three nodes (the
// default topology spread), one node drained with `kubectl drain` while input arrives. The
// job's PodDisruptionBudget holds the drain's evictions off while the operator moves the run
// through a savepoint to the other nodes; the drain then completes, and every running count
// comes out exactly once. The drain's downtime (the operator's measure: from the
// stop-with-savepoint to the next run Ready) is printed.
//
// The three nodes are process kubelets this test adds to the running cluster (whatever its
// `up --nodes`), tainted so that no other test's pods land on them, and removed at the end.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { PolicyV1Api, type V1Pod } from "@kubernetes/client-node";
import { adminKubeConfig, cli, clusterEnv } from "../support/cluster.ts";
import { addNodes, EXTRA_NODE_TOLERATION, type ExtraNodes } from "../support/nodes.ts";
import { isReady, jobReady, nextRunRunning, OperatorTestbed } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

const bed = new OperatorTestbed("drain");
let nodes: ExtraNodes | undefined;
let traffic: ReturnType<typeof produceContinuously> | undefined;

before(async () => {
  nodes = await addNodes(3);
  await bed.setUp();
});
after(async () => {
  await traffic?.stop();
  await bed.tearDown();
  await nodes?.remove();
});

const nodeOf = (pod: V1Pod) => pod.spec?.nodeName ?? "";

/** `kubectl drain`, with what it said (its evictions refused by the budget, on stderr). */
async function drain(node: string): Promise<{ seconds: number; output: string }> {
  const env = clusterEnv();
  const kubectl = env.binDirs.map((d) => join(d, "kubectl")).find((p) => existsSync(p)) ?? "";
  const started = Date.now();
  const { stdout, stderr } = await promisify(execFile)(
    kubectl,
    ["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s"],
    { env: { ...process.env, KUBECONFIG: env.kubeconfig } },
  );
  return { seconds: (Date.now() - started) / 1000, output: `${stdout}${stderr}` };
}

test("a drained node's job pods move to the other nodes through a savepoint, exactly once", async () => {
  const names = nodes?.names ?? [];
  const name = "wc";
  const job = await bed.wordCountJob(name, {
    parallelism: 3,
    // Only on this test's nodes (tolerating their taint); the spread is the operator's default.
    podTemplate: {
      spec: {
        tolerations: [EXTRA_NODE_TOLERATION],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                {
                  matchExpressions: [
                    { key: "kubernetes.io/hostname", operator: "In", values: names },
                  ],
                },
              ],
            },
          },
        },
      },
    },
  });
  await bed.apply(job.manifest);
  const running = await jobReady(bed.namespace, name, 180_000);
  const first = await bed.podsOf(name);
  assert.deepEqual(first.map(nodeOf).sort(), [...names].sort(), "one pod on each node");
  // Each node's pods have addresses from its own range of loopback.
  for (const pod of first) {
    const node = await bed.core.readNode({ name: nodeOf(pod) });
    const prefix = node.spec?.podCIDR?.replace(/\.0\.0\/16$/, ".");
    assert.ok(prefix && pod.status?.podIP?.startsWith(prefix), `${pod.status?.podIP} in ${prefix}`);
    assert.ok(node.spec?.taints?.some((t) => t.key === EXTRA_NODE_TOLERATION.key));
  }

  const policy = adminKubeConfig().makeApiClient(PolicyV1Api);
  const budget = await eventually("the job's PodDisruptionBudget to be counted", async () => {
    const pdb = await policy.readNamespacedPodDisruptionBudget({ name, namespace: bed.namespace });
    return pdb.status?.currentHealthy === 3 ? pdb : undefined;
  });
  assert.equal(budget.spec?.maxUnavailable, 0);
  assert.equal(budget.status?.disruptionsAllowed, 0);

  const input = produceContinuously(job.input, 3);
  traffic = input;
  await eventually("input to flow", async () => (input.rounds >= 20 ? true : undefined));
  const drained = nodeOf((await bed.podsOf(name))[0] ?? {});
  const drainCommand = await drain(drained);

  const moved = await nextRunRunning(bed.namespace, name, running.status?.run?.id, 180_000);
  assert.equal(moved.status?.lastSavepoint?.trigger, "drain");
  assert.equal(moved.status?.lastSavepoint?.run, running.status?.run?.id);
  assert.equal(moved.status?.run?.restoredFrom, moved.status?.lastSavepoint?.path);
  assert.equal(moved.status?.run?.specHash, running.status?.run?.specHash, "the same spec");
  const pods = await bed.podsOf(name);
  assert.equal(pods.length, 3);
  assert.ok(pods.every(isReady));
  assert.ok(
    pods.every((p) => nodeOf(p) !== drained && names.includes(nodeOf(p))),
    `no pod left on ${drained}: ${pods.map(nodeOf).join(", ")}`,
  );
  const cordoned = await bed.core.readNode({ name: drained });
  assert.equal(cordoned.spec?.unschedulable, true, "the node stays cordoned");

  const events = JSON.parse(
    await cli("kubectl", ["get", "events", "-n", bed.namespace, "-o", "json"]),
  ) as { items: { reason?: string; message?: string }[] };
  const said = (reason: string) => events.items.find((e) => e.reason === reason)?.message ?? "";
  assert.match(said("NodeDraining"), new RegExp(`on ${drained}`));
  const ready = /drain completed in ([\d.]+) s \(downtime ([\d.]+) s\)/.exec(
    events.items.map((e) => e.message ?? "").find((m) => m.startsWith("drain completed")) ?? "",
  );
  assert.ok(ready, "the drain's RunReady Event measures it");
  process.stdout.write(
    `# drain of ${drained}: kubectl drain took ${drainCommand.seconds.toFixed(1)} s; the operator moved run ${running.status?.run?.id} → ${moved.status?.run?.id} in ${ready[1]} s, downtime ${ready[2]} s${/disruption budget/.test(drainCommand.output) ? " (evictions held off by the budget meanwhile)" : ""}\n`,
  );

  // A while more on the new run, then every count exactly once.
  const at = input.rounds;
  await eventually("input to flow on the new run", async () =>
    input.rounds >= at + 20 ? true : undefined,
  );
  traffic = undefined;
  await assertExactlyOnce(job.output, await input.stop(), { timeoutMs: 180_000 });
});
