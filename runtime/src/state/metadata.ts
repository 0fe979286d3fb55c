// `_metadata.json` of a snapshot (checkpoint or savepoint) and where a snapshot's objects live
// in the bucket (docs: DESIGN.md, "State, snapshots and consistency"):
//
//   <prefix>/<namespace>/<job>/checkpoints/<id>/<topic>-<partition>.state   one per task
//   <prefix>/<namespace>/<job>/savepoints/<id>/<topic>-<partition>.state
//   .../<id>/_metadata.json                                                 written last
//
// A snapshot exists only once its `_metadata.json` does, so everything a restore needs to trust
// the task objects (size, checksum, offsets, operators) is in it and validated on read.
import { createHash } from "node:crypto";

export const METADATA_FORMAT_VERSION = 1;
export const METADATA_FILE = "_metadata.json";

export type SnapshotKind = "checkpoint" | "savepoint";

export interface JobRef {
  namespace: string;
  name: string;
}

/** A task: one source partition (same shape as the Kafka connector's TaskId). */
export interface TaskRef {
  topic: string;
  partition: number;
}

/** One stored object, as a restore verifies it. */
export interface ObjectRef {
  key: string;
  bytes: number;
  /** Hex SHA-256 of the object. */
  sha256: string;
}

/**
 * The objects an incremental checkpoint's state is read from, in order: a full snapshot, then
 * deltas, the last of which is the entry's own object.
 */
export interface Chain {
  base: ObjectRef;
  deltas: ObjectRef[];
}

export interface TaskEntry {
  task: TaskRef;
  /** Next offset to read per source topic-partition ("<topic>-<partition>"). */
  offsets: Record<string, number>;
  /** Object key of the task's state in the bucket. */
  key: string;
  bytes: number;
  /** Hex SHA-256 of the object. */
  sha256: string;
  /** Operators with state in the object, sorted. */
  operators: string[];
  /**
   * Only in incremental checkpoints: the object is a delta, read after `chain.base` and the
   * deltas before it. Without it the object is a full snapshot (every savepoint is).
   */
  chain?: Chain;
}

export interface SnapshotMetadata {
  formatVersion: typeof METADATA_FORMAT_VERSION;
  kind: SnapshotKind;
  id: string;
  job: JobRef;
  /** SHA-256 of the job's stable operator names: equal fingerprints, same job topology. */
  fingerprint: string;
  /** ISO 8601. */
  createdAt: string;
  /** Sorted by topic, then partition. */
  tasks: TaskEntry[];
}

// Kubernetes: namespaces are DNS labels, object names DNS subdomains.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
// Kafka's legal topic names.
const TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;
// A snapshot id is one path segment: no "/", and never "." or "..".
const SNAPSHOT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function show(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(value);
}

export function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The fingerprint of a job from its stable operator names (order and repeats do not matter). */
export function jobFingerprint(operatorNames: readonly string[]): string {
  return sha256(JSON.stringify([...new Set(operatorNames)].sort()));
}

/** "<topic>-<partition>", the key of `offsets` and the task's name in messages. */
export function topicPartition(topic: string, partition: number): string {
  return `${topic}-${partition}`;
}

/** Inverse of topicPartition (topics may contain "-"; the partition is after the last one). */
export function parseTopicPartition(value: string): TaskRef {
  const at = value.lastIndexOf("-");
  const topic = value.slice(0, at);
  const digits = value.slice(at + 1);
  if (at <= 0 || !TOPIC.test(topic) || !/^(0|[1-9][0-9]*)$/.test(digits)) {
    throw new Error(`${show(value)} is not a topic-partition ("<topic>-<partition>")`);
  }
  const partition = Number(digits);
  if (!Number.isSafeInteger(partition))
    throw new Error(`${show(value)} has an out-of-range partition`);
  return { topic, partition };
}

function taskName(task: TaskRef): string {
  return topicPartition(task.topic, task.partition);
}

// ---- object layout ----

function checkJob(namespace: string, job: string): void {
  if (!DNS_LABEL.test(namespace))
    throw new Error(`namespace ${show(namespace)} is not a valid DNS label`);
  if (!DNS_SUBDOMAIN.test(job))
    throw new Error(`job name ${show(job)} is not a valid Kubernetes name`);
}

/** "<prefix>/<namespace>/<job>/" (with the trailing slash, so listing it never matches "<job>2"). */
export function snapshotPrefix(prefix: string, namespace: string, job: string): string {
  checkJob(namespace, job);
  const segments = prefix.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === "." || s === "..")) {
    throw new Error(`storage prefix ${show(prefix)} must not contain "." or ".." segments`);
  }
  return [...segments, namespace, job, ""].join("/");
}

