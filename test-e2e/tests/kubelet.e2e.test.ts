// The process kubelet behaves like a kubelet wherever kubectl, a controller or a test can see
// the difference: pods run, get their own IPs, env and volumes, probes, restarts, graceful
// deletion and logs.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1Container,
  type V1Pod,
} from "@kubernetes/client-node";
import { httpGet } from "../cluster/probe.ts";
import { adminKubeConfig, cli, uniqueName } from "../support/cluster.ts";
import { eventually } from "../support/wait.ts";

const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const apps = kubeConfig.makeApiClient(AppsV1Api);
const batch = kubeConfig.makeApiClient(BatchV1Api);
const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
const namespace = uniqueName("kubelet");
const scratch = mkdtempSync(join(tmpdir(), "weir-kubelet-test-"));

/** A busybox container running a shell script. */
function shell(name: string, script: string, extra: Partial<V1Container> = {}): V1Container {
  return { name, image: "busybox:1.36", command: ["sh", "-c", script], ...extra };
}

/** A container answering HTTP with its pod's name on POD_IP:8080. */
const webServer: V1Container = {
  name: "web",
  image: "busybox:1.36",
  command: [
    "node",
    "-e",
    "require('http').createServer((q, s) => s.end(process.env.POD_NAME)).listen(8080, process.env.POD_IP)",
  ],
  env: [
    { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
  ],
  ports: [{ name: "http", containerPort: 8080 }],
  readinessProbe: { httpGet: { path: "/", port: "http" }, periodSeconds: 1 },
};

async function createPod(name: string, spec: V1Pod["spec"]): Promise<void> {
  await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec } });
}

function readPod(name: string): Promise<V1Pod> {
  return core.readNamespacedPod({ name, namespace });
}

/** Waits until the pod satisfies `check`; returns it. */
function podWhere(name: string, what: string, check: (pod: V1Pod) => boolean, timeoutMs = 60_000) {
  return eventually(
    `${name}: ${what}`,
    async () => {
      const pod = await readPod(name).catch(() => undefined);
      return pod && check(pod) ? pod : undefined;
    },
    timeoutMs,
  );
}

const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

async function podsReady(labelSelector: string, count: number): Promise<V1Pod[]> {
  return eventually(`${count} ready pods (${labelSelector})`, async () => {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector })).items;
    const ready = pods.filter((p) => isReady(p) && !p.metadata?.deletionTimestamp);
    return ready.length === count ? ready : undefined;
  });
}

function logs(pod: string, ...flags: string[]): Promise<string> {
  return cli("kubectl", ["logs", "-n", namespace, pod, ...flags]);
}

