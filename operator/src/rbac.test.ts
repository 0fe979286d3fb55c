// The RBAC rbac.ts generates parses back to its rules, and the rules stay narrow (that the
// committed files are up to date: scripts/generated.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { jobRules, leaderElectionRules, nodeRules, plainRules, rbacFiles } from "./rbac.ts";

test("config/rbac/role.yaml parses to the rules of rbac.ts", () => {
  const docs = parseAllDocuments(rbacFiles().get("config/rbac/role.yaml") ?? "").map((d) =>
    d.toJS(),
  );
  const byKind = (kind: string, name = "weir-operator") =>
    docs.find((d) => d.kind === kind && d.metadata.name === name);
  assert.deepEqual(byKind("ClusterRole").rules, plainRules(jobRules));
  assert.deepEqual(byKind("ClusterRole", "weir-operator-nodes").rules, plainRules(nodeRules));
  assert.equal(
    byKind("ClusterRoleBinding", "weir-operator-nodes").roleRef.name,
    "weir-operator-nodes",
  );
  assert.deepEqual(
    byKind("Role", "weir-operator-leader-election").rules,
    plainRules(leaderElectionRules),
  );
  assert.equal(
    byKind("ClusterRoleBinding").subjects[0].name,
    byKind("ServiceAccount").metadata.name,
  );
});

test("no wildcard, no escalation, secrets only by name", () => {
  for (const rule of [...jobRules, ...nodeRules, ...leaderElectionRules]) {
    for (const field of [rule.apiGroups, rule.resources, rule.verbs]) {
      assert.ok(!field.includes("*"), `${rule.why}: no wildcard`);
    }
    for (const verb of ["escalate", "bind", "impersonate"]) assert.ok(!rule.verbs.includes(verb));
    assert.ok(rule.why.length > 0);
  }
  // By name only (never list or watch); created for a job's control token, never changed.
  const secrets = jobRules.filter((r) => r.resources.includes("secrets"));
  assert.deepEqual(
    secrets.map((r) => r.verbs),
    [["get", "create"]],
  );
});

test("the operator may never write a StreamJob's spec (GitOps tools own it)", () => {
  const jobs = jobRules.filter((r) => r.resources.includes("streamjobs"));
  for (const rule of jobs) {
    assert.ok(!rule.verbs.includes("update") && !rule.verbs.includes("create"));
  }
});
