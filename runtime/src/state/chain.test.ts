import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  applyCompaction,
  chainObjects,
  DEFAULT_CHAIN_BOUNDS,
  type LiveChain,
  liveChainOf,
  nextCheckpointKind,
  retentionPlan,
  type StoredObject,
  shouldCompact,
} from "./chain.ts";

const ref = (key: string, bytes = 10) => ({ key, bytes, sha256: "0".repeat(64) });
const chain = (base: number, ...deltas: number[]): LiveChain => ({
  base: ref("base", base),
  deltas: deltas.map((bytes, i) => ref(`d${i}`, bytes)),
});

describe("chain resolution", () => {
  test("a full entry is its own object; a delta entry reads its base, then its deltas", () => {
    assert.deepEqual(chainObjects(ref("full")), [ref("full")]);
    const entry = { ...ref("d1"), chain: { base: ref("b"), deltas: [ref("d0"), ref("d1")] } };
    assert.deepEqual(
      chainObjects(entry).map((r) => r.key),
      ["b", "d0", "d1"],
    );
    assert.deepEqual(liveChainOf(entry), { base: ref("b"), deltas: [ref("d0"), ref("d1")] });
    assert.deepEqual(liveChainOf(ref("full")), { base: ref("full"), deltas: [] });
  });
});

describe("what a checkpoint writes", () => {
  test("full without a chain, a delta on one, full again once the chain is too long", () => {
    assert.equal(nextCheckpointKind(undefined), "full");
    assert.equal(nextCheckpointKind(chain(100)), "delta");
    assert.equal(nextCheckpointKind(chain(100, 1, 1)), "delta");
    const long = chain(100, ...Array.from({ length: DEFAULT_CHAIN_BOUNDS.maxDeltas }, () => 1));
    assert.equal(nextCheckpointKind(long), "full");
  });
});

describe("when to compact", () => {
  const bounds = { compactAfterDeltas: 3, compactAtRatio: 0.5, maxDeltas: 10 };
  test("not without deltas; after enough deltas; once deltas pass the share of the base", () => {
    assert.equal(shouldCompact(undefined, bounds), false);
    assert.equal(shouldCompact(chain(100), bounds), false);
    assert.equal(shouldCompact(chain(100, 10, 10), bounds), false);
    assert.equal(shouldCompact(chain(100, 1, 1, 1), bounds), true);
    assert.equal(shouldCompact(chain(100, 50), bounds), false);
    assert.equal(shouldCompact(chain(100, 30, 21), bounds), true);
  });
  test("tiny deltas on a large base wait, until half the longest chain", () => {
    const large = { ...bounds, compactMinRatio: 0.1 };
    assert.equal(shouldCompact(chain(1_000, 1, 1, 1), large), false);
    assert.equal(shouldCompact(chain(1_000, 40, 40, 40), large), true);
    assert.equal(shouldCompact(chain(1_000, 1, 1, 1, 1, 1), large), true);
  });
});

describe("a finished compaction", () => {
  const from = chain(100, 1, 2);
  const merged = ref("merged", 90);
  test("replaces the base and the deltas it merged; deltas written since stay", () => {
    const now = { base: from.base, deltas: [...from.deltas, ref("d2", 3)] };
    assert.deepEqual(applyCompaction(now, { from, merged }), {
      base: merged,
      deltas: [ref("d2", 3)],
    });
    assert.deepEqual(applyCompaction(from, { from, merged }), { base: merged, deltas: [] });
  });
  test("leaves a chain that moved on without it (a full checkpoint meanwhile) alone", () => {
    const other = chain(5);
    other.base = ref("other");
    assert.equal(applyCompaction(other, { from, merged }), other);
    assert.equal(applyCompaction(undefined, { from, merged }), undefined);
    const diverged = { base: from.base, deltas: [ref("x")] };
    assert.equal(applyCompaction(diverged, { from, merged }), diverged);
  });
});

describe("retention", () => {
  const obj = (key: string, id: string, lastModified = 0): StoredObject => ({
    key,
    id,
    lastModified,
  });
  const base = { inFlight: new Set<string>(), now: 1_000_000, orphanGraceMs: 60_000 };

  test("keeps the newest checkpoints and every object their chains need", () => {
    const plan = retentionPlan({
      ...base,
      keep: 2,
      checkpoints: [
        { id: "c1", objects: ["c1/t.state"] },
        { id: "c2", objects: ["c1/t.state", "c2/t.state"] },
        { id: "c3", objects: ["c1/t.state", "c2/t.state", "c3/t.state"] },
      ],
      objects: [obj("c1/t.state", "c1"), obj("c2/t.state", "c2"), obj("c3/t.state", "c3")],
    });
    assert.deepEqual(plan, { checkpoints: ["c1"], objects: [] });
  });

  test("removes what no kept chain needs: the removed checkpoints' objects at once", () => {
    const plan = retentionPlan({
      ...base,
      now: 10,
      keep: 1,
      checkpoints: [
        { id: "c1", objects: ["c1/t.state"] },
        { id: "c2", objects: ["c1/t.state", "c2/t.state"] },
        { id: "c3", objects: ["c3/t.compacted.state", "c3/t.state"] },
      ],
      objects: [
        obj("c1/t.state", "c1"),
        obj("c2/t.state", "c2"),
        obj("c3/t.state", "c3"),
        obj("c3/t.compacted.state", "c3"),
      ],
    });
    assert.deepEqual(plan, { checkpoints: ["c1", "c2"], objects: ["c1/t.state", "c2/t.state"] });
  });

  test("orphans (a crashed compaction, a checkpoint gone earlier) go after the grace", () => {
    const input = {
      ...base,
      keep: 3,
      checkpoints: [{ id: "c3", objects: ["c3/t.state"] }],
      objects: [
        obj("c3/t.state", "c3", 0),
        obj("c3/t.compacted-1.state", "c3", base.now - 1_000),
        obj("c0/t.state", "c0", base.now - 120_000),
      ],
    };
    assert.deepEqual(retentionPlan(input).objects, ["c0/t.state"]);
    assert.deepEqual(retentionPlan({ ...input, orphanGraceMs: 0 }).objects, [
      "c3/t.compacted-1.state",
      "c0/t.state",
    ]);
  });

  test("never an object in flight (a compaction being written, the live chain)", () => {
    const plan = retentionPlan({
      ...base,
      orphanGraceMs: 0,
      keep: 1,
      checkpoints: [
        { id: "c1", objects: ["c1/t.state"] },
        { id: "c2", objects: ["c2/t.state"] },
      ],
      objects: [obj("c1/t.state", "c1"), obj("c1/t.compacted.state", "c1")],
      inFlight: new Set(["c1/t.compacted.state"]),
    });
    assert.deepEqual(plan, { checkpoints: ["c1"], objects: ["c1/t.state"] });
  });
});
