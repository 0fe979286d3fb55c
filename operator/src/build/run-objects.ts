// Pure builders of a run's objects: its ConfigMap (the runtime's configuration file) and its
// pods (DESIGN.md, "Runtime and its contract with the operator"). Everything comes from the
// StreamJob's identity and the run's RunSpec, so a pod deleted mid-run is rebuilt as it was.
import type {
  V1ConfigMap,
  V1EnvVar,
  V1OwnerReference,
  V1Pod,
  V1ResourceRequirements,
  V1TopologySpreadConstraint,
  V1Volume,
  V1VolumeMount,
  V1VolumeProjection,
} from "@kubernetes/client-node";
import type { RuntimeConfig } from "../../../runtime/src/placement.ts";
import { API_VERSION, type KafkaSpec, type StreamJob } from "../api/types.ts";
import { parseDuration } from "../api/validate.ts";
import type { RunSpec } from "../decide/run-spec.ts";
import {
  ANNOTATION_SPEC_HASH,
  ANNOTATION_STANDBY,
  CONTROL_TOKEN_DIR,
  CONTROL_TOKEN_FILE,
  configMapName,
  controlTokenSecretName,
  jobLabels,
  LABEL_JOB,
  LABEL_JOB_UID,
  LABEL_RUN,
  LABEL_SUBTASK,
  podName,
} from "./names.ts";

/** Where the runtime serves its control API (the contract's port). */
export const CONTROL_PORT = 9249;
const CONFIG_DIR = "/etc/weir";
const CONFIG_FILE = `${CONFIG_DIR}/config.json`;

/** What identifies a run: the job it belongs to, its id, its spec and that spec's hash. */
export interface RunRef {
  job: StreamJob;
  id: string;
  spec: RunSpec;
  specHash: string;
  /** A savepoint or checkpoint path the run starts from (`WEIR_RESTORE_FROM`). */
  restoreFrom?: string;
  /**
   * Pods that start as warm standbys (`WEIR_STANDBY`): the old run still runs, and the
   * operator tells them their restore source once it has stopped (POST /v1/start).
   */
  standby?: boolean;
}

/** Environment names the operator sets; a podTemplate may not override them. */
export const RESERVED_ENV = [
  "WEIR_JOB",
  "WEIR_RUN",
  "WEIR_SUBTASK",
  "WEIR_PARALLELISM",
  "WEIR_RESTORE_FROM",
  "WEIR_STANDBY",
  "WEIR_CONFIG",
  "POD_IP",
  "WEIR_CPU_LIMIT_MILLICORES",
  "S3_ACCESS_KEY",
  "S3_SECRET_KEY",
];

export function ownerReference(job: StreamJob): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: "StreamJob",
    name: job.metadata?.name ?? "",
    uid: job.metadata?.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  };
}

/**
 * The owner reference of a run's objects: none when the job takes a savepoint on delete. A
 * foreground cascading deletion (Argo CD's prune) has the garbage collector delete a job's
 * dependents at once, before the operator could ask them for that savepoint; the finalizer
 * removes them instead, once it is taken (they carry the job's uid as a label).
 */
function runOwnerReferences(job: StreamJob): { ownerReferences?: V1OwnerReference[] } {
  return job.spec.savepoints?.onDelete ? {} : { ownerReferences: [ownerReference(job)] };
}

function runLabels(run: RunRef): Record<string, string> {
  return {
    ...jobLabels(run.job.metadata?.name ?? ""),
    [LABEL_RUN]: run.id,
    [LABEL_JOB_UID]: run.job.metadata?.uid ?? "",
  };
}

/**
 * The runtime's configuration file, one per run: typed by the runtime's own RuntimeConfig, so
 * the two sides of the contract cannot drift apart. No credentials: those come from the Secret.
 */
