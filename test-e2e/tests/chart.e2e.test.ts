// The chart on the local cluster, as a user installs it: `helm install` from the repository
// path runs the operator as a pod (image weir/operator from the kubelet's catalog) with its
// service-account token; it runs the word-count sample to Ready; the Argo CD health check
// reads the real objects; `helm upgrade` to a new chart version replaces the operator and
// leaves the job's pods alone; the account is denied what the operator does not use; watched
// namespaces get Roles, all namespaces a ClusterRole; `helm uninstall` removes it all but the
// CRDs. The CRDs are shared with every other test: the chart takes them over with server-side
// apply (support/chart.ts) and keeps them on uninstall.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1Pod,
} from "@kubernetes/client-node";
import { Admin } from "@platformatic/kafka";
import { parseAllDocuments, stringify } from "yaml";
import { argoHealth } from "../../helm/argocd/health.ts";
import { jobRules, leaderElectionRules, nodeRules, plainRules } from "../../operator/src/rbac.ts";
import {
  CHART as chart,
  helmRelease,
  keepOperatorLogs,
  operatorPods as podsOf,
  weirRelease,
} from "../support/chart.ts";
import { adminKubeConfig, cli, clusterEnv, uniqueName } from "../support/cluster.ts";
import { deleteTopicsOf, inputProducer, readTopicSettled } from "../support/kafka.ts";
import { jobReady, patchJobSpec, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";

const env = clusterEnv();
const repo = join(import.meta.dirname, "..", "..");
const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
const leases = kubeConfig.makeApiClient(CoordinationV1Api);
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers: [env.kafkaBootstrap] });

const weir = weirRelease();
const { operatorName, account, selector: instance } = weir;
const operatorNs = weir.namespace;
const jobsNs = uniqueName("chart-jobs");
// Watching only jobsNs: an operator watching every namespace would act on other tests' jobs.
const values = ["--set-json", `watchNamespaces=["${jobsNs}"]`];

const notFound = (error: unknown) => error instanceof ApiException && error.code === 404;
const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

async function jobPods(job: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({
    namespace: jobsNs,
    labelSelector: `weir.dev/job=${job}`,
  });
  return list.items;
}

/** `kubectl auth can-i` as `user` (exit status 1 is its "no"). */
async function canI(user: string, verb: string, resource: string, namespace?: string) {
  const where = namespace ? ["-n", namespace] : ["--all-namespaces"];
  const [plural = "", subresource] = resource.split("/");
  const sub = subresource ? [`--subresource=${subresource}`] : [];
  try {
    return (await cli("kubectl", ["auth", "can-i", verb, plural, ...sub, `--as=${user}`, ...where]))
      .trim()
      .startsWith("yes");
  } catch (error) {
    if (String((error as { stdout?: string }).stdout ?? "").trim() === "no") return false;
    throw error;
  }
}

/** The sample StreamJobs as they are, on topics of their own. */
function sampleJob(name: string, spec: Record<string, unknown> = {}) {
  const sample = parseAllDocuments(
    readFileSync(join(repo, "config", "samples", "word-count.yaml"), "utf8"),
  ).map((doc) => doc.toJS());
  const job = sample.find((doc) => doc.kind === "StreamJob");
  const secret = sample.find((doc) => doc.kind === "Secret");
  job.metadata = { name, namespace: jobsNs };
  job.spec.job.config = {
    name: `${jobsNs}-${name}`,
    input: `${jobsNs}-${name}-in`,
    output: `${jobsNs}-${name}-out`,
  };
  job.spec.checkpoints.interval = "1s";
  Object.assign(job.spec, spec);
  secret.metadata.namespace = jobsNs;
  return { job, secret, input: job.spec.job.config.input, output: job.spec.job.config.output };
}

async function apply(...manifests: object[]): Promise<void> {
  const file = join(tmpdir(), `${uniqueName("manifest")}.yaml`);
  writeFileSync(file, manifests.map((m) => stringify(m)).join("---\n"));
  await cli("kubectl", ["apply", "-f", file]);
}

async function sjJson(name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await cli("kubectl", ["get", "sj", name, "-n", jobsNs, "-o", "json"]));
}

const timed = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
  const started = Date.now();
  const result = await work();
  process.stderr.write(`[chart e2e] ${what}: ${Date.now() - started} ms\n`);
  return result;
};

