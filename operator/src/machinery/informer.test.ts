import assert from "node:assert/strict";
import { test } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import { objectKey } from "./api.ts";
import { diffSnapshots, withoutManagedFields } from "./informer.ts";

function object(name: string, resourceVersion: string): KubernetesObject {
  return { metadata: { namespace: "ns", name, resourceVersion } };
}

function snapshot(...objects: KubernetesObject[]): Map<string, KubernetesObject> {
  return new Map(objects.map((o) => [objectKey(o), o]));
}

test("a relist delivers what changed: deletes, adds and updates, not the unchanged", () => {
  const before = snapshot(object("kept", "1"), object("changed", "2"), object("gone", "3"));
  const after = snapshot(object("kept", "1"), object("changed", "7"), object("new", "8"));
  const changes = diffSnapshots(before, after).map((c) => [c.type, c.object.metadata?.name]);
  assert.deepEqual(changes, [
    ["delete", "gone"],
    ["update", "changed"],
    ["add", "new"],
  ]);
});

test("an update carries the old object; a delete carries the last known state", () => {
  const before = snapshot(object("a", "1"), object("b", "5"));
  const after = snapshot(object("a", "2"));
  const [deleted, updated] = diffSnapshots(before, after);
  assert.equal(deleted?.type, "delete");
  assert.equal(deleted?.object.metadata?.resourceVersion, "5");
  assert.equal(updated?.type, "update");
  assert.equal(updated?.type === "update" && updated.old.metadata?.resourceVersion, "1");
});

test("the first list is all adds; an empty relist deletes everything", () => {
  const full = snapshot(object("a", "1"), object("b", "2"));
  assert.deepEqual(
    diffSnapshots(new Map(), full).map((c) => c.type),
    ["add", "add"],
  );
  assert.deepEqual(
    diffSnapshots(full, new Map()).map((c) => c.type),
    ["delete", "delete"],
  );
});

test("the cache keeps objects without managedFields, and everything else as it came", () => {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "p",
      namespace: "ns",
      labels: { a: "b" },
      managedFields: [{ manager: "kubectl", operation: "Apply", fieldsV1: { "f:spec": {} } }],
    },
    spec: { nodeName: "n" },
  } as KubernetesObject & { spec: unknown };
  const kept = withoutManagedFields(pod);
  assert.deepEqual(kept, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "p", namespace: "ns", labels: { a: "b" } },
    spec: { nodeName: "n" },
  });
  assert.ok(pod.metadata?.managedFields, "the object it came from is left alone");
  const plain = { apiVersion: "v1", kind: "Pod", metadata: { name: "q" } };
  assert.equal(withoutManagedFields(plain), plain, "nothing to drop: the same object");
});
