// Helm (the pinned build) installs a chart into the local cluster and removes it again.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ApiException, CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { HELM_VERSION } from "../cluster/versions.ts";
import { adminKubeConfig, cli, uniqueName } from "../support/cluster.ts";
import { eventually } from "../support/wait.ts";

const chart = join(import.meta.dirname, "..", "fixtures", "hello-chart");
const kubeConfig = adminKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);

describe("helm", () => {
  const namespace = uniqueName("helm");

  after(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => {});
  });

  test("reports the pinned version", async () => {
    assert.equal(
      (await cli("helm", ["version", "--template", "{{.Version}}"])).trim(),
      HELM_VERSION,
    );
  });

  test("install creates the chart's objects; uninstall removes them", async () => {
    await cli("helm", [
      "install",
      "hello",
      chart,
      "--namespace",
      namespace,
      "--create-namespace",
      "--set",
      "message=installed by a test",
      "--wait",
    ]);
    const configMap = await core.readNamespacedConfigMap({ name: "hello-message", namespace });
    assert.equal(configMap.data?.message, "installed by a test");
    const role = await rbac.readNamespacedRole({ name: "hello-reader", namespace });
    assert.deepEqual(role.rules?.[0]?.verbs, ["get", "list"]);
    const releases = JSON.parse(
      await cli("helm", ["list", "--namespace", namespace, "-o", "json"]),
    );
    assert.deepEqual(
      releases.map((r: { name: string; status: string }) => [r.name, r.status]),
      [["hello", "deployed"]],
    );

    await cli("helm", ["uninstall", "hello", "--namespace", namespace, "--wait"]);
    const gone = await eventually("the ConfigMap to be deleted", () =>
      core.readNamespacedConfigMap({ name: "hello-message", namespace }).then(
        () => undefined,
        (error: unknown) => (error instanceof ApiException ? error.code : undefined),
      ),
    );
    assert.equal(gone, 404);
    assert.equal(
      (await cli("helm", ["list", "--namespace", namespace, "-q"])).trim(),
      "",
      "no release is left",
    );
  });
});
