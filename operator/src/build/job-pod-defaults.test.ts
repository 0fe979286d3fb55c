// The defaults a job pod gets where its StreamJob names nothing: requests and a memory limit
// (a QoS class other than BestEffort), the admin's priority class, a heap sized from the limit.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob } from "../api/types.ts";
import { validateStreamJob } from "../api/validate.ts";
import { runSpecOf, specHash } from "../decide/run-spec.ts";
import {
  DEFAULT_JOB_RESOURCES,
  parseJobResources,
  withJobPodDefaults,
} from "./job-pod-defaults.ts";
import { buildPod } from "./run-objects.ts";

function podOf(spec: Record<string, unknown> = {}): V1Pod {
  const checked = validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team", uid: "u-1" },
    spec: {
      image: "weir/runtime:2",
      job: { entry: "/app/runtime/examples/word-count.ts" },
      kafka: { bootstrapServers: ["kafka:9092"] },
      upgradeMode: "stateless",
      ...spec,
    },
  });
  if (!checked.ok) throw new Error(checked.errors.join("; "));
  const job = checked.job as StreamJob;
  const run = runSpecOf(job);
  return buildPod({ job, id: "r1", spec: run, specHash: specHash(run) }, 0);
}

const DEFAULTS = { resources: DEFAULT_JOB_RESOURCES };

/** Kubernetes' QoS class of a pod (pkg/apis/core/helper/qos), for cpu and memory. */
function qosClass(pod: V1Pod): "Guaranteed" | "Burstable" | "BestEffort" {
  const containers = pod.spec?.containers ?? [];
  const named = containers.some(
    (c) =>
      Object.keys(c.resources?.requests ?? {}).length +
        Object.keys(c.resources?.limits ?? {}).length >
      0,
  );
  if (!named) return "BestEffort";
  const guaranteed = containers.every((c) =>
    ["cpu", "memory"].every((r) => {
      const limit = c.resources?.limits?.[r];
      const request = c.resources?.requests?.[r] ?? limit;
      return limit !== undefined && request === limit;
    }),
  );
  return guaranteed ? "Guaranteed" : "Burstable";
}

const runtime = (pod: V1Pod) => pod.spec?.containers[0];
const nodeOptions = (pod: V1Pod) =>
  runtime(pod)
    ?.env?.filter((v) => v.name === "NODE_OPTIONS")
    .map((v) => v.value);

test("a StreamJob without resources: the defaults, Burstable, the heap at 75% of the limit", () => {
  const built = podOf();
  assert.equal(qosClass(built), "BestEffort");
  const pod = withJobPodDefaults(built, DEFAULTS);
  assert.deepEqual(runtime(pod)?.resources, {
    requests: { cpu: "250m", memory: "512Mi" },
    limits: { memory: "512Mi" },
  });
  assert.equal(qosClass(pod), "Burstable");
  assert.deepEqual(nodeOptions(pod), ["--max-old-space-size-percentage=75"]);
  // The built pod is left as it was (decide/ keeps what it built).
  assert.equal(runtime(built)?.resources, undefined);
});

test("what the StreamJob names is kept; a resource it names in neither map is defaulted", () => {
  const pod = withJobPodDefaults(podOf({ resources: { requests: { memory: "2Gi" } } }), DEFAULTS);
  // No default limit below the job's own request (the API server would refuse the pod).
  assert.deepEqual(runtime(pod)?.resources, { requests: { memory: "2Gi", cpu: "250m" } });
  // Without a memory limit there is nothing to size the heap from: Node's own default.
  assert.deepEqual(nodeOptions(pod), []);

  const limited = withJobPodDefaults(
    podOf({ resources: { limits: { cpu: "2", memory: "4Gi" } } }),
    DEFAULTS,
  );
  assert.deepEqual(runtime(limited)?.resources, { limits: { cpu: "2", memory: "4Gi" } });
  assert.equal(qosClass(limited), "Guaranteed");
  assert.deepEqual(nodeOptions(limited), ["--max-old-space-size-percentage=75"]);
});

test("the template's own NODE_OPTIONS wins", () => {
  const pod = withJobPodDefaults(
    podOf({
      podTemplate: { spec: { env: [{ name: "NODE_OPTIONS", value: "--max-old-space-size=900" }] } },
    }),
    DEFAULTS,
  );
  assert.deepEqual(nodeOptions(pod), ["--max-old-space-size=900"]);
});

test("priority class: the admin's default unless the template names one", () => {
  const defaults = { ...DEFAULTS, priorityClassName: "streaming" };
  assert.equal(withJobPodDefaults(podOf(), defaults).spec?.priorityClassName, "streaming");
  const own = podOf({ podTemplate: { spec: { priorityClassName: "critical" } } });
  assert.equal(withJobPodDefaults(own, defaults).spec?.priorityClassName, "critical");
  assert.equal(withJobPodDefaults(podOf(), DEFAULTS).spec?.priorityClassName, undefined);
});

test("no defaults (--job-resources none): the pod as built, a LimitRange decides", () => {
  const built = podOf();
  const pod = withJobPodDefaults(built, { resources: parseJobResources("none") });
  assert.deepEqual(pod, built);
});

test("--job-resources: JSON of requests and limits, numbers as quantities; anything else refused", () => {
  assert.deepEqual(parseJobResources('{"requests":{"cpu":1,"memory":"1Gi"},"limits":{}}'), {
    requests: { cpu: "1", memory: "1Gi" },
    limits: {},
  });
  for (const bad of [
    '"1Gi"',
    "[]",
    '{"request":{}}',
    '{"limits":{"memory":{}}}',
    '{"limits":[]}',
  ]) {
    assert.throws(() => parseJobResources(bad), /--job-resources must be "none" or/, bad);
  }
});
