// The chart's CRD templates are exactly what the schema generates (npm run generate).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../test-e2e/cluster/layout.ts";
import { chartFiles } from "./generate.ts";

for (const [path, content] of chartFiles()) {
  test(`${path} is up to date with operator/src/api/schema.ts`, () => {
    let committed = "";
    try {
      committed = readFileSync(join(repoRoot, path), "utf8");
    } catch {
      assert.fail(`${path} is missing: run \`npm run generate\``);
    }
    assert.ok(committed === content, `${path} is out of date: run \`npm run generate\``);
  });
}
