// The operator core on the local cluster, with the real runtime in its pods: a StreamJob applied
// with kubectl becomes a run of pods built as the contract says, and Ready; it scales through
// the scale subresource, suspends and resumes, heals lost pods, replaces its run on a change
// (old pods gone before new ones start), keeps the last good run when the operator refuses a
// spec, cleans up on delete, converges after an operator restart, and with two operators only
// the leader acts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type V1Pod, Watch } from "@kubernetes/client-node";
import { adminKubeConfig, cli } from "../support/cluster.ts";
import { ensureTopics, inputProducer, readTopicSettled } from "../support/kafka.ts";
import {
  isReady,
  jobReady,
  type Operator,
  OperatorTestbed,
  patchJobSpec,
  readJob,
} from "../support/operator.ts";
import { eventually } from "../support/wait.ts";

const repo = join(import.meta.dirname, "..", "..");
const kubeConfig = adminKubeConfig();
const bed = new OperatorTestbed("operator");
const { namespace, core, admin } = bed;
const wordCountJob = (name: string, spec: Record<string, unknown> = {}) =>
  bed.wordCountJob(name, spec);
const apply = (manifest: object) => bed.apply(manifest);
const podsOf = (job: string) => bed.podsOf(job);

/** Records every pod event of the namespace from now on (the watch history). */
async function podHistory() {
  const events: { type: string; name: string; run: string; at: number }[] = [];
  const controller = await new Watch(kubeConfig).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    {},
    (type, pod: V1Pod) => {
      events.push({
        type,
        name: pod.metadata?.name ?? "",
        run: pod.metadata?.labels?.["weir.dev/run"] ?? "",
        at: Date.now(),
      });
    },
    () => {},
  );
  return { events, stop: () => controller.abort() };
}

before(() => bed.setUp());
after(() => bed.tearDown());

