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

/** 2: framed slices of entries (snapshotInSlices); format 1 snapshots are still read. */
export const TASK_STATE_FORMAT_VERSION = 2;

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

  /** Journals `key`'s current entry (or its absence) before a write. */
  #remember(key: StateKey): void {
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
    for (const [key, entry] of this.#entries) {
      if (expired(entry, this.#ttlMs, now)) {
        this.#entries.delete(key);
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
    if (this.#journal.undo !== undefined) {
      // The map object itself is dropped, untouched: putting it back restores every entry.
      this.#journal.undo.push(() => this.#maps.set(key, map));
    }
    return this.#maps.delete(key);
  }

  /** Journals one entry of `key`'s map (or its absence) before a write. */
  #remember(key: StateKey, mapKey: K): void {
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
    for (const [key, map] of this.#maps) {
      for (const [mapKey, entry] of map) {
        if (expired(entry, this.#ttlMs, now)) {
          map.delete(mapKey);
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
    return this.#operators.delete(name);
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
   * The same bytes as `snapshot`, serialized a slice of entries at a time with the event loop
   * let go every `budgetMs`: a large state's snapshot must not hold up the Kafka clients'
   * heartbeats (a consumer silent for its session timeout is dropped from its group).
   */
  async snapshotInSlices(now: number, budgetMs = 20): Promise<Buffer> {
    const frames: Buffer[] = [];
    let since = performance.now();
    for (const frame of this.#frames(now)) {
      frames.push(frame);
      if (performance.now() - since > budgetMs) {
        await new Promise((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
    return Buffer.concat(frames);
  }

  /**
   * The snapshot as frames (see SNAPSHOT_MAGIC): the magic, then a header naming every store
   * and how many slices of entries it has, then the slices, each `[key, value][]` of at most
   * SLICE_ENTRIES entries, length-prefixed.
   */
  *#frames(now: number): Generator<Buffer> {
    requireNow(now);
    const operators: SlicedOperator[] = [];
    const slices: { operator: string; store: AnyStore; count: number }[] = [];
    for (const operator of this.#operators.values()) {
      const states: SlicedStore[] = [];
      for (const store of operator.stores()) {
        store.purge(now);
        const entries = store.entryCount();
        if (entries === 0) continue;
        const count = Math.ceil(entries / SLICE_ENTRIES);
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
          throw new Error(
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
  if (!Array.isArray(data.operators)) throw bad("operators is not a list");
  const names = new Set<string>();
  for (const [i, op] of data.operators.entries()) {
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
      if (s.ttlMs !== null && (typeof s.ttlMs !== "number" || !(s.ttlMs > 0))) {
        throw bad(`state "${s.name}" of ${where} has an invalid ttlMs`);
      }
      if (!(s.entries instanceof Map))
        throw bad(`state "${s.name}" of ${where} has no entries map`);
      for (const [key, value] of s.entries) {
        const ok =
          typeof key === "string" &&
          (s.kind === "value"
            ? isEntry(value)
            : value instanceof Map && [...value.values()].every(isEntry));
        if (!ok) throw bad(`state "${s.name}" of ${where} has a malformed entry`);
      }
    }
  }
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