export interface SnapshotLocation {
  prefix: string;
  namespace: string;
  job: string;
  kind: SnapshotKind;
  id: string;
}

/** "<prefix>/<namespace>/<job>/checkpoints/<id>/" or ".../savepoints/<id>/". */
export function snapshotDir(location: SnapshotLocation): string {
  const { prefix, namespace, job, kind, id } = location;
  if (kind !== "checkpoint" && kind !== "savepoint")
    throw new Error(`unknown snapshot kind ${show(kind)}`);
  if (!SNAPSHOT_ID.test(id)) {
    throw new Error(
      `snapshot id ${show(id)} must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit`,
    );
  }
  return `${snapshotPrefix(prefix, namespace, job)}${kind}s/${id}/`;
}

/** The object holding one task's state. */
export function objectKey(location: SnapshotLocation, task: TaskRef): string {
  checkTask(task, "task");
  return `${snapshotDir(location)}${taskName(task)}.state`;
}

/** The snapshot's `_metadata.json`: written after every task object. */
export function metadataKey(location: SnapshotLocation): string {
  return `${snapshotDir(location)}${METADATA_FILE}`;
}

// ---- validation ----

function checkTask(task: unknown, where: string): asserts task is TaskRef {
  if (typeof task !== "object" || task === null) throw new Error(`${where} must be an object`);
  const { topic, partition } = task as Record<string, unknown>;
  if (typeof topic !== "string" || !TOPIC.test(topic)) {
    throw new Error(`${where}.topic ${show(topic)} is not a valid Kafka topic name`);
  }
  if (typeof partition !== "number" || !Number.isSafeInteger(partition) || partition < 0) {
    throw new Error(`${where}.partition must be an integer >= 0, got ${show(partition)}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function requireField(obj: Record<string, unknown>, field: string, where: string): unknown {
  if (!(field in obj)) throw new Error(`${where}${field} is missing`);
  return obj[field];
}

function checkObjectRef(value: unknown, where: string): ObjectRef {
  if (!isRecord(value)) throw new Error(`${where} must be an object {key, bytes, sha256}`);
  const { key, bytes, sha256: sum } = value;
  if (typeof key !== "string" || key === "" || key.endsWith("/"))
    throw new Error(`${where}.key must be an object key, got ${show(key)}`);
  if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes < 0)
    throw new Error(`${where}.bytes must be an integer >= 0, got ${show(bytes)}`);
  if (typeof sum !== "string" || !SHA256_HEX.test(sum))
    throw new Error(`${where}.sha256 must be 64 lowercase hex characters, got ${show(sum)}`);
  return { key, bytes, sha256: sum };
}

function checkChain(value: unknown, where: string): Chain {
  if (!isRecord(value)) throw new Error(`${where} must be an object {base, deltas}`);
  const base = checkObjectRef(value.base, `${where}.base`);
  if (!Array.isArray(value.deltas) || value.deltas.length === 0)
    throw new Error(`${where}.deltas must be a non-empty list`);
  const deltas = value.deltas.map((d, i) => checkObjectRef(d, `${where}.deltas[${i}]`));
  const keys = new Set([base.key, ...deltas.map((d) => d.key)]);
  if (keys.size !== deltas.length + 1) throw new Error(`${where} names an object twice`);
  return { base, deltas };
}

/** Validates `data` as metadata and returns it normalised (sorted, unknown fields dropped). */
function validate(data: unknown): SnapshotMetadata {
  if (!isRecord(data)) throw new Error("it is not a JSON object");
  const version = requireField(data, "formatVersion", "");
  if (version !== METADATA_FORMAT_VERSION) {
    throw new Error(
      `unsupported formatVersion ${show(version)} (this runtime reads ${METADATA_FORMAT_VERSION})`,
    );
  }
  const kind = requireField(data, "kind", "");
  if (kind !== "checkpoint" && kind !== "savepoint") {
    throw new Error(`kind must be "checkpoint" or "savepoint", got ${show(kind)}`);
  }
  const id = requireField(data, "id", "");
  if (typeof id !== "string" || !SNAPSHOT_ID.test(id)) {
    throw new Error(
      `id ${show(id)} must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit`,
    );
  }
  const job = requireField(data, "job", "");
  if (!isRecord(job)) throw new Error("job must be an object {namespace, name}");
  const namespace = requireField(job, "namespace", "job.");
  const name = requireField(job, "name", "job.");
  if (typeof namespace !== "string" || typeof name !== "string") {
    throw new Error("job.namespace and job.name must be strings");
  }
  checkJob(namespace, name);
  const fingerprint = requireField(data, "fingerprint", "");
  if (typeof fingerprint !== "string" || !SHA256_HEX.test(fingerprint)) {
    throw new Error(`fingerprint must be 64 lowercase hex characters, got ${show(fingerprint)}`);
  }
  const createdAt = requireField(data, "createdAt", "");
  if (
    typeof createdAt !== "string" ||
    !ISO_TIME.test(createdAt) ||
    Number.isNaN(Date.parse(createdAt))
  ) {
    throw new Error(`createdAt must be an ISO 8601 time, got ${show(createdAt)}`);
  }
  const tasks = requireField(data, "tasks", "");
  if (!Array.isArray(tasks)) throw new Error("tasks must be a list");
  if (tasks.length === 0) throw new Error("tasks is empty: a snapshot holds at least one task");

  const names = new Set<string>();
  const keys = new Set<string>();
  const entries = tasks.map((entry: unknown, i): TaskEntry => {
    const where = `tasks[${i}]`;
    if (!isRecord(entry)) throw new Error(`${where} must be an object`);
    const task = requireField(entry, "task", `${where}.`);
    checkTask(task, `${where}.task`);
    const label = taskName(task);
    if (names.has(label)) throw new Error(`task ${label} appears twice`);
    names.add(label);

    const offsets = requireField(entry, "offsets", `${where}.`);
    if (!isRecord(offsets))
      throw new Error(`${where}.offsets must be an object {"<topic>-<partition>": nextOffset}`);
    const sortedOffsets: Record<string, number> = {};
    for (const tp of Object.keys(offsets).sort()) {
      parseTopicPartition(tp);
      const offset = offsets[tp];
      if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
        throw new Error(
          `${where}.offsets[${show(tp)}] must be an integer >= 0, got ${show(offset)}`,
        );
      }
      sortedOffsets[tp] = offset;
    }

    const key = requireField(entry, "key", `${where}.`);
    if (typeof key !== "string" || key === "" || key.endsWith("/")) {
      throw new Error(`${where}.key must be an object key, got ${show(key)}`);
    }
    if (keys.has(key)) throw new Error(`object ${key} is listed for two tasks`);
    keys.add(key);
    const bytes = requireField(entry, "bytes", `${where}.`);
    if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes < 0) {
      throw new Error(`${where}.bytes must be an integer >= 0, got ${show(bytes)}`);
    }
    const sum = requireField(entry, "sha256", `${where}.`);
    if (typeof sum !== "string" || !SHA256_HEX.test(sum)) {
      throw new Error(`${where}.sha256 must be 64 lowercase hex characters, got ${show(sum)}`);
    }
    const operators = requireField(entry, "operators", `${where}.`);
    if (!Array.isArray(operators) || operators.some((o) => typeof o !== "string" || o === "")) {
      throw new Error(`${where}.operators must be a list of operator names`);
    }
    if (new Set(operators).size !== operators.length)
      throw new Error(`${where}.operators lists an operator twice`);

    const chain = "chain" in entry ? checkChain(entry.chain, `${where}.chain`) : undefined;
    const last = chain?.deltas.at(-1);
    if (chain && (last?.key !== key || last.bytes !== bytes || last.sha256 !== sum)) {
      throw new Error(`${where}.chain must end with the entry's own object ${key}`);
    }
    if (chain && kind === "savepoint") {
      throw new Error(`${where}.chain: a savepoint's objects are full snapshots`);
    }
    return {
      task: { topic: task.topic, partition: task.partition },
      offsets: sortedOffsets,
      key,
      bytes,
      sha256: sum,
      operators: [...(operators as string[])].sort(),
      ...(chain ? { chain } : {}),
    };
  });
  entries.sort((a, b) =>
    a.task.topic === b.task.topic
      ? a.task.partition - b.task.partition
      : a.task.topic < b.task.topic
        ? -1
        : 1,
  );
  return {
    formatVersion: METADATA_FORMAT_VERSION,
    kind,
    id,
    job: { namespace, name },
    fingerprint,
    createdAt: new Date(createdAt).toISOString(),
    tasks: entries,
  };
}

