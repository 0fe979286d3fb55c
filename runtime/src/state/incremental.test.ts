// Incremental checkpoints at the level of TaskState: many rounds of random writes, deletes,
// clears, rollbacks, TTL expiry and dropped operators, each committed as a delta on a chain
// (some checkpoints failing, keeping their changes for the next), compactions merging a prefix
// of the chain while more deltas arrive, and restarts from the chain; after every committed
// checkpoint the chain restored equals the live state.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { serialize } from "node:v8";
import { shouldCompact } from "./chain.ts";
import { StateBuilder, TaskState } from "./keyed-state.ts";
import { contents, mutate, rng } from "./state-fixtures.ts";

/** An object as a stream cut at random places (frames cross chunk boundaries). */
async function* streamOf(bytes: Buffer, random: () => number): AsyncGenerator<Buffer> {
  let at = 0;
  while (at < bytes.length) {
    const size = 1 + Math.floor(random() * 70_000);
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

async function restoreChain(objects: Buffer[], random: () => number): Promise<TaskState> {
  const builder = new StateBuilder();
  for (const object of objects) await builder.apply(streamOf(object, random));
  const state = builder.state;
  state.markClean();
  return state;
}

async function full(state: TaskState, now: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of state.chunks("full", now, 5)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe("incremental checkpoints of a task's state", () => {
  for (const seed of [1, 7, 42]) {
    test(`restore equals the state after many deltas and compactions (seed ${seed})`, async () => {
      const random = rng(seed);
      let state = new TaskState();
      let now = 1_000;
      // Big enough from the start: > 1000 keys of several map entries each.
      mutate(state, random, now, 20_000);
      let chain = [await full(state, now)];
      state.markClean();
      assert.ok(state.operator("sessions").map("s").keys(now).length > 1_000);
      let compacting: { prefix: number; merged: Promise<Buffer> } | undefined;
      let compactions = 0;
      let failures = 0;
      let restarts = 0;
      for (let round = 0; round < 80; round++) {
        now += 1 + Math.floor(random() * 15);
        mutate(state, random, now, 1 + Math.floor(random() * 300));
        const delta = state.delta(now);
        if (random() < 0.1) {
          failures++; // not stored: its changes stay for the next delta
          continue;
        }
        chain.push(delta);
        state.markClean();
        assert.deepEqual(contents(await restoreChain(chain, random), now), contents(state, now));
        if (compacting && random() < 0.5) {
          // The merged base replaces the prefix it was made from; newer deltas stay on it.
          chain = [await compacting.merged, ...chain.slice(compacting.prefix)];
          compacting = undefined;
          compactions++;
          assert.deepEqual(contents(await restoreChain(chain, random), now), contents(state, now));
        }
        const live = {
          base: { key: "b", bytes: chain[0]?.length ?? 0, sha256: "" },
          deltas: chain.slice(1).map((d, i) => ({ key: `d${i}`, bytes: d.length, sha256: "" })),
        };
        const bounds = { compactAfterDeltas: 6, compactAtRatio: 0.5, maxDeltas: 100 };
        if (!compacting && shouldCompact(live, bounds)) {
          const prefix = chain.length;
          const compactNow = now;
          const objects = chain.slice();
          // Its own random cuts: it runs interleaved with the rounds, at times that vary.
          const cuts = rng(Math.floor(random() * 2 ** 32));
          compacting = {
            prefix,
            merged: restoreChain(objects, cuts).then((s) => full(s, compactNow)),
          };
        }
        if (random() < 0.08) {
          // A restart: the task goes on from what the chain holds.
          state = await restoreChain(chain, random);
          restarts++;
        }
      }
      assert.ok(compactions >= 2, `${compactions} compactions`);
      assert.ok(failures >= 3 && restarts >= 3, `${failures} failures, ${restarts} restarts`);
      assert.ok(chain.length < 20, `chain of ${chain.length}`);
    });
  }

  test("a delta holds only what changed, and expired entries as deletions", async () => {
    const state = new TaskState();
    const counts = state.operator("count").value<number>("n");
    const cache = state.operator("cache").value<string>("v", { ttlMs: 10 });
    for (let i = 0; i < 10_000; i++) counts.set(`k${i}`, i, 0);
    cache.set("gone", "x", 0);
    const base = state.snapshot(0);
    state.markClean();
    counts.set("k1", 100, 5);
    counts.delete("k2");
    const delta = state.delta(20);
    assert.ok(delta.length < base.length / 100, `${delta.length} vs ${base.length} bytes`);
    const restored = await restoreChain([base, delta], rng(3));
    assert.equal(restored.operator("count").value<number>("n").get("k1", 20), 100);
    assert.equal(restored.operator("count").value<number>("n").get("k2", 20), undefined);
    assert.equal(restored.operator("count").value<number>("n").get("k3", 20), 3);
    assert.equal(restored.operator("cache").value<string>("v").entryCount(), 0);
  });

  test("a format 1 base (one v8 value) takes deltas too", async () => {
    const v1 = serialize({
      formatVersion: 1,
      operators: [
        {
          name: "count",
          states: [
            { name: "n", kind: "value", ttlMs: null, entries: new Map([["a", { v: 3, w: 0 }]]) },
          ],
        },
      ],
    });
    const state = TaskState.restore(v1);
    state.operator("count").value<number>("n").set("b", 4, 1);
    const restored = await restoreChain([v1, state.delta(1)], rng(5));
    assert.deepEqual(contents(restored, 1), contents(state, 1));
  });

  test("a delta without its base, a base after a base, or a cut delta is refused", async () => {
    const state = new TaskState();
    state.operator("count").value<number>("n").set("a", 1, 0);
    const base = state.snapshot(0);
    const delta = state.delta(0);
    await assert.rejects(restoreChain([delta], rng(1)), /a delta needs the snapshot it follows/);
    await assert.rejects(restoreChain([base, base], rng(1)), /cannot follow another/);
    await assert.rejects(
      restoreChain([base, delta.subarray(0, delta.length - 3)], rng(1)),
      /cannot be read .*ends inside a frame/,
    );
  });

  test("restoring a large state lets the event loop run", async () => {
    const state = new TaskState();
    const counts = state.operator("count").value<number>("n");
    for (let i = 0; i < 50_000; i++) counts.set(`k${i}`, i, 0);
    const base = state.snapshot(0);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const builder = new StateBuilder(0);
      await builder.apply(streamOf(base, rng(9)));
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 2, `the event loop ran ${ticks} times during the restore`);
  });
});
