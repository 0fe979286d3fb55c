// Which nodes are being drained: cordoned (`kubectl cordon`/`drain` set spec.unschedulable; the
// node lifecycle controller then taints it node.kubernetes.io/unschedulable, which other tools
// set directly). Job pods on such a node are moved off it through a savepoint
// (decide/operations/drain.ts) before the drain would evict them.
import type { V1Node } from "@kubernetes/client-node";

export const UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable";

export function isDraining(node: V1Node): boolean {
  return (
    node.spec?.unschedulable === true ||
    (node.spec?.taints ?? []).some(
      (t) => t.key === UNSCHEDULABLE_TAINT && t.effect === "NoSchedule",
    )
  );
}

/** How many of `nodes` are Ready and take new pods: where pods on a draining node can go. */
export function nodesToMoveTo(nodes: V1Node[]): number {
  return nodes.filter(
    (n) =>
      !isDraining(n) &&
      (n.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
  ).length;
}

/** The names of the nodes being drained among `nodes`. */
export function drainingNodes(nodes: V1Node[]): Set<string> {
  return new Set(nodes.filter(isDraining).map((n) => n.metadata?.name ?? ""));
}
