// `npm run generate`: writes the files that follow from a TypeScript source — the CRDs, types
// and reference page from operator/src/api/schema.ts (operator/src/api/generate.ts), the RBAC
// from operator/src/rbac.ts, and the chart's CRD templates (helm/generate.ts).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { repoRoot } from "../test-e2e/cluster/layout.ts";
import { allGeneratedFiles } from "./generated.ts";

for (const [path, content] of allGeneratedFiles()) {
  const file = join(repoRoot, path);
  let current: string | undefined;
  try {
    current = readFileSync(file, "utf8");
  } catch {
    current = undefined;
  }
  if (current === content) continue;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  process.stderr.write(`[generate] wrote ${path}\n`);
}
