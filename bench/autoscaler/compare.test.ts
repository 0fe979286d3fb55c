import assert from "node:assert/strict";
import { test } from "node:test";
import { compare, MODEL, POD_CAPACITY, verdict } from "./compare.ts";
import { traces } from "./traces.ts";

// The benchmark's claim, guarded: on the step and spike traces Weir's policy uses fewer
// replica-minutes than the KEDA-like and Flink-like ones, spends no more time over the lag SLO,
// and settles every step in at most two rescales.
test("Weir's policy beats the KEDA-like and Flink-like ones on steps and a short spike", () => {
  const selected = traces(POD_CAPACITY, MODEL.seed).filter((t) =>
    ["step up/down", "spike < rescale"].includes(t.name),
  );
  assert.equal(selected.length, 2);
  const results = compare(selected);
  const v = verdict(results);
  assert.ok(v.fewerReplicaMinutes, JSON.stringify(v.totals));
  assert.ok(v.noMoreSecondsOverSlo, JSON.stringify(v.totals));
  const weirSteps = results.find((r) => r.policy === "weir" && r.trace === "step up/down")?.steps;
  assert.equal(weirSteps?.length, 4);
  assert.ok(v.stepsSettledInTwoRescales, JSON.stringify(weirSteps));
  // A spike shorter than a rescale is absorbed: the only rescale is the first sizing.
  const spike = results.find((r) => r.policy === "weir" && r.trace === "spike < rescale");
  assert.equal(spike?.rescales, 1);
});
