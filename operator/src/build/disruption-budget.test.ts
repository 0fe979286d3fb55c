import assert from "node:assert/strict";
import { test } from "node:test";
import type { StreamJob } from "../api/types.ts";
import { buildDisruptionBudget } from "./disruption-budget.ts";

test("a job's disruption budget: no pod of the job evicted, owned by the job", () => {
  const job = {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "clicks", namespace: "team", uid: "u-1" },
    spec: {},
  } as unknown as StreamJob;
  const budget = buildDisruptionBudget(job);
  assert.equal(budget.metadata?.name, "clicks");
  assert.equal(budget.metadata?.namespace, "team");
  assert.deepEqual(budget.spec, {
    maxUnavailable: 0,
    selector: { matchLabels: { "weir.dev/job": "clicks" } },
    unhealthyPodEvictionPolicy: "AlwaysAllow",
  });
  assert.deepEqual(
    budget.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
    [["StreamJob", "clicks", "u-1", true]],
  );
});
