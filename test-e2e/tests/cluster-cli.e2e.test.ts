// `npm run cluster -- up|status` against the running cluster: a second `up` changes nothing,
// `status` shows every component, and a component that cannot start fails `up` cleanly.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { COMPONENTS } from "../cluster/components.ts";
import { clusterPaths } from "../cluster/layout.ts";
import { isRunning, readRecords } from "../cluster/processes.ts";

const cli = join(import.meta.dirname, "..", "cluster", "cli.ts");

function runCli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = spawnSync(process.execPath, [cli, ...args], { env, encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("up on a running cluster says so and changes nothing", () => {
  const before = readRecords(clusterPaths.pids);
  const result = runCli(["up"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /already up/);
  const after = readRecords(clusterPaths.pids);
  assert.deepEqual(
    after.map((r) => [r.name, r.pid]).sort(),
    before.map((r) => [r.name, r.pid]).sort(),
  );
  assert.ok(after.every(isRunning));
});

test("status shows each component healthy with its address", () => {
  const result = runCli(["status"]);
  assert.equal(result.code, 0, result.stdout);
  for (const component of COMPONENTS) {
    assert.match(
      result.stdout,
      new RegExp(
        `^${component.name}\\s+healthy\\s+${component.address.replaceAll(".", "\\.")}\\s`,
        "m",
      ),
    );
  }
});

test("a component that cannot start fails up, which names it and stops what it started", () => {
  // A second cluster in another folder finds every port taken by the running one.
  const dir = mkdtempSync(join(tmpdir(), "weir-second-cluster-"));
  try {
    const result = runCli(["up"], { ...process.env, WEIR_CLUSTER_DIR: dir });
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      new RegExp(`etcd cannot start: port 2379 is already in use; its log: ${dir}/logs/etcd\\.log`),
    );
    const started = readRecords(join(dir, "pids"));
    assert.ok(
      started.every((r) => !isRunning(r)),
      "nothing it started still runs",
    );
    assert.equal(runCli(["status"]).code, 0, "the running cluster is untouched");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
