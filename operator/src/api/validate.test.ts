import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { IMAGE_PATTERN, resources, type Schema } from "./schema.ts";
import { celMirrors, defaultedAutoscaler, parseDuration, validateStreamJob } from "./validate.ts";

const storage = {
  endpoint: "http://127.0.0.1:9000",
  bucket: "weir",
  credentialsSecret: "weir-storage",
};

/** The smallest valid StreamJob, with `spec` fields replaced or added. */
function job(spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "clicks", namespace: "default" },
    spec: {
      image: "weir/runtime",
      job: { entry: "runtime/examples/word-count.ts" },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      savepoints: { storage },
      ...spec,
    },
  };
}

function errorsOf(obj: unknown): string[] {
  const result = validateStreamJob(obj);
  assert.equal(result.ok, false, "the object is refused");
  return result.ok ? [] : result.errors;
}

describe("validateStreamJob: defaults", () => {
  test("fills in every default, nested ones where their parent is present", () => {
    const result = validateStreamJob(job());
    assert.ok(result.ok, JSON.stringify(result));
    const { spec } = result.job;
    assert.equal(spec.imagePullPolicy, "IfNotPresent");
    assert.equal(spec.parallelism, 1);
    assert.equal(spec.state, "running");
    assert.equal(spec.upgradeMode, "savepoint");
    assert.deepEqual(spec.checkpoints, { interval: "10s" });
    assert.equal(spec.allowNonRestoredState, false);
    assert.equal(spec.readinessTimeout, "2m");
    assert.deepEqual(spec.savepoints, {
      storage: { ...storage, prefix: "weir", region: "us-east-1" },
      retention: { maxCount: 10 },
      onDelete: false,
      timeout: "5m",
      fallbackToLastState: false,
      maxCheckpointAge: "5m",
    });
    assert.deepEqual(spec.autoscaler, {
      enabled: false,
      dryRun: false,
      minParallelism: 1,
      targetUtilization: 0.7,
      catchUpDuration: "5m",
      scaleDownDelay: "10m",
      metricsInterval: "15s",
      metricsWindow: "2m",
      maxRescalesPerHour: 6,
      deadBand: 0.1,
    });
    assert.equal(spec.failures, undefined, "no default: the job's own setting applies");
    assert.equal(spec.podTemplate, undefined);
  });

  test("keeps the values given and leaves the input untouched", () => {
    const input = job({ parallelism: 3, autoscaler: { enabled: true, maxParallelism: 8 } });
    const before = structuredClone(input);
    const result = validateStreamJob(input);
    assert.ok(result.ok);
    assert.equal(result.job.spec.parallelism, 3);
    assert.equal(result.job.spec.autoscaler.enabled, true);
    assert.equal(result.job.spec.autoscaler.maxParallelism, 8);
    assert.equal(result.job.spec.autoscaler.minParallelism, 1);
    assert.deepEqual(input, before);
  });

  test("keeps free-form fields as they are", () => {
    const config = { topics: { in: "clicks" }, windows: [1, 2] };
    const env = [{ name: "A", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }];
    const result = validateStreamJob(
      job({
        job: { entry: "job.ts", config },
        podTemplate: { spec: { env, affinity: { nodeAffinity: {} } } },
        resources: { requests: { cpu: "500m", memory: "1Gi" }, limits: { cpu: 2 } },
      }),
    );
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.job.spec.job.config, config);
    assert.deepEqual(result.job.spec.podTemplate?.spec?.env, env);
    assert.deepEqual(result.job.spec.resources?.limits, { cpu: 2 });
  });
});

describe("defaultedAutoscaler", () => {
  test("the overrides as given, the rest the defaults a StreamJob gets", () => {
    const result = validateStreamJob(job());
    assert.ok(result.ok);
    assert.deepEqual(defaultedAutoscaler(), result.job.spec.autoscaler);
    assert.deepEqual(defaultedAutoscaler({ enabled: true, metricsWindow: "1m" }), {
      ...result.job.spec.autoscaler,
      enabled: true,
      metricsWindow: "1m",
    });
  });

  test("refuses what the schema refuses, naming the field", () => {
    assert.throws(() => defaultedAutoscaler({ deadBand: 1 }), /spec\.autoscaler\.deadBand/);
    assert.throws(
      () => defaultedAutoscaler({ minParallelism: 4, maxParallelism: 2 }),
      /spec\.autoscaler\.minParallelism: must be <= maxParallelism/,
    );
  });
});

