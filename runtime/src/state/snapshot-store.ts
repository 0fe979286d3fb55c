// Snapshots (checkpoints and savepoints) in S3-compatible storage through the `minio`
// package, in the layout of metadata.ts: one immutable object per task, then `_metadata.json`
// last. A snapshot without its metadata does not exist: it is never listed or restored.
import { buffer } from "node:stream/consumers";
import type { Client } from "minio";
import {
  buildMetadata,
  type JobRef,
  METADATA_FILE,
  metadataKey,
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
  verifyChecksum,
} from "./metadata.ts";

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
   * Keeps the newest `keep` complete snapshots of a kind (among those `which` selects, e.g.
   * one task's checkpoints); returns the ids it removed.
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
