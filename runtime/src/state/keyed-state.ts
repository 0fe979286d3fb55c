// Keyed state of one task (one source partition): per named operator, named value and map
// stores keyed by the record key, with optional time-to-live. Time is always passed in
// (`now`, milliseconds), so expiry is deterministic and replays the same way after a restore.
//
// Values are kept by reference and copied only by `snapshot`, which uses the structured-clone
// format (node:v8): plain objects, arrays, Map, Set, Date, bigint, Buffer and typed arrays
// round-trip; functions and symbols do not, and class instances come back as plain objects.
//
// Writes can be undone: between `TaskState.begin()` and `commit()`, every write journals what
// it replaced, and `rollback()` puts that back (a failed record leaves no trace). The journal
// holds references, not copies: a value mutated in place instead of replaced is not restored.
import { deserialize, serialize } from "node:v8";

/** 2: framed slices of entries (TaskState.chunks); format 1 snapshots are still read. */
export const TASK_STATE_FORMAT_VERSION = 2;
/** A delta's header format: what changed since the state it follows (TaskState.delta). */
export const DELTA_FORMAT_VERSION = 3;

/** A value in state that v8 cannot serialize (a function, say): the job's fault, not storage's. */
export class StateNotSerializable extends Error {}

/** The record key that state is partitioned by (callers encode Kafka keys as strings). */
export type StateKey = string;
/** Keys inside a MapState: primitives, so that Map identity survives a snapshot. */
export type MapKey = string | number;

export interface StateOptions {
  /** Entries expire this long after their last write (reads do not extend them). */
  ttlMs?: number;
}

export type StateKind = "value" | "map";

/** A stored value and the time it was last written (TTL counts from there). */
interface Entry<V> {
  v: V;
  w: number;
}

/**
 * The undo records of the writes since `TaskState.begin()`, newest last; undefined outside a
 * unit of work (then writes journal nothing). Shared by all stores of a task.
 */
interface Journal {
  undo: (() => void)[] | undefined;
}

/** What TaskState needs from either kind of store. */
interface Store {
  readonly kind: StateKind;
  readonly name: string;
  readonly ttlMs: number | undefined;
  purge(now: number): number;
  entryCount(): number;
  rawEntries(): Map<StateKey, unknown>;
  /** Keys written, deleted or expired since the last committed checkpoint (see markClean). */
  readonly dirty: Set<StateKey>;
}

function requireNow(now: number): void {
  if (!Number.isFinite(now)) throw new Error(`now must be a finite number, got ${String(now)}`);
}

function validateTtl(ttlMs: number | undefined): void {
  if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)) {
    throw new Error(`ttlMs must be a positive integer of milliseconds, got ${String(ttlMs)}`);
  }
}

function validateName(what: string, name: string): void {
  if (typeof name !== "string" || name.length === 0) {
    throw new Error(`${what} name must be a non-empty string, got ${JSON.stringify(name)}`);
  }
}

// Visible while now < written + ttl (expired exactly at the deadline, as in Flink).
function expired(entry: Entry<unknown>, ttlMs: number | undefined, now: number): boolean {
  return ttlMs !== undefined && now >= entry.w + ttlMs;
}

/** One value per key. */
export class ValueState<T> implements Store {
  readonly kind = "value";
  readonly name: string;
  readonly dirty = new Set<StateKey>();
  #ttlMs: number | undefined;
  readonly #entries: Map<StateKey, Entry<T>>;
  readonly #journal: Journal;

  /** @internal created through OperatorState.value */
  constructor(
    name: string,
    ttlMs: number | undefined,
    journal: Journal,
    entries = new Map<StateKey, Entry<T>>(),
  ) {
    this.name = name;
    this.#ttlMs = ttlMs;
    this.#journal = journal;
    this.#entries = entries;
  }

  get ttlMs(): number | undefined {
    return this.#ttlMs;
  }

  /** @internal */
  setTtl(ttlMs: number | undefined): void {
    this.#ttlMs = ttlMs;
  }

  get(key: StateKey, now: number): T | undefined {
    requireNow(now);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (expired(entry, this.#ttlMs, now)) {
      this.#entries.delete(key);
      this.dirty.add(key);
      return undefined;
    }
    return entry.v;
  }

  has(key: StateKey, now: number): boolean {
    return this.get(key, now) !== undefined;
  }

  set(key: StateKey, value: T, now: number): void {
    requireNow(now);
    // undefined is what get() says for "absent": storing it would be indistinguishable.
    if (value === undefined)
      throw new Error(`state "${this.name}": use delete() instead of setting undefined`);
    this.#remember(key);
    this.#entries.set(key, { v: value, w: now });
  }

  delete(key: StateKey): boolean {
    this.#remember(key);
    return this.#entries.delete(key);
  }

  /** Journals `key`'s current entry (or its absence) before a write, and marks it dirty. */
  #remember(key: StateKey): void {
    // A write undone by rollback stays dirty: the next delta then holds its current value.
    this.dirty.add(key);
    const undo = this.#journal.undo;
    if (undo === undefined) return;
    const previous = this.#entries.get(key);
    undo.push(() =>
      previous === undefined ? this.#entries.delete(key) : this.#entries.set(key, previous),
    );
  }