describe("a StreamJob applied with kubectl", { concurrency: false }, () => {
  const name = "wc";
  let input = "";
  let output = "";

  test("becomes a run of pods built as the contract says, then Ready", async () => {
    const job = await wordCountJob(name);
    input = job.input;
    output = job.output;
    const applied = Date.now();
    await apply(job.manifest);
    const created = await eventually("the run's pods to be created", async () => {
      const pods = await podsOf(name);
      return pods.length === 2 ? pods : undefined;
    });
    const createdAfter = Date.now() - applied;
    await cli("kubectl", [
      "wait",
      "--for=condition=Ready",
      `sj/${name}`,
      "-n",
      namespace,
      "--timeout=120s",
    ]);
    const readyAfter = Date.now() - applied;
    process.stderr.write(
      `[operator e2e] apply → pods created: ${createdAfter} ms; apply → Ready: ${readyAfter} ms\n`,
    );

    const sj = await readJob(namespace, name);
    assert.equal(sj.status?.state, "Running");
    assert.equal(sj.status?.parallelism, 2);
    assert.equal(sj.status?.selector, `weir.dev/job=${name}`);
    assert.ok(sj.metadata.finalizers?.includes("weir.dev/cleanup"));
    assert.ok(
      sj.metadata.managedFields?.some(
        (f) =>
          f.manager === "weir-operator" && f.operation === "Apply" && f.subresource === "status",
      ),
      "the status is server-side applied by Weir's own field manager",
    );
    const run = sj.status?.run?.id ?? "";
    const pods = created.sort((a, b) =>
      (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
    );
    for (const [i, pod] of pods.entries()) {
      assert.equal(pod.metadata?.name, `${name}-${run}-${i}`);
      assert.equal(pod.metadata?.labels?.["weir.dev/job"], name);
      assert.equal(pod.metadata?.labels?.["weir.dev/run"], run);
      assert.equal(pod.metadata?.labels?.["weir.dev/subtask"], String(i));
      const owner = pod.metadata?.ownerReferences?.[0];
      assert.equal(owner?.kind, "StreamJob");
      assert.equal(owner?.uid, sj.metadata.uid);
      assert.equal(owner?.controller, true);
      const container = pod.spec?.containers[0];
      const vars = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(vars.WEIR_JOB, `${namespace}/${name}`);
      assert.equal(vars.WEIR_SUBTASK, String(i));
      assert.equal(vars.WEIR_PARALLELISM, "2");
      assert.equal(vars.WEIR_RUN, run);
      assert.equal(vars.WEIR_CONFIG, "/etc/weir/config.json");
      assert.equal(container?.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(container?.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(container?.securityContext?.capabilities?.drop, ["ALL"]);
      assert.equal(pod.spec?.securityContext?.runAsNonRoot, true);
      assert.equal(pod.spec?.securityContext?.seccompProfile?.type, "RuntimeDefault");
    }
    const events = await cli("kubectl", ["get", "events", "-n", namespace, "-o", "json"]);
    assert.match(events, /RunStarted/);

    // The job really runs: a line in, its counts out.
    const producer = inputProducer();
    await producer.send({ messages: [{ topic: input, value: "to be or not to be" }] });
    await producer.close();
    const { records } = await readTopicSettled(output, 6);
    assert.equal(records.length, 6, "one running count per word of the line");
  });

  test("kubectl scale changes the parallelism through the scale subresource", async () => {
    await cli("kubectl", ["scale", `sj/${name}`, "-n", namespace, "--replicas=3"]);
    const sj = await eventually(
      "3 ready pods of a new run",
      async () => {
        const job = await readJob(namespace, name);
        const pods = await podsOf(name);
        return job.status?.parallelism === 3 &&
          job.status?.state === "Running" &&
          pods.length === 3 &&
          pods.every(isReady)
          ? job
          : undefined;
      },
      120_000,
    );
    assert.equal(sj.spec.parallelism, 3);
    const scale = JSON.parse(
      await cli("kubectl", [
        "get",
        `sj/${name}`,
        "-n",
        namespace,
        "--subresource=scale",
        "-o",
        "json",
      ]),
    );
    assert.equal(scale.status.replicas, 3);
    assert.equal(scale.status.selector, `weir.dev/job=${name}`);
  });

  test("a pod whose process is killed restarts in place; a deleted pod is recreated", async () => {
    const [victim] = await podsOf(name);
    assert.ok(victim?.metadata?.name);
    const podName = victim.metadata.name;
    const pid = Number(victim.status?.containerStatuses?.[0]?.containerID?.replace("weir://", ""));
    assert.ok(pid > 0, "the process kubelet names the container's process");
    process.kill(pid, "SIGKILL");
    await eventually(
      "the container to restart",
      async () => {
        const pod = await core.readNamespacedPod({ namespace, name: podName });
        return (pod.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 && isReady(pod)
          ? pod
          : undefined;
      },
      90_000,
    );

    const uid = victim.metadata.uid;
    await core.deleteNamespacedPod({ namespace, name: podName });
    const recreated = await eventually(
      "the pod to be recreated under its name",
      async () => {
        const pod = await core
          .readNamespacedPod({ namespace, name: podName })
          .catch(() => undefined);
        return pod && pod.metadata?.uid !== uid && isReady(pod) ? pod : undefined;
      },
      90_000,
    );
    assert.equal(
      recreated.metadata?.labels?.["weir.dev/run"],
      victim.metadata.labels?.["weir.dev/run"],
    );
    await jobReady(namespace, name);
  });

  test("a new image replaces the run: every old pod is gone before a new one starts", async () => {
    const before = await readJob(namespace, name);
    const oldRun = before.status?.run?.id;
    const history = await podHistory();
    // Stop, then start (a warm standby's pods wait beside the old ones by design).
    await patchJobSpec(namespace, name, { image: "weir/runtime:v2", warmStandby: false });
    const sj = await eventually(
      "the new run to be Ready",
      async () => {
        const job = await readJob(namespace, name);
        return job.status?.run?.id !== oldRun && job.status?.state === "Running" ? job : undefined;
      },
      180_000,
    );
    history.stop();
    assert.equal(sj.status?.run?.image, "weir/runtime:v2");
    const newRun = sj.status?.run?.id;
    const lastOldDeleted = Math.max(
      ...history.events.filter((e) => e.run === oldRun && e.type === "DELETED").map((e) => e.at),
    );
    const firstNewAdded = Math.min(
      ...history.events.filter((e) => e.run === newRun && e.type === "ADDED").map((e) => e.at),
    );
    const order = history.events.map((e) => `${e.type} ${e.name}`);
    assert.ok(
      history.events.filter((e) => e.run === oldRun && e.type === "DELETED").length === 3,
      `each old pod deleted: ${order.join(", ")}`,
    );
    assert.ok(
      lastOldDeleted <= firstNewAdded,
      `old pods gone before new ones: ${order.join(", ")}`,
    );
    const events = await cli("kubectl", ["get", "events", "-n", namespace, "-o", "json"]);
    assert.match(events, /upgrade of run r\d+ \(mode savepoint\)/);
  });

  test("a spec the operator refuses → Degraded and a Warning, and the run keeps going", async () => {
    const before = await podsOf(name);
    await patchJobSpec(namespace, name, {
      podTemplate: { spec: { env: [{ name: "WEIR_SUBTASK", value: "7" }] } },
    });
    const sj = await eventually("Degraded=True (InvalidSpec)", async () => {
      const job = await readJob(namespace, name);
      const degraded = job.status?.conditions?.find((c) => c.type === "Degraded");
      return degraded?.status === "True" && degraded.observedGeneration === job.metadata.generation
        ? job
        : undefined;
    });
    const degraded = sj.status?.conditions?.find((c) => c.type === "Degraded");
    assert.equal(degraded?.reason, "InvalidSpec");
    assert.match(degraded?.message ?? "", /spec\.podTemplate\.spec\.env\[0\]\.name: WEIR_SUBTASK/);
    const warnings = await cli("kubectl", [
      "get",
      "events",
      "-n",
      namespace,
      "--field-selector",
      "type=Warning",
      "-o",
      "json",
    ]);
    assert.match(warnings, /InvalidSpec/);
    const afterPods = await podsOf(name);
    assert.deepEqual(
      afterPods.map((p) => p.metadata?.uid).sort(),
      before.map((p) => p.metadata?.uid).sort(),
      "the pods of the last good run are untouched",
    );
    assert.ok(afterPods.every(isReady));
    // Mended: the spec is accepted again.
    await patchJobSpec(namespace, name, { podTemplate: null });
    await eventually("Degraded=False", async () => {
      const job = await readJob(namespace, name);
      return job.status?.conditions?.find((c) => c.type === "Degraded")?.status === "False"
        ? true
        : undefined;
    });
  });

  test("suspend stops every pod; resume starts a new run", async () => {
    await patchJobSpec(namespace, name, { state: "suspended" });
    await eventually(
      "Suspended with no pods",
      async () => {
        const job = await readJob(namespace, name);
        return job.status?.state === "Suspended" && (await podsOf(name)).length === 0
          ? job
          : undefined;
      },
      90_000,
    );
    const suspended = await readJob(namespace, name);
    assert.equal(suspended.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
    await patchJobSpec(namespace, name, { state: "running" });
    const resumed = await jobReady(namespace, name);
    assert.notEqual(resumed.status?.run?.id, suspended.status?.run?.id);
  });

  test("an operator killed mid-change and started again converges", async () => {
    const before = await readJob(namespace, name);
    await bed.operator?.kill();
    await patchJobSpec(namespace, name, { parallelism: 1 });
    bed.operator = await bed.startOperator("operator-b");
    const sj = await eventually(
      "one ready pod of a new run",
      async () => {
        const job = await readJob(namespace, name);
        const pods = await podsOf(name);
        return job.status?.state === "Running" &&
          job.status.parallelism === 1 &&
          pods.length === 1 &&
          pods.every(isReady)
          ? job
          : undefined;
      },
      180_000,
    );
    assert.notEqual(sj.status?.run?.id, before.status?.run?.id);
  });

  test("deleting the StreamJob removes its pods and ConfigMaps, then the job", async () => {
    await cli("kubectl", ["delete", "sj", name, "-n", namespace, "--wait=false"]);
    await eventually(
      "the StreamJob to be gone",
      async () =>
        readJob(namespace, name).then(
          () => undefined,
          () => true,
        ),
      90_000,
    );
    assert.equal((await podsOf(name)).length, 0);
    const configMaps = await core.listNamespacedConfigMap({
      namespace,
      labelSelector: `weir.dev/job=${name}`,
    });
    assert.equal(configMaps.items.length, 0);
  });
});

test("the samples run as they are on the local cluster", async () => {
  await ensureTopics(admin, ["lines", "word-counts", "clicks", "clicks-per-user"], 3);
  for (const sample of ["word-count", "clicks-per-user"]) {
    await cli("kubectl", [
      "apply",
      "-n",
      namespace,
      "-f",
      join(repo, "config", "samples", `${sample}.yaml`),
    ]);
    await jobReady(namespace, sample);
  }
  await cli("kubectl", [
    "delete",
    "-n",
    namespace,
    "sj",
    "word-count",
    "clicks-per-user",
    "--timeout=90s",
  ]);
});

describe("two operators at once", { concurrency: false }, () => {
  test("only the leader acts; the other takes over when the leader stops", async () => {
    const second = await bed.startOperator("operator-c");
    try {
      const lease = JSON.parse(
        await cli("kubectl", [
          "get",
          "lease",
          bed.leaseName,
          "-n",
          bed.leaseNamespace,
          "-o",
          "json",
        ]),
      );
      const leaderId = lease.spec.holderIdentity;
      assert.equal(leaderId, bed.operator?.identity, "the first operator holds the Lease");

      const name = "wc-two";
      const job = await wordCountJob(name, { parallelism: 1 });
      await apply(job.manifest);
      await jobReady(namespace, name);
      const acted = async (o: Operator | undefined) =>
        ((await o?.logs()) ?? []).filter(
          (line) => line.job === name && typeof line.reason === "string",
        );
      assert.ok((await acted(bed.operator)).length > 0, "the leader reconciled the job");
      assert.equal((await acted(second)).length, 0, "the stand-by did nothing");

      await bed.operator?.stop();
      await patchJobSpec(namespace, name, { parallelism: 2 });
      await eventually(
        "the stand-by to take over and rescale",
        async () => {
          const sj = await readJob(namespace, name);
          return sj.status?.parallelism === 2 && sj.status.state === "Running" ? sj : undefined;
        },
        180_000,
      );
      assert.ok((await acted(second)).length > 0, "the new leader acted");
      await cli("kubectl", ["delete", "sj", name, "-n", namespace, "--wait=true", "--timeout=90s"]);
    } finally {
      bed.operator = second;
    }
  });
});

test("the operator's service account may do what it uses and nothing else", async () => {
  const can = async (verb: string, resource: string, ns = namespace) => {
    const [plural = "", subresource] = resource.split("/");
    return (
      await cli("kubectl", [
        "auth",
        "can-i",
        verb,
        plural,
        ...(subresource ? [`--subresource=${subresource}`] : []),
        "-n",
        ns,
        `--as=${bed.account}`,
      ]).catch((error: { stdout?: string }) => error.stdout ?? "")
    ).trim();
  };
  for (const [verb, resource] of [
    ["watch", "streamjobs.weir.dev"],
    ["patch", "streamjobs.weir.dev/status"],
    ["create", "pods"],
    ["delete", "pods"],
    ["create", "configmaps"],
    // A storage CA bundle a job names, by name.
    ["get", "configmaps"],
    ["create", "events.events.k8s.io"],
    ["create", "streamsavepoints.weir.dev"],
    ["patch", "streamsavepoints.weir.dev/status"],
    ["get", "secrets"],
  ] as const)
    assert.equal(await can(verb, resource), "yes", `${verb} ${resource}`);
  for (const [verb, resource] of [
    ["update", "streamjobs.weir.dev"],
    ["delete", "streamjobs.weir.dev"],
    ["list", "secrets"],
    ["watch", "secrets"],
    ["list", "configmaps"],
    ["create", "deployments.apps"],
    ["patch", "pods"],
    ["create", "pods/exec"],
  ] as const)
    assert.equal(await can(verb, resource), "no", `${verb} ${resource}`);
  assert.equal(await can("update", "leases.coordination.k8s.io", bed.leaseNamespace), "yes");
  assert.equal(await can("update", "leases.coordination.k8s.io", namespace), "no");
});