// ---- build, serialise, parse ----

export interface TaskEntryInput extends Omit<TaskEntry, "offsets"> {
  /** Offsets as the Kafka client gives them (bigint) or as numbers. */
  offsets: Record<string, number | bigint>;
}

export interface MetadataInput {
  kind: SnapshotKind;
  id: string;
  job: JobRef;
  /** Every stable operator name of the job (stateful or not): the fingerprint. */
  jobOperators: readonly string[];
  createdAt: Date | string;
  tasks: readonly TaskEntryInput[];
}

/**
 * The metadata of a snapshot whose task objects are all written. Throws when a task holds
 * state of an operator the job does not have (restored state that should have been dropped).
 */
export function buildMetadata(input: MetadataInput): SnapshotMetadata {
  const created = new Date(input.createdAt);
  if (Number.isNaN(created.getTime())) {
    throw new Error(`snapshot metadata: createdAt ${show(String(input.createdAt))} is not a time`);
  }
  const jobOperators = new Set(input.jobOperators);
  const tasks = input.tasks.map((entry) => {
    const offsets: Record<string, number> = {};
    for (const [tp, offset] of Object.entries(entry.offsets)) {
      // JSON numbers are exact up to 2^53: ample for Kafka offsets, checked all the same.
      if (typeof offset === "bigint" && offset > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new Error(`snapshot metadata: offset ${offset} of ${tp} is too large for JSON`);
      }
      offsets[tp] = Number(offset);
    }
    for (const operator of entry.operators) {
      if (!jobOperators.has(operator)) {
        throw new Error(
          `snapshot metadata: task ${taskName(entry.task)} holds state of operator "${operator}", ` +
            "which the job does not have",
        );
      }
    }
    return { ...entry, offsets };
  });
  const data = {
    formatVersion: METADATA_FORMAT_VERSION,
    kind: input.kind,
    id: input.id,
    job: input.job,
    fingerprint: jobFingerprint(input.jobOperators),
    createdAt: created.toISOString(),
    tasks,
  };
  try {
    return validate(data);
  } catch (error) {
    throw new Error(`snapshot metadata: ${(error as Error).message}`);
  }
}

