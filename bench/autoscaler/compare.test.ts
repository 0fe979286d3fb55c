import assert from "node:assert/strict";
import { test } from "node:test";
import { compare, verdict } from "./compare.ts";

// The benchmark's claim at the calibrated figures, guarded: over all traces Weir's policy uses
// fewer replica-minutes than the KEDA-like and Flink-like ones, spends no more time over the lag
// SLO, and settles every step in at most two rescales.
test("Weir's policy beats the KEDA-like and Flink-like ones on every trace together", () => {
  const results = compare();
  assert.equal(results.length, 15);
  const v = verdict(results);
  assert.ok(v.fewerReplicaMinutes, JSON.stringify(v.totals));
  assert.ok(v.noMoreSecondsOverSlo, JSON.stringify(v.totals));
  const weirSteps = results.find((r) => r.policy === "weir" && r.trace === "step up/down")?.steps;
  assert.equal(weirSteps?.length, 4);
  assert.ok(v.stepsSettledInTwoRescales, JSON.stringify(weirSteps));
  // A spike is drained, never left over the SLO.
  const spike = results.find((r) => r.policy === "weir" && r.trace === "20 s spike");
  assert.equal(spike?.secondsOverSlo, 0);
});
