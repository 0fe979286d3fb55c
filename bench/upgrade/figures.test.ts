import assert from "node:assert/strict";
import { test } from "node:test";
import { countProblems, outage, phases, type SeenOutput } from "./figures.ts";

const seenAt = (k: string, n: number, run: string, t: number, at: number): SeenOutput => ({
  out: { k, n, t, run },
  seenAt: at,
});
const taskOf = (out: { k: string }) => (out.k.startsWith("a") ? "t0" : "t1");

test("the outage is the worst task's gap between its old run's last and new run's first output", () => {
  const seen = [
    seenAt("a1", 1, "r1", 900, 1_000),
    seenAt("b1", 1, "r1", 1_900, 2_000), // t1's last of r1
    seenAt("a1", 2, "r1", 2_400, 2_500), // t0's last of r1
    seenAt("a1", 3, "r2", 2_600, 6_000), // t0 resumes: gap 3.5 s
    seenAt("b1", 2, "r2", 2_700, 9_000), // t1 resumes: gap 7 s
  ];
  const o = outage(seen, taskOf, { old: "r1", new: "r2" }, 2_000);
  assert.equal(o.task, "t1");
  assert.equal(o.gapMs, 7_000);
  assert.deepEqual(
    o.gaps.map((g) => [g.task, g.gapMs]),
    [
      ["t0", 3_500],
      ["t1", 7_000],
    ],
  );
  // Produced at 2,700, seen at 9,000; records produced before `since` do not count.
  assert.equal(o.maxLatencyMs, 6_300);
  assert.deepEqual(o.longest, { task: "t1", producedAt: 2_700, seenAt: 9_000 });
});

test("an outage without output of the new run is an error, not a figure", () => {
  assert.throws(
    () => outage([seenAt("a1", 1, "r1", 0, 10)], taskOf, { old: "r1", new: "r2" }, 0),
    /no output of the new run/,
  );
});

test("counts per key must be 1..n exactly once", () => {
  const out = (k: string, n: number) => ({ k, n, t: 0, run: "r1" });
  assert.deepEqual(countProblems([out("a", 2), out("a", 1), out("b", 1)]), []);
  assert.deepEqual(countProblems([out("a", 1), out("a", 1)]), ["a: counts 1,1"]);
  assert.deepEqual(countProblems([out("b", 1), out("b", 3)]), ["b: counts 1,3"]);
});

test("phases are the spans between consecutive marks; a missing mark leaves its spans unknown", () => {
  const p = phases({
    changed: 0,
    operationStarted: 100,
    partsTaken: 400,
    savepointCompleted: 1_400,
    oldPodsGone: 1_600,
  });
  assert.deepEqual(
    p.slice(0, 5).map((x) => x.seconds),
    [0.1, 0.3, 1, 0.2, undefined],
  );
  assert.equal(p.at(-1)?.seconds, undefined);
});

test("with a warm standby the steps follow the standby: it starts before the savepoint", () => {
  const p = phases({
    changed: 0,
    newPodsCreated: 200,
    processesStarted: 500,
    standbyWaiting: 2_000,
    operationStarted: 2_100,
    partsTaken: 2_300,
    savepointCompleted: 2_500,
    processesRunning: 2_700,
    outputResumed: 3_000,
    oldPodsGone: 3_200,
  });
  assert.deepEqual(
    p.map((x) => x.seconds),
    [0.2, 0.3, 1.5, 0.1, 0.2, 0.2, 0.2, 0.3, undefined, undefined, 0.7],
  );
});