before(async () => {
  await core.createNamespace({ body: { metadata: { name: jobsNs } } });
});

after(async () => {
  // Jobs go while the operator still runs (their finalizers would hold the namespace).
  await cli("kubectl", ["delete", "sj", "--all", "-n", jobsNs, "--timeout=90s"]).catch(() => {});
  await cli("helm", ["uninstall", weir.name, "-n", operatorNs, "--wait"]).catch(() => {});
  for (const namespace of [jobsNs, operatorNs]) {
    await core.deleteNamespace({ name: namespace }).catch(() => {});
  }
  await deleteTopicsOf(admin, [jobsNs]).catch(() => {});
  await admin.close();
});

describe("the chart, installed with helm", { concurrency: false }, () => {
  const name = "word-count";
  let runningPods: string[] = [];

  test("helm install: the operator runs as a pod with its service account, Ready and leading", async () => {
    await timed("helm install --wait", () => helmRelease("install", weir, values));
    const [pod, ...others] = await podsOf(weir);
    assert.ok(pod?.metadata?.name && others.length === 0, "one operator pod");
    assert.ok(isReady(pod));
    assert.equal(pod.spec?.serviceAccountName, operatorName);
    assert.equal(pod.spec?.containers[0]?.image, "weir/operator:0.1.0");
    // Its identity is its pod name, and it holds the Lease in its own namespace.
    const lease = await eventually("the operator to hold its Lease", async () => {
      const found = await leases
        .readNamespacedLease({ name: operatorName, namespace: operatorNs })
        .catch((error: unknown) => (notFound(error) ? undefined : Promise.reject(error)));
      return found?.spec?.holderIdentity ? found : undefined;
    });
    assert.equal(lease.spec?.holderIdentity, pod.metadata.name);
    const logs = await cli("kubectl", ["logs", pod.metadata.name, "-n", operatorNs]);
    assert.match(logs, /caches synced/);
    assert.match(logs, new RegExp(`"namespaces":\\["${jobsNs}"\\]`));
  });

  test("it runs the word-count sample to Ready, and the job counts words", async () => {
    const { job, secret, input, output } = sampleJob(name);
    await admin.createTopics({ topics: [input, output], partitions: 3, replicas: 1 });
    await timed("apply → Ready", async () => {
      await apply(secret, job);
      await jobReady(jobsNs, name, 180_000);
    });
    const producer = inputProducer();
    await producer.send({ messages: [{ topic: input, value: "to be or not to be" }] });
    await producer.close();
    assert.equal((await readTopicSettled(output, 6)).records.length, 6);
    runningPods = (await jobPods(name)).map((p) => p.metadata?.uid ?? "").sort();
    assert.equal(runningPods.length, 2);
  });

  test("the Argo CD health check reads the real object: Healthy; older status → Progressing", async () => {
    const live = await sjJson(name);
    assert.deepEqual((await argoHealth(live)).status, "Healthy");
    // The same object as Argo CD sees it right after a spec change the operator has not seen.
    const metadata = live.metadata as { generation: number };
    const changed = { ...live, metadata: { ...metadata, generation: metadata.generation + 1 } };
    assert.equal((await argoHealth(changed)).status, "Progressing");
  });

  test("the service account may do what the operator does, and nothing else", async () => {
    const allowed: [string, string, string][] = [
      ["watch", "streamjobs.weir.dev", jobsNs],
      ["patch", "streamjobs.weir.dev/status", jobsNs],
      ["create", "pods", jobsNs],
      ["deletecollection", "configmaps", jobsNs],
      ["get", "configmaps", jobsNs], // a storage CA bundle a job names, by name
      ["get", "secrets", jobsNs],
      ["create", "secrets", jobsNs], // each job's control token
      ["create", "events.events.k8s.io", jobsNs],
      ["update", "leases.coordination.k8s.io", operatorNs],
    ];
    for (const [verb, resource, namespace] of allowed) {
      assert.ok(
        await canI(account, verb, resource, namespace),
        `${verb} ${resource} in ${namespace}`,
      );
    }
    const denied: [string, string, string | undefined][] = [
      ["update", "streamjobs.weir.dev", jobsNs], // the spec belongs to the user (GitOps)
      ["delete", "streamjobs.weir.dev", jobsNs],
      ["list", "secrets", jobsNs], // by name only
      ["update", "secrets", jobsNs], // a control token is immutable, deleted with its job
      ["delete", "secrets", jobsNs],
      ["list", "configmaps", jobsNs], // by name only
      ["create", "deployments.apps", jobsNs],
      ["list", "streamjobs.weir.dev", "default"], // not a watched namespace
      ["create", "pods", "default"],
      ["list", "pods", undefined], // nothing cluster-wide
      ["update", "leases.coordination.k8s.io", jobsNs],
      ["create", "customresourcedefinitions.apiextensions.k8s.io", undefined],
      ["create", "rolebindings.rbac.authorization.k8s.io", jobsNs],
    ];
    for (const [verb, resource, namespace] of denied) {
      assert.equal(
        await canI(account, verb, resource, namespace),
        false,
        `${verb} ${resource} in ${namespace ?? "all namespaces"}`,
      );
    }
    // Job pods' account: no permission at all, no token mounted.
    const jobAccount = `system:serviceaccount:${jobsNs}:weir-job`;
    assert.equal(await canI(jobAccount, "get", "pods", jobsNs), false);
    assert.equal(await canI(jobAccount, "get", "streamjobs.weir.dev", jobsNs), false);
    const sa = await core.readNamespacedServiceAccount({ name: "weir-job", namespace: jobsNs });
    assert.equal(sa.automountServiceAccountToken, false);
  });

  test("watched namespaces get a Role and RoleBinding, nothing cluster-wide but reading Nodes", async () => {
    const role = await rbac.readNamespacedRole({ name: operatorName, namespace: jobsNs });
    assert.deepEqual(
      role.rules?.map(({ apiGroups, resources, verbs }) => ({ apiGroups, resources, verbs })),
      plainRules(jobRules),
    );
    const lease = await rbac.readNamespacedRole({
      name: `${operatorName}-leader-election`,
      namespace: operatorNs,
    });
    assert.deepEqual(
      lease.rules?.map(({ apiGroups, resources, verbs }) => ({ apiGroups, resources, verbs })),
      plainRules(leaderElectionRules),
    );
    // Nodes have no namespace: which are cordoned is read cluster-wide (drains), nothing else.
    const clusterRoles = await rbac.listClusterRole({ labelSelector: instance });
    const clusterBindings = await rbac.listClusterRoleBinding({ labelSelector: instance });
    assert.deepEqual(
      clusterRoles.items.map((r) => [
        r.metadata?.name,
        r.rules?.map(({ apiGroups, resources, verbs }) => ({ apiGroups, resources, verbs })),
      ]),
      [[`${operatorName}-nodes`, plainRules(nodeRules)]],
    );
    assert.deepEqual(
      clusterBindings.items.map((b) => b.roleRef.name),
      [`${operatorName}-nodes`],
    );
  });

  test("helm upgrade to a new chart version replaces the operator and leaves the job running", async () => {
    await keepOperatorLogs(weir);
    const [before] = await podsOf(weir);
    const generation = (await readJob(jobsNs, name)).metadata.generation;
    const run = (await readJob(jobsNs, name)).status?.run?.id;
    // The chart as its next version would be: a bumped version, and a changed Deployment.
    const next = join(mkdtempSync(join(tmpdir(), "weir-chart-")), "weir");
    cpSync(chart, next, { recursive: true });
    const chartYaml = join(next, "Chart.yaml");
    writeFileSync(
      chartYaml,
      readFileSync(chartYaml, "utf8").replace(/^version: .*$/m, "version: 0.1.1"),
    );
    await timed("helm upgrade --wait", () =>
      helmRelease("upgrade", weir, [...values, "--set", "logLevel=debug"], next),
    );
    const after = await eventually(
      "one operator pod of the new version, leading",
      async () => {
        const pods = await podsOf(weir);
        const pod = pods[0];
        if (pods.length !== 1 || pod?.metadata?.uid === before?.metadata?.uid || !pod)
          return undefined;
        const lease = await leases.readNamespacedLease({
          name: operatorName,
          namespace: operatorNs,
        });
        return lease.spec?.holderIdentity === pod.metadata?.name ? pod : undefined;
      },
      120_000,
    );
    assert.ok(after.spec?.containers[0]?.args?.includes("--log-level=debug"));
    const releases = JSON.parse(await cli("helm", ["list", "-n", operatorNs, "-o", "json"]));
    assert.equal(releases[0].chart, "weir-0.1.1");
    // The CRDs are templates: the upgrade updated them too.
    const crd = JSON.parse(
      await cli("kubectl", ["get", "crd", "streamjobs.weir.dev", "-o", "json"]),
    );
    assert.equal(crd.metadata.labels["helm.sh/chart"], "weir-0.1.1");

    // The new operator has reconciled the job (a fresh reconcile writes status) and left it be.
    const job = await jobReady(jobsNs, name);
    assert.equal(job.status?.run?.id, run);
    assert.equal(job.metadata.generation, generation, "the operator never writes the spec");
    assert.deepEqual((await jobPods(name)).map((p) => p.metadata?.uid ?? "").sort(), runningPods);
  });

  test("the new operator acts: suspended → Suspended; a failing image → Degraded (Argo CD too)", async () => {
    await patchJobSpec(jobsNs, name, { state: "suspended" });
    await eventually(
      "the job to be suspended",
      async () => {
        const job = await readJob(jobsNs, name);
        return job.status?.state === "Suspended" &&
          job.status.observedGeneration === job.metadata.generation &&
          (await jobPods(name)).length === 0
          ? job
          : undefined;
      },
      120_000,
    );
    assert.equal((await argoHealth(await sjJson(name))).status, "Suspended");

    const broken = sampleJob("broken", { image: "weir/no-such-image:1", parallelism: 1 });
    await apply(broken.job);
    const health = await eventually(
      "the broken job to be Degraded",
      async () => {
        const verdict = await argoHealth(await sjJson("broken"));
        return verdict.status === "Degraded" ? verdict : undefined;
      },
      120_000,
    );
    assert.match(health.message, /PodsFailing: .*(ErrImagePull|ImagePullBackOff)/);
  });

  test("watching every namespace: a ClusterRole, with the same rules", async () => {
    const wide = uniqueName("weir");
    const wideNs = uniqueName("chart-wide");
    // No replica: an operator watching every namespace would act on other tests' jobs.
    await cli("helm", [
      "install",
      wide,
      chart,
      "-n",
      wideNs,
      "--create-namespace",
      "--set",
      "replicaCount=0,crds.install=false",
      "--wait",
    ]);
    try {
      const role = await rbac.readClusterRole({ name: `${wide}-operator` });
      assert.deepEqual(
        role.rules?.map(({ apiGroups, resources, verbs }) => ({ apiGroups, resources, verbs })),
        plainRules(jobRules),
      );
      const user = `system:serviceaccount:${wideNs}:${wide}-operator`;
      assert.ok(await canI(user, "watch", "streamjobs.weir.dev", undefined));
      assert.ok(await canI(user, "create", "pods", jobsNs));
      assert.equal(await canI(user, "list", "secrets", undefined), false);
      assert.equal(await canI(user, "update", "streamjobs.weir.dev", undefined), false);
      assert.equal(await canI(user, "update", "leases.coordination.k8s.io", jobsNs), false);
    } finally {
      await cli("helm", ["uninstall", wide, "-n", wideNs, "--wait"]);
      await core.deleteNamespace({ name: wideNs }).catch(() => {});
    }
    await assert.rejects(rbac.readClusterRole({ name: `${wide}-operator` }), notFound);
    await assert.rejects(rbac.readClusterRoleBinding({ name: `${wide}-operator` }), notFound);
  });

  test("helm uninstall removes everything but the CRDs", async () => {
    await cli("kubectl", ["delete", "sj", "--all", "-n", jobsNs, "--timeout=120s"]);
    await keepOperatorLogs(weir);
    await cli("helm", ["uninstall", weir.name, "-n", operatorNs, "--wait"]);
    await eventually("the operator's pods to be gone", async () =>
      (await podsOf(weir)).length === 0 ? true : undefined,
    );
    for (const namespace of [operatorNs, jobsNs]) {
      const left = await cli("kubectl", [
        "get",
        "deployments,services,serviceaccounts,roles,rolebindings,configmaps",
        "-n",
        namespace,
        "-l",
        instance,
        "-o",
        "name",
      ]);
      assert.equal(left.trim(), "", `nothing of the release in ${namespace}`);
    }
    const crds = await cli("kubectl", [
      "get",
      "crd",
      "streamjobs.weir.dev",
      "streamsavepoints.weir.dev",
      "-o",
      "name",
    ]);
    assert.equal(crds.trim().split("\n").length, 2, "the CRDs are kept");
  });
});