describe("process kubelet", () => {
  before(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await eventually("the default service account", () =>
      core.readNamespacedServiceAccount({ name: "default", namespace }).catch(() => undefined),
    );
  });

  after(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => {});
    rmSync(scratch, { recursive: true, force: true });
  });

  test("the node is Ready with the machine's capacity", async () => {
    const nodes = (await core.listNode()).items;
    assert.equal(nodes.length, 1);
    const node = nodes[0];
    assert.equal(node?.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.ok(Number(node?.status?.capacity?.cpu) >= 1);
    assert.match(node?.status?.capacity?.memory ?? "", /^\d+Ki$/);
  });

  test("a Deployment of 3 becomes 3 Ready pods, each serving on its own IP and the same port", async () => {
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: "web" } },
          template: { metadata: { labels: { app: "web" } }, spec: { containers: [webServer] } },
        },
      },
    });
    const pods = await podsReady("app=web", 3);
    const ips = pods.map((p) => p.status?.podIP ?? "");
    assert.equal(new Set(ips).size, 3, `distinct pod IPs: ${ips}`);
    for (const pod of pods) {
      assert.match(pod.status?.podIP ?? "", /^127\.\d+\.\d+\.\d+$/);
      const answer = await httpGet(`http://${pod.status?.podIP}:8080/`);
      assert.equal(answer.body, pod.metadata?.name);
    }
    const deployment = await eventually("the Deployment to report 3 available", async () => {
      const d = await apps.readNamespacedDeployment({ name: "web", namespace });
      return d.status?.availableReplicas === 3 ? d : undefined;
    });
    assert.equal(deployment.status?.readyReplicas, 3);
  });

  test("ConfigMap and Secret values appear as env and as files", async () => {
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: "settings" }, data: { MODE: "fast", "app.conf": "threads=4\n" } },
    });
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: "creds" }, stringData: { password: "s3cr3t" } },
    });
    await createPod("inputs", {
      restartPolicy: "Never",
      containers: [
        shell(
          "main",
          'echo "mode=$MODE password=$PASSWORD greeting=$GREETING"; cat /etc/settings/app.conf; cat /etc/creds/password; echo; ls /var/run/secrets/kubernetes.io/serviceaccount',
          {
            env: [
              { name: "NAME", value: "weir" },
              { name: "GREETING", value: "hello $(NAME)" },
              { name: "PASSWORD", valueFrom: { secretKeyRef: { name: "creds", key: "password" } } },
              {
                name: "ABSENT",
                valueFrom: { configMapKeyRef: { name: "nope", key: "x", optional: true } },
              },
            ],
            envFrom: [{ configMapRef: { name: "settings" }, prefix: "" }],
            volumeMounts: [
              { name: "settings", mountPath: "/etc/settings", readOnly: true },
              { name: "creds", mountPath: "/etc/creds", readOnly: true },
            ],
          },
        ),
      ],
      volumes: [
        { name: "settings", configMap: { name: "settings" } },
        { name: "creds", secret: { secretName: "creds" } },
      ],
    });
    await podWhere("inputs", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const output = await logs("inputs");
    assert.match(output, /^mode=fast password=s3cr3t greeting=hello weir$/m);
    assert.match(output, /^threads=4$/m);
    assert.match(output, /^s3cr3t$/m);
    assert.match(output, /ca\.crt\nnamespace\ntoken/);
  });

  test("a pod's service account gets what its Role allows and is denied the rest", async () => {
    await core.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: "reader" } },
    });
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: "configmap-reader" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["list"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "reader" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "configmap-reader" },
        subjects: [{ kind: "ServiceAccount", name: "reader", namespace }],
      },
    });
    const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    const request = (resource: string) =>
      `curl -s -o /dev/null -w "${resource}=%{http_code}\\n" --cacert ${sa}/ca.crt -H "Authorization: Bearer $(cat ${sa}/token)" "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat ${sa}/namespace)/${resource}"`;
    await createPod("in-cluster-client", {
      serviceAccountName: "reader",
      restartPolicy: "Never",
      containers: [shell("main", `${request("configmaps")}; ${request("secrets")}`)],
    });
    await podWhere("in-cluster-client", "Succeeded", (p) => p.status?.phase === "Succeeded");
    const output = await logs("in-cluster-client");
    assert.match(output, /^configmaps=200$/m);
    assert.match(output, /^secrets=403$/m);
  });

  test("kill -9 of a container's process restarts it and the pod is Ready again", async () => {
    await createPod("crashy", {
      containers: [
        { ...webServer, readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } },
      ],
    });
    const first = await podWhere("crashy", "Ready", isReady);
    const containerID = first.status?.containerStatuses?.[0]?.containerID ?? "";
    const pid = Number(containerID.replace("weir://", ""));
    assert.ok(pid > 0, `container id ${containerID} names a process`);
    process.kill(pid, "SIGKILL");
    const restarted = await podWhere(
      "crashy",
      "restarted and Ready",
      (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 && isReady(p),
    );
    const status = restarted.status?.containerStatuses?.[0];
    assert.equal(status?.lastState?.terminated?.exitCode, 137);
    assert.notEqual(status?.containerID, containerID);
    const answer = await httpGet(`http://${restarted.status?.podIP}:8080/`);
    assert.equal(answer.body, "crashy");
  });

  test("a failing liveness probe (exec, inside the container) restarts the container", async () => {
    await createPod("unhealthy", {
      containers: [
        shell(
          "main",
          'echo "run $(date +%s%N)"; touch /state/healthy; sleep 2; rm /state/healthy; sleep 300',
          {
            volumeMounts: [{ name: "state", mountPath: "/state" }],
            livenessProbe: {
              exec: { command: ["test", "-f", "/state/healthy"] },
              periodSeconds: 1,
              failureThreshold: 2,
            },
          },
        ),
      ],
      terminationGracePeriodSeconds: 1,
      volumes: [{ name: "state", emptyDir: {} }],
    });
    const pod = await podWhere(
      "unhealthy",
      "restarted by its liveness probe",
      (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
    );
    assert.ok(
      pod.status?.containerStatuses?.[0]?.lastState?.terminated,
      "the previous run terminated",
    );
    assert.match(await logs("unhealthy", "--previous"), /^run \d+$/m);
    const events = await eventually("the Unhealthy event", async () => {
      const list = await core.listNamespacedEvent({
        namespace,
        fieldSelector: "involvedObject.name=unhealthy",
      });
      return list.items.some((e) => e.reason === "Unhealthy") ? list.items : undefined;
    });
    assert.ok(events.some((e) => e.reason === "Killing" && e.source?.component === "kubelet"));
  });

  test("init containers run in order, to completion, before the app container", async () => {
    const volumeMounts = [{ name: "work", mountPath: "/work" }];
    await createPod("initialized", {
      restartPolicy: "Never",
      initContainers: [
        shell("first", "echo one > /work/steps", { volumeMounts }),
        shell("second", "echo two >> /work/steps", { volumeMounts }),
      ],
      containers: [shell("main", "cat /work/steps", { volumeMounts })],
      volumes: [{ name: "work", emptyDir: {} }],
    });
    const pod = await podWhere("initialized", "Succeeded", (p) => p.status?.phase === "Succeeded");
    assert.deepEqual(
      pod.status?.initContainerStatuses?.map((s) => [s.name, s.state?.terminated?.exitCode]),
      [
        ["first", 0],
        ["second", 0],
      ],
    );
    assert.equal(pod.status?.conditions?.find((c) => c.type === "Initialized")?.status, "True");
    assert.equal(await logs("initialized"), "one\ntwo\n");
  });

  test("a failing init container under restartPolicy Never fails the pod", async () => {
    await createPod("init-fails", {
      restartPolicy: "Never",
      initContainers: [shell("setup", "exit 3")],
      containers: [shell("main", "echo should not run")],
    });
    const pod = await podWhere("init-fails", "Failed", (p) => p.status?.phase === "Failed");
    assert.equal(pod.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode, 3);
    assert.equal(pod.status?.containerStatuses?.[0]?.state?.waiting?.reason, "PodInitializing");
  });

  test("a container that keeps failing goes into CrashLoopBackOff", async () => {
    await createPod("crashloop", { containers: [shell("main", "echo failing; exit 1")] });
    const pod = await podWhere(
      "crashloop",
      "CrashLoopBackOff",
      (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === "CrashLoopBackOff",
    );
    const status = pod.status?.containerStatuses?.[0];
    assert.ok((status?.restartCount ?? 0) >= 1);
    assert.equal(status?.lastState?.terminated?.exitCode, 1);
    assert.match(
      status?.state?.waiting?.message ?? "",
      /back-off 10s restarting failed container=main/,
    );
    assert.equal(pod.status?.phase, "Running");
  });

  test("a startup probe holds back readiness until it succeeds", async () => {
    await createPod("slow-start", {
      containers: [
        shell("main", "sleep 2; touch /state/started; sleep 300", {
          volumeMounts: [{ name: "state", mountPath: "/state" }],
          startupProbe: {
            exec: { command: ["test", "-f", "/state/started"] },
            periodSeconds: 1,
            failureThreshold: 30,
          },
        }),
      ],
      terminationGracePeriodSeconds: 1,
      volumes: [{ name: "state", emptyDir: {} }],
    });
    const starting = await podWhere("slow-start", "running", (p) =>
      Boolean(p.status?.containerStatuses?.[0]?.state?.running),
    );
    assert.equal(starting.status?.containerStatuses?.[0]?.started, false);
    assert.equal(isReady(starting), false);
    const started = await podWhere("slow-start", "Ready", isReady);
    assert.equal(started.status?.containerStatuses?.[0]?.started, true);
    assert.equal(started.status?.containerStatuses?.[0]?.restartCount, 0);
  });

  test("deleting a pod delivers SIGTERM, waits for the process, and removes the object", async () => {
    const record = join(scratch, "sigterm");
    await createPod("graceful", {
      terminationGracePeriodSeconds: 30,
      containers: [
        shell(
          "main",
          `trap 'echo "SIGTERM" > ${record}; exit 0' TERM; while :; do sleep 0.1; done`,
        ),
      ],
    });
    await podWhere("graceful", "Ready", isReady);
    const started = Date.now();
    await core.deleteNamespacedPod({ name: "graceful", namespace });
    const gone = await eventually("the pod object to disappear", () =>
      readPod("graceful").then(
        () => undefined,
        (error: unknown) => (error instanceof ApiException ? error.code : undefined),
      ),
    );
    assert.equal(gone, 404);
    assert.equal(readFileSync(record, "utf8").trim(), "SIGTERM");
    assert.ok(
      Date.now() - started < 20_000,
      "it went when the process exited, not after the grace period",
    );
  });

  test("a StatefulSet's pods get ordinal names", async () => {
    await apps.createNamespacedStatefulSet({
      namespace,
      body: {
        metadata: { name: "db" },
        spec: {
          serviceName: "db",
          replicas: 2,
          selector: { matchLabels: { app: "db" } },
          template: {
            metadata: { labels: { app: "db" } },
            spec: { containers: [shell("main", "sleep 300")], terminationGracePeriodSeconds: 1 },
          },
        },
      },
    });
    const pods = await podsReady("app=db", 2);
    assert.deepEqual(pods.map((p) => p.metadata?.name).sort(), ["db-0", "db-1"]);
  });

  test("an image that is not in the catalog fails to pull", async () => {
    await createPod("no-such-image", {
      containers: [{ name: "main", image: "example.com/nothing:1.0" }],
    });
    const pod = await podWhere("no-such-image", "ErrImagePull", (p) =>
      ["ErrImagePull", "ImagePullBackOff"].includes(
        p.status?.containerStatuses?.[0]?.state?.waiting?.reason ?? "",
      ),
    );
    assert.equal(pod.status?.phase, "Pending");
    assert.match(
      pod.status?.containerStatuses?.[0]?.state?.waiting?.message ?? "",
      /not in the process kubelet's image catalog/,
    );
  });

  test("a Job's pod ends Succeeded and the Job completes; kubectl logs prints its output", async () => {
    await batch.createNamespacedJob({
      namespace,
      body: {
        metadata: { name: "once" },
        spec: {
          backoffLimit: 0,
          template: {
            spec: { restartPolicy: "Never", containers: [shell("main", "echo computed 42")] },
          },
        },
      },
    });
    const job = await eventually("the Job to complete", async () => {
      const j = await batch.readNamespacedJob({ name: "once", namespace });
      return j.status?.succeeded === 1 ? j : undefined;
    });
    assert.ok(job.status?.completionTime);
    const [pod] = (await core.listNamespacedPod({ namespace, labelSelector: "job-name=once" }))
      .items;
    assert.equal(pod?.status?.phase, "Succeeded");
    assert.equal(pod?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
    assert.equal((await logs(pod?.metadata?.name ?? "")).trim(), "computed 42");
    assert.equal((await logs(pod?.metadata?.name ?? "", "--follow")).trim(), "computed 42");
  });
});
