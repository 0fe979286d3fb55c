// The chart without a cluster: `helm lint`, and what `helm template` renders for the main value
// combinations, with the Helm the local cluster builds (~/.cache/weir/helm-<version>; no
// running cluster needed). The rules come from operator/src/rbac.ts, the CRDs from the schema.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { parse, parseAllDocuments, stringify } from "yaml";
import { crd } from "../operator/src/api/generate.ts";
import { resources } from "../operator/src/api/schema.ts";
import { DEFAULT_JOB_RESOURCES } from "../operator/src/build/job-pod-defaults.ts";
import { jobRules, leaderElectionRules, nodeRules, plainRules } from "../operator/src/rbac.ts";
import { cacheDir, repoRoot } from "../test-e2e/cluster/layout.ts";
import { HELM_VERSION } from "../test-e2e/cluster/versions.ts";

const chart = join(repoRoot, "helm", "weir");
const helm = join(cacheDir, `helm-${HELM_VERSION}`, "bin", "helm");
// Helm is built with the local cluster (`npm run cluster -- up`, which `npm test` runs first).
const skip = existsSync(helm) ? false : `no ${helm} yet: \`npm run cluster -- up\` builds it`;
const execFileAsync = promisify(execFile);

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are free-form
type Manifest = Record<string, any>;

