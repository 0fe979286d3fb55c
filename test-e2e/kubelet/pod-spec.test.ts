// Kubernetes semantics the process kubelet must reproduce, checked without a cluster.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { V1Container, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { launchScript, shellQuote } from "./container.ts";
import {
  fieldValue,
  formatMap,
  quantityValue,
  resourceValue,
  tokenRefreshMs,
} from "./pod-inputs.ts";
import {
  containerArgv,
  effectiveRestartPolicy,
  expandVars,
  imageName,
  lookupImage,
  podConditions,
  podPhase,
  restartBackoffMs,
  shouldRestart,
} from "./pod-spec.ts";

test("image references reduce to the catalog name", () => {
  assert.equal(imageName("busybox"), "busybox");
  assert.equal(imageName("busybox:1.36"), "busybox");
  assert.equal(imageName("docker.io/library/busybox:1.36@sha256:abc"), "busybox");
  assert.equal(
    imageName("registry.local:5000/weir/runtime:v1"),
    "registry.local:5000/weir/runtime",
  );
  assert.equal(lookupImage({ busybox: { cmd: ["sh"] } }, "nginx:1"), undefined);
});

test("$(VAR) expands known names, keeps unknown ones, and $$ escapes", () => {
  const vars = new Map([
    ["A", "1"],
    ["B", "two"],
  ]);
  assert.equal(expandVars("$(A)-$(B)-$(C)", vars), "1-two-$(C)");
  assert.equal(expandVars("$$(A) costs $$5", vars), "$(A) costs $5");
});

test("command replaces the entrypoint, args replace the cmd", () => {
  const image = { entrypoint: ["/entry"], cmd: ["--default"] };
  const vars = new Map([["X", "x"]]);
  assert.deepEqual(containerArgv({}, image, vars), ["/entry", "--default"]);
  assert.deepEqual(containerArgv({ args: ["$(X)"] }, image, vars), ["/entry", "x"]);
  assert.deepEqual(containerArgv({ command: ["sh"] }, image, vars), ["sh"]);
  assert.deepEqual(containerArgv({ command: ["sh"], args: ["-c", "true"] }, image, vars), [
    "sh",
    "-c",
    "true",
  ]);
});

test("restart back-off: immediate, then doubling from 10 s up to 5 min", () => {
  assert.deepEqual(
    [0, 1, 2, 3, 6, 10].map(restartBackoffMs),
    [0, 10_000, 20_000, 40_000, 300_000, 300_000],
  );
});

test("restart policies", () => {
  assert.equal(shouldRestart(undefined, 0), true);
  assert.equal(shouldRestart("OnFailure", 0), false);
  assert.equal(shouldRestart("OnFailure", 2), true);
  assert.equal(shouldRestart("Never", 2), false);
});

const running: V1ContainerStatus = {
  name: "a",
  image: "busybox",
  imageID: "",
  ready: true,
  restartCount: 0,
  state: { running: {} },
};
const done = (exitCode: number): V1ContainerStatus => ({
  ...running,
  ready: false,
  state: { terminated: { exitCode } },
});
const waiting: V1ContainerStatus = {
  ...running,
  ready: false,
  state: { waiting: { reason: "ErrImagePull" } },
};

test("pod phase follows the containers", () => {
  assert.equal(podPhase("Always", [waiting]), "Pending");
  assert.equal(podPhase("Always", [running, waiting]), "Running");
  assert.equal(podPhase("Never", [done(0), done(0)]), "Succeeded");
  assert.equal(podPhase("Never", [done(0), done(1)]), "Failed");
  assert.equal(podPhase("OnFailure", [done(0)]), "Succeeded");
  assert.equal(podPhase("Always", [done(1)]), "Running", "a restart is coming");
});

test("init containers: Pending until each succeeded; under Never a failed one fails the pod", () => {
  const initRunning = { ...running, ready: false };
  assert.equal(podPhase("Always", [waiting], [initRunning]), "Pending");
  assert.equal(podPhase("Always", [running], [done(0)]), "Running");
  assert.equal(podPhase("Never", [waiting], [done(2)]), "Failed");
  assert.equal(podPhase("OnFailure", [waiting], [done(2)]), "Pending", "it will be retried");
  assert.equal(effectiveRestartPolicy("Always", true), "OnFailure");
  assert.equal(effectiveRestartPolicy("Always", false), "Always");
  const conditions = podConditions({}, [waiting], new Date(), [initRunning]);
  const initializedCondition = conditions.find((c) => c.type === "Initialized");
  assert.equal(initializedCondition?.status, "False");
  assert.equal(initializedCondition?.reason, "ContainersNotInitialized");
});

