import assert from "node:assert/strict";
import { test } from "node:test";
import { storageClient } from "./storage-client.ts";

/** Where the client sends a request for `key` in `bucket` (minio's own request builder). */
function target(addressing: "path" | "virtual-host" | undefined, endpoint: string, bucket: string) {
  const client = storageClient({
    endpoint,
    credentials: { kind: "static", accessKey: "a", secretKey: "b" },
    ...(addressing ? { addressing } : {}),
  }) as unknown as {
    getRequestOptions(o: object): { host: string; path: string };
  };
  const { host, path } = client.getRequestOptions({
    method: "GET",
    region: "us-east-1",
    bucketName: bucket,
    objectName: "weir/ns/job/_metadata.json",
    headers: {},
    query: "",
  });
  return `${host}${path}`;
}

test("addressing: path by default, virtual-host on request, path for a dotted bucket under TLS", () => {
  assert.equal(
    target(undefined, "https://minio.example:9443", "weir"),
    "minio.example/weir/weir/ns/job/_metadata.json",
  );
  assert.equal(
    target("path", "https://s3.eu-west-1.amazonaws.com", "weir"),
    "s3.eu-west-1.amazonaws.com/weir/weir/ns/job/_metadata.json",
  );
  assert.equal(
    target("virtual-host", "https://s3.eu-west-1.amazonaws.com", "weir"),
    "weir.s3.eu-west-1.amazonaws.com/weir/ns/job/_metadata.json",
  );
  // A dotted bucket cannot be one label of a wildcard certificate's name.
  assert.equal(
    target("virtual-host", "https://s3.eu-west-1.amazonaws.com", "weir.savepoints"),
    "s3.eu-west-1.amazonaws.com/weir.savepoints/weir/ns/job/_metadata.json",
  );
});
