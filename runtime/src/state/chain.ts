// Incremental checkpoints, the pure part: which objects a checkpoint's state is read from,
// when a task writes a full snapshot instead of a delta, when a background compaction merges
// a chain into a new base, what a finished compaction changes, and what retention may delete
// (never an object a kept checkpoint's chain needs). The I/O is in snapshot-store.ts and
// engine/task-checkpoints.ts.
import type { ObjectRef, TaskEntry } from "./metadata.ts";

/** The chain a task's in-memory state follows: its base, then the deltas written on it. */
export interface LiveChain {
  base: ObjectRef;
  deltas: ObjectRef[];
}

export interface ChainBounds {
  /**
   * Compact once the chain has this many deltas and they hold at least `compactMinRatio` of
   * the base: a compaction rewrites the whole base, which tiny deltas on a large base are not
   * worth (then half of `maxDeltas` forces one).
   */
  compactAfterDeltas: number;
  compactMinRatio?: number;
  /** Compact once the deltas together are larger than this share of the base. */
  compactAtRatio: number;
  /** Write a full snapshot instead of a delta past this many (compaction keeps failing). */
  maxDeltas: number;
}

export const DEFAULT_CHAIN_BOUNDS: ChainBounds = {
  compactAfterDeltas: 20,
  compactMinRatio: 0.1,
  compactAtRatio: 0.5,
  maxDeltas: 100,
};

/** The objects to read, in order, to restore an entry's state. */
export function chainObjects(entry: Pick<TaskEntry, "key" | "bytes" | "sha256" | "chain">) {
  if (entry.chain) return [entry.chain.base, ...entry.chain.deltas];
  return [{ key: entry.key, bytes: entry.bytes, sha256: entry.sha256 }];
}

/** The live chain of a restored checkpoint entry (its state is that chain's). */
export function liveChainOf(entry: Pick<TaskEntry, "key" | "bytes" | "sha256" | "chain">) {
  const [base, ...deltas] = chainObjects(entry) as [ObjectRef, ...ObjectRef[]];
  return { base, deltas };
}

/** Full when there is no chain to write a delta on (first checkpoint, after a savepoint's
 * restore), or the chain is too long because compactions did not finish. */
export function nextCheckpointKind(
  chain: LiveChain | undefined,
  bounds: ChainBounds = DEFAULT_CHAIN_BOUNDS,
): "full" | "delta" {
  if (chain === undefined) return "full";
  return chain.deltas.length >= bounds.maxDeltas ? "full" : "delta";
}

export function shouldCompact(
  chain: LiveChain | undefined,
  bounds: ChainBounds = DEFAULT_CHAIN_BOUNDS,
): boolean {
  if (chain === undefined || chain.deltas.length === 0) return false;
  const deltaBytes = chain.deltas.reduce((sum, d) => sum + d.bytes, 0);
  if (deltaBytes > bounds.compactAtRatio * chain.base.bytes) return true;
  if (chain.deltas.length >= bounds.maxDeltas / 2) return true;
  return (
    chain.deltas.length >= bounds.compactAfterDeltas &&
    deltaBytes >= (bounds.compactMinRatio ?? 0) * chain.base.bytes
  );
}

/** What a compaction merged: `base` and the first `deltas.length` deltas on it. */
export interface Compaction {
  from: LiveChain;
  merged: ObjectRef;
}

/**
 * The live chain once a compaction finished: the merged object replaces the base and deltas
 * it was made of, the deltas written since stay on it. A chain that moved on without it (a
 * full checkpoint meanwhile) is left as it is; the merged object is then an orphan.
 */
export function applyCompaction(
  chain: LiveChain | undefined,
  done: Compaction,
): LiveChain | undefined {
  if (chain === undefined || chain.base.key !== done.from.base.key) return chain;
  const n = done.from.deltas.length;
  if (chain.deltas.length < n) return chain;
  for (let i = 0; i < n; i++) if (chain.deltas[i]?.key !== done.from.deltas[i]?.key) return chain;
  return { base: done.merged, deltas: chain.deltas.slice(n) };
}

export interface StoredCheckpoint {
  id: string;
  /** Every object its state is read from. */
  objects: readonly string[];
}

export interface StoredObject {
  key: string;
  /** The checkpoint directory it is in. */
  id: string;
  lastModified: number;
}

export interface RetentionInput {
  /** One task's complete checkpoints, oldest first. */
  checkpoints: readonly StoredCheckpoint[];
  keep: number;
  /** The task's objects under the checkpoints (any directory, with or without metadata). */
  objects: readonly StoredObject[];
  /** Objects being written right now (a compaction's base): never deleted. */
  inFlight: ReadonlySet<string>;
  now: number;
  /**
   * How old an object must be before it is removed as an orphan (no kept chain needs it and
   * its checkpoint is not one deleted now): an object written by another process for the task
   * (a fenced pod still uploading) may still be about to be referenced... by nothing that will
   * commit, but is left alone for a while all the same.
   */
  orphanGraceMs: number;
}

export interface RetentionPlan {
  /** Checkpoints whose metadata goes (first: they stop existing). */
  checkpoints: string[];
  /** Objects then deleted. */
  objects: string[];
}

/**
 * Keeps the newest `keep` checkpoints and every object their chains need. The objects of the
 * checkpoints removed go now unless a kept chain still needs them; any other object no kept
 * chain needs (a compaction that crashed, a delta whose checkpoint went earlier) goes once it
 * is older than the grace.
 */
export function retentionPlan(input: RetentionInput): RetentionPlan {
  const keep = Math.max(0, input.keep);
  const cut = Math.max(0, input.checkpoints.length - keep);
  const removed = input.checkpoints.slice(0, cut).map((c) => c.id);
  const needed = new Set(input.inFlight);
  for (const c of input.checkpoints.slice(cut)) for (const key of c.objects) needed.add(key);
  const removedNow = new Set(removed);
  const objects = input.objects
    .filter(
      (o) =>
        !needed.has(o.key) &&
        (removedNow.has(o.id) || input.now - o.lastModified >= input.orphanGraceMs),
    )
    .map((o) => o.key);
  return { checkpoints: removed, objects };
}
