// The committed RBAC files are exactly what rbac.ts generates, and the rules stay narrow.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { repoRoot } from "../../test-e2e/cluster/layout.ts";
import { jobRules, leaderElectionRules, plainRules, rbacFiles } from "./rbac.ts";

for (const [path, content] of rbacFiles()) {
  test(`${path} is up to date with operator/src/rbac.ts`, () => {
    let committed = "";
    try {
      committed = readFileSync(join(repoRoot, path), "utf8");
    } catch {
      assert.fail(`${path} is missing: run \`npm run generate\``);
    }
    assert.ok(committed === content, `${path} is out of date: run \`npm run generate\``);
  });
}

test("config/rbac/role.yaml parses to the rules of rbac.ts", () => {
  const docs = parseAllDocuments(rbacFiles().get("config/rbac/role.yaml") ?? "").map((d) =>
    d.toJS(),
  );
  const byKind = (kind: string) => docs.find((d) => d.kind === kind);
  assert.deepEqual(byKind("ClusterRole").rules, plainRules(jobRules));
  assert.deepEqual(byKind("Role").rules, plainRules(leaderElectionRules));
  assert.equal(
    byKind("ClusterRoleBinding").subjects[0].name,
    byKind("ServiceAccount").metadata.name,
  );
});

test("no wildcard, no escalation, secrets only by name", () => {
  for (const rule of [...jobRules, ...leaderElectionRules]) {
    for (const field of [rule.apiGroups, rule.resources, rule.verbs]) {
      assert.ok(!field.includes("*"), `${rule.why}: no wildcard`);
    }
    for (const verb of ["escalate", "bind", "impersonate"]) assert.ok(!rule.verbs.includes(verb));
    assert.ok(rule.why.length > 0);
  }
  const secrets = jobRules.filter((r) => r.resources.includes("secrets"));
  assert.deepEqual(
    secrets.map((r) => r.verbs),
    [["get"]],
  );
});

test("the operator may never write a StreamJob's spec (GitOps tools own it)", () => {
  const jobs = jobRules.filter((r) => r.resources.includes("streamjobs"));
  for (const rule of jobs) {
    assert.ok(!rule.verbs.includes("update") && !rule.verbs.includes("create"));
  }
});
