import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import { apiStatusOf, collectionPath, objectKey, splitKey, statusCodeOf } from "./api.ts";
import { describeRequest } from "./metrics.ts";

const configMaps = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };
const streamJobs = {
  group: "weir.dev",
  version: "v1alpha1",
  plural: "streamjobs",
  kind: "StreamJob",
};

test("collection paths for core and grouped types, one namespace or all", () => {
  assert.equal(collectionPath(configMaps, "a"), "/api/v1/namespaces/a/configmaps");
  assert.equal(collectionPath(configMaps), "/api/v1/configmaps");
  assert.equal(collectionPath(streamJobs, "a"), "/apis/weir.dev/v1alpha1/namespaces/a/streamjobs");
});

test("object keys round-trip through splitKey", () => {
  assert.equal(objectKey({ metadata: { namespace: "ns", name: "x" } }), "ns/x");
  assert.equal(objectKey({ metadata: { name: "node-1" } }), "node-1");
  assert.deepEqual(splitKey("ns/x"), { namespace: "ns", name: "x" });
  assert.deepEqual(splitKey("node-1"), { name: "node-1" });
});

test("the status code of every kind of failure", () => {
  assert.equal(statusCodeOf(new ApiException(409, "conflict", {}, {})), 409);
  assert.equal(statusCodeOf(Object.assign(new Error("Gone"), { statusCode: 410 })), 410);
  assert.equal(statusCodeOf({ kind: "Status", code: 410, reason: "Expired" }), 410);
  assert.equal(statusCodeOf(new Error("ECONNREFUSED")), undefined);
  assert.equal(statusCodeOf(undefined), undefined);
});

test("a refusal in the API server's own words: its Status message and the fields it names", () => {
  const body = JSON.stringify({
    kind: "Status",
    status: "Failure",
    message: 'Pod "wc-r1-0" is invalid: metadata.labels: Invalid value: "a b": name part must …',
    reason: "Invalid",
    details: {
      causes: [{ reason: "FieldValueInvalid", message: "Invalid value", field: "metadata.labels" }],
    },
    code: 422,
  });
  assert.deepEqual(apiStatusOf(new ApiException(422, "Unknown API Status Code!", body, {})), {
    code: 422,
    reason: "Invalid",
    message: 'Pod "wc-r1-0" is invalid: metadata.labels: Invalid value: "a b": name part must …',
    causes: [{ field: "metadata.labels", message: "Invalid value" }],
  });
  assert.deepEqual(apiStatusOf(new ApiException(502, "x", "<html>bad gateway</html>", {})), {
    code: 502,
    message: "<html>bad gateway</html>",
    causes: [],
  });
  assert.equal(apiStatusOf(new Error("ECONNREFUSED")), undefined);
});

test("requests are described by Kubernetes verb and resource", () => {
  const base = "https://127.0.0.1:6443";
  const cases: [string, string, string, string][] = [
    ["GET", "/api/v1/namespaces/a/pods", "list", "pods"],
    ["GET", "/api/v1/namespaces/a/pods?watch=true&resourceVersion=5", "watch", "pods"],
    ["GET", "/api/v1/namespaces/a/pods/p-0", "get", "pods"],
    [
      "PATCH",
      "/apis/weir.dev/v1alpha1/namespaces/a/streamjobs/x/status",
      "patch",
      "streamjobs/status",
    ],
    ["PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", "update", "leases"],
    ["POST", "/apis/events.k8s.io/v1/namespaces/a/events", "create", "events"],
    ["DELETE", "/api/v1/namespaces/a/pods/p-0", "delete", "pods"],
    ["DELETE", "/api/v1/namespaces/a/pods", "deletecollection", "pods"],
    ["GET", "/api/v1/namespaces/a", "get", "namespaces"],
    ["GET", "/api/v1/namespaces", "list", "namespaces"],
    ["GET", "/apis/weir.dev/v1alpha1", "list", ""],
  ];
  for (const [method, path, verb, resource] of cases) {
    assert.deepEqual(describeRequest(method, base + path), { verb, resource }, `${method} ${path}`);
  }
});
