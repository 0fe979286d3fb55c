// The plain manifests on the local cluster: `kubectl apply -k config/default` runs a working
// operator — its Deployment becomes Available (the kubelet probes /readyz and /healthz on the
// pod IP), it serves /metrics there and leads on its Lease — and it goes again without a trace.
//
// Rendered with kustomize as they are, then moved out of the way of other tests: the namespace
// and the cluster-wide names get a suffix, and the operator watches only an empty namespace of
// its own (watching all, it would act on other tests' jobs). The CRDs are the generated ones
// every test installs (the drift test keeps config/crd equal to crds/).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CoordinationV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { httpGet } from "../cluster/probe.ts";
import { adminKubeConfig, cli, uniqueName } from "../support/cluster.ts";
import { installCrds } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";

const repo = join(import.meta.dirname, "..", "..");
const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const suffix = uniqueName("x").slice(2);
const namespace = `weir-system-${suffix}`;
const watched = `weir-default-jobs-${suffix}`;
const manifest = join(tmpdir(), `${uniqueName("config-default")}.yaml`);

interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
  roleRef?: { kind: string; name: string };
  subjects?: { namespace?: string }[];
  spec?: { template?: { spec?: { containers?: { args?: string[] }[] } } };
}

/** config/default as kustomize renders it, made unique to this test (see the top). */
async function rendered(): Promise<Doc[]> {
  const docs = parseAllDocuments(
    await cli("kubectl", ["kustomize", join(repo, "config", "default")]),
  )
    .map((d) => d.toJS() as Doc)
    .filter((d) => d.kind !== "CustomResourceDefinition");
  const unique = (name: string) => `${name}-${suffix}`;
  for (const doc of docs) {
    if (doc.kind === "Namespace") doc.metadata.name = namespace;
    if (doc.metadata.namespace) doc.metadata.namespace = namespace;
    if (doc.kind === "ClusterRole" || doc.kind === "ClusterRoleBinding")
      doc.metadata.name = unique(doc.metadata.name);
    if (doc.roleRef?.kind === "ClusterRole") doc.roleRef.name = unique(doc.roleRef.name);
    for (const subject of doc.subjects ?? []) subject.namespace = namespace;
    for (const c of doc.spec?.template?.spec?.containers ?? [])
      c.args = [...(c.args ?? []), `--namespace=${watched}`];
  }
  return docs;
}

after(async () => {
  await cli("kubectl", [
    "delete",
    "--ignore-not-found",
    "--wait=true",
    "--timeout=120s",
    "-f",
    manifest,
  ]).catch(() => {});
  await core.deleteNamespace({ name: watched }).catch(() => {});
});

test("kubectl apply -k config/default runs an operator that passes its probes, leads and serves metrics", async () => {
  await installCrds();
  await core.createNamespace({ body: { metadata: { name: watched } } });
  const docs = await rendered();
  const deployment = docs.find((d) => d.kind === "Deployment");
  assert.ok(deployment, "config/default has the operator's Deployment");
  writeFileSync(manifest, docs.map((d) => stringify(d)).join("---\n"));
  await cli("kubectl", ["apply", "-f", manifest]);

  const started = Date.now();
  await cli("kubectl", [
    "wait",
    "--for=condition=Available",
    `deployment/${deployment.metadata.name}`,
    "-n",
    namespace,
    "--timeout=180s",
  ]);
  process.stderr.write(`[config/default e2e] apply → Available: ${Date.now() - started} ms\n`);

  const [pod] = (
    await core.listNamespacedPod({
      namespace,
      labelSelector: "app.kubernetes.io/name=weir-operator",
    })
  ).items.filter((p: V1Pod) => !p.metadata?.deletionTimestamp);
  assert.ok(pod?.status?.podIP, "the operator pod has an IP");
  assert.notEqual(pod.status.podIP, "127.0.0.1");
  const base = `http://${pod.status.podIP}:8080`;
  assert.equal((await httpGet(`${base}/healthz`)).status, 200, "/healthz on the pod IP");
  assert.equal((await httpGet(`${base}/readyz`)).status, 200, "/readyz on the pod IP");
  const metrics = (await httpGet(`${base}/metrics`)).body;
  assert.ok(/^# TYPE weir_operator_reconciles_total counter$/m.test(metrics), "its /metrics");

  const leases = kubeConfig.makeApiClient(CoordinationV1Api);
  await eventually("the operator to lead on its Lease", async () => {
    const lease = await leases
      .readNamespacedLease({ namespace, name: "weir-operator" })
      .catch(() => undefined);
    return lease?.spec?.holderIdentity === pod.metadata?.name ? lease : undefined;
  });
  const status = (await core.readNamespacedPod({ namespace, name: pod.metadata?.name ?? "" }))
    .status;
  assert.equal(status?.containerStatuses?.[0]?.restartCount, 0, "never restarted");
});