test("conditions: Ready only when every container is; the scheduler's condition is kept", () => {
  const pod: V1Pod = { status: { conditions: [{ type: "PodScheduled", status: "True" }] } };
  const now = new Date("2026-01-01T00:00:00Z");
  const ready = podConditions(pod, [running], now);
  assert.equal(ready.find((c) => c.type === "PodScheduled")?.status, "True");
  assert.equal(ready.find((c) => c.type === "Ready")?.status, "True");
  const notReady = podConditions(
    { status: { conditions: ready } },
    [running, waiting],
    new Date("2026-01-01T00:01:00Z"),
  );
  const condition = notReady.find((c) => c.type === "Ready");
  assert.equal(condition?.status, "False");
  assert.equal(condition?.reason, "ContainersNotReady");
  assert.notEqual(condition?.lastTransitionTime, now);
  const unchanged = podConditions(
    { status: { conditions: ready } },
    [running],
    new Date("2026-01-01T00:02:00Z"),
  );
  assert.equal(
    unchanged.find((c) => c.type === "Ready")?.lastTransitionTime,
    now,
    "no transition, same time",
  );
});

test("downward API fields and label files", () => {
  const pod: V1Pod = {
    metadata: { name: "p", namespace: "ns", uid: "u1", labels: { b: "2", a: 'x"y' } },
    spec: { nodeName: "node-1", serviceAccountName: "sa", containers: [] },
    status: { podIP: "127.1.0.9" },
  };
  const value = (fieldPath: string) => fieldValue(pod, { fieldPath }, "127.0.0.1");
  assert.equal(value("metadata.name"), "p");
  assert.equal(value("metadata.labels['b']"), "2");
  assert.equal(value("status.podIP"), "127.1.0.9");
  assert.equal(value("status.hostIP"), "127.0.0.1");
  assert.equal(value("spec.serviceAccountName"), "sa");
  assert.equal(formatMap(pod.metadata?.labels), 'a="x\\"y"\nb="2"');
});

test("the launch script quotes every path and runs the command as a child of sh", () => {
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  const script = launchScript(
    [{ containerPath: "/etc/my config", hostPath: "/tmp/a'b", readOnly: true }],
    "/work dir",
    "/.weir-test",
  );
  assert.match(script, /mount --bind '\/tmp\/a'\\''b' '\/.weir-test\/0'/);
  assert.match(script, /mount --bind '\/.weir-test\/0' '\/etc\/my config'/);
  assert.match(script, /mount -o remount,bind,ro '\/etc\/my config'/);
  // The script's tail, run for real: it marks the start, and the command's exit status is its.
  const dir = mkdtempSync(join(tmpdir(), "weir-launch-"));
  try {
    const marker = join(dir, "started");
    const status = (() => {
      try {
        execFileSync("sh", [
          "-c",
          launchScript([], undefined, dir),
          "container",
          "sh",
          "-c",
          "exit 7",
        ]);
        return 0;
      } catch (error) {
        return (error as { status: number }).status;
      }
    })();
    assert.equal(status, 7);
    assert.ok(existsSync(marker), "the start marker was created");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("service-account tokens are renewed at 80% of the shortest lifetime", () => {
  const token = (expirationSeconds?: number) => ({
    serviceAccountToken: { path: "token", ...(expirationSeconds ? { expirationSeconds } : {}) },
  });
  const pod = (sources: object[]): V1Pod => ({
    spec: { containers: [], volumes: [{ name: "api", projected: { sources } }] },
  });
  assert.equal(tokenRefreshMs(pod([token()])), 3607 * 800);
  assert.equal(tokenRefreshMs(pod([token(3600), token(600)])), 600 * 800);
  assert.equal(
    tokenRefreshMs({ spec: { containers: [], volumes: [{ name: "e", emptyDir: {} }] } }),
    undefined,
  );
});

test("resourceFieldRef: the limit (else the node's allocatable) over the divisor, rounded up", () => {
  const node = { cpu: 8, memory: 16 * 1024 ** 3 };
  const container = (resources: V1Container["resources"]): V1Container => ({
    name: "c",
    resources,
  });
  const limited = container({
    limits: { cpu: "1500m", memory: "512Mi" },
    requests: { cpu: "250m" },
  });
  assert.equal(resourceValue(limited, { resource: "limits.cpu", divisor: "1" }, node), "2");
  assert.equal(resourceValue(limited, { resource: "limits.cpu" }, node), "2");
  assert.equal(resourceValue(limited, { resource: "limits.cpu", divisor: "1m" }, node), "1500");
  assert.equal(resourceValue(limited, { resource: "requests.cpu", divisor: "1" }, node), "1");
  assert.equal(resourceValue(limited, { resource: "requests.cpu", divisor: "1m" }, node), "250");
  assert.equal(resourceValue(limited, { resource: "limits.memory", divisor: "1Mi" }, node), "512");
  assert.equal(resourceValue(container({}), { resource: "limits.cpu", divisor: "1" }, node), "8");
  assert.equal(
    resourceValue(
      container({ limits: { cpu: "0.1" } }),
      { resource: "limits.cpu", divisor: "1m" },
      node,
    ),
    "100",
  );
  assert.equal(quantityValue("2"), 2);
  assert.equal(quantityValue("1e3"), 1000);
  assert.equal(quantityValue("1Gi"), 1024 ** 3);
  assert.throws(() => resourceValue(limited, { resource: "limits.gpu" }, node), /unsupported/);
});
