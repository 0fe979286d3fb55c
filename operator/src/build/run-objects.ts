// Pure builders of a run's objects: its ConfigMap (the runtime's configuration file) and its
// pods (DESIGN.md, "Runtime and its contract with the operator"). Everything comes from the
// StreamJob's identity and the run's RunSpec, so a pod deleted mid-run is rebuilt as it was.
import type {
  V1ConfigMap,
  V1EnvVar,
  V1OwnerReference,
  V1Pod,
  V1ResourceRequirements,
} from "@kubernetes/client-node";
import type { RuntimeConfig } from "../../../runtime/src/placement.ts";
import { API_VERSION, type StreamJob } from "../api/types.ts";
import { parseDuration } from "../api/validate.ts";
import type { RunSpec } from "../decide/run-spec.ts";
import {
  ANNOTATION_SPEC_HASH,
  configMapName,
  jobLabels,
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
}

/** Environment names the operator sets; a podTemplate may not override them. */
export const RESERVED_ENV = [
  "WEIR_JOB",
  "WEIR_RUN",
  "WEIR_SUBTASK",
  "WEIR_PARALLELISM",
  "WEIR_RESTORE_FROM",
  "WEIR_CONFIG",
  "POD_IP",
  "S3_ACCESS_KEY",
  "S3_SECRET_KEY",
];

function ownerReference(job: StreamJob): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: "StreamJob",
    name: job.metadata?.name ?? "",
    uid: job.metadata?.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  };
}

function runLabels(run: RunRef): Record<string, string> {
  return { ...jobLabels(run.job.metadata?.name ?? ""), [LABEL_RUN]: run.id };
}

/**
 * The runtime's configuration file, one per run: typed by the runtime's own RuntimeConfig, so
 * the two sides of the contract cannot drift apart. No credentials: those come from the Secret.
 */
export function runtimeConfig(run: RunRef): RuntimeConfig {
  const { spec } = run;
  const storage = spec.storage;
  return {
    kafka: { bootstrap: spec.kafka.bootstrapServers },
    storage: {
      endpoint: storage?.endpoint ?? "",
      bucket: storage?.bucket ?? "",
      prefix: storage?.prefix,
      region: storage?.region,
    },
    checkpointIntervalMs: parseDuration(spec.checkpoints?.interval ?? "10s"),
    allowNonRestoredState: spec.allowNonRestoredState ?? false,
    ...(spec.failures
      ? { failures: { action: spec.failures, deadLetterTopic: spec.deadLetterTopic } }
      : {}),
    job: { config: spec.job.config ?? {} },
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
      ownerReferences: [ownerReference(run.job)],
    },
    data: { [CONFIG_KEY]: configFile(run) },
  };
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
      annotations: { ...template.metadata?.annotations, [ANNOTATION_SPEC_HASH]: run.specHash },
      ownerReferences: [ownerReference(job)],
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
            // The root filesystem is read-only; the runtime and Node may still need scratch space.
            { name: "tmp", mountPath: "/tmp" },
          ],
          startupProbe: {
            httpGet: { path: "/healthz", port: "control" },
            periodSeconds: 1,
            failureThreshold: 120,
          },
          // A pod deep in a batch answers late, not never: generous timeouts keep a busy pod
          // Ready (and a savepoint possible) rather than flapping.
          readinessProbe: {
            httpGet: { path: "/readyz", port: "control" },
            periodSeconds: 2,
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
        { name: "tmp", emptyDir: { sizeLimit: "256Mi" } },
      ],
    },
  };
}

/** The runtime contract's environment (RESERVED_ENV), ahead of the pod template's own. */
function operatorEnv(run: RunRef, subtask: number): V1EnvVar[] {
  const { job, spec } = run;
  const storageSecret = spec.storage?.credentialsSecret;
  return [
    { name: "WEIR_JOB", value: `${job.metadata?.namespace ?? ""}/${job.metadata?.name ?? ""}` },
    { name: "WEIR_RUN", value: run.id },
    { name: "WEIR_SUBTASK", value: String(subtask) },
    { name: "WEIR_PARALLELISM", value: String(spec.parallelism) },
    { name: "WEIR_RESTORE_FROM", value: run.restoreFrom ?? "" },
    { name: "WEIR_CONFIG", value: CONFIG_FILE },
    { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    ...(storageSecret
      ? [
          secretEnv("S3_ACCESS_KEY", storageSecret, "accessKey"),
          secretEnv("S3_SECRET_KEY", storageSecret, "secretKey"),
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

function secretEnv(name: string, secret: string, key: string): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}
