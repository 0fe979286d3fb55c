// The committed generated files are exactly what their sources generate (`npm run generate`).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../test-e2e/cluster/layout.ts";
import { allGeneratedFiles } from "./generated.ts";

for (const [path, content] of allGeneratedFiles()) {
  test(`${path} is up to date with its source`, () => {
    let committed = "";
    try {
      committed = readFileSync(join(repoRoot, path), "utf8");
    } catch {
      assert.fail(`${path} is missing: run \`npm run generate\``);
    }
    assert.ok(committed === content, `${path} is out of date: run \`npm run generate\``);
  });
}