/** The text of `_metadata.json`. */
export function serializeMetadata(metadata: SnapshotMetadata): string {
  return `${JSON.stringify(metadata, null, 2)}\n`;
}

/** Parses and validates `_metadata.json`; `source` (its object key) goes into error messages. */
export function parseMetadata(json: string, source?: string): SnapshotMetadata {
  const what = source === undefined ? "snapshot metadata" : `snapshot metadata ${source}`;
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw new Error(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return validate(data);
  } catch (error) {
    throw new Error(`${what} is invalid: ${(error as Error).message}`);
  }
}

// ---- restore-time checks ----

/** Throws unless `data` is exactly the object `entry` describes (size, then SHA-256). */
export function verifyChecksum(entry: TaskEntry, data: Uint8Array): void {
  const where = `task ${taskName(entry.task)} (object ${entry.key})`;
  if (data.byteLength !== entry.bytes) {
    throw new Error(`${where} is corrupt: expected ${entry.bytes} bytes, got ${data.byteLength}`);
  }
  const actual = sha256(data);
  if (actual !== entry.sha256) {
    throw new Error(
      `${where} is corrupt: checksum mismatch, expected sha256 ${entry.sha256}, got ${actual}`,
    );
  }
}

/**
 * Whether a job with `jobOperatorNames` can restore `metadata`: state of operators the job no
 * longer has would be lost. Throws naming them unless `allowNonRestoredState`; returns them
 * (sorted; empty when nothing is lost) so the caller drops them and can report it.
 */
export function checkCompatibility(
  metadata: SnapshotMetadata,
  jobOperatorNames: readonly string[],
  allowNonRestoredState: boolean,
): string[] {
  const known = new Set(jobOperatorNames);
  const lost = new Map<string, number>();
  for (const entry of metadata.tasks) {
    for (const operator of entry.operators) {
      if (!known.has(operator)) lost.set(operator, (lost.get(operator) ?? 0) + 1);
    }
  }
  const dropped = [...lost.keys()].sort();
  if (dropped.length > 0 && !allowNonRestoredState) {
    const list = dropped
      .map((name) => `"${name}" (${lost.get(name)} of ${metadata.tasks.length} tasks)`)
      .join(", ");
    throw new Error(
      `${metadata.kind} ${metadata.id} holds state of operators the job no longer has: ${list}; ` +
        "set allowNonRestoredState to restore without it",
    );
  }
  return dropped;
}
