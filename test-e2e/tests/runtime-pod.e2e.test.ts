// The runtime as a pod of the local cluster: the image catalog's weir/runtime runs this
// repository's runtime process with its configuration from a ConfigMap, storage credentials
// from a Secret and its pod IP from the downward API; it becomes Ready, processes, and stops
// gracefully when the pod is deleted.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ApiException, CoreV1Api } from "@kubernetes/client-node";
import { Admin } from "@platformatic/kafka";
import { httpGet } from "../cluster/probe.ts";
import { adminKubeConfig, clusterEnv, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopicSettled } from "../support/kafka.ts";
import { eventually } from "../support/wait.ts";

const env = clusterEnv();
const core = adminKubeConfig().makeApiClient(CoreV1Api);
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers: [env.kafkaBootstrap] });
const namespace = uniqueName("runtime-pod");
const jobName = uniqueName("wc");
const input = `${jobName}-lines`;
const output = `${jobName}-counts`;

before(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await admin.createTopics({ topics: [input, output], partitions: 1, replicas: 1 });
});

after(async () => {
  await core.deleteNamespace({ name: namespace }).catch(() => {});
  await admin
    .deleteTopics({ topics: [input, output, `${jobName}-counts-repartition`] })
    .catch(() => {});
  await admin.close();
});

test("a weir/runtime pod runs a job, serves its control API on the pod IP, and stops on delete", async () => {
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: { name: "job-config" },
      data: {
        "config.json": JSON.stringify({
          kafka: { bootstrap: [env.kafkaBootstrap] },
          storage: {
            endpoint: env.s3Endpoint,
            bucket: env.s3Bucket,
            prefix: "runtime-pod-tests",
            region: env.s3Region,
          },
          checkpointIntervalMs: 500,
        }),
      },
    },
  });
  await core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: "storage" },
      stringData: { S3_ACCESS_KEY: env.s3AccessKey, S3_SECRET_KEY: env.s3SecretKey },
    },
  });
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: "runtime-0" },
      spec: {
        containers: [
          {
            name: "runtime",
            image: "weir/runtime:dev",
            args: ["/app/test-e2e/fixtures/word-count-job.ts"],
            env: [
              { name: "WEIR_JOB", value: `${namespace}/${jobName}` },
              { name: "WEIR_SUBTASK", value: "0" },
              { name: "WEIR_PARALLELISM", value: "1" },
              { name: "WEIR_CONFIG", value: "/etc/weir/config.json" },
              { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
              { name: "TEST_JOB", value: jobName },
              { name: "TEST_INPUT", value: input },
              { name: "TEST_OUTPUT", value: output },
            ],
            envFrom: [{ secretRef: { name: "storage" } }],
            volumeMounts: [{ name: "config", mountPath: "/etc/weir", readOnly: true }],
            readinessProbe: { httpGet: { path: "/readyz", port: 9249 }, periodSeconds: 1 },
          },
        ],
        volumes: [{ name: "config", configMap: { name: "job-config" } }],
        terminationGracePeriodSeconds: 30,
      },
    },
  });
  const pod = await eventually(
    "the runtime pod to be Ready",
    async () => {
      const p = await core.readNamespacedPod({ name: "runtime-0", namespace });
      return p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        ? p
        : undefined;
    },
    90_000,
  );

  const producer = inputProducer();
  await producer.send({ messages: [{ topic: input, value: "to be or not to be" }] });
  await producer.close();
  const { records } = await readTopicSettled(output, 6);
  assert.equal(records.length, 6, "one running count per word of the line");
  const last = new Map(
    records
      .map((r) => JSON.parse(r.value ?? "") as { key: string; value: number })
      .map((c) => [c.key, c.value]),
  );
  assert.deepEqual(Object.fromEntries(last), { to: 2, be: 2, or: 1, not: 1 });

  const status = JSON.parse((await httpGet(`http://${pod.status?.podIP}:9249/v1/status`)).body);
  assert.equal(status.job.name, jobName);
  assert.equal(status.tasks.length, 2, "one source task and one repartition task");

  await core.deleteNamespacedPod({ name: "runtime-0", namespace });
  const gone = await eventually("the pod to be gone", () =>
    core.readNamespacedPod({ name: "runtime-0", namespace }).then(
      () => undefined,
      (error: unknown) => (error instanceof ApiException ? error.code : undefined),
    ),
  );
  assert.equal(gone, 404);
});