describe("validateStreamJob: schema rules, each error naming its field", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ["required field", { image: undefined }, "spec.image: is required"],
    ["required nested field", { job: {} }, "spec.job.entry: is required"],
    ["wrong type", { parallelism: "two" }, "spec.parallelism: must be integer"],
    ["below the minimum", { parallelism: 0 }, "spec.parallelism: must be >= 1"],
    ["enum", { state: "paused" }, "spec.state: must be one of running, suspended"],
    [
      "enum (upgrade mode)",
      { upgradeMode: "rolling" },
      "spec.upgradeMode: must be one of savepoint, last-state, stateless",
    ],
    [
      "duration",
      { readinessTimeout: "2 minutes" },
      "spec.readinessTimeout: must be a duration such as 90s, 5m, 1h30m or 250ms",
    ],
    [
      "host:port",
      { kafka: { bootstrapServers: ["kafka"] } },
      "spec.kafka.bootstrapServers[0]: must match ^[^:\\s]+:[0-9]{1,5}$",
    ],
    [
      "at least one bootstrap server",
      { kafka: { bootstrapServers: [] } },
      "spec.kafka.bootstrapServers: must NOT have fewer than 1 items",
    ],
    [
      "endpoint URL",
      { savepoints: { storage: { ...storage, endpoint: "minio:9000" } } },
      "spec.savepoints.storage.endpoint: must match ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$",
    ],
    [
      "exclusive minimum",
      { autoscaler: { targetUtilization: 0 } },
      "spec.autoscaler.targetUtilization: must be > 0",
    ],
    [
      "maximum",
      { autoscaler: { targetUtilization: 1.5 } },
      "spec.autoscaler.targetUtilization: must be <= 1",
    ],
    ["exclusive maximum", { autoscaler: { deadBand: 1 } }, "spec.autoscaler.deadBand: must be < 1"],
    ["unknown field", { paralellism: 2 }, "spec.paralellism: unknown field"],
    ["above the maximum", { parallelism: 100_000 }, "spec.parallelism: must be <= 1000"],
    [
      "an image reference with a space",
      { image: "weir/runtime: latest" },
      `spec.image: must match ${IMAGE_PATTERN}`,
    ],
    [
      "an image repository in upper case",
      { image: "Weir/Runtime" },
      `spec.image: must match ${IMAGE_PATTERN}`,
    ],
    [
      "a job config with too many keys",
      {
        job: {
          entry: "/app/job.ts",
          config: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])),
        },
      },
      "spec.job.config: must NOT have more than 256 properties",
    ],
    [
      "a grace period of nothing",
      { podTemplate: { spec: { terminationGracePeriodSeconds: 0 } } },
      "spec.podTemplate.spec.terminationGracePeriodSeconds: must be >= 1",
    ],
    [
      "env entry without a name",
      { podTemplate: { spec: { env: [{ value: "x" }] } } },
      "spec.podTemplate.spec.env[0].name: is required",
    ],
    [
      "quantity neither integer nor string",
      { resources: { limits: { cpu: true } } },
      "spec.resources.limits.cpu: must be integer",
    ],
  ];
  for (const [name, spec, expected] of cases) {
    test(name, () => {
      assert.ok(errorsOf(job(spec)).includes(expected), `${expected} in ${errorsOf(job(spec))}`);
    });
  }

  test("apiVersion and kind", () => {
    assert.deepEqual(errorsOf({ ...job(), apiVersion: "weir.dev/v1", kind: "Job" }), [
      "apiVersion: must be weir.dev/v1alpha1",
      "kind: must be StreamJob",
    ]);
  });

  test("every error is reported at once", () => {
    assert.equal(errorsOf(job({ parallelism: 0, state: "paused", image: 1 })).length, 3);
  });
});

