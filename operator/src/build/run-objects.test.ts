import assert from "node:assert/strict";
import { test } from "node:test";
import type { StreamJob } from "../api/types.ts";
import { runSpecOf, specHash } from "../decide/run-spec.ts";
import { buildControlTokenSecret, newControlToken } from "./control-token.ts";
import { controlTokenSecretName } from "./names.ts";
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

test("a container's CPU limit reaches the runtime in millicores (its worker threads); none, none", () => {
  const limited = {
    ...run,
    spec: { ...run.spec, resources: { limits: { cpu: "1500m", memory: "1Gi" } } },
  } as RunRef;
  const env = buildPod(limited, 0).spec?.containers[0]?.env ?? [];
  const cpu = env.filter((e) => e.name === "WEIR_CPU_LIMIT_MILLICORES");
  // Divisor 1m: with divisor 1 the API server rounds a 1500m limit up to "2".
  assert.deepEqual(cpu, [
    {
      name: "WEIR_CPU_LIMIT_MILLICORES",
      valueFrom: { resourceFieldRef: { resource: "limits.cpu", divisor: "1m" } },
    },
  ]);
  const index = env.findIndex((e) => e.name === "WEIR_CPU_LIMIT_MILLICORES");
  assert.equal(
    jobFieldOf(limited, "Pod", `spec.containers[0].env[${index}].name`),
    undefined,
    "set by the operator, not the StreamJob",
  );
  const unlimited = buildPod(run, 0).spec?.containers[0]?.env ?? [];
  assert.equal(
    unlimited.find((e) => e.name === "WEIR_CPU_LIMIT_MILLICORES"),
    undefined,
    "no CPU limit: the node's CPU is not the pod's to take",
  );
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

test("the job's control token: mounted read-only from the job's own Secret, never copied", () => {
  const pod = buildPod(run, 0);
  const volume = pod.spec?.volumes?.find((v) => v.name === "control-token");
  assert.deepEqual(volume?.secret, { secretName: "clicks-control-u-1", defaultMode: 0o444 });
  assert.deepEqual(
    pod.spec?.containers[0]?.volumeMounts?.find((m) => m.name === "control-token"),
    { name: "control-token", mountPath: "/var/run/secrets/weir.dev/control", readOnly: true },
  );
  const secret = buildControlTokenSecret(job, "tok");
  assert.equal(secret.metadata?.name, "clicks-control-u-1");
  assert.equal(secret.metadata?.labels?.["weir.dev/job"], "clicks");
  assert.deepEqual(secret.metadata?.ownerReferences, pod.metadata?.ownerReferences);
  assert.equal(secret.immutable, true);
  assert.deepEqual(secret.data, { token: Buffer.from("tok").toString("base64") });
  const other = { ...job, metadata: { ...job.metadata, uid: "9f8e7d6c-5b4a" } };
  assert.equal(controlTokenSecretName(other.metadata), "clicks-control-9f8e7d6c");
  assert.match(newControlToken(), /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(newControlToken(), newControlToken());
});

test("a run's pods spread over nodes by default; the pod template's constraints replace it", () => {
  assert.deepEqual(buildPod(run, 0).spec?.topologySpreadConstraints, [
    {
      topologyKey: "kubernetes.io/hostname",
      maxSkew: 1,
      whenUnsatisfiable: "ScheduleAnyway",
      labelSelector: {
        matchLabels: { "weir.dev/job": "clicks", "weir.dev/run": "r4" },
      },
    },
  ]);
  const zones = [
    { topologyKey: "topology.kubernetes.io/zone", maxSkew: 2, whenUnsatisfiable: "DoNotSchedule" },
  ];
  const withTemplate = (constraints: Record<string, unknown>[]) => {
    const template = { ...spec.podTemplate, spec: { topologySpreadConstraints: constraints } };
    const own = { ...spec, podTemplate: template };
    return buildPod({ job, id: "r4", spec: own, specHash: specHash(own) }, 0).spec;
  };
  assert.deepEqual(withTemplate(zones)?.topologySpreadConstraints, zones);
  // An empty list is how a template asks for no spread at all.
  assert.deepEqual(withTemplate([])?.topologySpreadConstraints, []);
  assert.equal(
    jobFieldOf(run, "Pod", "spec.topologySpreadConstraints[0].maxSkew"),
    "spec.podTemplate.spec.topologySpreadConstraints[0].maxSkew",
  );
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
      credentials: "static",
    },
    checkpointIntervalMs: 2000,
    allowNonRestoredState: false,
    job: { config: { input: "in" } },
    control: { tokenFile: "/var/run/secrets/weir.dev/control/token" },
  });
  assert.doesNotMatch(
    configMap.data?.["config.json"] ?? "",
    /secretKey|accessKey/i,
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

test("storage without a Secret: the CA bundle and the web identity token are mounted, never copied", () => {
  const secure = structuredClone(job);
  const storage = secure.spec.savepoints?.storage;
  assert.ok(storage);
  delete storage.credentialsSecret;
  Object.assign(storage, {
    endpoint: "https://127.0.0.1:9443",
    addressing: "virtual-host",
    caBundle: { secretKeyRef: { name: "minio-ca", key: "tls.ca" } },
    webIdentity: { roleArn: "arn:minio:iam:::role/x", audience: "minio" },
    stsEndpoint: "https://127.0.0.1:9443",
  });
  const secureSpec = runSpecOf(secure);
  const secureRun: RunRef = {
    job: secure,
    id: "r5",
    spec: secureSpec,
    specHash: specHash(secureSpec),
  };
  const pod = buildPod(secureRun, 2);
  const container = pod.spec?.containers[0];
  const env = Object.fromEntries(
    (container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]),
  );
  assert.equal(env.S3_ACCESS_KEY, undefined);
  assert.equal(env.AWS_ROLE_ARN, "arn:minio:iam:::role/x");
  assert.equal(env.AWS_ROLE_SESSION_NAME, "clicks-r5-2");
  const volumes = Object.fromEntries((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  assert.deepEqual(volumes["storage-ca"]?.secret, {
    secretName: "minio-ca",
    items: [{ key: "tls.ca", path: "ca.crt" }],
  });
  assert.deepEqual(volumes["storage-token"]?.projected?.sources, [
    { serviceAccountToken: { audience: "minio", expirationSeconds: 3600, path: "token" } },
  ]);
  const mounts = Object.fromEntries(
    (container?.volumeMounts ?? []).map((m) => [m.name, m.mountPath]),
  );
  assert.equal(env.AWS_WEB_IDENTITY_TOKEN_FILE, `${mounts["storage-token"]}/token`);
  const config = JSON.parse(buildConfigMap(secureRun).data?.["config.json"] ?? "{}");
  assert.equal(config.storage.caFile, `${mounts["storage-ca"]}/ca.crt`);
  assert.equal(config.storage.credentials, "chain");
  assert.equal(config.storage.addressing, "virtual-host");
  assert.equal(config.storage.stsEndpoint, "https://127.0.0.1:9443");
  // The pods' service account signs the token; no token of the API's own is mounted.
  assert.equal(pod.spec?.serviceAccountName, "jobs");
  assert.equal(pod.spec?.automountServiceAccountToken, false);
});

test("a job that takes a savepoint on delete owns its run's objects by label, not reference", () => {
  const onDelete = {
    ...job,
    spec: { ...job.spec, savepoints: { ...job.spec.savepoints, onDelete: true } },
  } as StreamJob;
  const ref: RunRef = { ...run, job: onDelete };
  for (const object of [buildPod(ref, 0), buildConfigMap(ref)]) {
    // The garbage collector of a foreground deletion would delete them before the savepoint.
    assert.equal(object.metadata?.ownerReferences, undefined);
    assert.equal(object.metadata?.labels?.["weir.dev/job-uid"], "u-1");
  }
  assert.equal(buildPod(run, 0).metadata?.labels?.["weir.dev/job-uid"], "u-1");
});
