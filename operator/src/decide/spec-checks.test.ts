import assert from "node:assert/strict";
import { test } from "node:test";
import { operatorChecks } from "./spec-checks.ts";
import { sampleJob } from "./test-fixtures.ts";

const withConfig = (config: Record<string, unknown>) =>
  sampleJob({ job: { entry: "/app/job.ts", config } });

test("a job configuration its ConfigMap cannot hold is refused, with its size", () => {
  assert.deepEqual(operatorChecks(withConfig({ input: "lines" })), []);
  const [error, ...rest] = operatorChecks(withConfig({ table: "x".repeat(1_100_000) }));
  assert.match(
    error ?? "",
    /^spec\.job\.config: the run's configuration file would be 1100\d{3} bytes; a ConfigMap holds at most 1048576 \(1 MiB\)$/,
  );
  assert.deepEqual(rest, []);
});

test("what the operator sets in a pod is refused in the pod template, naming the field", () => {
  const job = sampleJob({
    podTemplate: {
      metadata: { labels: { "weir.dev/run": "r9", team: "a" } },
      spec: {
        env: [
          { name: "TZ", value: "UTC" },
          { name: "WEIR_RUN", value: "x" },
        ],
      },
    },
  });
  assert.deepEqual(operatorChecks(job), [
    "spec.podTemplate.spec.env[1].name: WEIR_RUN is set by the operator (the runtime contract) and cannot be overridden",
    "spec.podTemplate.metadata.labels: weir.dev/run is reserved for the operator",
  ]);
});

test("a name too long for its pods' names, and a job without storage, are refused", () => {
  const job = sampleJob({ savepoints: undefined });
  job.metadata.name = "x".repeat(46);
  assert.deepEqual(operatorChecks(job), [
    "metadata.name: at most 45 characters (pods are named after it)",
    "spec.savepoints.storage: required — the runtime keeps its checkpoints there, even for stateless upgrades",
  ]);
  job.metadata.name = "x".repeat(45);
  assert.equal(operatorChecks(job).length, 1);
});