describe("validateStreamJob: the CEL rules, mirrored", () => {
  test("autoscaler.minParallelism <= maxParallelism", () => {
    assert.deepEqual(errorsOf(job({ autoscaler: { minParallelism: 5, maxParallelism: 2 } })), [
      "spec.autoscaler.minParallelism: must be <= maxParallelism",
    ]);
    assert.ok(validateStreamJob(job({ autoscaler: { minParallelism: 2, maxParallelism: 2 } })).ok);
    assert.ok(validateStreamJob(job({ autoscaler: { minParallelism: 5 } })).ok, "no maximum");
  });

  test("savepoint and last-state upgrades need savepoint storage; stateless does not", () => {
    for (const upgradeMode of [undefined, "savepoint", "last-state"]) {
      assert.deepEqual(errorsOf(job({ upgradeMode, savepoints: undefined })), [
        "spec.savepoints: savepoints.storage is required for savepoint and last-state upgrades (only upgradeMode stateless runs without it)",
      ]);
    }
    assert.ok(validateStreamJob(job({ upgradeMode: "stateless", savepoints: undefined })).ok);
  });

  test("initialSavepoint needs savepoint storage", () => {
    const errors = errorsOf(
      job({ upgradeMode: "stateless", savepoints: undefined, initialSavepoint: "s3://weir/sp/" }),
    );
    assert.deepEqual(errors, [
      "spec.initialSavepoint: initialSavepoint needs savepoints.storage (the bucket and credentials to read it)",
    ]);
    assert.ok(validateStreamJob(job({ initialSavepoint: "s3://weir/sp/" })).ok);
  });

  test("failures dead-letter needs deadLetterTopic", () => {
    assert.deepEqual(errorsOf(job({ failures: "dead-letter" })), [
      "spec.deadLetterTopic: is required when failures is dead-letter",
    ]);
    assert.ok(validateStreamJob(job({ failures: "dead-letter", deadLetterTopic: "dlq" })).ok);
    assert.ok(validateStreamJob(job({ failures: "skip" })).ok);
  });

  test("durations within their range, at both ends; outside it refused with the range", () => {
    assert.ok(validateStreamJob(job({ checkpoints: { interval: "100ms" } })).ok);
    assert.ok(validateStreamJob(job({ checkpoints: { interval: "5m" } })).ok);
    assert.deepEqual(errorsOf(job({ checkpoints: { interval: "0s" } })), [
      "spec.checkpoints.interval: must be from 100ms to 5m (a task's Kafka transaction stays open for one interval)",
    ]);
    assert.deepEqual(errorsOf(job({ autoscaler: { metricsInterval: "0s" } })), [
      "spec.autoscaler.metricsInterval: must be from 1s to 10m (every pod is scraped this often)",
    ]);
    assert.deepEqual(errorsOf(job({ readinessTimeout: "99999999999h" })), [
      "spec.readinessTimeout: must be from 10s to 1h",
    ]);
    assert.ok(validateStreamJob(job({ autoscaler: { scaleDownDelay: "0s" } })).ok);
  });

  test("quantities: an integer or Kubernetes' quantity text", () => {
    for (const cpu of [2, "500m", "1.5", "1e3", "+1"])
      assert.ok(validateStreamJob(job({ resources: { limits: { cpu } } })).ok, String(cpu));
    for (const cpu of ["abc", "1.2.3", "2 cores", "1Gb"])
      assert.deepEqual(errorsOf(job({ resources: { limits: { cpu } } })), [
        "spec.resources.limits.cpu: must be a quantity such as 500m, 2 or 1Gi",
      ]);
  });

  test("image references as registries take them", () => {
    for (const image of [
      "weir/runtime",
      "weir/runtime:0.1.0",
      "localhost:5000/weir/runtime:dev",
      "registry.example.com/team/weir_runtime:v2-rc.1",
      `ghcr.io/weir/runtime@sha256:${"0".repeat(64)}`,
    ])
      assert.ok(validateStreamJob(job({ image })).ok, image);
  });

  test("every CEL rule of the schema has a mirror, and every mirror a rule", () => {
    const rules = new Set<string>();
    const collect = (schema: Schema) => {
      for (const { rule } of schema["x-kubernetes-validations"] ?? []) rules.add(rule);
      if (schema.items) collect(schema.items);
      if (schema.additionalProperties) collect(schema.additionalProperties);
      for (const property of Object.values(schema.properties ?? {})) collect(property);
    };
    for (const resource of resources) collect(resource.schema);
    assert.deepEqual([...rules].sort(), Object.keys(celMirrors).sort());
  });
});

describe("parseDuration", () => {
  test("milliseconds of each unit and of combinations", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("5m"), 300_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("1m30s500ms"), 90_500);
  });

  test("refuses what the schema's pattern refuses", () => {
    for (const text of ["", "5", "5 m", "m", "-1s", "1d", "1h 30m"]) {
      assert.throws(() => parseDuration(text), /not a duration/, text);
    }
  });

  test("every default duration of the schema parses", () => {
    const result = validateStreamJob(job());
    assert.ok(result.ok);
    const { spec } = result.job;
    for (const text of [
      spec.checkpoints.interval,
      spec.readinessTimeout,
      spec.autoscaler.catchUpDuration,
      spec.autoscaler.scaleDownDelay,
      spec.autoscaler.metricsInterval,
      spec.autoscaler.metricsWindow,
      spec.savepoints?.timeout ?? "",
      spec.savepoints?.maxCheckpointAge ?? "",
    ]) {
      assert.ok(parseDuration(text) > 0, text);
    }
  });
});
