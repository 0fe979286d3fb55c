// Validation in the operator against the same schema the CRD carries, so an object from a file
// (or one the API server stored before a schema change) is judged the way `kubectl apply` is:
// ajv checks types, enums, ranges and patterns and fills in defaults; the CEL rules, which ajv
// cannot run, are mirrored here as plain checks, keyed by their rule text.
import { Ajv, type ErrorObject } from "ajv";
import {
  KAFKA_CLIENT_PROPERTIES,
  TEXT_PROPERTIES,
} from "../../../runtime/src/connectors/kafka/client-properties.ts";
import {
  API_VERSION,
  DURATION_PATTERN,
  KAFKA_PROPERTIES_RULE,
  KAFKA_PROPERTY_VALUES_RULE,
  resources,
  type Schema,
  streamJobSchema,
} from "./schema.ts";
import type {
  AutoscalerSpec,
  KafkaTls,
  SavepointStorage,
  StorageCABundle,
  StreamJob,
  StreamJobSpec,
} from "./types.ts";

/** Milliseconds of a duration such as "90s", "5m", "1h30m" or "250ms" (the schema's pattern). */
export function parseDuration(text: string): number {
  if (!new RegExp(DURATION_PATTERN).test(text)) {
    throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 5m, 1h30m, 250ms)`);
  }
  const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(amount) * (unitMs[unit as string] as number);
  }
  return Math.round(total);
}

const mirror =
  <T>(check: (self: T) => boolean) =>
  (self: unknown) =>
    check(self as T);

/** Kubernetes' quantity grammar (resource.Quantity): a signed decimal and an SI suffix or exponent. */
const QUANTITY = /^[+-]?(\d+\.?\d*|\.\d+)([KMGTPE]i|[eE][+-]?\d+|[numkMGTPE])?$/;

/** `durationRangeRule` (schema.ts) as text: its bounds. */
const DURATION_RANGE =
  /^duration\(self\) >= duration\('([^']+)'\) && duration\(self\) <= duration\('([^']+)'\)$/;

/** Every duration-range rule of the schemas, each with its mirror. */
function durationRangeMirrors(): Record<string, (self: unknown) => boolean> {
  const mirrors: Record<string, (self: unknown) => boolean> = {};
  const walk = (schema: Schema) => {
    for (const { rule } of schema["x-kubernetes-validations"] ?? []) {
      const [, min = "", max = ""] = DURATION_RANGE.exec(rule) ?? [];
      if (!min) continue;
      const [lo, hi] = [parseDuration(min), parseDuration(max)];
      mirrors[rule] = mirror((self: string) => {
        const ms = parseDuration(self);
        return ms >= lo && ms <= hi;
      });
    }
    for (const child of [schema.items, schema.additionalProperties, ...(schema.anyOf ?? [])])
      if (child) walk(child);
    for (const property of Object.values(schema.properties ?? {})) walk(property);
  };
  for (const resource of resources) walk(resource.schema);
  return mirrors;
}

/**
 * The plain-code twin of every CEL rule in schema.ts (a unit test fails when one is missing).
 * `null` marks a transition rule (`oldSelf`): it only applies to an update, which the API
 * server checks and the operator never sees.
 */
export const celMirrors: Record<string, ((self: unknown) => boolean) | null> = {
  ...durationRangeMirrors(),
  "type(self) == int || isQuantity(self)": mirror(
    (self: unknown) => Number.isInteger(self) || (typeof self === "string" && QUANTITY.test(self)),
  ),
  "!has(self.maxParallelism) || self.minParallelism <= self.maxParallelism": mirror(
    (self: AutoscalerSpec) =>
      self.maxParallelism === undefined || self.minParallelism <= self.maxParallelism,
  ),
  "self.upgradeMode == 'stateless' || has(self.savepoints)": mirror(
    (self: StreamJobSpec) => self.upgradeMode === "stateless" || self.savepoints !== undefined,
  ),
  "!has(self.initialSavepoint) || has(self.savepoints)": mirror(
    (self: StreamJobSpec) => self.initialSavepoint === undefined || self.savepoints !== undefined,
  ),
  "!has(self.failures) || self.failures != 'dead-letter' || has(self.deadLetterTopic)": mirror(
    (self: StreamJobSpec) => self.failures !== "dead-letter" || self.deadLetterTopic !== undefined,
  ),
  "has(self.secretKeyRef) != has(self.configMapKeyRef)": mirror(
    (self: StorageCABundle) =>
      (self.secretKeyRef !== undefined) !== (self.configMapKeyRef !== undefined),
  ),
  "!has(self.credentialsSecret) || !has(self.webIdentity)": mirror(
    (self: SavepointStorage) =>
      self.credentialsSecret === undefined || self.webIdentity === undefined,
  ),
  "!has(self.caBundle) || self.endpoint.startsWith('https://')": mirror(
    (self: SavepointStorage) => self.caBundle === undefined || self.endpoint.startsWith("https://"),
  ),
  "self != 0": mirror((self: number) => self !== 0),
  "self.enabled || (!has(self.ca) && !has(self.clientCertificate))": mirror(
    (self: KafkaTls) =>
      self.enabled || (self.ca === undefined && self.clientCertificate === undefined),
  ),
  [KAFKA_PROPERTIES_RULE]: mirror((self: Record<string, string>) =>
    Object.keys(self).every((key) => Object.hasOwn(KAFKA_CLIENT_PROPERTIES, key)),
  ),
  [KAFKA_PROPERTY_VALUES_RULE]: mirror((self: Record<string, string>) =>
    Object.entries(self).every(
      ([key, value]) => TEXT_PROPERTIES.includes(key as never) || /^[0-9]{1,9}$/.test(value),
    ),
  ),
  "self == oldSelf": null,
};

/**
 * The schema as plain JSON Schema for ajv: Kubernetes' keywords dropped, OpenAPI 3.0's boolean
 * exclusive bounds turned into draft-07 numbers, and unknown fields refused where the API
 * server would prune them (kubectl's strict field validation refuses them too).
 */
export function toJsonSchema(schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith("x-kubernetes-") || key === "exclusiveMinimum" || key === "exclusiveMaximum")
      continue;
    if (key === "properties") {
      out[key] = Object.fromEntries(
        Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, toJsonSchema(v)]),
      );
    } else if (key === "items" || key === "additionalProperties") {
      out[key] = toJsonSchema(value as Schema);
    } else if (key === "anyOf") {
      out[key] = (value as Schema[]).map(toJsonSchema);
    } else {
      out[key] = value;
    }
  }
  if (schema.exclusiveMinimum) {
    delete out.minimum;
    out.exclusiveMinimum = schema.minimum;
  }
  if (schema.exclusiveMaximum) {
    delete out.maximum;
    out.exclusiveMaximum = schema.maximum;
  }
  if (schema.properties && !schema["x-kubernetes-preserve-unknown-fields"]) {
    out.additionalProperties = false;
  }
  // An int-or-string's maxLength bounds its string form (ajv wants it beside `type: string`).
  if (schema["x-kubernetes-int-or-string"] && schema.maxLength !== undefined) {
    delete out.maxLength;
    out.anyOf = (out.anyOf as Record<string, unknown>[]).map((branch) =>
      branch.type === "string" ? { ...branch, maxLength: schema.maxLength } : branch,
    );
  }
  return out;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
// RFC 3339, as the API server checks it.
ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i);
const checkStreamJob = ajv.compile(toJsonSchema(streamJobSchema));

function fieldPath(instancePath: string): string {
  return instancePath
    .split("/")
    .slice(1)
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .reduce(
      (path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part),
      "",
    );
}

function describe(error: ErrorObject): string {
  const at = (field: string) => {
    const base = fieldPath(error.instancePath);
    return base ? `${base}.${field}` : field;
  };
  switch (error.keyword) {
    case "required":
      return `${at(error.params.missingProperty)}: is required`;
    case "additionalProperties":
      return `${at(error.params.additionalProperty)}: unknown field`;
    case "enum":
      return `${fieldPath(error.instancePath)}: must be one of ${error.params.allowedValues.join(", ")}`;
    case "pattern":
      return error.params.pattern === DURATION_PATTERN
        ? `${fieldPath(error.instancePath)}: must be a duration such as 90s, 5m, 1h30m or 250ms`
        : `${fieldPath(error.instancePath)}: must match ${error.params.pattern}`;
    default:
      return `${fieldPath(error.instancePath) || "(object)"}: ${error.message}`;
  }
}

/** Evaluates the CEL mirrors of `schema` and everything below it against `value`. */
function celErrors(schema: Schema, value: unknown, path: string, errors: string[]): void {
  if (value === undefined || value === null) return;
  for (const { rule, message, fieldPath: field } of schema["x-kubernetes-validations"] ?? []) {
    const check = celMirrors[rule];
    if (check === undefined) throw new Error(`CEL rule without a mirror in validate.ts: ${rule}`);
    if (check && !check(value)) errors.push(`${path}${field ?? ""}: ${message}`);
  }
  if (schema.type === "array" && schema.items && Array.isArray(value)) {
    for (const [i, item] of value.entries()) celErrors(schema.items, item, `${path}[${i}]`, errors);
  }
  if (schema.additionalProperties && typeof value === "object") {
    for (const [key, item] of Object.entries(value))
      celErrors(schema.additionalProperties, item, `${path}.${key}`, errors);
  }
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const child = (value as Record<string, unknown>)[name];
    celErrors(property, child, path ? `${path}.${name}` : name, errors);
  }
}

export type Validation = { ok: true; job: StreamJob } | { ok: false; errors: string[] };

/**
 * Checks a StreamJob as the API server would, on a copy with the schema's defaults applied;
 * each error names the field (`spec.autoscaler.minParallelism: must be <= maxParallelism`).
 */
export function validateStreamJob(obj: unknown): Validation {
  const copy = structuredClone(obj);
  const errors: string[] = [];
  const record = (copy ?? {}) as Record<string, unknown>;
  if (record.apiVersion !== API_VERSION) errors.push(`apiVersion: must be ${API_VERSION}`);
  if (record.kind !== "StreamJob") errors.push("kind: must be StreamJob");
  if (!checkStreamJob(copy)) {
    errors.push(...(checkStreamJob.errors ?? []).map(describe));
  } else {
    // CEL rules run on objects that passed the schema, as in the API server.
    celErrors(streamJobSchema, copy, "", errors);
  }
  return errors.length ? { ok: false, errors } : { ok: true, job: copy as StreamJob };
}

/**
 * An autoscaler spec with the schema's defaults for every field `overrides` leaves out, as a
 * StreamJob carrying it gets them (the defaults' one source is the schema).
 */
export function defaultedAutoscaler(overrides: Partial<AutoscalerSpec> = {}): AutoscalerSpec {
  const checked = validateStreamJob({
    apiVersion: API_VERSION,
    kind: "StreamJob",
    metadata: { name: "autoscaler" },
    spec: {
      image: "weir/runtime",
      job: { entry: "/app/job.ts" },
      kafka: { bootstrapServers: ["kafka:9092"] },
      upgradeMode: "stateless",
      autoscaler: overrides,
    },
  });
  if (!checked.ok) throw new Error(`autoscaler spec: ${checked.errors.join("; ")}`);
  return checked.job.spec.autoscaler;
}
