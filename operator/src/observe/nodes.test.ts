import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Node } from "@kubernetes/client-node";
import { drainingNodes, nodesToMoveTo } from "./nodes.ts";

test("a node is being drained once cordoned or tainted unschedulable", () => {
  const node = (name: string, spec: V1Node["spec"]): V1Node => ({ metadata: { name }, spec });
  const nodes = [
    node("ready", {}),
    node("cordoned", { unschedulable: true }),
    node("tainted", {
      taints: [{ key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }],
    }),
    node("other-taint", { taints: [{ key: "weir.dev/test-node", effect: "NoSchedule" }] }),
    node("uncordoned", { unschedulable: false }),
  ];
  assert.deepEqual([...drainingNodes(nodes)], ["cordoned", "tainted"]);
});

test("pods can move to nodes that are Ready and not cordoned", () => {
  const node = (unschedulable: boolean, ready: string | undefined): V1Node => ({
    metadata: { name: "n" },
    spec: { unschedulable },
    status: ready ? { conditions: [{ type: "Ready", status: ready }] } : {},
  });
  const nodes = [
    node(false, "True"),
    node(true, "True"),
    node(false, "False"),
    node(false, "Unknown"),
    node(false, undefined),
    node(false, "True"),
  ];
  assert.equal(nodesToMoveTo(nodes), 2);
  assert.equal(nodesToMoveTo([node(true, "True")]), 0);
});
