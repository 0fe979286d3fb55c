import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTaints, podIpPrefixOf } from "./node-config.ts";

test("a node's pod range is a /16 of loopback", () => {
  assert.equal(podIpPrefixOf("127.1.0.0/16"), "127.1");
  assert.equal(podIpPrefixOf("127.13.0.0/16"), "127.13");
  for (const bad of ["10.0.0.0/16", "127.1.0.0/24", "127.300.0.0/16", ""]) {
    assert.throws(() => podIpPrefixOf(bad), /not a \/16 of 127/);
  }
});

test("taints are read as the kubelet's --register-with-taints", () => {
  assert.deepEqual(parseTaints(""), []);
  assert.deepEqual(parseTaints("weir.dev/test-node=true:NoSchedule,dedicated:NoExecute"), [
    { key: "weir.dev/test-node", value: "true", effect: "NoSchedule" },
    { key: "dedicated", effect: "NoExecute" },
  ]);
  assert.throws(() => parseTaints("no-effect"), /not key\[=value\]:Effect/);
});
