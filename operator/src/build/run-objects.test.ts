import assert from "node:assert/strict";
import { test } from "node:test";
import type { StreamJob } from "../api/types.ts";
import { runSpecOf, specHash } from "../decide/run-spec.ts";
import { buildConfigMap, buildPod, jobFieldOf, type RunRef } from "./run-objects.ts";

const job = {
  apiVersion: "weir.dev/v1alpha1",
  kind: "StreamJob",
  metadata: { name: "clicks", namespace: "team", uid: "u-1", generation: 3 },
  spec: {
    image: "weir/runtime:2",
    imagePullPolicy: "IfNotPresent",
    job: {
      entry: "/app/runtime/examples/clicks-per-user.ts",
      args: ["--x"],
      config: { input: "in" },
    },
    kafka: { bootstrapServers: ["127.0.0.1:9092"] },
    parallelism: 3,
    state: "running",
    upgradeMode: "savepoint",
    checkpoints: { interval: "2s" },
    savepoints: {
      storage: {
        endpoint: "http://127.0.0.1:9000",
        bucket: "weir-savepoints",
        prefix: "weir",
        region: "us-east-1",
        credentialsSecret: "minio",
      },
    },
    allowNonRestoredState: false,
    readinessTimeout: "2m",
    autoscaler: { enabled: false },
    resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } },
    podTemplate: {
      metadata: { labels: { team: "payments" }, annotations: { "example.com/a": "b" } },
      spec: {
        serviceAccountName: "jobs",
        env: [{ name: "EXTRA", value: "1" }],
        securityContext: { runAsUser: 1000 },
        containerSecurityContext: { readOnlyRootFilesystem: false },
      },
    },
  },
} as unknown as StreamJob;

const spec = runSpecOf(job);
const run: RunRef = { job, id: "r4", spec, specHash: specHash(spec) };

test("a run's pod: name, labels, owner, contract environment and configuration", () => {
  const pod = buildPod(run, 1);
  assert.equal(pod.metadata?.name, "clicks-r4-1");
  assert.deepEqual(
    {
      job: pod.metadata?.labels?.["weir.dev/job"],
      run: pod.metadata?.labels?.["weir.dev/run"],
      subtask: pod.metadata?.labels?.["weir.dev/subtask"],
      team: pod.metadata?.labels?.team,
    },
    { job: "clicks", run: "r4", subtask: "1", team: "payments" },
  );
  assert.equal(pod.metadata?.annotations?.["example.com/a"], "b");
  assert.equal(pod.metadata?.annotations?.["weir.dev/spec-hash"], run.specHash);
  assert.deepEqual(pod.metadata?.ownerReferences, [
    {
      apiVersion: "weir.dev/v1alpha1",
      kind: "StreamJob",
      name: "clicks",
      uid: "u-1",
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  const container = pod.spec?.containers[0];
  assert.equal(container?.image, "weir/runtime:2");
  assert.deepEqual(container?.args, ["/app/runtime/examples/clicks-per-user.ts", "--x"]);
  const env = Object.fromEntries(
    (container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]),
  );
  assert.equal(env.WEIR_JOB, "team/clicks");
  assert.equal(env.WEIR_RUN, "r4");
  assert.equal(env.WEIR_SUBTASK, "1");
  assert.equal(env.WEIR_PARALLELISM, "3");
  assert.equal(env.WEIR_RESTORE_FROM, "");
  assert.equal(env.WEIR_CONFIG, "/etc/weir/config.json");
  assert.deepEqual(env.POD_IP, { fieldRef: { fieldPath: "status.podIP" } });
  assert.deepEqual(env.S3_SECRET_KEY, { secretKeyRef: { name: "minio", key: "secretKey" } });
  assert.equal(env.EXTRA, "1");
  assert.deepEqual(container?.resources, job.spec.resources);
  assert.deepEqual(pod.spec?.volumes?.[0], {
    name: "config",
    configMap: { name: "clicks-r4-config" },
  });
  assert.equal(pod.spec?.serviceAccountName, "jobs");
  assert.equal(pod.spec?.automountServiceAccountToken, false);
});

test("secure by default, with the podTemplate's security settings merged over the defaults", () => {
  const pod = buildPod(run, 0);
  assert.deepEqual(pod.spec?.securityContext, {
    runAsNonRoot: true,
    runAsUser: 1000,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: "RuntimeDefault" },
  });
  const plain = buildPod({ ...run, spec: { ...spec, podTemplate: {} } }, 0).spec?.containers[0];
  assert.deepEqual(plain?.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    privileged: false,
    capabilities: { drop: ["ALL"] },
  });
  assert.equal(pod.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem, false);
  assert.equal(pod.spec?.containers[0]?.securityContext?.allowPrivilegeEscalation, false);
});

test("the run's ConfigMap is the runtime's configuration file", () => {
  const configMap = buildConfigMap(run);
  assert.equal(configMap.metadata?.name, "clicks-r4-config");
  const config = JSON.parse(configMap.data?.["config.json"] ?? "{}");
  assert.deepEqual(config, {
    kafka: { bootstrap: ["127.0.0.1:9092"] },
    storage: {
      endpoint: "http://127.0.0.1:9000",
      bucket: "weir-savepoints",
      prefix: "weir",
      region: "us-east-1",
    },
    checkpointIntervalMs: 2000,
    allowNonRestoredState: false,
    job: { config: { input: "in" } },
  });
  assert.doesNotMatch(
    configMap.data?.["config.json"] ?? "",
    /secret/i,
    "no credentials in the ConfigMap",
  );
});

test("the spec hash ignores key order and changes with what a pod carries", () => {
  const reordered = {
    ...spec,
    kafka: { ...spec.kafka },
    job: { config: spec.job.config, entry: spec.job.entry, args: spec.job.args },
  };
  assert.equal(specHash(reordered), specHash(spec));
  assert.notEqual(specHash({ ...spec, image: "weir/runtime:3" }), specHash(spec));
});

test("a refused pod's field names the StreamJob field it comes from", () => {
  const cases: [string, string | undefined][] = [
    ["metadata.labels", "spec.podTemplate.metadata.labels"],
    ["metadata.annotations[example.com/a]", "spec.podTemplate.metadata.annotations[example.com/a]"],
    ["spec.containers[0].resources.limits[cpu]", "spec.resources.limits[cpu]"],
    ["spec.containers[0].image", "spec.image"],
    [
      "spec.containers[0].securityContext.privileged",
      "spec.podTemplate.spec.containerSecurityContext.privileged",
    ],
    ["spec.tolerations[0].operator", "spec.podTemplate.spec.tolerations[0].operator"],
    // The contract's variables come first (nine with storage credentials), the template's after.
    ["spec.containers[0].env[9].name", "spec.podTemplate.spec.env[0].name"],
    ["spec.containers[0].env[2].value", undefined],
    ["spec.volumes[0]", undefined],
  ];
  for (const [field, expected] of cases)
    assert.equal(jobFieldOf(run, "Pod", field), expected, field);
  assert.equal(jobFieldOf(run, "ConfigMap", "data"), "spec.job.config");
});
