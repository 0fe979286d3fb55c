// The control plane is real: it serves, stamps its version, authenticates and authorizes,
// and its controller manager and scheduler act on what is created.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  KubeConfig,
  VersionApi,
} from "@kubernetes/client-node";
import { KUBERNETES_VERSION } from "../cluster/versions.ts";
import { adminKubeConfig, cli, uniqueName } from "../support/cluster.ts";
import { eventually } from "../support/wait.ts";

const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);

function httpStatus(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

describe("control plane", () => {
  const namespace = uniqueName("cp");

  before(async () => {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async () => {
    await core.deleteNamespace({ name: namespace });
  });

  test("the API server is ready and reports the pinned version", async () => {
    assert.equal((await cli("kubectl", ["get", "--raw", "/readyz"])).trim(), "ok");
    const server = await kubeConfig.makeApiClient(VersionApi).getCode();
    assert.equal(server.gitVersion, KUBERNETES_VERSION);
    const versions = JSON.parse(await cli("kubectl", ["version", "-o", "json"]));
    assert.equal(versions.clientVersion.gitVersion, KUBERNETES_VERSION);
    assert.equal(versions.serverVersion.gitVersion, KUBERNETES_VERSION);
  });

  test("a ConfigMap round-trips through client-node", async () => {
    const data = { greeting: "hello", "config.json": JSON.stringify({ parallelism: 3 }) };
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: "round-trip" }, data },
    });
    const read = await core.readNamespacedConfigMap({ name: "round-trip", namespace });
    assert.deepEqual(read.data, data);
    assert.ok(read.metadata?.uid, "the API server assigned a uid");
  });

  test("a service-account token without permissions authenticates but is denied", async () => {
    const account = "no-permissions";
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: account } } });
    const tokenRequest = await core.createNamespacedServiceAccountToken({
      name: account,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = tokenRequest.status?.token;
    assert.ok(token, "TokenRequest returned a token");

    const cluster = kubeConfig.getCurrentCluster();
    assert.ok(cluster);
    const asAccount = new KubeConfig();
    asAccount.loadFromOptions({
      clusters: [cluster],
      users: [{ name: account, token }],
      contexts: [{ name: "sa", cluster: cluster.name, user: account }],
      currentContext: "sa",
    });

    const review = await asAccount
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: {} });
    assert.equal(
      review.status?.userInfo?.username,
      `system:serviceaccount:${namespace}:${account}`,
    );

    const denied = await asAccount
      .makeApiClient(CoreV1Api)
      .listNamespacedSecret({ namespace })
      .then(
        () => undefined,
        (error: unknown) => httpStatus(error),
      );
    assert.equal(denied, 403, "listing secrets without a Role is forbidden");
  });

  test("the controller manager gives a new namespace its default service account", async () => {
    const account = await eventually("the default service account", () =>
      core.readNamespacedServiceAccount({ name: "default", namespace }).catch(() => undefined),
    );
    assert.equal(account.metadata?.namespace, namespace);
  });

  test("the scheduler considers a pod and reports why it cannot place it", async () => {
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "unplaceable" },
        spec: {
          nodeSelector: { "weir.dev/test": "no-node-has-this" },
          containers: [{ name: "main", image: "busybox" }],
        },
      },
    });
    const condition = await eventually("the PodScheduled condition", async () => {
      const pod = await core.readNamespacedPod({ name: "unplaceable", namespace });
      return pod.status?.conditions?.find((c) => c.type === "PodScheduled");
    });
    assert.equal(condition.status, "False");
    assert.equal(condition.reason, "Unschedulable");
  });
});
