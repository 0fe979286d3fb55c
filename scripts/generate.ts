// `npm run generate`: writes the CRDs, types and reference page that follow from
// operator/src/api/schema.ts (see operator/src/api/generate.ts).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { generatedFiles } from "../operator/src/api/generate.ts";
import { repoRoot } from "../test-e2e/cluster/layout.ts";

for (const [path, content] of generatedFiles()) {
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