  /** Live keys at `now`. */
  keys(now: number): StateKey[] {
    return this.entries(now).map(([key]) => key);
  }

  /** Live entries at `now`. */
  entries(now: number): [StateKey, T][] {
    requireNow(now);
    const live: [StateKey, T][] = [];
    for (const [key, entry] of this.#entries) {
      if (!expired(entry, this.#ttlMs, now)) live.push([key, entry.v]);
    }
    return live;
  }

  /** Removes expired entries; returns how many. */
  purge(now: number): number {
    requireNow(now);
    let removed = 0;
    if (this.#ttlMs === undefined) return 0;
    for (const [key, entry] of this.#entries) {
      if (expired(entry, this.#ttlMs, now)) {
        this.#entries.delete(key);
        this.dirty.add(key);
        removed++;
      }
    }
    return removed;
  }

  /** Stored entries, expired ones included until they are purged. */
  entryCount(): number {
    return this.#entries.size;
  }

  /** @internal */
  rawEntries(): Map<StateKey, unknown> {
    return this.#entries;
  }
}

/** A map per key; TTL applies to each map entry on its own. */
export class MapState<K extends MapKey, V> implements Store {
  readonly kind = "map";
  readonly name: string;
  /** Record keys whose map changed (a delta holds the whole map of each). */
  readonly dirty = new Set<StateKey>();
  #ttlMs: number | undefined;
  readonly #maps: Map<StateKey, Map<K, Entry<V>>>;
  readonly #journal: Journal;

  /** @internal created through OperatorState.map */
  constructor(
    name: string,
    ttlMs: number | undefined,
    journal: Journal,
    maps = new Map<StateKey, Map<K, Entry<V>>>(),
  ) {
    this.name = name;
    this.#ttlMs = ttlMs;
    this.#journal = journal;
    this.#maps = maps;
  }

  get ttlMs(): number | undefined {
    return this.#ttlMs;
  }

  /** @internal */
  setTtl(ttlMs: number | undefined): void {
    this.#ttlMs = ttlMs;
  }

  get(key: StateKey, mapKey: K, now: number): V | undefined {
    requireNow(now);
    const map = this.#maps.get(key);
    const entry = map?.get(mapKey);
    if (map === undefined || entry === undefined) return undefined;
    if (expired(entry, this.#ttlMs, now)) {
      map.delete(mapKey);
      if (map.size === 0) this.#maps.delete(key);
      this.dirty.add(key);
      return undefined;
    }
    return entry.v;
  }

  has(key: StateKey, mapKey: K, now: number): boolean {
    return this.get(key, mapKey, now) !== undefined;
  }

  set(key: StateKey, mapKey: K, value: V, now: number): void {
    requireNow(now);
    if (value === undefined)
      throw new Error(`state "${this.name}": use delete() instead of setting undefined`);
    this.#remember(key, mapKey);
    let map = this.#maps.get(key);
    if (map === undefined) {
      map = new Map();
      this.#maps.set(key, map);
    }
    map.set(mapKey, { v: value, w: now });
  }

  delete(key: StateKey, mapKey: K): boolean {
    const map = this.#maps.get(key);
    if (map === undefined || !map.has(mapKey)) return false;
    this.#remember(key, mapKey);
    map.delete(mapKey);
    if (map.size === 0) this.#maps.delete(key);
    return true;
  }

  /** Removes the whole map of `key`. */
  clear(key: StateKey): boolean {
    const map = this.#maps.get(key);
    if (map === undefined) return false;
    this.dirty.add(key);
    if (this.#journal.undo !== undefined) {
      // The map object itself is dropped, untouched: putting it back restores every entry.
      this.#journal.undo.push(() => this.#maps.set(key, map));
    }
    return this.#maps.delete(key);
  }

  /** Journals one entry of `key`'s map (or its absence) before a write. */
  #remember(key: StateKey, mapKey: K): void {
    this.dirty.add(key);
    const undo = this.#journal.undo;
    if (undo === undefined) return;
    const previous = this.#maps.get(key)?.get(mapKey);
    undo.push(() => {
      let map = this.#maps.get(key);
      if (previous !== undefined) {
        if (map === undefined) {
          map = new Map();
          this.#maps.set(key, map);
        }
        map.set(mapKey, previous);
        return;
      }
      map?.delete(mapKey);
      if (map?.size === 0) this.#maps.delete(key);
    });
  }

  /** Live entries of `key`'s map at `now`. */
  entries(key: StateKey, now: number): [K, V][] {
    requireNow(now);
    const live: [K, V][] = [];
    for (const [mapKey, entry] of this.#maps.get(key) ?? []) {
      if (!expired(entry, this.#ttlMs, now)) live.push([mapKey, entry.v]);
    }
    return live;
  }

  /** Keys whose map has at least one live entry at `now`. */
  keys(now: number): StateKey[] {
    return [...this.#maps.keys()].filter((key) => this.entries(key, now).length > 0);
  }

  purge(now: number): number {
    requireNow(now);
    let removed = 0;
    if (this.#ttlMs === undefined) return 0;
    for (const [key, map] of this.#maps) {
      for (const [mapKey, entry] of map) {
        if (expired(entry, this.#ttlMs, now)) {
          map.delete(mapKey);
          this.dirty.add(key);
          removed++;
        }
      }
      if (map.size === 0) this.#maps.delete(key);
    }
    return removed;
  }

  /** Stored map entries over all keys, expired ones included until purged. */
  entryCount(): number {
    let count = 0;
    for (const map of this.#maps.values()) count += map.size;
    return count;
  }

  /** @internal */
  rawEntries(): Map<StateKey, unknown> {
    return this.#maps;
  }
}

type AnyStore = ValueState<unknown> | MapState<MapKey, unknown>;

/** The stores of one named operator within a task. */
export class OperatorState {
  readonly name: string;
  readonly #stores = new Map<string, AnyStore>();
  // Stores declared by this run's job code; restored ones take the TTL declared here.
  readonly #declared = new Set<string>();
  readonly #journal: Journal;

  /** @internal created through TaskState.operator */
  constructor(name: string, journal: Journal) {
    this.name = name;
    this.#journal = journal;
  }

  value<T>(stateName: string, options: StateOptions = {}): ValueState<T> {
    return this.#declare(stateName, "value", options) as ValueState<T>;
  }

  map<K extends MapKey, V>(stateName: string, options: StateOptions = {}): MapState<K, V> {
    return this.#declare(stateName, "map", options) as unknown as MapState<K, V>;
  }

  #declare(stateName: string, kind: StateKind, options: StateOptions): AnyStore {
    validateName("state", stateName);
    validateTtl(options.ttlMs);
    const existing = this.#stores.get(stateName);
    if (existing !== undefined) {
      if (existing.kind !== kind) {
        throw new Error(
          `state "${stateName}" of operator "${this.name}" is a ${existing.kind} state, not a ${kind} state`,
        );
      }
      if (this.#declared.has(stateName) && existing.ttlMs !== options.ttlMs) {
        throw new Error(
          `state "${stateName}" of operator "${this.name}" is already declared with ttlMs ` +
            `${String(existing.ttlMs)}, not ${String(options.ttlMs)}`,
        );
      }
      existing.setTtl(options.ttlMs);
      this.#declared.add(stateName);
      return existing;
    }
    const store: AnyStore =
      kind === "value"
        ? new ValueState(stateName, options.ttlMs, this.#journal)
        : new MapState(stateName, options.ttlMs, this.#journal);
    this.#stores.set(stateName, store);
    this.#declared.add(stateName);
    return store;
  }

  stateNames(): string[] {
    return [...this.#stores.keys()].sort();
  }

  /** @internal */
  stores(): Iterable<AnyStore> {
    return this.#stores.values();
  }

  /** @internal the store named `name`, if any (restoring a delta) */
  storeNamed(name: string): AnyStore | undefined {
    return this.#stores.get(name);
  }

  /** @internal used by TaskState.restore */
  adopt(kind: StateKind, name: string, ttlMs: number | undefined, entries: unknown): void {
    this.#stores.set(
      name,
      kind === "value"
        ? new ValueState(name, ttlMs, this.#journal, entries as Map<StateKey, Entry<unknown>>)
        : new MapState(
            name,
            ttlMs,
            this.#journal,
            entries as Map<StateKey, Map<MapKey, Entry<unknown>>>,
          ),
    );
  }
}

interface SnapshotStore {
  name: string;
  kind: StateKind;
  ttlMs: number | null;
  entries: Map<StateKey, unknown>;
}

interface SnapshotOperator {
  name: string;
  states: SnapshotStore[];
}

interface Snapshot {
  formatVersion: number;
  operators: SnapshotOperator[];
}

/** The keyed state of one task: its operators' stores, snapshotted as one object. */
export class TaskState {
  readonly #operators = new Map<string, OperatorState>();
  readonly #journal: Journal = { undo: undefined };
  /** Operators dropped since the last committed checkpoint (a delta names them). */
  readonly #dropped = new Set<string>();

  /** The state of operator `name` (created empty on first use). */
  operator(name: string): OperatorState {
    validateName("operator", name);
    let operator = this.#operators.get(name);
    if (operator === undefined) {
      operator = new OperatorState(name, this.#journal);
      this.#operators.set(name, operator);
    }
    return operator;
  }

  /**
   * Starts a unit of work (one record, one timer): its writes can be undone by `rollback()`
   * until `commit()`. Costs one small undo record per write, nothing per entry of the state.
   */
  begin(): void {
    if (this.#journal.undo !== undefined) throw new Error("a unit of work is already open");
    this.#journal.undo = [];
  }

  /** Keeps the writes since `begin()`. */
  commit(): void {
    this.#journal.undo = undefined;
  }

  /** Undoes the writes since `begin()`, newest first, and ends the unit of work. */
  rollback(): void {
    const undo = this.#journal.undo ?? [];
    this.#journal.undo = undefined;
    for (let i = undo.length - 1; i >= 0; i--) undo[i]?.();
  }

  hasOperator(name: string): boolean {
    return this.#operators.has(name);
  }

  /** Forgets an operator's state (one the job no longer has, restored with allowNonRestoredState). */
  dropOperator(name: string): boolean {
    const had = this.#operators.delete(name);
    if (had) this.#dropped.add(name);
    return had;
  }

  /** Removes the expired entries of every store with a TTL (they count as changed). */
  purge(now: number): void {
    requireNow(now);
    for (const operator of this.#operators.values()) {
      for (const store of operator.stores()) store.purge(now);
    }
  }

  /** How many keys changed since the last committed checkpoint (operators dropped count 1). */
  changedKeys(): number {
    let count = this.#dropped.size;
    for (const operator of this.#operators.values()) {
      for (const store of operator.stores()) count += store.dirty.size;
    }
    return count;
  }

  /**
   * Forgets what changed: called once a checkpoint holding it is stored and committed. A
   * checkpoint that failed leaves the changes in place, so the next delta holds them.
   */
  markClean(): void {
    this.#dropped.clear();
    for (const operator of this.#operators.values()) {
      for (const store of operator.stores()) store.dirty.clear();
    }
  }

  /**
   * Operators that hold at least one entry, sorted. After `snapshot(now)` (which purges), these
   * are exactly the operators in that snapshot: what `_metadata.json` lists for the task.
   */
  operatorNames(): string[] {
    const names: string[] = [];
    for (const [name, operator] of this.#operators) {
      if ([...operator.stores()].some((store) => store.entryCount() > 0)) names.push(name);
    }
    return names.sort();
  }

  /**
   * Purges expired entries, then serializes the state. Empty stores are left out: they carry
   * nothing, and leaving them out keeps an operator that holds no state from being reported
   * as state a new job version would lose.
   */
  snapshot(now: number): Buffer {
    return Buffer.concat([...this.#frames(now)]);
  }

  /**
   * What changed since the last committed checkpoint (see markClean), after purging expired
   * entries: per store the current value of every changed key and the keys deleted, and the
   * operators dropped. Applied in order onto the state it followed, it gives this state.
   */
  delta(now: number): Buffer {
    return Buffer.concat([...this.#deltaFrames(now)]);
  }

  /**
   * The bytes of `snapshot` (full) or `delta`, a frame at a time, with the event loop let go
   * every `budgetMs`: a large state must not hold up the task's clients, probes or control
   * API. The state must not change until the last chunk is taken (the task stands still).
   */
  async *chunks(kind: "full" | "delta", now: number, budgetMs = 10): AsyncGenerator<Buffer> {
    let since = performance.now();
    for (const frame of kind === "full" ? this.#frames(now) : this.#deltaFrames(now)) {
      yield frame;
      if (performance.now() - since > budgetMs) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
  }

  /**
   * A delta as frames: the magic, a header (format DELTA_FORMAT_VERSION) naming the dropped
   * operators and every store with changes and its slices of upserts (`[key, entry][]`) and of
   * deleted keys (`key[]`), then those slices.
   */
  *#deltaFrames(now: number): Generator<Buffer> {
    this.purge(now);
    const operators: DeltaOperator[] = [];
    const work: { operator: string; store: AnyStore; upserts: StateKey[]; deletes: StateKey[] }[] =
      [];
    for (const operator of this.#operators.values()) {
      const states: DeltaStore[] = [];
      for (const store of operator.stores()) {
        if (store.dirty.size === 0) continue;
        const entries = store.rawEntries();
        const upserts: StateKey[] = [];
        const deletes: StateKey[] = [];
        for (const key of store.dirty) (entries.has(key) ? upserts : deletes).push(key);
        states.push({
          name: store.name,
          kind: store.kind,
          ttlMs: store.ttlMs ?? null,
          upserts: Math.ceil(upserts.length / SLICE_ENTRIES),
          deletes: Math.ceil(deletes.length / SLICE_ENTRIES),
        });
        work.push({ operator: operator.name, store, upserts, deletes });
      }
      if (states.length > 0) operators.push({ name: operator.name, states });
    }
    yield SNAPSHOT_MAGIC;
    yield frame(
      serialize({
        formatVersion: DELTA_FORMAT_VERSION,
        kind: "delta",
        dropped: [...this.#dropped].sort(),
        operators,
      }),
    );
    for (const { operator, store, upserts, deletes } of work) {
      const entries = store.rawEntries();
      for (let i = 0; i < upserts.length; i += SLICE_ENTRIES) {
        const slice = upserts.slice(i, i + SLICE_ENTRIES).map((key) => [key, entries.get(key)]);
        try {
          yield frame(serialize(slice));
        } catch (error) {
          throw new StateNotSerializable(
            `state "${store.name}" of operator "${operator}" cannot be snapshotted: ${(error as Error).message}`,
          );
        }
      }
      for (let i = 0; i < deletes.length; i += SLICE_ENTRIES) {
        yield frame(serialize(deletes.slice(i, i + SLICE_ENTRIES)));
      }
    }
  }

  /**
   * The snapshot as frames (see SNAPSHOT_MAGIC): the magic, then a header naming every store
   * and how many slices of entries it has, then the slices, each `[key, value][]` of at most
   * SLICE_ENTRIES entries, length-prefixed.
   */
  *#frames(now: number): Generator<Buffer> {
    this.purge(now);
    const operators: SlicedOperator[] = [];
    const slices: { operator: string; store: AnyStore; count: number }[] = [];
    for (const operator of this.#operators.values()) {
      const states: SlicedStore[] = [];
      for (const store of operator.stores()) {
        if (store.entryCount() === 0) continue;
        // Slices hold record keys (a map state's key with its whole map), not map entries.
        const count = Math.ceil(store.rawEntries().size / SLICE_ENTRIES);
        states.push({
          name: store.name,
          kind: store.kind,
          ttlMs: store.ttlMs ?? null,
          slices: count,
        });
        slices.push({ operator: operator.name, store, count });
      }
      if (states.length > 0) operators.push({ name: operator.name, states });
    }
    yield SNAPSHOT_MAGIC;
    yield frame(serialize({ formatVersion: TASK_STATE_FORMAT_VERSION, operators }));
    for (const { operator, store } of slices) {
      let slice: [StateKey, unknown][] = [];
      const flush = () => {
        try {
          return frame(serialize(slice));
        } catch (error) {
          throw new StateNotSerializable(
            `state "${store.name}" of operator "${operator}" cannot be snapshotted: ${(error as Error).message}`,
          );
        } finally {
          slice = [];
        }
      };
      for (const entry of store.rawEntries()) {
        slice.push(entry);
        if (slice.length === SLICE_ENTRIES) yield flush();
      }
      if (slice.length > 0) yield flush();
    }
  }

  static restore(buffer: Uint8Array): TaskState {
    let data: unknown;
    try {
      data = readFrames(Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength));
    } catch (error) {
      throw new Error(
        `task state snapshot cannot be read (corrupt or not a task state): ${(error as Error).message}`,
      );
    }
    const snapshot = validateSnapshot(data);
    const state = new TaskState();
    for (const op of snapshot.operators) {
      const operator = state.operator(op.name);
      for (const s of op.states) operator.adopt(s.kind, s.name, s.ttlMs ?? undefined, s.entries);
    }
    return state;
  }

  /**
   * A rough size in bytes of what a snapshot would hold (keys, values, write times), for
   * metrics; O(entries). The exact figure is the length of `snapshot(now)`.
   */
  sizeEstimate(): number {
    let bytes = 0;
    for (const operator of this.#operators.values()) {
      for (const store of operator.stores()) bytes += estimateBytes(store.rawEntries(), new Set());
    }
    return bytes;
  }
}

/**
 * Snapshots since format 2 start with these bytes (v8's serialization starts with 0xff, so a
 * format 1 snapshot, one v8 value, is told apart).
 */
const SNAPSHOT_MAGIC = Buffer.from("WEIRSTATE\n");
/** Entries per slice: small enough that one slice of 10 kB values serializes in a few ms. */
const SLICE_ENTRIES = 1_000;

interface SlicedStore {
  name: string;
  kind: StateKind;
  ttlMs: number | null;
  slices: number;
}

interface SlicedOperator {
  name: string;
  states: SlicedStore[];
}

interface DeltaStore {
  name: string;
  kind: StateKind;
  ttlMs: number | null;
  /** Slices of `[key, entry][]`, then slices of deleted keys. */
  upserts: number;
  deletes: number;
}

interface DeltaOperator {
  name: string;
  states: DeltaStore[];
}

function frame(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * A snapshot's bytes as the object TaskState.restore checks (format 2 frames, or format 1):
 * `{ formatVersion, operators: [{ name, states: [{ name, kind, ttlMs, entries }] }] }`.
 */
export function readFrames(buffer: Buffer): unknown {
  if (!buffer.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    return deserialize(buffer);
  }
  let at = SNAPSHOT_MAGIC.length;
  const next = (): unknown => {
    if (at + 4 > buffer.length) throw new Error("snapshot ends inside a frame");
    const length = buffer.readUInt32BE(at);
    if (at + 4 + length > buffer.length) throw new Error("snapshot ends inside a frame");
    const value = deserialize(buffer.subarray(at + 4, at + 4 + length));
    at += 4 + length;
    return value;
  };
  const header = next() as { formatVersion: unknown; operators: SlicedOperator[] };
  if (!isRecord(header) || !Array.isArray(header.operators)) return header;
  const operators = header.operators.map((op) => ({
    name: op.name,
    states: (Array.isArray(op.states) ? op.states : []).map((s) => {
      const entries = new Map<StateKey, unknown>();
      for (let i = 0; i < s.slices; i++) {
        for (const [key, value] of next() as [StateKey, unknown][]) entries.set(key, value);
      }
      return { name: s.name, kind: s.kind, ttlMs: s.ttlMs, entries };
    }),
  }));
  if (at !== buffer.length) throw new Error("snapshot has bytes after its last frame");
  return { formatVersion: header.formatVersion, operators };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isEntry(value: unknown): boolean {
  return isRecord(value) && "v" in value && typeof value.w === "number";
}

function validateSnapshot(data: unknown): Snapshot {
  const bad = (why: string) => new Error(`task state snapshot is malformed: ${why}`);
  if (!isRecord(data) || !("formatVersion" in data)) throw bad("no formatVersion");
  if (data.formatVersion !== TASK_STATE_FORMAT_VERSION && data.formatVersion !== 1) {
    throw new Error(
      `unsupported task state format version ${String(data.formatVersion)} (this runtime reads 1 and ${TASK_STATE_FORMAT_VERSION})`,
    );
  }
  checkHeaderStores(data.operators, (s, where) => {
    if (!(s.entries instanceof Map)) throw bad(`${where} has no entries map`);
    for (const [key, value] of s.entries) {
      const ok =
        typeof key === "string" &&
        (s.kind === "value"
          ? isEntry(value)
          : value instanceof Map && [...value.values()].every(isEntry));
      if (!ok) throw bad(`${where} has a malformed entry`);
    }
  });
  return data as unknown as Snapshot;
}

/** Approximate structured-clone size: content bytes plus a few bytes of framing per item. */
function estimateBytes(value: unknown, seen: Set<object>): number {
  switch (typeof value) {
    case "string":
      return 4 + value.length;
    case "number":
      return 9;
    case "bigint":
      return 4 + Math.ceil(value.toString(16).length / 2);
    case "boolean":
    case "undefined":
      return 1;
    case "object": {
      if (value === null) return 1;
      // Shared or cyclic references are serialized once.
      if (seen.has(value)) return 4;
      seen.add(value);
      if (ArrayBuffer.isView(value)) return 8 + value.byteLength;
      if (value instanceof ArrayBuffer) return 8 + value.byteLength;
      if (value instanceof Date) return 9;
      let bytes = 4;
      if (value instanceof Map) {
        for (const [k, v] of value) bytes += estimateBytes(k, seen) + estimateBytes(v, seen);
      } else if (value instanceof Set || Array.isArray(value)) {
        for (const v of value) bytes += estimateBytes(v, seen);
      } else {
        for (const [k, v] of Object.entries(value))
          bytes += estimateBytes(k, seen) + estimateBytes(v, seen);
      }
      return bytes;
    }
    default:
      return 0;
  }
}

/** Bytes taken from a stream of chunks, exactly as many as asked for. */
class ByteQueue {
  #chunks: Buffer[] = [];
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.length += chunk.byteLength;
  }

  /** Puts bytes back in front. */
  unshift(chunk: Buffer): void {
    this.#chunks.unshift(chunk);
    this.length += chunk.length;
  }

  /** The next `n` bytes, or undefined while fewer have arrived. */
  take(n: number): Buffer | undefined {
    if (n > this.length) return undefined;
    const first = this.#chunks[0];
    let out: Buffer;
    if (first !== undefined && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const chunk = this.#chunks[0] as Buffer;
        const part = Math.min(chunk.length, n - at);
        chunk.copy(out, at, 0, part);
        at += part;
        if (part === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(part);
      }
    }
    this.length -= n;
    return out;
  }

  /** The payload of the next complete length-prefixed frame, if it has all arrived. */
  frame(): Buffer | undefined {
    if (this.length < 4) return undefined;
    const head = this.take(4) as Buffer;
    const size = head.readUInt32BE(0);
    if (this.length < size) {
      this.unshift(Buffer.from(head));
      return undefined;
    }
    return this.take(size);
  }
}

type Piece = { legacy: true; bytes: Buffer } | { legacy: false; bytes: Buffer };

/** The frames of one stored object as they arrive (or, for format 1, the whole object). */
async function* framesOf(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Piece> {
  const queue = new ByteQueue();
  let framed: boolean | undefined;
  for await (const chunk of chunks) {
    queue.push(chunk);
    if (framed === undefined) {
      if (queue.length < SNAPSHOT_MAGIC.length) continue;
      const magic = queue.take(SNAPSHOT_MAGIC.length) as Buffer;
      framed = magic.equals(SNAPSHOT_MAGIC);
      if (!framed) queue.unshift(magic);
    }
    if (!framed) continue;
    for (let f = queue.frame(); f !== undefined; f = queue.frame())
      yield { legacy: false, bytes: f };
  }
  if (framed === true) {
    if (queue.length > 0) throw new Error("snapshot ends inside a frame");
    return;
  }
  // Format 1 (one v8 value) or too short to be anything.
  yield { legacy: true, bytes: queue.take(queue.length) ?? Buffer.alloc(0) };
}

function checkEntry(kind: StateKind, key: unknown, value: unknown, where: string): void {
  const ok =
    typeof key === "string" &&
    (kind === "value"
      ? isEntry(value)
      : value instanceof Map && [...value.values()].every(isEntry));
  if (!ok) throw new Error(`task state snapshot is malformed: ${where} has a malformed entry`);
}

interface HeaderStore {
  name: string;
  kind: StateKind;
  ttlMs: number | null;
}

function checkHeaderStores(
  operators: unknown,
  extra: (store: Record<string, unknown>, where: string) => void,
): { name: string; states: HeaderStore[] }[] {
  const bad = (why: string) => new Error(`task state snapshot is malformed: ${why}`);
  if (!Array.isArray(operators)) throw bad("operators is not a list");
  const names = new Set<string>();
  return operators.map((op, i) => {
    if (!isRecord(op) || typeof op.name !== "string" || op.name === "")
      throw bad(`operators[${i}] has no name`);
    if (names.has(op.name)) throw bad(`operator "${op.name}" appears twice`);
    names.add(op.name);
    if (!Array.isArray(op.states)) throw bad(`operator "${op.name}" has no list of states`);
    const stateNames = new Set<string>();
    for (const s of op.states) {
      const where = `operator "${op.name}"`;
      if (!isRecord(s) || typeof s.name !== "string" || s.name === "")
        throw bad(`a state of ${where} has no name`);
      if (stateNames.has(s.name)) throw bad(`state "${s.name}" of ${where} appears twice`);
      stateNames.add(s.name);
      if (s.kind !== "value" && s.kind !== "map")
        throw bad(`state "${s.name}" of ${where} has unknown kind`);
      if (s.ttlMs !== null && (typeof s.ttlMs !== "number" || !(s.ttlMs > 0)))
        throw bad(`state "${s.name}" of ${where} has an invalid ttlMs`);
      extra(s, `state "${s.name}" of ${where}`);
    }
    return { name: op.name, states: op.states as HeaderStore[] };
  });
}

function sliceCount(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0)
    throw new Error(`task state snapshot is malformed: ${what} has no slice count`);
  return value as number;
}

/**
 * Builds a task's state from stored objects read as streams, in order: a full snapshot
 * (format 1 or 2), then any number of deltas (format 3) applied onto it. Each slice is
 * deserialized on its own and the event loop is let go every `budgetMs`, so restoring a large
 * state never blocks it for long. A failed `apply` leaves the builder unusable.
 */
export class StateBuilder {
  #state: TaskState | undefined;
  readonly #budgetMs: number;
  #since = performance.now();

  constructor(budgetMs = 10) {
    this.#budgetMs = budgetMs;
  }

  /** The state built so far (empty before the first object). */
  get state(): TaskState {
    return this.#state ?? new TaskState();
  }

  async #breathe(): Promise<void> {
    if (performance.now() - this.#since > this.#budgetMs) {
      await new Promise((resolve) => setImmediate(resolve));
      this.#since = performance.now();
    }
  }

  /** `slices` slices of `[key, entry]` pairs from `next`, checked and set into `entries`. */
  async #readEntries(
    next: () => Promise<unknown>,
    slices: number,
    kind: StateKind,
    where: string,
    entries: Map<StateKey, unknown>,
  ): Promise<void> {
    for (let i = 0; i < slices; i++) {
      const slice = await next();
      if (!Array.isArray(slice)) throw new Error(`${where}: a slice is not a list`);
      for (const pair of slice as [unknown, unknown][]) {
        const [key, value] = Array.isArray(pair) ? pair : [];
        checkEntry(kind, key, value, where);
        entries.set(key as StateKey, value);
      }
      await this.#breathe();
    }
  }

  /** Applies one object: a full snapshot must come first, deltas after it. */
  async apply(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    try {
      await this.#apply(chunks);
    } catch (error) {
      throw new Error(
        `task state snapshot cannot be read (corrupt or not a task state): ${(error as Error).message}`,
      );
    }
  }

  async #apply(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const pieces = framesOf(chunks)[Symbol.asyncIterator]();
    const next = async (): Promise<unknown> => {
      const piece = await pieces.next();
      if (piece.done) throw new Error("snapshot ends before its last frame");
      return deserialize(piece.value.bytes);
    };
    const first = await pieces.next();
    if (first.done) throw new Error("the object is empty");
    if (first.value.legacy) {
      if (this.#state !== undefined) throw new Error("a full snapshot cannot follow another");
      this.#state = TaskState.restore(first.value.bytes);
      return;
    }
    const header = deserialize(first.value.bytes) as Record<string, unknown>;
    if (!isRecord(header) || !("formatVersion" in header))
      throw new Error("task state snapshot is malformed: no formatVersion");
    if (header.formatVersion === TASK_STATE_FORMAT_VERSION) {
      if (this.#state !== undefined) throw new Error("a full snapshot cannot follow another");
      const state = new TaskState();
      const operators = checkHeaderStores(header.operators, (s, where) =>
        sliceCount(s.slices, where),
      );
      for (const op of operators) {
        const operator = state.operator(op.name);
        for (const s of op.states as (HeaderStore & { slices: number })[]) {
          const entries = new Map<StateKey, unknown>();
          const where = `state "${s.name}" of operator "${op.name}"`;
          await this.#readEntries(next, s.slices, s.kind, where, entries);
          operator.adopt(s.kind, s.name, s.ttlMs ?? undefined, entries);
        }
      }
      this.#state = state;
    } else if (header.formatVersion === DELTA_FORMAT_VERSION) {
      const state = this.#state;
      if (state === undefined) throw new Error("a delta needs the snapshot it follows");
      const dropped = header.dropped;
      if (!Array.isArray(dropped) || dropped.some((d) => typeof d !== "string"))
        throw new Error("task state snapshot is malformed: a delta without its dropped operators");
      for (const name of dropped as string[]) state.dropOperator(name);
      const operators = checkHeaderStores(header.operators, (s, where) => {
        sliceCount(s.upserts, where);
        sliceCount(s.deletes, where);
      });
      for (const op of operators) {
        const operator = state.operator(op.name);
        for (const s of op.states as (HeaderStore & { upserts: number; deletes: number })[]) {
          const where = `state "${s.name}" of operator "${op.name}"`;
          let store = operator.storeNamed(s.name);
          if (store !== undefined && store.kind !== s.kind)
            throw new Error(`${where} is a ${store.kind} state, the delta says ${s.kind}`);
          if (store === undefined) {
            operator.adopt(s.kind, s.name, s.ttlMs ?? undefined, new Map());
            store = operator.storeNamed(s.name) as AnyStore;
          }
          store.setTtl(s.ttlMs ?? undefined);
          const entries = store.rawEntries();
          await this.#readEntries(next, s.upserts, s.kind, where, entries);
          for (let i = 0; i < s.deletes; i++) {
            const slice = await next();
            if (!Array.isArray(slice) || slice.some((k) => typeof k !== "string"))
              throw new Error(`${where}: a slice of deleted keys is not a list of keys`);
            for (const key of slice as StateKey[]) entries.delete(key);
            await this.#breathe();
          }
        }
      }
    } else {
      throw new Error(
        `unsupported task state format version ${String(header.formatVersion)} (this runtime reads 1, ${TASK_STATE_FORMAT_VERSION} and deltas ${DELTA_FORMAT_VERSION})`,
      );
    }
    if (!(await pieces.next()).done) throw new Error("snapshot has bytes after its last frame");
  }
}
