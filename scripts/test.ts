// `npm test`: type-check, lint, bring the local cluster up (unless it already is), and run
// every test with node:test; the runner's summary is the last thing printed.
// `npm run test:unit` runs the checks and the tests that need no cluster.
//
// Test files: `*.test.ts` anywhere are unit tests (no cluster); `*.e2e.test.ts` under
// test-e2e/tests need the local cluster.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { globSync } from "node:fs";
import { join } from "node:path";
import { down, readEnvFile, status, up } from "../test-e2e/cluster/cluster.ts";
import { clusterPaths, repoRoot } from "../test-e2e/cluster/layout.ts";

const unitOnly = process.argv.includes("--unit");

function step(name: string, command: string, args: string[], env = process.env): void {
  process.stderr.write(`[test] ${name}\n`);
  const result = spawnSync(command, args, { cwd: repoRoot, stdio: "inherit", env });
  if (result.status !== 0) {
    process.stderr.write(`[test] ${name} failed\n`);
    process.exit(result.status ?? 1);
  }
}

function testFiles(): string[] {
  const ignore = (path: string) => path.includes("node_modules");
  const all = globSync("**/*.test.ts", { cwd: repoRoot, exclude: ignore });
  const e2e = all.filter((file) => file.endsWith(".e2e.test.ts"));
  const unit = all.filter((file) => !file.endsWith(".e2e.test.ts"));
  return (unitOnly ? unit : [...unit, ...e2e]).sort();
}

step("type-check (tsc --noEmit)", "tsc", ["--noEmit"]);
step("lint and format (biome ci)", "biome", ["ci", "--colors=off", "--error-on-warnings", "."]);

let startedCluster = false;
let env = process.env;
if (!unitOnly) {
  const wasUp = (await status()).every((component) => component.healthy);
  if (!wasUp) {
    process.stderr.write("[test] bringing the local cluster up\n");
    try {
      // A running cluster that only lacked new components is someone's: it stays up after.
      startedCluster = (await up()) === "started";
    } catch (error) {
      process.stderr.write(
        `[test] the local cluster did not come up: ${error instanceof Error ? error.message : error}\n`,
      );
      process.exit(1);
    }
  }
  env = { ...process.env, ...readEnvFile(clusterPaths.env) };
}

const files = testFiles();
// Not spawnSync: the cluster's processes this run started are its children, and a child that
// exits (the broker a fault test restarts) is reaped only while this event loop runs; a
// zombie leader keeps its process group "alive" and its restart waiting.
const runner = spawn(
  process.execPath,
  [
    "--test",
    "--test-reporter=spec",
    "--test-timeout=600000",
    ...files.map((f) => join(repoRoot, f)),
  ],
  { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"], env },
);
const [exitCode] = (await once(runner, "exit")) as [number | null];
// A cluster this run started goes down silently, so the runner's summary stays the last output.
if (startedCluster) await down({ quiet: true });
process.exit(exitCode ?? 1);
