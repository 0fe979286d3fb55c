// health.lua on StreamJob status shapes the operator writes (decide/reconcile.ts `finish`);
// test-e2e/tests/chart.e2e.test.ts runs it on real objects of a job the in-cluster operator runs.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, test } from "node:test";
import { argoHealth, LUA, luaLiteral } from "./health.ts";

function hasLua(): boolean {
  try {
    execFileSync(LUA, ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
// lua5.1 comes with the local cluster's set-up (host-tools.ts), which `npm test` runs first.
const skip = hasLua() ? false : `no ${LUA}: \`npm run cluster -- up\` installs it (Debian lua5.1)`;

const condition = (type: string, status: string, reason: string, message = "") => ({
  type,
  status,
  reason,
  message,
  observedGeneration: 3,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});

function job(status: Record<string, unknown> | undefined, generation = 3, spec = {}) {
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team-a", generation },
    spec: { image: "weir/runtime:1", state: "running", ...spec },
    ...(status ? { status } : {}),
  };
}

const running = {
  observedGeneration: 3,
  state: "Running",
  conditions: [
    condition("Degraded", "False", "AsExpected"),
    condition("Progressing", "False", "Running"),
    condition("Ready", "True", "RunReady", "run r2: 2/2 pods ready"),
  ],
};

describe("the Argo CD health check", { skip }, () => {
  test("Ready → Healthy, with the operator's message", async () => {
    assert.deepEqual(await argoHealth(job(running)), {
      status: "Healthy",
      message: "RunReady: run r2: 2/2 pods ready",
    });
  });

  test("a status older than the spec → Progressing, whatever it says", async () => {
    const health = await argoHealth(job(running, 4));
    assert.equal(health.status, "Progressing");
    assert.match(health.message, /generation 4/);
    assert.equal(
      (await argoHealth(job({ ...running, observedGeneration: undefined }))).status,
      "Progressing",
    );
  });

  test("no status yet → Progressing", async () => {
    assert.equal((await argoHealth(job(undefined))).status, "Progressing");
  });

  test("an upgrade or a starting run → Progressing, naming the step", async () => {
    const upgrading = {
      ...running,
      state: "Upgrading",
      conditions: [
        condition("Degraded", "False", "AsExpected"),
        condition("Progressing", "True", "UpgradeStopping", "upgrade of run r2 at step stopping"),
        condition("Ready", "False", "Upgrading", "run r2: 1/2 pods ready"),
      ],
    };
    assert.deepEqual(await argoHealth(job(upgrading)), {
      status: "Progressing",
      message: "UpgradeStopping: upgrade of run r2 at step stopping",
    });
  });

  test("Degraded=True → Degraded (failing pods, refused spec); Failed → Degraded", async () => {
    const failing = {
      ...running,
      state: "Deploying",
      conditions: [
        condition("Degraded", "True", "PodsFailing", "wc-r1-0: ErrImagePull"),
        condition("Progressing", "True", "Deploying", "run r1 starting"),
        condition("Ready", "False", "Deploying"),
      ],
    };
    assert.deepEqual(await argoHealth(job(failing)), {
      status: "Degraded",
      message: "PodsFailing: wc-r1-0: ErrImagePull",
    });
    const failed = { ...running, state: "Failed", conditions: [] };
    assert.equal((await argoHealth(job(failed))).status, "Degraded");
  });

  test("suspended → Suspended; a refused spec while suspended is still Degraded", async () => {
    const suspended = {
      ...running,
      state: "Suspended",
      conditions: [
        condition("Degraded", "False", "AsExpected"),
        condition("Progressing", "False", "Suspended"),
        condition("Ready", "False", "Suspended", "the job is suspended"),
      ],
    };
    assert.equal((await argoHealth(job(suspended, 3, { state: "suspended" }))).status, "Suspended");
    const refused = {
      ...suspended,
      conditions: [condition("Degraded", "True", "InvalidSpec", "spec.x: bad")],
    };
    assert.equal((await argoHealth(job(refused))).status, "Degraded");
  });

  test("strings survive the trip into Lua (quotes, backslashes, newlines, UTF-8)", async () => {
    const message = 'a "quoted" \\ path\nnext line: Grüße, "42"';
    const health = await argoHealth(
      job({ ...running, conditions: [condition("Ready", "True", "RunReady", message)] }),
    );
    assert.equal(health.message, `RunReady: ${message}`);
    assert.equal(luaLiteral([1, null, { a: null }]), "{1, nil, {}}");
  });
});
