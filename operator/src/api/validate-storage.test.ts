// spec.savepoints.storage as the API server (and validateStreamJob, its mirror) judges it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { validateStreamJob } from "./validate.ts";

function withStorage(storage: Record<string, unknown>) {
  return validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team" },
    spec: {
      image: "weir/runtime",
      job: { entry: "/app/job.ts" },
      kafka: { bootstrapServers: ["kafka:9092"] },
      savepoints: { storage: { bucket: "weir", ...storage } },
    },
  });
}

function errorsOf(storage: Record<string, unknown>): string[] {
  const result = withStorage(storage);
  assert.equal(result.ok, false, "refused");
  return result.ok ? [] : result.errors;
}

test("TLS with a CA from a ConfigMap and web identity are accepted, with their defaults", () => {
  const result = withStorage({
    endpoint: "https://minio.storage:9443",
    caBundle: { configMapKeyRef: { name: "minio-ca" } },
    webIdentity: { roleArn: "arn:aws:iam::123456789012:role/weir" },
    addressing: "virtual-host",
  });
  assert.ok(result.ok, JSON.stringify(result));
  const storage = result.job.spec.savepoints?.storage;
  assert.deepEqual(storage?.caBundle, { configMapKeyRef: { name: "minio-ca", key: "ca.crt" } });
  assert.equal(storage?.webIdentity?.audience, "sts.amazonaws.com");
  // No Secret, no web identity: the AWS default chain, and no addressing default is stored.
  const chain = withStorage({ endpoint: "https://s3.eu-west-1.amazonaws.com" });
  assert.ok(chain.ok);
  assert.equal(chain.job.spec.savepoints?.storage.addressing, undefined);
});

test("what the schema refuses, naming the field", () => {
  assert.deepEqual(
    errorsOf({
      endpoint: "https://minio:9443",
      caBundle: {
        secretKeyRef: { name: "a" },
        configMapKeyRef: { name: "b" },
      },
    }),
    ["spec.savepoints.storage.caBundle: name exactly one of secretKeyRef and configMapKeyRef"],
  );
  assert.deepEqual(errorsOf({ endpoint: "https://minio:9443", caBundle: {} }), [
    "spec.savepoints.storage.caBundle: name exactly one of secretKeyRef and configMapKeyRef",
  ]);
  assert.deepEqual(
    errorsOf({ endpoint: "http://minio:9000", caBundle: { secretKeyRef: { name: "a" } } }),
    ["spec.savepoints.storage.caBundle: needs an https:// endpoint (a CA verifies TLS only)"],
  );
  assert.deepEqual(
    errorsOf({
      endpoint: "https://minio:9443",
      credentialsSecret: "keys",
      webIdentity: { roleArn: "arn:x" },
    }),
    [
      "spec.savepoints.storage.webIdentity: credentialsSecret and webIdentity are two sources of credentials: name one (or neither, for the AWS default chain)",
    ],
  );
  assert.match(
    errorsOf({ endpoint: "https://minio:9443", addressing: "dns" }).join(),
    /spec\.savepoints\.storage\.addressing/,
  );
  assert.match(
    errorsOf({ endpoint: "https://minio:9443", webIdentity: {} }).join(),
    /spec\.savepoints\.storage\.webIdentity.*roleArn/,
  );
});
