import assert from "node:assert/strict";
import { test } from "node:test";
import { validateStreamJob } from "../api/validate.ts";
import { operatorChecks } from "./spec-checks.ts";

function job(config: Record<string, unknown>) {
  const checked = validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team" },
    spec: {
      image: "weir/runtime",
      job: { entry: "/app/job.ts", config },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      savepoints: {
        storage: { endpoint: "http://s3:9000", bucket: "bkt", credentialsSecret: "s3" },
      },
    },
  });
  assert.ok(checked.ok);
  return checked.job;
}

test("a job configuration its ConfigMap cannot hold is refused, with its size", () => {
  assert.deepEqual(operatorChecks(job({ input: "lines" })), []);
  const [error, ...rest] = operatorChecks(job({ table: "x".repeat(1_100_000) }));
  assert.match(
    error ?? "",
    /^spec\.job\.config: the run's configuration file would be 1100\d{3} bytes; a ConfigMap holds at most 1048576 \(1 MiB\)$/,
  );
  assert.deepEqual(rest, []);
});
