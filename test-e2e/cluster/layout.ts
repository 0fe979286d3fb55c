// Where the local cluster keeps things: built tools in the user's cache (shared by every
// checkout, survives `down`), a running cluster's files in `.cluster/` of the checkout.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dirname, "../..");

export const cacheDir =
  process.env.WEIR_CACHE_DIR ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "weir");

/** A running cluster's files; `down` deletes all but the logs. */
export const clusterDir = process.env.WEIR_CLUSTER_DIR ?? join(repoRoot, ".cluster");

export const clusterPaths = {
  env: join(clusterDir, "env"),
  state: join(clusterDir, "state.json"),
  logs: join(clusterDir, "logs"),
  pids: join(clusterDir, "pids"),
  /** Kubelets tests add for a while (test-e2e/support/nodes.ts): apart from the components'. */
  testNodePids: join(clusterDir, "pids", "test-nodes"),
  pki: join(clusterDir, "pki"),
  data: join(clusterDir, "data"),
  config: join(clusterDir, "config"),
  adminKubeconfig: join(clusterDir, "kubeconfig"),
};

export function logFile(component: string): string {
  return join(clusterPaths.logs, `${component}.log`);
}
