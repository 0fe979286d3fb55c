// Snapshots (checkpoints and savepoints) in S3-compatible storage through the `minio`
// package, in the layout of metadata.ts: one immutable object per task, then `_metadata.json`
// last. A snapshot without its metadata does not exist: it is never listed or restored.
import { createHash } from "node:crypto";
import { buffer } from "node:stream/consumers";
import { type Client, CopyDestinationOptions, CopySourceOptions } from "minio";
import { type RetentionPlan, retentionPlan, type StoredObject } from "./chain.ts";
import {
  buildMetadata,
  type JobRef,
  METADATA_FILE,
  metadataKey,
  type ObjectRef,
  objectKey,
  parseMetadata,
  type SnapshotKind,
  type SnapshotLocation,
  type SnapshotMetadata,
  serializeMetadata,
  sha256,
  snapshotDir,
  snapshotPrefix,
  type TaskEntry,
  type TaskEntryInput,
  type TaskRef,
  topicPartition,
  verifyChecksum,
} from "./metadata.ts";

/**
 * Parts of a streamed upload: S3's smallest. minio hashes every part it sends (SHA-256 over
 * plain HTTP) synchronously, and given a whole object would buffer and hash up to 64 MB at
 * once; 5 MiB parts keep that to ~10-25 ms. S3 allows 10,000 parts: objects up to ~50 GB.
 */
export const PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** Parts of one upload in flight at once. */
const PARTS_IN_FLIGHT = 2;

export interface TaskSnapshot {
  task: TaskRef;
  /** Next offset to read per source topic-partition. */
  offsets: Record<string, number | bigint>;
  state: Buffer;
  operators: string[];
}

export interface SnapshotStoreOptions {
  client: Client;
  bucket: string;
  /** Key prefix inside the bucket (may be empty). */
  prefix: string;
  job: JobRef;
}

export class SnapshotStore {
  readonly #client: Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #job: JobRef;

  constructor(options: SnapshotStoreOptions) {
    this.#client = options.client;
    this.#bucket = options.bucket;
    this.#prefix = options.prefix;
    this.#job = options.job;
  }

  #location(kind: SnapshotKind, id: string): SnapshotLocation {
    return { prefix: this.#prefix, namespace: this.#job.namespace, job: this.#job.name, kind, id };
  }

