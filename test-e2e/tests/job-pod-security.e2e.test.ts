// Least privilege for job pods (issue 14): in a namespace that enforces Pod Security
// "restricted", a StreamJob whose pod template asks for root and privilege gets pods the API
// server admits, that run, and that are restricted (the operator overrides the template and
// says so in a Warning Event); the pods' control API refuses anyone without the job's token
// (401, logged without it), while the operator's own savepoints and upgrades go through; the
// token is in no ConfigMap, status, Event, pod spec or log; the chart's NetworkPolicy is in
// the job namespace (the local cluster has no network plugin enforcing it: the rendered object
// is what is checked).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CustomObjectsApi, type V1Pod } from "@kubernetes/client-node";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { adminKubeConfig, cli } from "../support/cluster.ts";
import { deleteTopicsOf } from "../support/kafka.ts";
import {
  isReady,
  jobReady,
  nextRunRunning,
  OperatorTestbed,
  patchJobSpec,
  readJob,
} from "../support/operator.ts";
import { eventually } from "../support/wait.ts";

const bed = new OperatorTestbed("least-privilege");
const { namespace, core } = bed;
const custom = adminKubeConfig().makeApiClient(CustomObjectsApi);
const name = "hostile";
const CONTROL_PORT = 9249;

/** What the template asks for: root, privilege, every escape the standards name. */
const podTemplate = {
  spec: {
    securityContext: {
      runAsNonRoot: false,
      runAsUser: 0,
      seccompProfile: { type: "Unconfined" },
    },
    containerSecurityContext: {
      privileged: true,
      allowPrivilegeEscalation: true,
      runAsUser: 0,
      readOnlyRootFilesystem: false,
      capabilities: { add: ["SYS_ADMIN", "NET_ADMIN"] },
    },
  },
};

before(async () => {
  await bed.setUp();
  await cli("kubectl", [
    "label",
    "namespace",
    namespace,
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
  ]);
});
after(async () => {
  await deleteTopicsOf(bed.admin, [namespace]).catch(() => {});
  await bed.tearDown();
});

async function runningPods(): Promise<V1Pod[]> {
  return (await bed.podsOf(name)).filter((p) => !p.metadata?.deletionTimestamp && isReady(p));
}

/** The job's control-token Secret, found as a user would: by its labels. */
async function tokenSecret() {
  const list = await core.listNamespacedSecret({
    namespace,
    labelSelector: `weir.dev/job=${name},app.kubernetes.io/component=control-token`,
  });
  return list.items;
}

async function control(ip: string, path: string, init: RequestInit = {}) {
  const response = await fetch(`http://${ip}:${CONTROL_PORT}${path}`, {
    ...init,
    signal: AbortSignal.timeout(5_000),
  });
  return { status: response.status, text: await response.text() };
}