async function runHelm(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(helm, args, {
    // No cluster: an empty kubeconfig, so nothing can reach one by accident.
    env: { ...process.env, KUBECONFIG: "/dev/null" },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** `helm template` with these values; the manifests it renders. */
async function render(values: object = {}, namespace = "weir-system"): Promise<Manifest[]> {
  const file = join(mkdtempSync(join(tmpdir(), "weir-values-")), "values.yaml");
  writeFileSync(file, stringify(values));
  const out = await runHelm(["template", "weir", chart, "-n", namespace, "-f", file]);
  return parseAllDocuments(out)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

/** The error Helm gives for these values (fails the test when it renders). */
async function refusal(values: object): Promise<string> {
  try {
    await render(values);
  } catch (error) {
    return String((error as { stderr?: string }).stderr ?? error);
  }
  assert.fail(`values ${JSON.stringify(values)} were accepted`);
}

const ofKind = (manifests: Manifest[], kind: string) => manifests.filter((m) => m.kind === kind);
const one = (manifests: Manifest[], kind: string) => {
  const found = ofKind(manifests, kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0] as Manifest;
};
const container = (manifests: Manifest[]) =>
  one(manifests, "Deployment").spec.template.spec.containers[0];

describe("the chart", { skip }, () => {
  test("helm lint passes (default values and the main combinations)", async () => {
    await runHelm(["lint", "--strict", chart]);
    await runHelm([
      "lint",
      "--strict",
      chart,
      "--set",
      "replicaCount=2,watchNamespaces={a,b},metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true,dashboard.enabled=true",
    ]);
  });

  test("defaults: one replica, leader-elected, secure, watching every namespace", async () => {
    const manifests = await render();
    const deployment = one(manifests, "Deployment");
    assert.equal(deployment.spec.replicas, 1);
    assert.equal(deployment.metadata.namespace, "weir-system");
    const pod = deployment.spec.template.spec;
    assert.equal(pod.serviceAccountName, "weir-operator");
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const operator = container(manifests);
    assert.equal(operator.image, "weir/operator:0.1.0", "the chart's appVersion");
    assert.deepEqual(operator.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.deepEqual(operator.args, [
      "--concurrency=4",
      "--log-level=info",
      "--pod-security=restricted",
      '--job-resources={"limits":{"memory":"512Mi"},"requests":{"cpu":"250m","memory":"512Mi"}}',
      "--leader-election-id=weir-operator",
    ]);
    assert.deepEqual(
      operator.env.map((e: Manifest) => [e.name, e.valueFrom.fieldRef.fieldPath]),
      [
        ["POD_NAME", "metadata.name"],
        ["POD_NAMESPACE", "metadata.namespace"],
        ["POD_IP", "status.podIP"],
      ],
    );
    assert.deepEqual(operator.resources.requests, { cpu: "100m", memory: "128Mi" });
    assert.deepEqual(operator.volumeMounts, [{ name: "tmp", mountPath: "/tmp" }]);
    assert.equal(operator.readinessProbe.httpGet.path, "/readyz");
    assert.equal(operator.livenessProbe.httpGet.path, "/healthz");
    assert.equal(deployment.spec.strategy.type, "RollingUpdate");
    assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);

    assert.deepEqual(
      ofKind(manifests, "ClusterRole").map((r) => [r.metadata.name, r.rules]),
      [
        ["weir-operator", plainRules(jobRules)],
        ["weir-operator-nodes", plainRules(nodeRules)],
      ],
    );
    for (const binding of ofKind(manifests, "ClusterRoleBinding")) {
      assert.deepEqual(binding.subjects, [
        { kind: "ServiceAccount", name: "weir-operator", namespace: "weir-system" },
      ]);
    }
    const leaseRole = one(manifests, "Role");
    assert.equal(leaseRole.metadata.namespace, "weir-system");
    assert.deepEqual(leaseRole.rules, plainRules(leaderElectionRules));
    assert.equal(one(manifests, "RoleBinding").roleRef.name, leaseRole.metadata.name);

    const service = one(manifests, "Service");
    assert.deepEqual(service.spec.ports, [
      { name: "http-metrics", port: 8080, targetPort: "http", protocol: "TCP" },
    ]);
    for (const [key, value] of Object.entries(service.spec.selector)) {
      assert.equal(deployment.spec.template.metadata.labels[key], value);
    }
    for (const kind of ["PodDisruptionBudget", "ServiceMonitor", "PodMonitor", "ConfigMap"]) {
      assert.deepEqual(ofKind(manifests, kind), [], `no ${kind} by default`);
    }
  });

  test("the CRDs are the generated ones, kept on uninstall; crds.install=false leaves them out", async () => {
    const manifests = await render();
    const crds = ofKind(manifests, "CustomResourceDefinition");
    assert.deepEqual(
      crds.map((c) => c.spec),
      resources.map((r) => JSON.parse(JSON.stringify((crd(r) as Manifest).spec))),
    );
    for (const c of crds) {
      assert.equal(c.metadata.annotations["helm.sh/resource-policy"], "keep");
      assert.equal(c.metadata.labels["helm.sh/chart"], "weir-0.1.0");
    }
    const notKept = ofKind(await render({ crds: { keep: false } }), "CustomResourceDefinition");
    assert.equal(notKept.length, 2);
    assert.ok(notKept.every((c) => c.metadata.annotations === undefined));
    assert.deepEqual(
      ofKind(await render({ crds: { install: false } }), "CustomResourceDefinition"),
      [],
    );
  });

  test("watchNamespaces: a Role and RoleBinding in each, nothing cluster-wide but reading Nodes", async () => {
    const manifests = await render({ watchNamespaces: ["team-a", "team-b"] });
    assert.deepEqual(
      ofKind(manifests, "ClusterRole").map((r) => [r.metadata.name, r.rules]),
      [["weir-operator-nodes", plainRules(nodeRules)]],
    );
    assert.deepEqual(
      ofKind(manifests, "ClusterRoleBinding").map((b) => b.roleRef.name),
      ["weir-operator-nodes"],
    );
    const jobRoles = ofKind(manifests, "Role").filter((r) => r.metadata.name === "weir-operator");
    assert.deepEqual(
      jobRoles.map((r) => [r.metadata.namespace, r.rules]),
      [
        ["team-a", plainRules(jobRules)],
        ["team-b", plainRules(jobRules)],
      ],
    );
    const bindings = ofKind(manifests, "RoleBinding").filter(
      (b) => b.metadata.name === "weir-operator",
    );
    assert.deepEqual(
      bindings.map((b) => [b.metadata.namespace, b.subjects[0].namespace, b.roleRef.kind]),
      [
        ["team-a", "weir-system", "Role"],
        ["team-b", "weir-system", "Role"],
      ],
    );
    assert.deepEqual(container(manifests).args.slice(0, 2), [
      "--namespace=team-a",
      "--namespace=team-b",
    ]);
  });

  test("the job service account: in each job namespace, no token, bound to nothing", async () => {
    for (const [values, namespaces] of [
      [{}, ["weir-system"]],
      [{ watchNamespaces: ["team-a", "team-b"] }, ["team-a", "team-b"]],
    ] as const) {
      const manifests = await render(values);
      const accounts = ofKind(manifests, "ServiceAccount").filter(
        (a) => a.metadata.name === "weir-job",
      );
      assert.deepEqual(
        accounts.map((a) => [a.metadata.namespace, a.automountServiceAccountToken]),
        namespaces.map((ns) => [ns, false]),
      );
      const subjects = [
        ...ofKind(manifests, "RoleBinding"),
        ...ofKind(manifests, "ClusterRoleBinding"),
      ]
        .flatMap((b) => b.subjects)
        .map((s: Manifest) => s.name);
      assert.ok(!subjects.includes("weir-job"));
    }
  });

  test("job pods' Pod Security: restricted unless the values allow more", async () => {
    assert.ok(container(await render()).args.includes("--pod-security=restricted"));
    const baseline = container(await render({ jobPodSecurity: "baseline" }));
    assert.ok(baseline.args.includes("--pod-security=baseline"));
    assert.match(await refusal({ jobPodSecurity: "anything" }), /jobPodSecurity/);
  });

  test("job pods' defaults: the operator's own unless the values say otherwise", async () => {
    const values = parse(readFileSync(join(chart, "values.yaml"), "utf8"));
    assert.deepEqual(values.jobPods.resources, DEFAULT_JOB_RESOURCES, "one default, not two");
    const args = async (jobPods: object) => container(await render({ jobPods })).args as string[];
    assert.deepEqual(
      (
        await args({
          resources: { requests: { cpu: null }, limits: { cpu: 2 } },
          priorityClassName: "streaming",
        })
      ).slice(3, 5),
      [
        '--job-resources={"limits":{"cpu":2,"memory":"512Mi"},"requests":{"memory":"512Mi"}}',
        "--job-priority-class=streaming",
      ],
    );
    assert.ok((await args({ resources: null })).includes("--job-resources=none"));
    assert.match(
      await refusal({ jobPods: { resources: { requests: { cpu: "lots" } } } }),
      /jobPods/,
    );
  });

  test("the NetworkPolicy: job pods' control port open to the operator's pods (and metricsFrom) only", async () => {
    const manifests = await render({ watchNamespaces: ["team-a", "team-b"] });
    const policies = ofKind(manifests, "NetworkPolicy");
    assert.deepEqual(
      policies.map((p) => p.metadata.namespace),
      ["team-a", "team-b"],
    );
    const [policy] = policies as [Manifest];
    assert.deepEqual(policy.spec.podSelector, {
      matchExpressions: [{ key: "weir.dev/job", operator: "Exists" }],
    });
    assert.deepEqual(policy.spec.policyTypes, ["Ingress"]);
    const operatorPod = one(manifests, "Deployment").spec.template;
    assert.deepEqual(policy.spec.ingress, [
      {
        from: [
          {
            namespaceSelector: {
              matchLabels: { "kubernetes.io/metadata.name": "weir-system" },
            },
            podSelector: { matchLabels: operatorPod.metadata.labels },
          },
        ],
        ports: [{ port: 9249, protocol: "TCP" }],
      },
    ]);
    const monitoring = { namespaceSelector: { matchLabels: { team: "monitoring" } } };
    const scraped = one(
      await render({ networkPolicy: { metricsFrom: [monitoring], namespaces: ["jobs"] } }),
      "NetworkPolicy",
    );
    assert.equal(scraped.metadata.namespace, "jobs");
    assert.deepEqual(scraped.spec.ingress[1], {
      from: [monitoring],
      ports: [{ port: 9249, protocol: "TCP" }],
    });
    assert.equal(one(await render(), "NetworkPolicy").metadata.namespace, "weir-system");
    assert.deepEqual(
      ofKind(await render({ networkPolicy: { enabled: false } }), "NetworkPolicy"),
      [],
    );
    assert.match(await refusal({ networkPolicy: { metricsFrom: "all" } }), /metricsFrom/);
  });

  test("more than one replica: leader election on (even if switched off) and a PDB", async () => {
    const manifests = await render({ replicaCount: 3, leaderElection: { enabled: false } });
    assert.equal(one(manifests, "Deployment").spec.replicas, 3);
    assert.ok(container(manifests).args.includes("--leader-election-id=weir-operator"));
    assert.ok(!container(manifests).args.includes("--no-leader-election"));
    assert.equal(ofKind(manifests, "Role").length, 1, "the Lease's Role");
    const pdb = one(manifests, "PodDisruptionBudget");
    assert.equal(pdb.spec.maxUnavailable, 1);
    assert.deepEqual(
      pdb.spec.selector.matchLabels,
      one(manifests, "Deployment").spec.selector.matchLabels,
    );
    assert.deepEqual(
      ofKind(
        await render({ replicaCount: 3, podDisruptionBudget: { enabled: false } }),
        "PodDisruptionBudget",
      ),
      [],
    );
  });

  test("one replica without leader election: no Lease, Recreate strategy", async () => {
    const manifests = await render({ leaderElection: { enabled: false } });
    assert.ok(container(manifests).args.includes("--no-leader-election"));
    assert.equal(one(manifests, "Deployment").spec.strategy.type, "Recreate");
    assert.deepEqual(ofKind(manifests, "Role"), []);
  });

  test("monitors: the ServiceMonitor selects the metrics Service, the PodMonitor job pods", async () => {
    const manifests = await render({
      watchNamespaces: ["team-a"],
      metrics: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true, interval: "5s" } },
    });
    const service = one(manifests, "Service");
    const monitor = one(manifests, "ServiceMonitor");
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) {
      assert.equal(service.metadata.labels[key], value, `the Service carries ${key}`);
    }
    assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
    assert.deepEqual(monitor.spec.namespaceSelector.matchNames, ["weir-system"]);
    const pods = one(manifests, "PodMonitor");
    assert.deepEqual(pods.spec.selector.matchExpressions, [
      { key: "weir.dev/job", operator: "Exists" },
    ]);
    assert.equal(pods.spec.podMetricsEndpoints[0].port, "control");
    assert.equal(pods.spec.podMetricsEndpoints[0].interval, "5s");
    assert.deepEqual(pods.spec.namespaceSelector, { matchNames: ["team-a"] });
    const everywhere = one(
      await render({ metrics: { podMonitor: { enabled: true } } }),
      "PodMonitor",
    );
    assert.deepEqual(everywhere.spec.namespaceSelector, { any: true });
  });

  test("the dashboard: a ConfigMap of Grafana JSON whose metrics the code exports", async () => {
    const manifests = await render({ dashboard: { enabled: true } });
    const configMap = one(manifests, "ConfigMap");
    assert.equal(configMap.metadata.labels.grafana_dashboard, "1");
    const dashboard = JSON.parse(configMap.data["weir.json"]);
    const titles = dashboard.panels.map((p: Manifest) => p.title);
    for (const wanted of ["Jobs by state", "Backlog (records)", "Parallelism", "Savepoints"]) {
      assert.ok(titles.includes(wanted), wanted);
    }
    assert.ok(titles.some((t: string) => t.startsWith("Upgrade")));
    const exprs: string[] = dashboard.panels.flatMap((p: Manifest) =>
      p.targets.map((t: Manifest) => t.expr),
    );
    // Metric names, not labels: drop the label lists of `by (…)` and of selectors `{…}` first.
    const used = new Set(
      exprs
        .map((e) => e.replace(/by \([^)]*\)|\{[^}]*\}/g, ""))
        .flatMap((e) => e.match(/weir_[a-z_]+/g) ?? [])
        .map((m) => m.replace(/_bucket$/, "")),
    );
    const exported = exportedMetricNames();
    const unknown = [...used].filter((m) => !exported.has(m));
    assert.deepEqual(unknown, [], "every metric the dashboard queries is exported by the code");
    assert.ok(used.has("weir_operator_streamjobs") && used.has("weir_source_backlog_records"));
  });

  test("NOTES.txt tells what to do next, for this release", async () => {
    const install = ["install", "weir", chart, "-n", "weir-system", "--dry-run=client"];
    const notes = async (...set: string[]) =>
      (await runHelm([...install, ...set])).split("NOTES:\n")[1] ?? "";
    const plain = await notes();
    assert.match(plain, /rollout status deployment\/weir-operator/);
    assert.match(plain, /every namespace/);
    assert.match(plain, /create secret generic weir-storage/);
    assert.match(plain, /kubectl -n <namespace> apply -f/);
    const confined = await notes(
      "--set-json",
      'watchNamespaces=["team-a","team-b"]',
      "--set",
      "crds.install=false",
    );
    assert.match(confined, /StreamJobs in: team-a, team-b/);
    assert.match(confined, /kubectl apply --server-side -f crds\//);
  });

  test("values.schema.json rejects unknown keys and wrong types at every level", async () => {
    assert.match(await refusal({ replicaCont: 2 }), /replicaCont/);
    assert.match(await refusal({ metrics: { serviceMonitor: { enabeld: true } } }), /enabeld/);
    assert.match(
      await refusal({ securityContext: { readOnlyRootFilesytem: true } }),
      /readOnlyRootFilesytem/,
    );
    assert.match(await refusal({ concurrency: "4" }), /concurrency/);
    assert.match(await refusal({ logLevel: "verbose" }), /logLevel/);
    assert.match(await refusal({ watchNamespaces: "team-a" }), /watchNamespaces/);
    assert.match(await refusal({ watchNamespaces: ["Team_A"] }), /watchNamespaces/);
    assert.match(await refusal({ resources: { requests: { memory: "lots" } } }), /memory/);
    // A values file with a typo, as a user would pass it with -f.
    const file = join(mkdtempSync(join(tmpdir(), "weir-values-")), "typo.yaml");
    writeFileSync(file, "replicaCount: 2\nleaderElection:\n  enable: true\n");
    await assert.rejects(runHelm(["template", "weir", chart, "-f", file]), /enable/);
  });
});

/** Every `weir_…` metric name that operator/ and runtime/ source mentions. */
function exportedMetricNames(): Set<string> {
  const names = new Set<string>();
  for (const dir of ["operator/src", "runtime/src"]) {
    for (const file of readdirSync(join(repoRoot, dir), { recursive: true })) {
      const path = String(file);
      if (!path.endsWith(".ts") || path.endsWith(".test.ts")) continue;
      const source = readFileSync(join(repoRoot, dir, path), "utf8");
      for (const name of source.match(/weir_[a-z_]+/g) ?? []) names.add(name);
    }
  }
  return names;
}
