import assert from "node:assert/strict";
import { test } from "node:test";
import { buildMetadata, type SnapshotMetadata } from "../state/metadata.ts";
import { checkpointId, EMPTY_STATE, planRestore, RestoreRefused } from "./restore.ts";

const task = { topic: "words", partition: 2 };

function snapshot(kind: "checkpoint" | "savepoint", id: string, offset: number): SnapshotMetadata {
  return buildMetadata({
    kind,
    id,
    job: { namespace: "ns", name: "wc" },
    jobOperators: ["count"],
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, offset)),
    tasks: [
      {
        task,
        offsets: { "words-2": offset },
        key: `p/ns/wc/${kind}s/${id}/words-2.state`,
        bytes: 1,
        sha256: "0".repeat(64),
        operators: ["count"],
      },
    ],
  });
}

const checkpoints = [snapshot("checkpoint", "cp-1", 10), snapshot("checkpoint", "cp-2", 20)];

test("a new task starts fresh", () => {
  assert.deepEqual(planRestore(task, undefined, undefined, [], true), { kind: "fresh" });
});

test("after a crash, the checkpoint taken at the committed offset is restored", () => {
  const plan = planRestore(task, undefined, 10, checkpoints, true);
  assert.equal(plan.kind, "snapshot");
  assert.equal(plan.kind === "snapshot" && plan.snapshot.id, "cp-1");
  const latest = planRestore(task, undefined, 20, checkpoints, true);
  assert.equal(latest.kind === "snapshot" && latest.snapshot.id, "cp-2");
});

test("a committed offset no checkpoint matches is refused for a stateful job, resumed for a stateless one", () => {
  assert.throws(() => planRestore(task, undefined, 15, checkpoints, true), RestoreRefused);
  assert.deepEqual(planRestore(task, undefined, 15, checkpoints, false), {
    kind: "offset-only",
    offset: 15,
  });
});

test("a requested savepoint wins when the output stopped where it did", () => {
  const savepoint = snapshot("savepoint", "sp-1", 30);
  const plan = planRestore(task, savepoint, 30, checkpoints, true);
  assert.equal(plan.kind === "snapshot" && plan.snapshot.id, "sp-1");
  assert.equal(plan.kind === "snapshot" && plan.offset, 30);
  assert.equal(
    planRestore(task, savepoint, undefined, [], true).kind,
    "snapshot",
    "a new job from an old savepoint",
  );
});

test("a savepoint older than the committed output is refused", () => {
  assert.throws(
    () => planRestore(task, snapshot("savepoint", "sp-old", 10), 30, checkpoints, true),
    /already committed/,
  );
});

test("a task the savepoint does not know (the partition count grew) starts from its own position", () => {
  const other = { topic: "words", partition: 7 };
  const savepoint = snapshot("savepoint", "sp-1", 30);
  assert.deepEqual(planRestore(other, savepoint, undefined, [], true), { kind: "fresh" });
  assert.deepEqual(planRestore(other, savepoint, 5, [], true), { kind: "offset-only", offset: 5 });
});

test("a task restarted within the run that began from a savepoint goes on from its own checkpoint", () => {
  const savepoint = snapshot("savepoint", "sp", 10);
  const ownCheckpoint = snapshot("checkpoint", checkpointId(task, 30, "r2"), 30);
  const plan = planRestore(task, savepoint, 30, [...checkpoints, ownCheckpoint], true, "r2");
  assert.equal(plan.kind === "snapshot" && plan.snapshot.id, ownCheckpoint.id);
  // The run's first start (nothing committed past the savepoint yet) restores the savepoint.
  const first = planRestore(task, savepoint, 10, [...checkpoints, ownCheckpoint], true, "r2");
  assert.equal(first.kind === "snapshot" && first.snapshot.id, "sp");
});

test("a savepoint older than what another run committed is still refused", () => {
  const savepoint = snapshot("savepoint", "sp", 10);
  const otherRun = snapshot("checkpoint", checkpointId(task, 30, "r1"), 30);
  assert.throws(() => planRestore(task, savepoint, 30, [otherRun], true, "r2"), RestoreRefused);
});

test("empty state starts at the committed offset without state, then keeps the run's own", () => {
  assert.deepEqual(planRestore(task, EMPTY_STATE, 20, checkpoints, true, "r3"), {
    kind: "offset-only",
    offset: 20,
  });
  assert.deepEqual(planRestore(task, EMPTY_STATE, undefined, [], true, "r3"), { kind: "fresh" });
  const own = snapshot("checkpoint", checkpointId(task, 25, "r3"), 25);
  const restarted = planRestore(task, EMPTY_STATE, 25, [...checkpoints, own], true, "r3");
  assert.equal(restarted.kind === "snapshot" && restarted.snapshot.id, own.id);
});

test("two checkpoints at one offset: the committed number decides which state is restored", () => {
  // The second was taken after a window fired on a quiet partition (no new input, same offset).
  const beforeFiring = snapshot("checkpoint", checkpointId(task, 30, "r1", 4), 30);
  const afterFiring = snapshot("checkpoint", checkpointId(task, 30, "r1", 5), 30);
  for (const order of [
    [beforeFiring, afterFiring],
    [afterFiring, beforeFiring],
  ]) {
    for (const [number, expected] of [
      [4, beforeFiring],
      [5, afterFiring],
    ] as const) {
      const plan = planRestore(task, undefined, 30, order, true, "r1", number);
      assert.equal(plan.kind === "snapshot" && plan.snapshot.id, expected.id);
      // A restart of another run finds it the same way.
      const other = planRestore(task, undefined, 30, order, true, "r2", number);
      assert.equal(other.kind === "snapshot" && other.snapshot.id, expected.id);
    }
  }
  // A number no stored checkpoint has: the state of what was committed is gone.
  assert.throws(
    () => planRestore(task, undefined, 30, [beforeFiring], true, "r1", 5),
    RestoreRefused,
  );
});
