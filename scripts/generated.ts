// Every file `npm run generate` writes, by path, with the content its TypeScript source gives:
// the CRDs, types and reference page (operator/src/api/schema.ts), the RBAC
// (operator/src/rbac.ts) and the chart's CRD templates (helm/generate.ts).
import { chartFiles } from "../helm/generate.ts";
import { generatedFiles } from "../operator/src/api/generate.ts";
import { rbacFiles } from "../operator/src/rbac.ts";

export function allGeneratedFiles(): Map<string, string> {
  return new Map([...generatedFiles(), ...rbacFiles(), ...chartFiles()]);
}
