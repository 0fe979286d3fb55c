// The Weir chart on the local cluster: a release of helm/weir with the operator running as a
// pod (image weir/operator from the kubelet's catalog), for tests that want the operator as a
// user's cluster runs it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { clusterPaths } from "../cluster/layout.ts";
import { adminKubeConfig, cli, uniqueName } from "./cluster.ts";

export const CHART = join(import.meta.dirname, "..", "..", "helm", "weir");

export interface WeirRelease {
  name: string;
  namespace: string;
  /** The operator's Deployment, ServiceAccount, (Cluster)Roles and Lease. */
  operatorName: string;
  /** The operator's user name, for `kubectl auth can-i --as`. */
  account: string;
  /** `app.kubernetes.io/instance=<release>`: every object of the release carries it. */
  selector: string;
}

/** Names for a release in a namespace of its own (release names contain "weir"). */
export function weirRelease(): WeirRelease {
  const name = uniqueName("weir");
  const namespace = uniqueName("weir-op");
  const operatorName = `${name}-operator`;
  return {
    name,
    namespace,
    operatorName,
    account: `system:serviceaccount:${namespace}:${operatorName}`,
    selector: `app.kubernetes.io/instance=${name}`,
  };
}

/** The release's operator pods, terminating ones left out unless asked for. */
export async function operatorPods(
  release: WeirRelease,
  options: { terminating?: boolean } = {},
): Promise<V1Pod[]> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const list = await core.listNamespacedPod({
    namespace: release.namespace,
    labelSelector: release.selector,
  });
  return list.items.filter((p) => options.terminating || !p.metadata?.deletionTimestamp);
}

/**
 * `helm install` (or `upgrade`, with `command`) of `chart` as `release`, waiting until the
 * operator is ready. The CRDs usually exist already (other tests apply crds/ with kubectl): the
 * release takes them over, and their fields too should the cluster hold another version. When
 * Helm fails, the error says why the operator pod is not ready.
 */
export async function helmRelease(
  command: "install" | "upgrade",
  release: WeirRelease,
  args: string[],
  chart = CHART,
): Promise<string> {
  const install = ["--create-namespace", "--take-ownership"];
  try {
    return await cli("helm", [
      command,
      release.name,
      chart,
      "-n",
      release.namespace,
      ...(command === "install" ? install : []),
      // Another test may have applied newer CRDs meanwhile (kubectl --force-conflicts).
      "--force-conflicts",
      ...args,
      "--wait",
      "--timeout=3m",
    ]);
  } catch (error) {
    const waiting = (await operatorPods(release).catch(() => []))
      .map((p) => p.status?.containerStatuses?.[0]?.state?.waiting)
      .filter((w) => w !== undefined)
      .map((w) => `${w.reason}: ${w.message}`);
    // A kubelet started before weir/operator joined the catalog does not know the image.
    const hint = waiting.some((w) => w.includes("image catalog"))
      ? " (the running kubelet predates its catalog's weir/operator entry: restart the local cluster)"
      : "";
    throw new Error(
      `${error instanceof Error ? error.message : error}\n${waiting.join("\n")}${hint}`,
    );
  }
}

/** Keeps the operator pods' logs for whoever investigates a failure: .cluster/logs/chart-*. */
export async function keepOperatorLogs(release: WeirRelease): Promise<void> {
  for (const pod of await operatorPods(release)) {
    const name = pod.metadata?.name ?? "";
    const logs = await cli("kubectl", ["logs", name, "-n", release.namespace]).catch(() => "");
    writeFileSync(join(clusterPaths.logs, `chart-${name}.log`), logs);
  }
}
