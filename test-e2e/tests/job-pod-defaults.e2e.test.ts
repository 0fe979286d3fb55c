// Job pods as a cluster admin expects them, from a release of the chart with its default values
// and a priority class for job pods: a StreamJob without resources gets the chart's requests and
// memory limit (Burstable, not BestEffort), the priority class (resolved by the API server's
// Priority admission) and a Node heap sized from its limit, and runs to Ready with it; a job
// naming its own memory request keeps it, with no default limit below it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CoreV1Api, CustomObjectsApi, SchedulingV1Api, type V1Pod } from "@kubernetes/client-node";
import { Admin } from "@platformatic/kafka";
import { helmRelease, keepOperatorLogs, weirRelease } from "../support/chart.ts";
import { adminKubeConfig, cli, clusterEnv, uniqueName } from "../support/cluster.ts";
import { deleteTopicsOf, ensureTopics } from "../support/kafka.ts";
import { jobReady } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";

const env = clusterEnv();
const release = weirRelease();
const { namespace } = release;
const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const scheduling = kubeConfig.makeApiClient(SchedulingV1Api);
const custom = kubeConfig.makeApiClient(CustomObjectsApi);
const admin = new Admin({
  clientId: "job-pod-defaults-e2e",
  bootstrapBrokers: [env.kafkaBootstrap],
});
const priorityClass = uniqueName("weir-jobs");
const topics = { input: `${namespace}-lines`, output: `${namespace}-counts` };

function streamJob(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name, namespace },
    spec: {
      image: "weir/runtime:dev",
      job: {
        entry: "/app/runtime/examples/word-count.ts",
        config: { name: `${namespace}-${name}`, ...topics },
      },
      kafka: { bootstrapServers: [env.kafkaBootstrap] },
      savepoints: {
        storage: {
          endpoint: env.s3Endpoint,
          bucket: env.s3Bucket,
          credentialsSecret: "weir-storage",
        },
      },
      ...spec,
    },
  };
}

async function create(job: ReturnType<typeof streamJob>): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: "weir.dev",
    version: "v1alpha1",
    namespace,
    plural: "streamjobs",
    body: job,
  });
}

async function podOf(job: string): Promise<V1Pod> {
  return eventually(`a pod of ${job}`, async () => {
    const list = await core.listNamespacedPod({ namespace, labelSelector: `weir.dev/job=${job}` });
    return list.items[0];
  });
}

/** As plain data (the client's V1ResourceRequirements is a class). */
const resourcesOf = (pod: V1Pod) => JSON.parse(JSON.stringify(pod.spec?.containers[0]?.resources));
const nodeOptions = (pod: V1Pod) =>
  pod.spec?.containers[0]?.env?.filter((v) => v.name === "NODE_OPTIONS").map((v) => v.value);

before(async () => {
  await scheduling.createPriorityClass({
    body: { metadata: { name: priorityClass }, value: 1000, description: "Weir e2e job pods" },
  });
  await helmRelease("install", release, [
    "--set",
    "crds.install=false",
    "--set-json",
    `watchNamespaces=${JSON.stringify([namespace])}`,
    "--set",
    `jobPods.priorityClassName=${priorityClass}`,
  ]);
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: "weir-storage" },
      stringData: { accessKey: env.s3AccessKey, secretKey: env.s3SecretKey },
    },
  });
  await ensureTopics(admin, [topics.input, topics.output], 1);
});

after(async () => {
  await cli("kubectl", ["delete", "sj", "--all", "-n", namespace, "--timeout=90s"]).catch(() => {});
  await keepOperatorLogs(release).catch(() => {});
  await cli("helm", ["uninstall", release.name, "-n", namespace, "--wait"]).catch(() => {});
  await core.deleteNamespace({ name: namespace }).catch(() => {});
  await scheduling.deletePriorityClass({ name: priorityClass }).catch(() => {});
  await deleteTopicsOf(admin, [namespace]).catch(() => {});
  await admin.close();
});

describe("job pod defaults from the chart's values", { concurrency: false }, () => {
  test("no resources in the StreamJob: the chart's, Burstable, the priority class, the heap flag; Ready", async () => {
    await create(streamJob("plain"));
    const pod = await podOf("plain");
    assert.deepEqual(resourcesOf(pod), {
      requests: { cpu: "250m", memory: "512Mi" },
      limits: { memory: "512Mi" },
    });
    assert.equal(pod.spec?.priorityClassName, priorityClass);
    assert.equal(pod.spec?.priority, 1000, "the API server resolved the class");
    assert.deepEqual(nodeOptions(pod), ["--max-old-space-size-percentage=75"]);
    const qos = await eventually("the pod's QoS class", async () => {
      const read = await core.readNamespacedPod({ name: pod.metadata?.name ?? "", namespace });
      return read.status?.qosClass;
    });
    assert.equal(qos, "Burstable");
    // Node takes the flag from NODE_OPTIONS: the runtime starts and serves its probes.
    await jobReady(namespace, "plain", 180_000);
  });

  test("the StreamJob's own memory request: kept, no default limit below it, Node's own heap", async () => {
    await create(streamJob("own-memory", { resources: { requests: { memory: "1Gi" } } }));
    const pod = await podOf("own-memory");
    assert.deepEqual(resourcesOf(pod), {
      requests: { memory: "1Gi", cpu: "250m" },
    });
    assert.deepEqual(nodeOptions(pod), []);
  });
});
