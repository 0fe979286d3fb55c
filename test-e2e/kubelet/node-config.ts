// What a process kubelet's Node is configured with beyond its name: its pod range and the
// taints it registers with (set by the local cluster, components.ts `kubeletLaunch`).
import type { V1Taint } from "@kubernetes/client-node";

/** "127.12.0.0/16" → "127.12": each node's pods get addresses of their own on loopback. */
export function podIpPrefixOf(cidr: string): string {
  const match = /^127\.(\d{1,3})\.0\.0\/16$/.exec(cidr);
  if (!match || Number(match[1]) > 255) {
    throw new Error(`WEIR_POD_CIDR: ${cidr} is not a /16 of 127.0.0.0/8`);
  }
  return `127.${match[1]}`;
}

/** `key[=value]:Effect,…`, as the kubelet's --register-with-taints. */
export function parseTaints(list: string): V1Taint[] {
  return list
    .split(",")
    .filter(Boolean)
    .map((taint) => {
      const match = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(taint);
      if (!match) throw new Error(`WEIR_NODE_TAINTS: ${taint} is not key[=value]:Effect`);
      const [, key = "", value, effect = ""] = match;
      return { key, ...(value ? { value } : {}), effect };
    });
}
