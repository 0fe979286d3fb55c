// Test fixtures of incremental checkpoints (unit tests, end-to-end tests, bench/checkpoints.ts):
// a seeded random source, random work on a task's state of every kind of store (value and map
// states, TTLs, rollbacks, a dropped operator), and a state's live contents in a form two
// equal states share whatever their insertion order.
import { seededRandom } from "../../examples/golden.ts";
import { type MapState, readFrames, type TaskState, type ValueState } from "./keyed-state.ts";

/** The same numbers for the same seed (the examples' seeded source). */
export const rng = seededRandom;

/** Live contents, order-free: what two equal states share whatever their insertion order. */
export function contents(state: TaskState, now: number): unknown {
  const data = readFrames(state.snapshot(now)) as {
    operators: {
      name: string;
      states: { name: string; kind: string; ttlMs: number | null; entries: Map<string, unknown> }[];
    }[];
  };
  const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const sortMap = (m: Map<unknown, unknown>) =>
    [...m].sort(([a], [b]) => byKey(String(a), String(b)));
  return data.operators
    .map((op) => ({
      name: op.name,
      states: op.states
        .map((s) => ({
          name: s.name,
          kind: s.kind,
          ttlMs: s.ttlMs,
          entries: sortMap(s.entries).map(([k, v]) =>
            s.kind === "map" ? [k, sortMap(v as Map<unknown, unknown>)] : [k, v],
          ),
        }))
        .sort((a, b) => byKey(a.name, b.name)),
    }))
    .sort((a, b) => byKey(a.name, b.name));
}

export interface Stores {
  count: ValueState<number>;
  expiring: ValueState<string>;
  sessions: MapState<string, { n: number; tags: string[] }>;
  windows: MapState<number, number>;
}

/** The stores `mutate` works on: plain and TTL value states, map states with and without TTL. */
export function stores(state: TaskState): Stores {
  return {
    count: state.operator("count").value<number>("n"),
    expiring: state.operator("cache").value<string>("v", { ttlMs: 40 }),
    sessions: state.operator("sessions").map<string, { n: number; tags: string[] }>("s"),
    windows: state.operator("win").map<number, number>("w", { ttlMs: 60 }),
  };
}

/** `writes` random writes, deletes, clears and reads (lazy expiry), some rolled back. */
export function mutate(state: TaskState, random: () => number, now: number, writes: number): void {
  let s = stores(state);
  const pick = (n: number) => Math.floor(random() * n);
  for (let i = 0; i < writes; i++) {
    const key = `k${pick(1_500)}`;
    const r = random();
    const rollback = random() < 0.05;
    if (rollback) state.begin();
    if (r < 0.25) s.count.set(key, (s.count.get(key, now) ?? 0) + 1, now);
    else if (r < 0.3) s.count.delete(key);
    else if (r < 0.45) s.expiring.set(key, "x".repeat(pick(20)), now);
    else if (r < 0.5) s.expiring.get(key, now);
    else if (r < 0.7) s.sessions.set(key, `e${pick(6)}`, { n: pick(100), tags: ["a", key] }, now);
    else if (r < 0.75) s.sessions.delete(key, `e${pick(6)}`);
    else if (r < 0.77) s.sessions.clear(key);
    else if (r < 0.95) s.windows.set(key, pick(4) * 1000, pick(1000), now);
    else if (r < 0.97) s.windows.get(key, pick(4) * 1000, now);
    else if (r < 0.972) {
      // An operator dropped (non-restored state), later written again.
      state.dropOperator("cache");
      s = stores(state);
    }
    if (rollback) state.rollback();
  }
}