describe("job pods with least privilege", { concurrency: false }, () => {
  let token = "";
  let ip = "";

  test("a template asking for root and privilege: admitted under enforce=restricted, running, restricted", async () => {
    const job = await bed.wordCountJob(name, { parallelism: 1, podTemplate }, { partitions: 1 });
    await bed.apply(job.manifest);
    await jobReady(namespace, name, 180_000);
    const [pod] = await runningPods();
    assert.ok(pod, "a Ready pod");
    ip = pod.status?.podIP ?? "";
    const spec = pod.spec;
    const psc = spec?.securityContext;
    const sc = spec?.containers[0]?.securityContext;
    assert.equal(psc?.runAsNonRoot, true);
    assert.equal(psc?.runAsUser, 65532);
    assert.equal(psc?.seccompProfile?.type, "RuntimeDefault");
    assert.equal(sc?.privileged, false);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.equal(sc?.runAsUser, 65532);
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.deepEqual(sc?.capabilities?.drop, ["ALL"]);
    assert.equal(sc?.capabilities?.add, undefined);
    assert.ok(!spec?.hostNetwork && !spec?.hostPID && !spec?.hostIPC);
    assert.ok(spec?.volumes?.every((v) => !v.hostPath));
    const events = JSON.parse(
      await cli("kubectl", [
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        `involvedObject.name=${name},reason=PodSecurityOverridden,type=Warning`,
        "-o",
        "json",
      ]),
    ) as { items: { note?: string; message?: string }[] };
    const said = events.items.map((e) => e.message ?? e.note ?? "").join("\n");
    assert.match(said, /Pod Security "restricted"/);
    for (const field of [
      "containerSecurityContext.privileged (true → false)",
      "containerSecurityContext.allowPrivilegeEscalation (true → false)",
      "securityContext.runAsUser (0 → 65532)",
      'securityContext.seccompProfile ({"type":"Unconfined"} → {"type":"RuntimeDefault"})',
      "containerSecurityContext.readOnlyRootFilesystem (false → true)",
    ])
      assert.ok(said.includes(`spec.podTemplate.spec.${field}`), `the Event names ${field}`);
  });

  test("the job's token: a Secret the job owns, immutable, mounted read-only, not listed in the pod", async () => {
    const secrets = await tokenSecret();
    assert.equal(secrets.length, 1);
    const [secret] = secrets;
    const job = await readJob(namespace, name);
    assert.deepEqual(
      secret?.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid]),
      [["StreamJob", name, job.metadata.uid]],
    );
    assert.equal(secret?.immutable, true);
    token = Buffer.from(secret?.data?.token ?? "", "base64").toString("utf8");
    assert.ok(token.length >= 43, "256 random bits");
    const [pod] = await runningPods();
    assert.deepEqual(
      pod?.spec?.volumes?.find((v) => v.name === "control-token")?.secret?.secretName,
      secret?.metadata?.name,
    );
    assert.ok(
      pod?.spec?.containers[0]?.volumeMounts?.some(
        (m) => m.name === "control-token" && m.readOnly === true,
      ),
    );
  });

  test("the control API refuses requests without the token, or with a wrong one (401), and logs them without it", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"])
      assert.equal(
        (await control(ip, path)).status,
        200,
        `${path} stays open (probes, Prometheus)`,
      );
    const anonymous = await control(ip, "/v1/status");
    assert.equal(anonymous.status, 401);
    assert.equal(
      (await control(ip, "/v1/status", { headers: { authorization: "Bearer not-the-token" } }))
        .status,
      401,
    );
    const stop = { method: "POST", body: JSON.stringify({ id: "intruder", stop: true }) };
    assert.equal((await control(ip, "/v1/savepoints", stop)).status, 401, "no stop for strangers");
    const withToken = await control(ip, "/v1/status", {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(withToken.status, 200);
    assert.ok(Array.isArray(JSON.parse(withToken.text).tasks));
    // The stranger's stop never happened.
    const [pod] = await runningPods();
    assert.ok(pod, "the pod is still Ready");
    const log = await eventually("the refusals in the pod's log", async () => {
      const text = await cli("kubectl", ["logs", pod?.metadata?.name ?? "", "-n", namespace]);
      return (text.match(/control API request refused/g) ?? []).length >= 3 ? text : undefined;
    });
    const refusals = log
      .split("\n")
      .filter((line) => line.includes("control API request refused"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      refusals.slice(0, 3).map((r) => [r.method, r.path, r.reason]),
      [
        ["GET", "/v1/status", "no bearer token"],
        ["GET", "/v1/status", "wrong token"],
        ["POST", "/v1/savepoints", "no bearer token"],
      ],
    );
    assert.ok(!log.includes(token), "the token is in no log line");
    assert.ok(!log.includes("not-the-token"), "nor what a stranger presented");
  });

  test("the operator's own calls carry it: a requested savepoint, then an upgrade through one", async () => {
    await bed.apply({
      apiVersion: "weir.dev/v1alpha1",
      kind: "StreamSavepoint",
      metadata: { name: "on-request", namespace },
      spec: { jobName: name },
    });
    await eventually(
      "the requested savepoint to complete",
      async () => {
        const ssp = (await custom.getNamespacedCustomObject({
          group: "weir.dev",
          version: "v1alpha1",
          plural: "streamsavepoints",
          namespace,
          name: "on-request",
        })) as { status?: { state?: string } };
        return ssp.status?.state === "Completed" ? true : undefined;
      },
      120_000,
    );
    const before = await readJob(namespace, name);
    const job = before.spec.job;
    await patchJobSpec(namespace, name, { job: { ...job, args: ["--upgraded"] } });
    const after = await nextRunRunning(namespace, name, before.status?.run?.id, 180_000);
    assert.equal(after.status?.lastSavepoint?.trigger, "upgrade");
    assert.equal(after.status?.run?.restoredFrom, after.status?.lastSavepoint?.path);
    assert.equal((await tokenSecret()).length, 1, "the next run uses the same Secret");
  });

  test("the token is in no ConfigMap, status, Event, pod spec or operator log", async () => {
    const everything = await Promise.all([
      cli("kubectl", ["get", "configmaps", "-n", namespace, "-o", "json"]),
      cli("kubectl", ["get", "sj,ssp", "-n", namespace, "-o", "json"]),
      cli("kubectl", ["get", "events", "-n", namespace, "-o", "json"]),
      cli("kubectl", ["get", "pods", "-n", namespace, "-o", "json"]),
      bed.operator?.logs().then((lines) => JSON.stringify(lines)) ?? "",
    ]);
    for (const [i, text] of everything.entries())
      assert.ok(
        !text.includes(token),
        `the token appears in ${["ConfigMaps", "StreamJob/StreamSavepoint", "Events", "pods", "the operator's log"][i]}`,
      );
    const status = JSON.stringify((await readJob(namespace, name)) as StreamJob);
    assert.ok(!status.includes(token));
  });

  test("the operator may create and read Secrets by name, never list, change or delete them", async () => {
    const can = async (verb: string) =>
      (
        await cli("kubectl", [
          "auth",
          "can-i",
          verb,
          "secrets",
          "-n",
          namespace,
          `--as=${bed.account}`,
        ]).catch((error: { stdout?: string }) => error.stdout ?? "")
      ).trim();
    for (const verb of ["get", "create"]) assert.equal(await can(verb), "yes", verb);
    for (const verb of ["list", "watch", "update", "patch", "delete"])
      assert.equal(await can(verb), "no", verb);
  });

  test("the chart's NetworkPolicy admits the operator's pods to the job pods' control port", async (t) => {
    if (process.env.WEIR_E2E_OPERATOR === "process") return t.skip("no chart release");
    const policies = JSON.parse(
      await cli("kubectl", ["get", "networkpolicies", "-n", namespace, "-o", "json"]),
    ) as { items: { spec: Record<string, unknown> }[] };
    assert.equal(policies.items.length, 1);
    const spec = policies.items[0]?.spec as {
      podSelector: unknown;
      ingress: {
        from: { podSelector?: { matchLabels: Record<string, string> } }[];
        ports: unknown;
      }[];
    };
    assert.deepEqual(spec.podSelector, {
      matchExpressions: [{ key: "weir.dev/job", operator: "Exists" }],
    });
    const operatorPod = await core.readNamespacedPod({
      namespace: bed.leaseNamespace,
      name: bed.operator?.identity ?? "",
    });
    const selector = spec.ingress[0]?.from[0]?.podSelector?.matchLabels ?? {};
    assert.ok(Object.keys(selector).length > 0);
    for (const [key, value] of Object.entries(selector))
      assert.equal(operatorPod.metadata?.labels?.[key], value, `the operator's pod has ${key}`);
    assert.deepEqual(spec.ingress[0]?.ports, [{ port: CONTROL_PORT, protocol: "TCP" }]);
  });

  test("deleting the job deletes its token Secret (owner reference)", async () => {
    await cli("kubectl", ["delete", "sj", name, "-n", namespace, "--timeout=90s"]);
    await eventually(
      "the token Secret to be garbage-collected",
      async () => ((await tokenSecret()).length === 0 ? true : undefined),
      60_000,
    );
  });
});