export function runtimeConfig(run: RunRef): RuntimeConfig {
  const { spec } = run;
  const storage = spec.storage;
  return {
    kafka: runtimeKafka(spec.kafka),
    storage: {
      endpoint: storage?.endpoint ?? "",
      bucket: storage?.bucket ?? "",
      prefix: storage?.prefix,
      region: storage?.region,
      ...(storage?.addressing ? { addressing: storage.addressing } : {}),
      ...(storage?.caBundle ? { caFile: STORAGE_CA_FILE } : {}),
      credentials: storage?.credentialsSecret ? "static" : "chain",
      ...(storage?.stsEndpoint ? { stsEndpoint: storage.stsEndpoint } : {}),
    },
    checkpointIntervalMs: parseDuration(spec.checkpoints?.interval ?? "10s"),
    allowNonRestoredState: spec.allowNonRestoredState ?? false,
    ...(spec.failures
      ? { failures: { action: spec.failures, deadLetterTopic: spec.deadLetterTopic } }
      : {}),
    job: { config: spec.job.config ?? {} },
    control: { tokenFile: CONTROL_TOKEN_FILE },
  };
}

/** The name the configuration file has in the run's ConfigMap (and so in the pod). */
export const CONFIG_KEY = "config.json";

/** The run's configuration file, as its ConfigMap holds it. */
export function configFile(run: RunRef): string {
  return `${JSON.stringify(runtimeConfig(run), null, 2)}\n`;
}

export function buildConfigMap(run: RunRef): V1ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: configMapName(run.job.metadata?.name ?? "", run.id),
      namespace: run.job.metadata?.namespace,
      labels: runLabels(run),
      ...runOwnerReferences(run.job),
    },
    data: { [CONFIG_KEY]: configFile(run) },
  };
}

/**
 * The run's pods spread over nodes by default: one node lost (drained, failed) then takes as
 * few of its subtasks as it can. Soft (ScheduleAnyway): a run never waits for a node to spread
 * to. Counted per run, so the next run spreads on its own while the last one's pods go.
 */
function spreadOverNodes(run: RunRef): V1TopologySpreadConstraint[] {
  return [
    {
      topologyKey: "kubernetes.io/hostname",
      maxSkew: 1,
      whenUnsatisfiable: "ScheduleAnyway",
      labelSelector: {
        matchLabels: { [LABEL_JOB]: run.job.metadata?.name ?? "", [LABEL_RUN]: run.id },
      },
    },
  ];
}

/**
 * Subtask `subtask` of the run. Secure by default (non-root, read-only root filesystem, no
 * privilege escalation, no capabilities, RuntimeDefault seccomp, no service-account token:
 * the runtime never calls the Kubernetes API); the podTemplate's security settings are
 * merged over these defaults field by field.
 */
