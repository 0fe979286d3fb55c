// A task's incremental checkpoints (docs/architecture.md, "Incremental checkpoints"): each
// checkpoint stores what changed since the last committed one on top of the chain the task's
// state follows (a full snapshot when there is none), a restore reads a base and its deltas,
// and a background compaction merges a long chain into a new base, which only checkpoints
// written after it is complete reference. Savepoints are always full, self-contained objects.
// The decisions are pure (state/chain.ts); this is their I/O.
import { randomBytes } from "node:crypto";
import {
  applyCompaction,
  type ChainBounds,
  type Compaction,
  chainObjects,
  DEFAULT_CHAIN_BOUNDS,
  type LiveChain,
  liveChainOf,
  nextCheckpointKind,
  shouldCompact,
} from "../state/chain.ts";
import { StateBuilder, type TaskState } from "../state/keyed-state.ts";
import type {
  ObjectRef,
  SnapshotKind,
  TaskEntry,
  TaskEntryInput,
  TaskRef,
} from "../state/metadata.ts";
import type { SnapshotStore } from "../state/snapshot-store.ts";
import { checkpointIdPrefix } from "./restore.ts";

export interface TaskCheckpointsOptions {
  store: SnapshotStore;
  task: TaskRef;
  /** Every stable operator name of the job (the snapshot fingerprint). */
  jobOperators: readonly string[];
  bounds?: ChainBounds;
  /** See retentionPlan: how old an unreferenced object must be before it is removed. */
  orphanGraceMs?: number;
  /** Longest the event loop is held by serialization or deserialization between yields. */
  budgetMs?: number;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

/** A checkpoint stored but not yet committed. */
export interface StoredCheckpoint {
  kind: "full" | "delta";
  /** Bytes uploaded for it (0 when the state had not changed: its chain is reused as is). */
  bytes: number;
  /** Deltas after the base in its chain. */
  chainLength: number;
  /** Time spent serializing, of the whole (serialization streams into the upload). */
  serializeMs: number;
  entry: TaskEntryInput;
  chain: LiveChain;
  now: number;
}

/** Default grace for orphans: longer than any upload of a fenced owner could still take. */
export const ORPHAN_GRACE_MS = 10 * 60_000;

export class TaskCheckpoints {
  readonly #options: TaskCheckpointsOptions;
  readonly #bounds: ChainBounds;
  /** The chain the in-memory state equals, up to the changes since (TaskState's dirt). */
  #chain: LiveChain | undefined;
  #compaction: Promise<void> | undefined;
  /** Finished, and to be applied to a checkpoint stored while it ran. */
  #compacted: Compaction | undefined;
  /** Objects being written outside a checkpoint (a compaction's base). */
  readonly #inFlight = new Set<string>();
  /** A copy of the savepoint's object restored from, to start the chain on. */
  #copiedBase: Promise<ObjectRef | undefined> | undefined;
  #closed = false;
  compactions = 0;
  compactionFailures = 0;

  constructor(options: TaskCheckpointsOptions) {
    this.#options = options;
    this.#bounds = options.bounds ?? DEFAULT_CHAIN_BOUNDS;
  }

  /** Deltas after the base of the chain the state follows (0 after a full checkpoint). */
  get chainLength(): number {
    return this.#chain?.deltas.length ?? 0;
  }

  /** Settles when the compaction running now (if any) has. */
  get compacting(): Promise<void> {
    return this.#compaction ?? Promise.resolve();
  }

