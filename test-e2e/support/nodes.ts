// Extra nodes for a test: process kubelets started next to the running cluster's (whatever its
// `up --nodes`), each with a Node of its own, and removed again. They register with a taint, so
// other tests' pods never land on a node that is about to vanish; the test's own pods tolerate
// it (EXTRA_NODE_TOLERATION).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { statusCodeOf } from "../../operator/src/machinery/api.ts";
import { nodeCount } from "../cluster/cluster.ts";
import {
  kubeletLaunch,
  MAX_NODES,
  type NodeLayout,
  nodeLayout,
  nodeReady,
  portFree,
  prepareNodeIdentity,
} from "../cluster/components.ts";
import { clusterPaths, logFile } from "../cluster/layout.ts";
import { Pki } from "../cluster/pki.ts";
import {
  isRunning,
  type ProcessRecord,
  readRecords,
  startProcess,
  stopProcess,
} from "../cluster/processes.ts";
import { adminKubeConfig } from "./cluster.ts";
import { eventually } from "./wait.ts";

export const EXTRA_NODE_TAINT = { key: "weir.dev/test-node", value: "true", effect: "NoSchedule" };
export const EXTRA_NODE_TOLERATION = { ...EXTRA_NODE_TAINT, operator: "Equal" };

export interface ExtraNodes {
  names: string[];
  /** Stops their kubelets (their pods with them) and deletes their Nodes. */
  remove(): Promise<void>;
}

/** Starts `count` process kubelets on free node numbers; resolves once every Node is Ready. */
export async function addNodes(count: number): Promise<ExtraNodes> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const pki = new Pki(clusterPaths.pki);
  const taint = `${EXTRA_NODE_TAINT.key}=${EXTRA_NODE_TAINT.value}:${EXTRA_NODE_TAINT.effect}`;
  const nodes: NodeLayout[] = [];
  const records: ProcessRecord[] = [];
  const remove = async () => {
    for (const record of records) {
      if (await stopProcess(record)) rmSync(join(clusterPaths.testNodePids, `${record.name}.json`));
    }
    for (const node of nodes) await core.deleteNode({ name: node.name }).catch(() => {});
  };
  try {
    for (let index = nodeCount() + 1; nodes.length < count; index++) {
      if (index > MAX_NODES) throw new Error(`no free node number for ${count} more nodes`);
      const node = nodeLayout(index, [taint]);
      if (!(await free(node, core))) continue;
      nodes.push(node);
      await prepareNodeIdentity(node, pki);
      const launch = kubeletLaunch(node, pki);
      records.push(
        startProcess({
          name: node.identity,
          command: launch.command,
          args: launch.args,
          env: launch.env,
          logFile: logFile(node.identity),
          // `cluster down` stops one a crashed test left.
          pidDir: clusterPaths.testNodePids,
        }),
      );
    }
    await Promise.all(
      nodes.map((node, i) =>
        eventually(`node ${node.name} to be Ready`, async () => {
          const record = records[i];
          if (record && !isRunning(record))
            throw new Error(`the kubelet of ${node.name} exited; see ${logFile(node.identity)}`);
          return (await nodeReady(node.name)) ? true : undefined;
        }),
      ),
    );
  } catch (error) {
    await remove();
    throw error;
  }
  return { names: nodes.map((n) => n.name), remove };
}

/** No kubelet of that number runs, no Node of its name exists, and its port is free. */
async function free(node: NodeLayout, core: CoreV1Api): Promise<boolean> {
  const running = [clusterPaths.pids, clusterPaths.testNodePids].some((dir) =>
    readRecords(dir).some((r) => r.name === node.identity && isRunning(r)),
  );
  if (running || !(await portFree(node.port))) return false;
  try {
    await core.readNode({ name: node.name });
    return false;
  } catch (error) {
    if (statusCodeOf(error) === 404) return true;
    throw error;
  }
}