export function buildPod(run: RunRef, subtask: number): V1Pod {
  const { job, spec } = run;
  const name = job.metadata?.name ?? "";
  const namespace = job.metadata?.namespace ?? "";
  const template = spec.podTemplate ?? {};
  const templateSpec = template.spec ?? {};
  const env: V1EnvVar[] = [
    ...operatorEnv(run, subtask),
    ...((templateSpec.env ?? []) as V1EnvVar[]),
  ];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: podName(name, run.id, subtask),
      namespace,
      labels: { ...template.metadata?.labels, ...runLabels(run), [LABEL_SUBTASK]: String(subtask) },
      annotations: {
        ...template.metadata?.annotations,
        [ANNOTATION_SPEC_HASH]: run.specHash,
        ...(run.standby ? { [ANNOTATION_STANDBY]: "true" } : {}),
      },
      ...runOwnerReferences(job),
    },
    spec: {
      restartPolicy: "Always",
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      ...(templateSpec.serviceAccountName
        ? { serviceAccountName: templateSpec.serviceAccountName }
        : {}),
      ...(templateSpec.nodeSelector ? { nodeSelector: templateSpec.nodeSelector } : {}),
      ...(templateSpec.tolerations ? { tolerations: templateSpec.tolerations } : {}),
      ...(templateSpec.affinity ? { affinity: templateSpec.affinity } : {}),
      topologySpreadConstraints: (templateSpec.topologySpreadConstraints ??
        spreadOverNodes(run)) as V1TopologySpreadConstraint[],
      ...(templateSpec.priorityClassName
        ? { priorityClassName: templateSpec.priorityClassName }
        : {}),
      terminationGracePeriodSeconds: templateSpec.terminationGracePeriodSeconds ?? 60,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        fsGroup: 65532,
        seccompProfile: { type: "RuntimeDefault" },
        ...templateSpec.securityContext,
      },
      containers: [
        {
          name: "runtime",
          image: spec.image,
          imagePullPolicy: spec.imagePullPolicy ?? "IfNotPresent",
          args: [spec.job.entry, ...(spec.job.args ?? [])],
          env,
          ports: [{ name: "control", containerPort: CONTROL_PORT, protocol: "TCP" }],
          // The schema's int-or-string quantities are what the API takes for resources.
          ...(spec.resources ? { resources: spec.resources as V1ResourceRequirements } : {}),
          volumeMounts: [
            { name: "config", mountPath: CONFIG_DIR, readOnly: true },
            ...storageMounts(spec),
            ...kafkaMounts(spec),
            // The root filesystem is read-only; the runtime and Node may still need scratch space.
            { name: "tmp", mountPath: "/tmp" },
            { name: "control-token", mountPath: CONTROL_TOKEN_DIR, readOnly: true },
          ],
          startupProbe: {
            httpGet: { path: "/healthz", port: "control" },
            periodSeconds: 1,
            failureThreshold: 120,
          },
          // A pod deep in a batch answers late, not never: generous timeouts keep a busy pod
          // Ready (and a savepoint possible) rather than flapping.
          // Every second: Ready ends an upgrade's downtime, as Services and the operator see it.
          readinessProbe: {
            httpGet: { path: "/readyz", port: "control" },
            periodSeconds: 1,
            timeoutSeconds: 5,
            failureThreshold: 3,
          },
          livenessProbe: {
            httpGet: { path: "/healthz", port: "control" },
            periodSeconds: 10,
            timeoutSeconds: 5,
            failureThreshold: 3,
          },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            privileged: false,
            capabilities: { drop: ["ALL"] },
            ...templateSpec.containerSecurityContext,
          },
        },
      ],
      volumes: [
        { name: "config", configMap: { name: configMapName(name, run.id) } },
        ...storageVolumes(spec),
        ...kafkaVolumes(spec),
        { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
        // Readable by whichever user the template picks; no other container sees it.
        {
          name: "control-token",
          secret: { secretName: controlTokenSecretName(job.metadata ?? {}), defaultMode: 0o444 },
        },
      ],
    },
  };
}