  /**
   * Reads an entry's state: its chain's objects in order, each verified. A task restored from
   * its own checkpoint goes on writing deltas on that chain. One restored from a savepoint
   * (which the operator deletes when it likes) starts a chain of its own: on a server-side copy
   * of the savepoint's object at `copyTo`, made meanwhile, or else with a full checkpoint.
   */
  async restore(
    entry: TaskEntry,
    kind: SnapshotKind,
    copyTo?: string,
  ): Promise<{ state: TaskState; bytes: number }> {
    if (kind === "savepoint" && copyTo !== undefined && entry.chain === undefined) {
      this.#inFlight.add(copyTo);
      this.#copiedBase = this.#options.store
        .copy(entry, copyTo)
        .then(
          (ref) => ref,
          (error: unknown) => {
            this.#options.log?.(
              "copying the savepoint's object failed; a full checkpoint follows",
              {
                error: String(error),
              },
            );
            return undefined;
          },
        )
        .finally(() => this.#inFlight.delete(copyTo));
    }
    const builder = new StateBuilder(this.#options.budgetMs);
    let bytes = 0;
    for (const ref of chainObjects(entry)) {
      await builder.apply(this.#options.store.download(ref, this.#options.task));
      bytes += ref.bytes;
    }
    const state = builder.state;
    state.markClean();
    this.#chain = kind === "checkpoint" ? liveChainOf(entry) : undefined;
    return { state, bytes };
  }

  /**
   * Stores the state as checkpoint `id` (its object, then its metadata): a delta of what
   * changed since the last committed checkpoint, or a full snapshot when there is no chain to
   * add to. Nothing changes here until `committed`: a checkpoint that failed, or never
   * committed, leaves the changes to the next one.
   */
  async write(
    state: TaskState,
    id: string,
    offsets: Record<string, number | bigint>,
    now: number,
  ): Promise<StoredCheckpoint> {
    const { store, task, jobOperators } = this.#options;
    if (this.#copiedBase !== undefined) {
      const base = await this.#copiedBase;
      this.#copiedBase = undefined;
      if (base !== undefined && this.#chain === undefined) this.#chain = { base, deltas: [] };
    }
    const chain = this.#chain;
    const kind = nextCheckpointKind(chain, this.#bounds);
    let written: ObjectRef | undefined;
    let next: LiveChain;
    const timing = { ms: 0 };
    if (kind === "delta" && chain !== undefined) {
      state.purge(now);
      if (state.changedKeys() > 0) {
        written = await store.upload(
          store.objectKey("checkpoint", id, task),
          timed(state.chunks("delta", now, this.#options.budgetMs), timing),
        );
        next = { base: chain.base, deltas: [...chain.deltas, written] };
      } else {
        // Nothing changed: the new checkpoint names the same objects.
        next = chain;
      }
    } else {
      written = await store.upload(
        store.objectKey("checkpoint", id, task),
        timed(state.chunks("full", now, this.#options.budgetMs), timing),
      );
      next = { base: written, deltas: [] };
    }
    const last = next.deltas.at(-1) ?? next.base;
    const entry: TaskEntryInput = {
      task,
      offsets,
      key: last.key,
      bytes: last.bytes,
      sha256: last.sha256,
      operators: state.operatorNames(),
      ...(next.deltas.length > 0 ? { chain: { base: next.base, deltas: next.deltas } } : {}),
    };
    await store.writeMetadata("checkpoint", id, jobOperators, [entry]);
    return {
      kind,
      bytes: written?.bytes ?? 0,
      chainLength: next.deltas.length,
      serializeMs: timing.ms,
      entry,
      chain: next,
      now,
    };
  }

  /**
   * The checkpoint committed: its changes are stored for good, its chain is the state's from
   * now on, and a compaction starts when that chain is past its bounds.
   */
  committed(state: TaskState, checkpoint: StoredCheckpoint): void {
    state.markClean();
    this.#chain = checkpoint.chain;
    if (this.#compacted) this.#chain = applyCompaction(this.#chain, this.#compacted);
    if (
      this.#compaction === undefined &&
      !this.#closed &&
      shouldCompact(this.#chain, this.#bounds)
    ) {
      const from = this.#chain as LiveChain;
      this.#compacted = undefined;
      this.#compaction = this.#compact(from, checkpoint.entry.key, checkpoint.now).finally(() => {
        this.#compaction = undefined;
      });
    }
  }

  /** A savepoint's object for the task: always the full state, on its own. */
  async writeSavepoint(
    state: TaskState,
    id: string,
    offsets: Record<string, number | bigint>,
    now: number,
  ): Promise<TaskEntryInput & { serializeMs: number }> {
    const { store, task } = this.#options;
    const timing = { ms: 0 };
    const ref = await store.upload(
      store.objectKey("savepoint", id, task),
      timed(state.chunks("full", now, this.#options.budgetMs), timing),
    );
    return { task, offsets, ...ref, operators: state.operatorNames(), serializeMs: timing.ms };
  }

  /**
   * Merges the stored chain `from` into one full object next to the checkpoint `tipKey`, in
   * the background: read, applied and written in slices, so the task goes on meanwhile. The
   * object is only referenced by checkpoints stored after it is complete; if the process dies
   * first, the old chain is still whole and retention removes the orphan.
   */
  async #compact(from: LiveChain, tipKey: string, now: number): Promise<void> {
    const { store } = this.#options;
    const key = `${tipKey.slice(0, -".state".length)}.compacted-${randomBytes(4).toString("hex")}.state`;
    this.#inFlight.add(key);
    const started = performance.now();
    try {
      const builder = new StateBuilder(this.#options.budgetMs);
      const closed = () => this.#closed;
      for (const ref of [from.base, ...from.deltas]) {
        await builder.apply(stopWhen(store.download(ref, this.#options.task), closed));
      }
      // Purged as of the tip's time: only checkpoints taken later refer to the merged object.
      const merged = await store.upload(
        key,
        stopWhen(builder.state.chunks("full", now, this.#options.budgetMs), closed),
      );
      if (this.#closed) return;
      this.#compacted = { from, merged };
      this.#chain = applyCompaction(this.#chain, this.#compacted);
      this.compactions++;
      this.#options.log?.("checkpoint chain compacted", {
        deltas: from.deltas.length,
        bytes: merged.bytes,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      if (this.#closed) return; // stopped on purpose: the orphan is retention's
      this.compactionFailures++;
      this.#options.log?.("checkpoint compaction failed; the chain stays as it is", {
        error: String(error),
      });
    } finally {
      this.#inFlight.delete(key);
    }
  }

  /** Keeps the newest `keep` checkpoints of the task and what their chains need. */
  async retain(keep: number): Promise<void> {
    const { store, task } = this.#options;
    // The live chain is protected too: a compacted base is referenced by nothing stored yet.
    const protect = new Set(this.#inFlight);
    if (this.#chain)
      for (const ref of [this.#chain.base, ...this.#chain.deltas]) protect.add(ref.key);
    await store.retainChains(task, checkpointIdPrefix(task), keep, {
      inFlight: protect,
      orphanGraceMs: this.#options.orphanGraceMs ?? ORPHAN_GRACE_MS,
    });
  }

  /** Stops a compaction in flight (its object is left to retention) and waits for it. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#compaction;
    await this.#copiedBase;
  }
}

/** Counts the time spent producing chunks (serializing), not waiting for their consumer. */
async function* timed(
  chunks: AsyncGenerator<Buffer>,
  timing: { ms: number },
): AsyncGenerator<Buffer> {
  for (;;) {
    const since = performance.now();
    const next = await chunks.next();
    timing.ms += performance.now() - since;
    if (next.done) return;
    yield next.value;
  }
}

/** Fails the upload (which then aborts) once the task is closing. */
async function* stopWhen(
  chunks: AsyncIterable<Buffer>,
  stop: () => boolean,
): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    if (stop()) throw new Error("the task stopped");
    yield chunk;
  }
}
