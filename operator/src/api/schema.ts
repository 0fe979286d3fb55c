// The one source of the weir.dev/v1alpha1 API: the OpenAPI v3 (structural) schemas of StreamJob
// and StreamSavepoint. `npm run generate` turns them into the CRDs (crds/, config/crd/), the
// TypeScript types (types.generated.ts) and docs/crd-reference.md; validate.ts checks objects
// against the same schemas with ajv. What the API server can check lives here (types, enums,
// ranges, patterns, CEL rules); every CEL rule has a plain mirror in validate.ts.

import {
  KAFKA_CLIENT_PROPERTIES,
  TEXT_PROPERTIES,
} from "../../../runtime/src/connectors/kafka/client-properties.ts";

/** The subset of Kubernetes' JSONSchemaProps this API uses. */
export interface Schema {
  /** Name of the TypeScript interface generated for this object (types.generated.ts). */
  title?: string;
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  format?: "date-time";
  default?: unknown;
  enum?: string[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  maxProperties?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema;
  items?: Schema;
  anyOf?: Schema[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-validations"?: CelRule[];
}

/** A CEL rule the API server evaluates; validate.ts mirrors each one by its `rule` text. */
export interface CelRule {
  rule: string;
  message: string;
  /** Relative to the schema holding the rule: the field the error names. */
  fieldPath?: string;
}

export const GROUP = "weir.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";

/**
 * The most pods a run has. Every pod of a run is asked for its part of each savepoint, scraped
 * every metricsInterval and stopped before the next run starts, and a Kafka topic rarely has
 * more partitions (parallelism never exceeds them): a thousand keeps one job from turning a
 * typo into a fleet of pods while leaving room for the largest real topics.
 */
export const MAX_PARALLELISM = 1000;

/**
 * An image reference (registry/repository:tag@digest), as a container runtime parses it: a
 * registry is a host with a dot or a port (or localhost), repositories are lower case.
 */
export const IMAGE_PATTERN =
  "^((localhost|[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?((\\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)+(:[0-9]+)?|:[0-9]+))/)?[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$";

/**
 * The CEL rule keeping a duration field within [min, max] (validate.ts mirrors every rule of
 * this form from its text). A value too large for a duration at all fails the rule too.
 */
export function durationRangeRule(min: string, max: string, why = ""): CelRule {
  return {
    rule: `duration(self) >= duration('${min}') && duration(self) <= duration('${max}')`,
    message: `must be from ${min} to ${max}${why ? ` (${why})` : ""}`,
  };
}

// Small builders: each field is one line with its description, so the schema reads like a spec.
type Extra = Omit<Schema, "type" | "description">;

const string = (description: string, extra: Extra = {}): Schema => ({
  type: "string",
  description,
  ...extra,
});
const integer = (description: string, extra: Extra = {}): Schema => ({
  type: "integer",
  description,
  ...extra,
});
const number = (description: string, extra: Extra = {}): Schema => ({
  type: "number",
  description,
  ...extra,
});
const boolean = (description: string, extra: Extra = {}): Schema => ({
  type: "boolean",
  description,
  ...extra,
});
const time = (description: string): Schema => string(description, { format: "date-time" });
/** A duration from `range[0]` to `range[1]`: below or above, the field makes no sense. */
const duration = (
  description: string,
  range: [min: string, max: string, why?: string],
  defaultValue?: string,
): Schema =>
  string(
    `${description} A duration such as 90s, 5m, 1h30m or 250ms, from ${range[0]} to ${range[1]}.`,
    {
      pattern: DURATION_PATTERN,
      maxLength: 32,
      ...(defaultValue === undefined ? {} : { default: defaultValue }),
      "x-kubernetes-validations": [durationRangeRule(...range)],
    },
  );
const oneOf = (description: string, values: string[], defaultValue?: string): Schema =>
  string(description, {
    enum: values,
    ...(defaultValue === undefined ? {} : { default: defaultValue }),
  });
const object = (
  title: string,
  description: string,
  properties: Record<string, Schema>,
  extra: Extra = {},
): Schema => ({ title, type: "object", description, properties, ...extra });
const free = (description: string): Schema => ({
  type: "object",
  description,
  "x-kubernetes-preserve-unknown-fields": true,
});
const stringMap = (description: string): Schema => ({
  type: "object",
  description,
  additionalProperties: { type: "string" },
});
const array = (description: string, items: Schema, extra: Extra = {}): Schema => ({
  type: "array",
  description,
  items,
  ...extra,
});
const quantities = (description: string): Schema => ({
  type: "object",
  description,
  maxProperties: 16,
  additionalProperties: {
    anyOf: [{ type: "integer" }, { type: "string" }],
    "x-kubernetes-int-or-string": true,
    maxLength: 64,
    "x-kubernetes-validations": [
      {
        rule: "type(self) == int || isQuantity(self)",
        message: "must be a quantity such as 500m, 2 or 1Gi",
      },
    ],
  },
});

const objectMeta = (kind: string): Record<string, Schema> => ({
  apiVersion: string(
    "APIVersion defines the versioned schema of this representation of an object (weir.dev/v1alpha1).",
  ),
  kind: string(`Kind is the REST resource this object represents (${kind}).`),
  // The API server allows nothing on metadata but its type (it owns ObjectMeta's schema).
  metadata: { type: "object" },
});

export const SAVEPOINT_TRIGGERS = [
  "manual",
  "upgrade",
  "rescale",
  "periodic",
  "suspend",
  "delete",
  "drain",
];

// ---------------------------------------------------------------------------------------------
// StreamJob

/** A key of a Secret or ConfigMap in the job's namespace (as core/v1's SecretKeySelector). */
const kafkaKeyRef = (title: string, description: string): Schema =>
  object(
    title,
    description,
    {
      name: string("Name of the object in the job's namespace.", {
        pattern: KAFKA_OBJECT_NAME,
        maxLength: 253,
      }),
      key: string("The key holding the value.", {
        pattern: "^[-._a-zA-Z0-9]+$",
        maxLength: 253,
      }),
    },
    { required: ["name", "key"] },
  );

/** A Kubernetes object name (DNS subdomain), for the Secrets and ConfigMaps spec.kafka names. */
const KAFKA_OBJECT_NAME = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

/** The rule keeping `spec.kafka.properties` to the keys the runtime honours. */
export const KAFKA_PROPERTIES_RULE = `self.all(k, k in [${Object.keys(KAFKA_CLIENT_PROPERTIES)
  .map((key) => `'${key}'`)
  .join(", ")}])`;
/** Every client property but the text ones is whole milliseconds. */
export const KAFKA_PROPERTY_VALUES_RULE = `self.all(k, k in [${TEXT_PROPERTIES.map((key) => `'${key}'`).join(", ")}] || self[k].matches('^[0-9]{1,9}$'))`;

const kafka = object(
  "KafkaSpec",
  "The Kafka cluster the job reads from and writes to, and how its clients authenticate (every client of the job: sources, sinks, internal topics, transactions, offsets). Secrets reach the pods as mounted files, never through the run's ConfigMap.",
  {
    bootstrapServers: array(
      "Bootstrap servers, host:port each.",
      { type: "string", pattern: "^[^:\\s]+:[0-9]{1,5}$" },
      { minItems: 1 },
    ),
    internalTopicReplicationFactor: integer(
      "Replication factor of the topics the runtime creates (repartition, dead letters); -1 (or absent) uses the broker's default.replication.factor.",
      {
        minimum: -1,
        maximum: 32767,
        "x-kubernetes-validations": [
          { rule: "self != 0", message: "must be -1 (the broker's default) or at least 1" },
        ],
      },
    ),
    tls: object(
      "KafkaTls",
      "TLS to the brokers (the SSL and SASL_SSL security protocols).",
      {
        enabled: boolean("Connect with TLS.", { default: true }),
        ca: object(
          "KafkaTlsCa",
          "The CA certificates (PEM) the brokers' certificates must chain to; absent: the runtime's system CAs. Exactly one of secretKeyRef and configMapKeyRef.",
          {
            secretKeyRef: kafkaKeyRef("KafkaSecretKeyRef", "A key of a Secret."),
            configMapKeyRef: kafkaKeyRef("KafkaConfigMapKeyRef", "A key of a ConfigMap."),
          },
          {
            "x-kubernetes-validations": [
              {
                rule: "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                message: "must name exactly one of secretKeyRef and configMapKeyRef",
              },
            ],
          },
        ),
        clientCertificate: object(
          "KafkaClientCertificate",
          "A client certificate and its key (PEM) for mutual TLS, from a Secret (a kubernetes.io/tls Secret by default keys).",
          {
            secretName: string("Name of the Secret in the job's namespace.", {
              pattern: KAFKA_OBJECT_NAME,
              maxLength: 253,
            }),
            certificate: string("Key of the certificate (chain).", { default: "tls.crt" }),
            key: string("Key of the private key.", { default: "tls.key" }),
          },
          { required: ["secretName"] },
        ),
        verifyHostname: boolean(
          "Check that the broker's certificate names the host connected to. Turn off only for brokers whose certificates name other hosts; the chain is verified either way.",
          { default: true },
        ),
      },
      {
        "x-kubernetes-validations": [
          {
            rule: "self.enabled || (!has(self.ca) && !has(self.clientCertificate))",
            message: "ca and clientCertificate need TLS enabled",
          },
        ],
      },
    ),
    sasl: object(
      "KafkaSasl",
      "SASL authentication (SASL_PLAINTEXT, or SASL_SSL with tls). PLAIN sends the password as it is: use it with tls only.",
      {
        mechanism: oneOf("The SASL mechanism.", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        username: string("The user name.", { minLength: 1, maxLength: 256 }),
        passwordSecret: kafkaKeyRef("KafkaPasswordSecret", "The Secret key holding the password."),
      },
      { required: ["mechanism", "username", "passwordSecret"] },
    ),
    properties: {
      type: "object",
      // Bounded so that the API server's CEL cost estimate of the rules below stays in budget.
      additionalProperties: { type: "string", maxLength: 256 },
      description: `Further Kafka client properties, by their Java client names. The runtime honours ${Object.keys(
        KAFKA_CLIENT_PROPERTIES,
      ).join(
        ", ",
      )} (milliseconds but client.rack); any other key is refused. TLS and SASL are set with tls and sasl, never here.`,
      maxProperties: 16,
      "x-kubernetes-validations": [
        {
          rule: KAFKA_PROPERTIES_RULE,
          message: `only ${Object.keys(KAFKA_CLIENT_PROPERTIES).join(", ")} are supported`,
        },
        {
          rule: KAFKA_PROPERTY_VALUES_RULE,
          message: "must be a whole number of milliseconds (client.rack excepted)",
        },
      ],
    },
  },
  { required: ["bootstrapServers"] },
);

/** A Kubernetes object name (DNS subdomain). */
const RESOURCE_NAME_PATTERN = "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

/** A key of a Secret or ConfigMap in the job's namespace. */
const keyRef = (title: string, description: string): Schema =>
  object(
    title,
    description,
    {
      name: string("Name of the object.", { pattern: RESOURCE_NAME_PATTERN, maxLength: 253 }),
      key: string("The key holding the PEM bundle.", {
        default: "ca.crt",
        pattern: "^[-._a-zA-Z0-9]+$",
        maxLength: 253,
      }),
    },
    { required: ["name"] },
  );

const storage = object(
  "SavepointStorage",
  "Where savepoints (and the job's checkpoints) are stored: an S3-compatible bucket.",
  {
    endpoint: string("URL of the S3-compatible endpoint, http(s)://host:port.", {
      pattern: "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$",
    }),
    bucket: string("Name of the bucket.", { minLength: 3, maxLength: 63 }),
    prefix: string("Key prefix inside the bucket; objects go under <prefix>/<namespace>/<job>/.", {
      default: "weir",
    }),
    region: string("Region of the bucket.", { default: "us-east-1" }),
    credentialsSecret: string(
      "Name of a Secret in the job's namespace with the keys accessKey and secretKey. Absent: the AWS default credential chain of the pods' (and the operator's) environment, in this order: environment keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), a web identity token file (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as IRSA's webhook or webIdentity mounts them), container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, as EKS Pod Identity mounts them), then the instance's metadata service (IMDSv2).",
      { pattern: RESOURCE_NAME_PATTERN, maxLength: 253 },
    ),
    webIdentity: object(
      "StorageWebIdentity",
      "Credentials from a role assumed with the pods' service-account token (STS AssumeRoleWithWebIdentity), for clusters without EKS's webhook: the operator mounts a token of the pods' service account for this audience into every pod and sets AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN; it checks storage with a token of the same service account (TokenRequest).",
      {
        roleArn: string(
          "ARN of the role to assume (AWS IAM, or MinIO's arn:minio:iam:::role/...).",
          {
            minLength: 1,
            maxLength: 2048,
          },
        ),
        audience: string("Audience of the service-account token (what STS expects).", {
          default: "sts.amazonaws.com",
          minLength: 1,
          maxLength: 256,
        }),
      },
      { required: ["roleArn"] },
    ),
    stsEndpoint: string(
      "URL of the STS endpoint web identity credentials come from; absent: AWS_ENDPOINT_URL_STS, else https://sts.<region>.amazonaws.com. MinIO serves STS on its S3 endpoint.",
      { pattern: "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$" },
    ),
    // No default: a default would change every stored job's spec, and so restart its run.
    addressing: oneOf(
      "How a bucket is addressed: path (https://host/bucket/key; MinIO and most S3-compatible stores; what absent means) or virtual-host (https://bucket.host/key; AWS's preferred form).",
      ["path", "virtual-host"],
    ),
    caBundle: object(
      "StorageCABundle",
      "PEM certificates that verify the endpoint's (and STS's) TLS certificate, besides the system's own roots; mounted into the pods, never copied into a ConfigMap of the operator's.",
      {
        secretKeyRef: keyRef("StorageCASecretKey", "A key of a Secret in the job's namespace."),
        configMapKeyRef: keyRef(
          "StorageCAConfigMapKey",
          "A key of a ConfigMap in the job's namespace.",
        ),
      },
      {
        "x-kubernetes-validations": [
          {
            rule: "has(self.secretKeyRef) != has(self.configMapKeyRef)",
            message: "name exactly one of secretKeyRef and configMapKeyRef",
          },
        ],
      },
    ),
  },
  {
    required: ["endpoint", "bucket"],
    "x-kubernetes-validations": [
      {
        rule: "!has(self.credentialsSecret) || !has(self.webIdentity)",
        message:
          "credentialsSecret and webIdentity are two sources of credentials: name one (or neither, for the AWS default chain)",
        fieldPath: ".webIdentity",
      },
      {
        rule: "!has(self.caBundle) || self.endpoint.startsWith('https://')",
        message: "needs an https:// endpoint (a CA verifies TLS only)",
        fieldPath: ".caBundle",
      },
    ],
  },
);

const savepoints = object(
  "SavepointsSpec",
  "Savepoints: where they are stored, when they are taken besides upgrades, how many are kept.",
  {
    storage,
    interval: duration(
      "Take a savepoint this often while running; absent means no periodic ones.",
      ["10s", "168h", "each savepoint copies the whole state"],
    ),
    retention: object(
      "SavepointRetention",
      "How many savepoints are kept; the newest completed one and any in use are always kept.",
      {
        maxCount: integer("Keep at most this many savepoints of the job.", {
          minimum: 1,
          default: 10,
        }),
        maxAge: duration("Delete savepoints older than this.", ["1m", "8760h"]),
      },
      { default: {} },
    ),
    onDelete: boolean("Take a savepoint before the StreamJob is deleted.", { default: false }),
    timeout: duration(
      "How long a savepoint may take before it counts as failed.",
      ["1s", "1h"],
      "5m",
    ),
    fallbackToLastState: boolean(
      "When a savepoint cannot be taken, an upgrade may restore from the latest checkpoint instead (if it is recent enough, see maxCheckpointAge).",
      { default: false },
    ),
    maxCheckpointAge: duration(
      "How recent the latest checkpoint must be for fallbackToLastState.",
      ["1s", "24h"],
      "5m",
    ),
  },
  { required: ["storage"] },
);

const autoscaler = object(
  "AutoscalerSpec",
  "Scales parallelism from the job's backlog and processing rate. While enabled, the parallelism the autoscaler decides lives in status and is what the run uses.",
  {
    enabled: boolean("Scale the job's parallelism automatically.", { default: false }),
    dryRun: boolean("Recommend a parallelism (status, Events) without acting on it.", {
      default: false,
    }),
    minParallelism: integer("Lowest parallelism the autoscaler chooses.", {
      minimum: 1,
      maximum: MAX_PARALLELISM,
      default: 1,
    }),
    maxParallelism: integer(
      "Highest parallelism the autoscaler chooses (never above the source partition count).",
      { minimum: 1, maximum: MAX_PARALLELISM },
    ),
    targetUtilization: number(
      "Fraction of each subtask's processing capacity to plan for (0 < x <= 1).",
      { minimum: 0, exclusiveMinimum: true, maximum: 1, default: 0.7 },
    ),
    catchUpDuration: duration(
      "Time within which a backlog should be drained.",
      ["10s", "24h", "the backlog is planned to drain within it"],
      "5m",
    ),
    scaleDownDelay: duration(
      "Scale down only after the lower recommendation held this long (the highest in that time is used).",
      ["0s", "24h"],
      "10m",
    ),
    metricsInterval: duration(
      "How often the runtime pods' metrics are read.",
      ["1s", "10m", "every pod is scraped this often"],
      "15s",
    ),
    metricsWindow: duration(
      "Length of the metrics window a decision is made on.",
      ["2s", "1h"],
      "2m",
    ),
    maxRescalesPerHour: integer("At most this many rescales within any hour.", {
      minimum: 1,
      maximum: 60,
      default: 6,
    }),
    deadBand: number("Relative change of parallelism below which nothing is done (0 <= x < 1).", {
      minimum: 0,
      maximum: 1,
      exclusiveMaximum: true,
      default: 0.1,
    }),
  },
  {
    default: {},
    "x-kubernetes-validations": [
      {
        rule: "!has(self.maxParallelism) || self.minParallelism <= self.maxParallelism",
        message: "must be <= maxParallelism",
        fieldPath: ".minParallelism",
      },
    ],
  },
);

const podTemplate = object(
  "PodTemplate",
  "Labels, annotations and a partial pod spec merged into every pod.",
  {
    metadata: object("PodTemplateMetadata", "Metadata added to every pod of the job.", {
      labels: stringMap("Labels added to every pod."),
      annotations: stringMap("Annotations added to every pod."),
    }),
    spec: object("PodTemplateSpec", "Parts of the pod spec the job's pods take over.", {
      serviceAccountName: string(
        "Service account the pods run as (the chart creates weir-job, bound to nothing, in each job namespace); absent: the namespace's default.",
      ),
      nodeSelector: stringMap("Node labels the pods must be scheduled on."),
      tolerations: array(
        "Tolerations of the pods (core/v1 Toleration).",
        free("A core/v1 Toleration."),
      ),
      affinity: free("Affinity of the pods (core/v1 Affinity)."),
      topologySpreadConstraints: array(
        "How the pods spread over the cluster (core/v1 TopologySpreadConstraint). Unset: over nodes (kubernetes.io/hostname), at most one pod more on any node, as far as they fit; an empty list: no spread.",
        free("A core/v1 TopologySpreadConstraint."),
      ),
      env: array("Extra environment variables of the runtime container (core/v1 EnvVar).", {
        title: "EnvVar",
        ...free("A core/v1 EnvVar."),
        properties: { name: string("Name of the variable.", { minLength: 1 }) },
        required: ["name"],
      }),
      securityContext: free(
        "Pod-level security context (core/v1 PodSecurityContext), merged over Weir's secure defaults.",
      ),
      containerSecurityContext: free(
        "Security context of the runtime container (core/v1 SecurityContext), merged over Weir's secure defaults.",
      ),
      priorityClassName: string(
        "Priority class of the pods; absent: the operator's default (--job-priority-class; chart jobPods.priorityClassName), if any.",
      ),
      terminationGracePeriodSeconds: integer(
        "Seconds a pod has to stop gracefully (finish records, checkpoint, commit), from 1 to 600: the next run of an upgrade starts only once every pod of the previous one is gone.",
        { minimum: 1, maximum: 600 },
      ),
    }),
  },
);

const jobSpec = object(
  "StreamJobSpec",
  "Desired state of the StreamJob.",
  {
    image: string("Container image of the runtime with the job inside.", {
      minLength: 1,
      maxLength: 512,
      pattern: IMAGE_PATTERN,
    }),
    imagePullPolicy: oneOf(
      "When the image is pulled.",
      ["Always", "IfNotPresent", "Never"],
      "IfNotPresent",
    ),
    job: object(
      "JobModule",
      "The job the runtime runs.",
      {
        entry: string("Path of the job module inside the image.", {
          minLength: 1,
          maxLength: 4096,
        }),
        args: array(
          "Arguments handed to the job.",
          { type: "string", maxLength: 4096 },
          { maxItems: 64 },
        ),
        config: {
          ...free(
            "Free-form configuration handed to the job (mounted as a file): at most 256 top-level keys, and the run's whole configuration file at most 1 MiB (a ConfigMap's limit; the operator checks it).",
          ),
          maxProperties: 256,
        },
      },
      { required: ["entry"] },
    ),
    kafka,
    parallelism: integer(
      `Number of subtasks (pods); the scale subresource's replicas (kubectl scale). At most the source partition count and ${MAX_PARALLELISM}. While the autoscaler owns parallelism (enabled, not a dry run) a change of this field is a manual override: the job rescales to it (within the autoscaler's limits) and the autoscaler decides from there; status.desiredParallelism is what the operator runs.`,
      { minimum: 1, maximum: MAX_PARALLELISM, default: 1 },
    ),
    state: oneOf(
      "running runs the job; suspended stops it through a savepoint and resumes from it when set back.",
      ["running", "suspended"],
      "running",
    ),
    upgradeMode: oneOf(
      "How a change is applied: savepoint (stop with a savepoint, restore from it), last-state (restore from the latest checkpoint), stateless (start empty).",
      ["savepoint", "last-state", "stateless"],
      "savepoint",
    ),
    warmStandby: boolean(
      "Upgrades, rescales, restarts and drains in savepoint or last-state mode first start the next run's pods warm (process up, job loaded, clients connected) and stop the old run only once they wait ready to restore, so the downtime is the savepoint, the restore and the first commit. Where both runs do not fit (a quota, no node with room) the operation stops, then starts, and says so in an Event; a standby that does not become ready is discarded and the old run goes on. false: always stop, then start.",
      { default: true },
    ),
    restartNonce: integer("Changing this value restarts the job (through its upgrade mode)."),
    checkpoints: object(
      "CheckpointsSpec",
      "Periodic checkpoints of every task.",
      {
        interval: duration(
          "Time between two checkpoints of a task.",
          ["100ms", "5m", "a task's Kafka transaction stays open for one interval"],
          "10s",
        ),
      },
      { default: {} },
    ),
    savepoints,
    initialSavepoint: string(
      "Savepoint a new job starts from (s3://bucket/path/); used only for the first run.",
      { pattern: "^s3://.+" },
    ),
    allowNonRestoredState: boolean(
      "Allow restoring a savepoint that holds state of steps the job no longer has (that state is dropped).",
      { default: false },
    ),
    failures: oneOf(
      "What to do with records that fail to decode or throw: skip them, send them to deadLetterTopic, or fail the task. Overrides the job's own setting.",
      ["skip", "dead-letter", "fail"],
    ),
    deadLetterTopic: string("Kafka topic that failed records go to when failures is dead-letter.", {
      pattern: "^[a-zA-Z0-9._-]+$",
      maxLength: 249,
    }),
    readinessTimeout: duration(
      "A new run that is not Ready within this time is rolled back to the last stable spec.",
      ["10s", "1h"],
      "2m",
    ),
    autoscaler,
    resources: object(
      "ResourcesSpec",
      "Compute resources of the runtime container. A resource named in neither requests nor limits gets the operator's default (--job-resources; chart jobPods.resources: requests cpu 250m and memory 512Mi, limit memory 512Mi), so no job pod is BestEffort. With a memory limit the Node heap gets 75% of it (NODE_OPTIONS=--max-old-space-size-percentage=75, unless the pod template sets NODE_OPTIONS).",
      {
        requests: quantities("Minimum resources (cpu, memory, ...)."),
        limits: quantities("Maximum resources (cpu, memory, ...)."),
      },
    ),
    podTemplate,
  },
  {
    required: ["image", "job", "kafka"],
    "x-kubernetes-validations": [
      {
        rule: "self.upgradeMode == 'stateless' || has(self.savepoints)",
        message:
          "savepoints.storage is required for savepoint and last-state upgrades (only upgradeMode stateless runs without it)",
        fieldPath: ".savepoints",
      },
      {
        rule: "!has(self.initialSavepoint) || has(self.savepoints)",
        message:
          "initialSavepoint needs savepoints.storage (the bucket and credentials to read it)",
        fieldPath: ".initialSavepoint",
      },
      {
        rule: "!has(self.failures) || self.failures != 'dead-letter' || has(self.deadLetterTopic)",
        message: "is required when failures is dead-letter",
        fieldPath: ".deadLetterTopic",
      },
    ],
  },
);

const condition = object(
  "Condition",
  "An observation of one aspect of the job (Ready, Progressing, Degraded).",
  {
    type: string("Type of the condition: Ready, Progressing or Degraded."),
    status: oneOf("Whether the condition holds.", ["True", "False", "Unknown"]),
    observedGeneration: integer("The spec generation the condition was set for."),
    lastTransitionTime: time("When the status last changed."),
    reason: string("One-word CamelCase reason for the last transition."),
    message: string("Human-readable details."),
  },
  { required: ["type", "status"] },
);

const savepointRecord = object("SavepointRecord", "A completed savepoint.", {
  name: string("Name of the StreamSavepoint object."),
  path: string("Location of the savepoint (s3://bucket/path/)."),
  time: time("When the savepoint completed."),
  trigger: oneOf("Why the savepoint was taken.", SAVEPOINT_TRIGGERS),
  sizeBytes: integer("Total size of the savepoint's objects in bytes."),
  run: string("Id of the run the savepoint was taken from."),
});

const jobStatus = object(
  "StreamJobStatus",
  "Observed state of the StreamJob, written by the operator.",
  {
    observedGeneration: integer("The spec generation the operator last acted on."),
    conditions: array("Conditions Ready, Progressing and Degraded.", condition, {
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    }),
    state: oneOf("Where the job is in its lifecycle.", [
      "Deploying",
      "Running",
      "Upgrading",
      "Suspended",
      "Failed",
      "RollingBack",
      "Deleting",
    ]),
    run: object("RunStatus", "The current run: the set of pods started together.", {
      id: string("Id of the run (part of the pod names)."),
      parallelism: integer("Number of pods of the run."),
      image: string("Image the run uses."),
      specHash: string("Hash of the spec the run was started from."),
      startTime: time("When the run started."),
      restoredFrom: string("Savepoint or checkpoint path the run restored from; empty if none."),
      refused: object(
        "RunRefusal",
        "The API server refused an object of this run (a pod or its ConfigMap): its own words, and when the operator asks again.",
        {
          object: string("The refused object, e.g. Pod wc-r2-0."),
          code: integer(
            "HTTP status of the refusal (422 invalid, 403 forbidden: quota, PodSecurity).",
          ),
          field: string("The StreamJob field the refusal is about, when the API server named one."),
          message: string("The API server's message."),
          time: time("When it was refused."),
          attempt: integer("How many times in a row it was refused."),
          retryTime: time("When the operator asks again."),
        },
      ),
      spec: free(
        "The spec fields the run's pods are built from (image, job, Kafka, parallelism, storage, resources, pod template, restart nonce): a run is rebuilt from these, whatever the StreamJob's spec has become since.",
      ),
    }),
    parallelism: integer("Number of pods currently running (the scale subresource's replicas)."),
    desiredParallelism: integer(
      "The parallelism the operator runs the job at: spec.parallelism, or while the autoscaler owns parallelism its recommendation within its limits.",
    ),
    partitions: integer(
      "Source partitions of the job, as its pods report them: parallelism above it is refused.",
    ),
    selector: string("Label selector of the job's pods (for the scale subresource)."),
    lag: integer("Total backlog of the job's sources in records."),
    lastSavepoint: savepointRecord,
    savepointHistory: array("Recent savepoints, newest first (at most 20).", savepointRecord, {
      maxItems: 20,
    }),
    upgrade: object(
      "UpgradeStatus",
      "The multi-step operation in flight; written before each step is taken.",
      {
        step: string("The step the operation is at."),
        kind: oneOf("What the operation does.", [
          "upgrade",
          "rescale",
          "restart",
          "suspend",
          "resume",
          "delete",
          "savepoint",
          "rollback",
          "drain",
        ]),
        mode: oneOf(
          "How state crosses to the next run: savepoint (stop-with-savepoint), last-state (the latest checkpoints), stateless (none).",
          ["savepoint", "last-state", "stateless"],
        ),
        fromRun: string("Id of the run being replaced."),
        toSpecHash: string("Hash of the spec being applied."),
        savepoint: string("Name of the StreamSavepoint taken for the operation."),
        savepointId: string(
          "Id of that savepoint as the pods know it; it stays when the operation's kind changes half-way (an upgrade that becomes a suspension).",
        ),
        savepointPath: string("Path of that savepoint once completed."),
        startTime: time("When the operation started."),
        attempt: integer("How many times the current step has been tried."),
        lastError: string("Why the last attempt failed."),
        retryTime: time("When the failed step is tried again."),
        stopTime: time(
          "When the old run stopped processing (its savepoint completed, or its pods were told to stop): the start of the downtime.",
        ),
        standbyRun: string(
          "Id of the next run while its pods wait warm (spec.warmStandby), before the old run stops.",
        ),
        standbyTime: time("When the standby pods were created."),
        standbyReadyTime: time("When every standby pod was waiting ready to restore."),
        standbySkipped: string(
          "Why the operation stops, then starts, without a standby (no room for both runs).",
        ),
      },
    ),
    rollback: object(
      "RollbackStatus",
      "The last rollback: a run that was not Ready within spec.readinessTimeout was replaced by a run of the last stable spec. The same spec is not tried again, at any parallelism (a rescale runs the stable spec at the new parallelism); a change of anything else is.",
      {
        specHash: string("Hash of the spec that was rolled back."),
        upgradeHash: string(
          "Hash of the rolled-back spec without its parallelism: a rescale does not try it again, a change of anything else does.",
        ),
        run: string("Id of the run that was not Ready."),
        toSpecHash: string("Hash of the stable spec rolled back to."),
        reason: string("Why the run was rolled back."),
        time: time("When the rollback started."),
      },
    ),
    lastStableSpecHash: string("Hash of the last spec whose run became Ready."),
    lastStableSpec: free("The last spec whose run became Ready (what a rollback returns to)."),
    autoscaler: object("AutoscalerStatus", "The autoscaler's last decision.", {
      recommendedParallelism: integer("Parallelism the autoscaler recommends."),
      specParallelism: integer(
        "spec.parallelism when the autoscaler last looked: a change of it (kubectl scale) is a manual override.",
      ),
      reason: string("Why."),
      time: time("When the decision was made."),
      inputs: free("The metrics and limits the decision was made from."),
      lastRescaleTime: time("When the autoscaler last rescaled the job."),
      rescalesInLastHour: integer("Rescales by the autoscaler within the last hour."),
      stuck: boolean(
        "The backlog does not shrink although the job has capacity to spare (a stuck consumer, a failing sink): reported, not answered with more pods.",
      ),
      recommendations: array(
        "The policy's own recommendations before the scale-down delay, oldest first, each holding from its time until the next (at most 100): a scale-down uses the highest of the last scaleDownDelay.",
        object(
          "AutoscalerRecommendation",
          "A recommendation and when it started to hold.",
          {
            time: time("When the policy started to recommend it."),
            parallelism: integer("The recommended parallelism."),
          },
          { required: ["time", "parallelism"] },
        ),
        { maxItems: 100 },
      ),
      rescales: array(
        "The autoscaler's recent rescales, oldest first (at most 60): the rescale cap counts them, their measured downtime is planned for.",
        object(
          "AutoscalerRescale",
          "A rescale the autoscaler made.",
          {
            time: time("When the rescale started."),
            from: integer("Parallelism before."),
            to: integer("Parallelism after."),
            downtimeSeconds: number(
              "Seconds the job processed nothing: from the old run's stop to the new run's first processed record.",
            ),
            arrivalRate: number(
              "Records per second arriving when the rescale was decided (the latest scrape interval's rate: what a scale-up is sized for). After a scale-up, `from` did not keep up with it: the autoscaler does not go back to `from` within the hour while about as much arrives.",
            ),
          },
          { required: ["time", "from", "to"] },
        ),
        { maxItems: 60 },
      ),
    }),
  },
);

export const streamJobSchema: Schema = object(
  "StreamJob",
  "A stateful stream-processing job: its runtime pods, savepoints, upgrades and autoscaling.",
  { ...objectMeta("StreamJob"), spec: jobSpec, status: jobStatus },
  { required: ["spec"] },
);

// ---------------------------------------------------------------------------------------------
// StreamSavepoint

const savepointSpec = object(
  "StreamSavepointSpec",
  "Which job to take a savepoint of, and how.",
  {
    jobName: string("Name of the StreamJob in the same namespace.", {
      minLength: 1,
      maxLength: 253,
      "x-kubernetes-validations": [{ rule: "self == oldSelf", message: "is immutable" }],
    }),
    stop: boolean("Stop the job with the savepoint (it stays suspended).", { default: false }),
    trigger: oneOf("Why the savepoint is taken.", SAVEPOINT_TRIGGERS, "manual"),
  },
  { required: ["jobName"] },
);

const savepointStatus = object(
  "StreamSavepointStatus",
  "Progress and result of the savepoint, written by the operator.",
  {
    state: oneOf("Progress of the savepoint.", ["Pending", "InProgress", "Completed", "Failed"]),
    path: string("Location of the completed savepoint (s3://bucket/path/)."),
    sizeBytes: integer("Total size of the savepoint's objects in bytes."),
    startTime: time("When the savepoint was started."),
    completionTime: time("When the savepoint completed or failed."),
    run: string("Id of the run the savepoint was taken from."),
    message: string("Details, such as why it failed."),
  },
);

export const streamSavepointSchema: Schema = object(
  "StreamSavepoint",
  "A savepoint of a StreamJob: asked for by a user or taken by the operator; its status is the result.",
  { ...objectMeta("StreamSavepoint"), spec: savepointSpec, status: savepointStatus },
  { required: ["spec"] },
);

// ---------------------------------------------------------------------------------------------
// The resources: names, subresources and printer columns of each CRD.

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
}

export interface Resource {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  schema: Schema;
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string };
  printerColumns: PrinterColumn[];
}

export const streamJobResource: Resource = {
  kind: "StreamJob",
  plural: "streamjobs",
  singular: "streamjob",
  shortNames: ["sj"],
  schema: streamJobSchema,
  scale: {
    specReplicasPath: ".spec.parallelism",
    statusReplicasPath: ".status.parallelism",
    labelSelectorPath: ".status.selector",
  },
  printerColumns: [
    { name: "State", type: "string", jsonPath: ".status.state" },
    { name: "Parallelism", type: "integer", jsonPath: ".status.parallelism" },
    { name: "Desired", type: "integer", jsonPath: ".status.desiredParallelism" },
    { name: "Lag", type: "integer", jsonPath: ".status.lag" },
    { name: "Last-Savepoint", type: "date", jsonPath: ".status.lastSavepoint.time" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};

export const streamSavepointResource: Resource = {
  kind: "StreamSavepoint",
  plural: "streamsavepoints",
  singular: "streamsavepoint",
  shortNames: ["ssp"],
  schema: streamSavepointSchema,
  printerColumns: [
    { name: "Job", type: "string", jsonPath: ".spec.jobName" },
    { name: "Trigger", type: "string", jsonPath: ".spec.trigger" },
    { name: "State", type: "string", jsonPath: ".status.state" },
    { name: "Path", type: "string", jsonPath: ".status.path" },
    { name: "Size", type: "integer", jsonPath: ".status.sizeBytes" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};

export const resources = [streamJobResource, streamSavepointResource];