/** The runtime contract's environment (RESERVED_ENV), ahead of the pod template's own. */
function operatorEnv(run: RunRef, subtask: number): V1EnvVar[] {
  const { job, spec } = run;
  const storageSecret = spec.storage?.credentialsSecret;
  const webIdentity = spec.storage?.webIdentity;
  return [
    { name: "WEIR_JOB", value: `${job.metadata?.namespace ?? ""}/${job.metadata?.name ?? ""}` },
    { name: "WEIR_RUN", value: run.id },
    { name: "WEIR_SUBTASK", value: String(subtask) },
    { name: "WEIR_PARALLELISM", value: String(spec.parallelism) },
    { name: "WEIR_RESTORE_FROM", value: run.restoreFrom ?? "" },
    ...(run.standby ? [{ name: "WEIR_STANDBY", value: "true" }] : []),
    { name: "WEIR_CONFIG", value: CONFIG_FILE },
    { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    // How many worker threads run the tasks (runtime/src/engine/task-threads.ts), only for a
    // container with a CPU limit: without one the API server would give the node's allocatable
    // CPU, which is not the pod's to take (the runtime then keeps its tasks on one thread). In
    // millicores: the API server rounds up, so divisor 1 would make a 1500m limit "2" CPUs.
    ...(run.spec.resources?.limits?.cpu === undefined
      ? []
      : [
          {
            name: "WEIR_CPU_LIMIT_MILLICORES",
            valueFrom: { resourceFieldRef: { resource: "limits.cpu", divisor: "1m" } },
          },
        ]),
    ...(storageSecret
      ? [
          secretEnv("S3_ACCESS_KEY", storageSecret, "accessKey"),
          secretEnv("S3_SECRET_KEY", storageSecret, "secretKey"),
        ]
      : []),
    ...(webIdentity
      ? [
          { name: "AWS_WEB_IDENTITY_TOKEN_FILE", value: STORAGE_TOKEN_FILE },
          { name: "AWS_ROLE_ARN", value: webIdentity.roleArn },
          // STS records the session name: it says which pod assumed the role.
          {
            name: "AWS_ROLE_SESSION_NAME",
            value: podName(job.metadata?.name ?? "", run.id, subtask),
          },
        ]
      : []),
  ];
}

const CONTAINER = "spec.containers[0].";
/** Where the fields of a run's pod come from in the StreamJob, by the pod field's prefix. */
const POD_FIELD_SOURCES: [podField: string, jobField: string][] = [
  ["metadata.labels", "spec.podTemplate.metadata.labels"],
  ["metadata.annotations", "spec.podTemplate.metadata.annotations"],
  [`${CONTAINER}image`, "spec.image"],
  [`${CONTAINER}args`, "spec.job"],
  [`${CONTAINER}resources`, "spec.resources"],
  [`${CONTAINER}securityContext`, "spec.podTemplate.spec.containerSecurityContext"],
  ["spec.securityContext", "spec.podTemplate.spec.securityContext"],
  ["spec.serviceAccountName", "spec.podTemplate.spec.serviceAccountName"],
  ["spec.nodeSelector", "spec.podTemplate.spec.nodeSelector"],
  ["spec.tolerations", "spec.podTemplate.spec.tolerations"],
  ["spec.affinity", "spec.podTemplate.spec.affinity"],
  ["spec.topologySpreadConstraints", "spec.podTemplate.spec.topologySpreadConstraints"],
  ["spec.priorityClassName", "spec.podTemplate.spec.priorityClassName"],
  ["spec.priority", "spec.podTemplate.spec.priorityClassName"],
  ["spec.terminationGracePeriodSeconds", "spec.podTemplate.spec.terminationGracePeriodSeconds"],
];

/**
 * The StreamJob field that a field of a run's object (as the API server names it in a refusal)
 * comes from, so that the refusal names what the user wrote: `metadata.labels` →
 * `spec.podTemplate.metadata.labels`, `spec.containers[0].env[9].name` →
 * `spec.podTemplate.spec.env[0].name`. Undefined for what the operator sets itself.
 */
export function jobFieldOf(
  run: RunRef,
  kind: "Pod" | "ConfigMap",
  field: string,
): string | undefined {
  if (kind === "ConfigMap") return "spec.job.config";
  const env = /^spec\.containers\[0\]\.env\[(\d+)\](.*)$/.exec(field);
  if (env) {
    const index = Number(env[1]) - operatorEnv(run, 0).length;
    return index >= 0 ? `spec.podTemplate.spec.env[${index}]${env[2]}` : undefined;
  }
  const source = POD_FIELD_SOURCES.find(
    ([prefix]) =>
      field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`),
  );
  return source ? source[1] + field.slice(source[0].length) : undefined;
}

// The storage CA and the web identity token live outside CONFIG_DIR: a mount inside the
// read-only ConfigMap volume would need a folder the ConfigMap cannot hold.
const STORAGE_CA_DIR = "/etc/weir-storage-ca";
const STORAGE_CA_FILE = `${STORAGE_CA_DIR}/ca.crt`;
const STORAGE_TOKEN_DIR = "/var/run/secrets/weir.dev/storage";
const STORAGE_TOKEN_FILE = `${STORAGE_TOKEN_DIR}/token`;
/** The kubelet renews a projected token at 80% of this; STS sessions last an hour by default. */
const STORAGE_TOKEN_SECONDS = 3600;

/** The storage CA bundle (from its Secret or ConfigMap key) and the web identity token. */
function storageVolumes(spec: RunSpec): V1Volume[] {
  const ca = spec.storage?.caBundle;
  const webIdentity = spec.storage?.webIdentity;
  const items = (key: string | undefined) => [{ key: key ?? "ca.crt", path: "ca.crt" }];
  return [
    ...(ca?.secretKeyRef
      ? [
          {
            name: "storage-ca",
            secret: { secretName: ca.secretKeyRef.name, items: items(ca.secretKeyRef.key) },
          },
        ]
      : ca?.configMapKeyRef
        ? [
            {
              name: "storage-ca",
              configMap: { name: ca.configMapKeyRef.name, items: items(ca.configMapKeyRef.key) },
            },
          ]
        : []),
    ...(webIdentity
      ? [
          {
            name: "storage-token",
            projected: {
              sources: [
                {
                  serviceAccountToken: {
                    audience: webIdentity.audience ?? "sts.amazonaws.com",
                    expirationSeconds: STORAGE_TOKEN_SECONDS,
                    path: "token",
                  },
                },
              ],
            },
          },
        ]
      : []),
  ];
}

function storageMounts(spec: RunSpec): V1VolumeMount[] {
  return [
    ...(spec.storage?.caBundle
      ? [{ name: "storage-ca", mountPath: STORAGE_CA_DIR, readOnly: true }]
      : []),
    ...(spec.storage?.webIdentity
      ? [{ name: "storage-token", mountPath: STORAGE_TOKEN_DIR, readOnly: true }]
      : []),
  ];
}

function secretEnv(name: string, secret: string, key: string): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

// Kafka's CA, client certificate and SASL password: one projected volume of Secret and
// ConfigMap keys, outside CONFIG_DIR like the storage CA. The run's ConfigMap names the files,
// never their contents.
const KAFKA_DIR = "/etc/weir-kafka";

type KafkaFileRole = "ca" | "cert" | "key" | "password";

/** Each Kafka file the job's spec asks for: its path in the pod and where it comes from. */
export function kafkaFiles(
  kafka: KafkaSpec,
): Partial<Record<KafkaFileRole, { file: string; source: V1VolumeProjection }>> {
  const fromSecret = (name: string, key: string, path: string) => ({
    file: `${KAFKA_DIR}/${path}`,
    source: { secret: { name, items: [{ key, path }] } },
  });
  const tls = kafka.tls?.enabled !== false ? kafka.tls : undefined;
  const ca = tls?.ca;
  const certificate = tls?.clientCertificate;
  const password = kafka.sasl?.passwordSecret;
  return {
    ...(ca?.secretKeyRef
      ? { ca: fromSecret(ca.secretKeyRef.name, ca.secretKeyRef.key, "ca.crt") }
      : ca?.configMapKeyRef
        ? {
            ca: {
              file: `${KAFKA_DIR}/ca.crt`,
              source: {
                configMap: {
                  name: ca.configMapKeyRef.name,
                  items: [{ key: ca.configMapKeyRef.key, path: "ca.crt" }],
                },
              },
            },
          }
        : {}),
    ...(certificate
      ? {
          cert: fromSecret(certificate.secretName, certificate.certificate, "client.crt"),
          key: fromSecret(certificate.secretName, certificate.key, "client.key"),
        }
      : {}),
    ...(password ? { password: fromSecret(password.name, password.key, "sasl-password") } : {}),
  };
}

/** The runtime's Kafka settings: brokers, and the files (not the secrets) TLS and SASL use. */
function runtimeKafka(kafka: KafkaSpec): RuntimeConfig["kafka"] {
  const files = kafkaFiles(kafka);
  const tls = kafka.tls?.enabled !== false ? kafka.tls : undefined;
  return {
    bootstrap: kafka.bootstrapServers,
    ...(kafka.internalTopicReplicationFactor === undefined
      ? {}
      : { internalTopicReplicationFactor: kafka.internalTopicReplicationFactor }),
    ...(tls
      ? {
          tls: {
            ...(files.ca ? { caFile: files.ca.file } : {}),
            ...(files.cert ? { certFile: files.cert.file } : {}),
            ...(files.key ? { keyFile: files.key.file } : {}),
            verifyHostname: tls.verifyHostname !== false,
          },
        }
      : {}),
    ...(kafka.sasl && files.password
      ? {
          sasl: {
            mechanism: kafka.sasl.mechanism,
            username: kafka.sasl.username,
            passwordFile: files.password.file,
          },
        }
      : {}),
    ...(kafka.properties ? { properties: kafka.properties } : {}),
  };
}

function kafkaVolumes(spec: RunSpec): V1Volume[] {
  const sources = Object.values(kafkaFiles(spec.kafka)).map((f) => f.source);
  // Readable by whichever user the template picks (as the control token); no other container
  // sees them.
  return sources.length > 0 ? [{ name: "kafka", projected: { sources, defaultMode: 0o444 } }] : [];
}

function kafkaMounts(spec: RunSpec): V1VolumeMount[] {
  return Object.keys(kafkaFiles(spec.kafka)).length > 0
    ? [{ name: "kafka", mountPath: KAFKA_DIR, readOnly: true }]
    : [];
}