  /**
   * Fails unless the bucket exists and the credentials are accepted (a missing bucket fails
   * with code NoSuchBucket, refused credentials with the server's code).
   */
  async assertUsable(): Promise<void> {
    if (!(await this.#client.bucketExists(this.#bucket)))
      throw Object.assign(new Error(`bucket ${this.#bucket} does not exist`), {
        code: "NoSuchBucket",
      });
  }

  /** Where a snapshot lives, as the operator records it: `s3://<bucket>/<dir>`. */
  path(kind: SnapshotKind, id: string): string {
    return `s3://${this.#bucket}/${snapshotDir(this.#location(kind, id))}`;
  }

  /** A task's object in a snapshot's directory; `suffix` names one besides its main object. */
  objectKey(kind: SnapshotKind, id: string, task: TaskRef, suffix = ""): string {
    const key = objectKey(this.#location(kind, id), task);
    return suffix ? `${key.slice(0, -".state".length)}.${suffix}.state` : key;
  }

  /**
   * Uploads an object from chunks as they come, hashing as it goes: one PUT when it fits in a
   * part, else a multipart upload of PART_BYTES parts (a failed one is aborted). The whole
   * object is never in one buffer, and no single step hashes more than a part.
   */
  async upload(key: string, chunks: AsyncIterable<Uint8Array>): Promise<ObjectRef> {
    const hash = createHash("sha256");
    let bytes = 0;
    let held: Buffer[] = [];
    let heldBytes = 0;
    let uploadId: string | undefined;
    const parts: Promise<{ part: number; etag: string }>[] = [];
    const inFlight = new Set<Promise<unknown>>();
    const sendPart = async (body: Buffer) => {
      uploadId ??= await this.#client.initiateNewMultipartUpload(this.#bucket, key, {});
      const part = parts.length + 1;
      if (part > MAX_PARTS) throw new Error(`object ${key} is too large for ${MAX_PARTS} parts`);
      const sent = this.#client
        .uploadPart(
          {
            bucketName: this.#bucket,
            objectName: key,
            uploadID: uploadId,
            partNumber: part,
            headers: { "Content-Length": body.length },
          },
          body,
        )
        .then((r) => ({ part, etag: r.etag }));
      parts.push(sent);
      const tracked = sent.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      // Back-pressure: the producer waits while the parts ahead are on the wire.
      while (inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(inFlight);
    };
    try {
      for await (const chunk of chunks) {
        hash.update(chunk);
        bytes += chunk.byteLength;
        held.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        heldBytes += chunk.byteLength;
        if (heldBytes >= PART_BYTES) {
          // A chunk may hold several parts (a slice of large values): send them all now.
          const all = Buffer.concat(held, heldBytes);
          let at = 0;
          for (; all.length - at >= PART_BYTES; at += PART_BYTES) {
            await sendPart(all.subarray(at, at + PART_BYTES));
          }
          held = at < all.length ? [all.subarray(at)] : [];
          heldBytes = all.length - at;
        }
      }
      const rest = Buffer.concat(held, heldBytes);
      if (uploadId === undefined) {
        await this.#client.putObject(this.#bucket, key, rest, rest.length);
      } else {
        if (rest.length > 0) await sendPart(rest);
        const etags = await Promise.all(parts);
        await this.#client.completeMultipartUpload(this.#bucket, key, uploadId, etags);
      }
    } catch (error) {
      await Promise.allSettled(parts);
      if (uploadId !== undefined)
        await this.#client.abortMultipartUpload(this.#bucket, key, uploadId).catch(() => {});
      throw error;
    }
    return { key, bytes, sha256: hash.digest("hex") };
  }

  /**
   * An object's bytes as they arrive; the stream fails at its end when size or SHA-256 differ
   * from `ref` (whatever was built from it must then be thrown away).
   */
  async *download(ref: ObjectRef, task?: TaskRef): AsyncGenerator<Buffer> {
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const chunk of await this.#client.getObject(this.#bucket, ref.key)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    const where = `${task ? `task ${topicPartition(task.topic, task.partition)} ` : ""}(object ${ref.key})`;
    if (bytes !== ref.bytes)
      throw new Error(`${where} is corrupt: expected ${ref.bytes} bytes, got ${bytes}`);
    const actual = hash.digest("hex");
    if (actual !== ref.sha256)
      throw new Error(
        `${where} is corrupt: checksum mismatch, expected sha256 ${ref.sha256}, got ${actual}`,
      );
  }

  /** A server-side copy of an object (nothing moves through this process); up to 5 GB. */
  async copy(from: ObjectRef, to: string): Promise<ObjectRef> {
    await this.#client.copyObject(
      new CopySourceOptions({ Bucket: this.#bucket, Object: from.key }),
      new CopyDestinationOptions({ Bucket: this.#bucket, Object: to }),
    );
    return { key: to, bytes: from.bytes, sha256: from.sha256 };
  }

  /** Writes the metadata of a snapshot whose objects are all stored: it exists from then on. */
  writeMetadata(
    kind: SnapshotKind,
    id: string,
    jobOperators: readonly string[],
    entries: readonly TaskEntryInput[],
  ): Promise<SnapshotMetadata> {
    return this.#writeMetadata(kind, id, jobOperators, entries);
  }

  /**
   * One task's checkpoint retention with incremental checkpoints: keeps the newest `keep`
   * checkpoints of the task and every object their chains need (see chain.ts's retentionPlan).
   */
  async retainChains(
    task: TaskRef,
    idPrefix: string,
    keep: number,
    options: { inFlight?: ReadonlySet<string>; orphanGraceMs: number; now?: number },
  ): Promise<RetentionPlan> {
    const checkpoints = (await this.list("checkpoint", idPrefix)).flatMap((c) => {
      const entry = c.tasks.find(
        (t) => t.task.topic === task.topic && t.task.partition === task.partition,
      );
      if (!entry) return [];
      const objects = entry.chain
        ? [entry.chain.base.key, ...entry.chain.deltas.map((d) => d.key)]
        : [entry.key];
      return [{ id: c.id, objects }];
    });
    const root = `${snapshotPrefix(this.#prefix, this.#job.namespace, this.#job.name)}checkpoints/`;
    const file = `${topicPartition(task.topic, task.partition)}.`;
    const objects: StoredObject[] = [];
    for await (const item of this.#client.listObjectsV2(this.#bucket, root + idPrefix, true)) {
      const name = item.name ?? "";
      const [id, base] = name.slice(root.length).split("/");
      if (id === undefined || base === undefined || !base.startsWith(file)) continue;
      objects.push({ key: name, id, lastModified: item.lastModified?.getTime() ?? 0 });
    }
    const plan = retentionPlan({
      checkpoints,
      keep,
      objects,
      inFlight: options.inFlight ?? new Set(),
      now: options.now ?? Date.now(),
      orphanGraceMs: options.orphanGraceMs,
    });
    for (const id of plan.checkpoints) {
      await this.#client.removeObject(this.#bucket, metadataKey(this.#location("checkpoint", id)));
    }
    if (plan.objects.length > 0) await this.#client.removeObjects(this.#bucket, plan.objects);
    return plan;
  }

  /** Uploads one task's state object of a snapshot; returns its entry for the metadata. */
  async writeTask(kind: SnapshotKind, id: string, task: TaskSnapshot): Promise<TaskEntryInput> {
    const key = objectKey(this.#location(kind, id), task.task);
    await this.#client.putObject(this.#bucket, key, task.state, task.state.length);
    return {
      task: task.task,
      offsets: task.offsets,
      key,
      bytes: task.state.length,
      sha256: sha256(task.state),
      operators: [...task.operators].sort(),
    };
  }

  async #writeMetadata(
    kind: SnapshotKind,
    id: string,
    jobOperators: readonly string[],
    entries: readonly TaskEntryInput[],
  ): Promise<SnapshotMetadata> {
    const metadata = buildMetadata({
      kind,
      id,
      job: this.#job,
      jobOperators,
      createdAt: new Date(),
      tasks: entries,
    });
    const json = Buffer.from(serializeMetadata(metadata));
    await this.#client.putObject(
      this.#bucket,
      metadataKey(this.#location(kind, id)),
      json,
      json.length,
      {
        "Content-Type": "application/json",
      },
    );
    return metadata;
  }

  /**
   * Uploads every task's state, then the metadata that makes the snapshot exist. A failure
   * part-way leaves objects without metadata: invisible, and removed by `delete`.
   */
  async write(
    kind: SnapshotKind,
    id: string,
    jobOperators: readonly string[],
    tasks: readonly TaskSnapshot[],
  ): Promise<SnapshotMetadata> {
    const entries = await Promise.all(tasks.map((task) => this.writeTask(kind, id, task)));
    return this.#writeMetadata(kind, id, jobOperators, entries);
  }

  /**
   * A savepoint is taken by every pod for its own tasks: each records its part; the savepoint
   * exists once all parts are in and `completeSavepoint` wrote the metadata.
   */
  async writeSavepointPart(
    id: string,
    subtask: number,
    entries: readonly TaskEntryInput[],
  ): Promise<void> {
    const key = `${snapshotDir(this.#location("savepoint", id))}_parts/${subtask}.json`;
    const json = Buffer.from(
      JSON.stringify(entries, (_key, value) => (typeof value === "bigint" ? Number(value) : value)),
    );
    await this.#client.putObject(this.#bucket, key, json, json.length);
  }

  /** Writes the savepoint's metadata when the parts of all `parallelism` pods are in. */
  async completeSavepoint(
    id: string,
    jobOperators: readonly string[],
    parallelism: number,
  ): Promise<SnapshotMetadata | undefined> {
    const dir = `${snapshotDir(this.#location("savepoint", id))}_parts/`;
    const entries: TaskEntryInput[] = [];
    for (let subtask = 0; subtask < parallelism; subtask++) {
      try {
        const body = await buffer(
          await this.#client.getObject(this.#bucket, `${dir}${subtask}.json`),
        );
        entries.push(...(JSON.parse(body.toString()) as TaskEntryInput[]));
      } catch (error) {
        if ((error as { code?: string }).code === "NoSuchKey") return undefined;
        throw error;
      }
    }
    return this.#writeMetadata("savepoint", id, jobOperators, entries);
  }

  /** The metadata of the snapshot at an `s3://<bucket>/<dir>/` path (as `path()` gives it). */
  async readAt(path: string): Promise<SnapshotMetadata | undefined> {
    const match = /^s3:\/\/([^/]+)\/(.+?)\/?$/.exec(path);
    if (!match || match[1] !== this.#bucket) {
      throw new Error(
        `${path} is not a snapshot path in bucket ${this.#bucket} (s3://${this.#bucket}/<dir>/)`,
      );
    }
    const key = `${match[2]}/${METADATA_FILE}`;
    try {
      const body = await buffer(await this.#client.getObject(this.#bucket, key));
      return parseMetadata(body.toString(), `s3://${this.#bucket}/${key}`);
    } catch (error) {
      if ((error as { code?: string }).code === "NoSuchKey") return undefined;
      throw error;
    }
  }

  /** The snapshot's metadata, or undefined when it does not exist (no `_metadata.json`). */
  async read(kind: SnapshotKind, id: string): Promise<SnapshotMetadata | undefined> {
    const key = metadataKey(this.#location(kind, id));
    let body: Buffer;
    try {
      body = await buffer(await this.#client.getObject(this.#bucket, key));
    } catch (error) {
      if ((error as { code?: string }).code === "NoSuchKey") return undefined;
      throw error;
    }
    return parseMetadata(body.toString(), `s3://${this.#bucket}/${key}`);
  }

  /** A task's state object, refused when its checksum or size does not match the metadata. */
  async readTaskState(entry: TaskEntry): Promise<Buffer> {
    const data = await buffer(await this.#client.getObject(this.#bucket, entry.key));
    verifyChecksum(entry, data);
    return data;
  }

  /** Ids of the complete snapshots of a kind, oldest first (by creation time). */
  async list(kind: SnapshotKind, idPrefix = ""): Promise<SnapshotMetadata[]> {
    const root = `${snapshotPrefix(this.#prefix, this.#job.namespace, this.#job.name)}${kind}s/`;
    const ids = new Set<string>();
    // `idPrefix` narrows the listing (one task's checkpoints) so only those metadata are read.
    for await (const item of this.#client.listObjectsV2(this.#bucket, root + idPrefix, true)) {
      const name = item.name ?? "";
      if (name.endsWith(`/${METADATA_FILE}`)) ids.add(name.slice(root.length).split("/")[0] ?? "");
    }
    const snapshots = await Promise.all([...ids].map((id) => this.read(kind, id)));
    return snapshots
      .filter((s): s is SnapshotMetadata => s !== undefined)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** Removes a snapshot: metadata first (it stops existing), then its objects. */
  async delete(kind: SnapshotKind, id: string): Promise<void> {
    const location = this.#location(kind, id);
    await this.#client.removeObject(this.#bucket, metadataKey(location));
    const keys: string[] = [];
    for await (const item of this.#client.listObjectsV2(
      this.#bucket,
      snapshotDir(location),
      true,
    )) {
      if (item.name) keys.push(item.name);
    }
    if (keys.length > 0) await this.#client.removeObjects(this.#bucket, keys);
  }

  /**
   * Keeps the newest `keep` complete snapshots of a kind (among those `which` selects); returns
   * the ids it removed. Each snapshot goes whole, objects and all: for self-contained snapshots
   * only, never for incremental checkpoints, whose objects later chains share (retainChains).
   */
  async retain(
    kind: SnapshotKind,
    keep: number,
    which: (snapshot: SnapshotMetadata) => boolean = () => true,
    idPrefix = "",
  ): Promise<string[]> {
    const snapshots = (await this.list(kind, idPrefix)).filter(which);
    const old = snapshots.slice(0, Math.max(0, snapshots.length - keep)).map((s) => s.id);
    for (const id of old) await this.delete(kind, id);
    return old;
  }
}
