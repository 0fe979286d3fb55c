// What a job pod may ask for, whatever its podTemplate says: the Kubernetes Pod Security
// Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/) at the level
// the operator was started with (`--pod-security`, the chart's `jobPodSecurity`). The template
// can reach a pod's security only through `securityContext` and `containerSecurityContext`
// (volumes, host namespaces and ports are the builder's alone), so those are what is enforced:
// a field beyond the level is replaced by what the level allows, and said so.
import type { V1Pod, V1PodSecurityContext, V1SecurityContext } from "@kubernetes/client-node";

export const POD_SECURITY_LEVELS = ["restricted", "baseline", "privileged"] as const;
export type PodSecurityLevel = (typeof POD_SECURITY_LEVELS)[number];

/** The user Weir's pods run as when the template asks for root. */
const WEIR_USER = 65532;
/** What baseline lets a container add (the container runtime's default set). */
const BASELINE_CAPABILITIES = new Set([
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "MKNOD",
  "NET_BIND_SERVICE",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_CHROOT",
]);
const RESTRICTED_CAPABILITIES = new Set(["NET_BIND_SERVICE"]);
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);
const SELINUX_TYPES = new Set([
  "",
  "container_t",
  "container_init_t",
  "container_kvm_t",
  "container_engine_t",
]);

/** The pod as it may run, and each field that had to change (as the StreamJob names it). */
export interface EnforcedPod {
  pod: V1Pod;
  overridden: string[];
}

type Fields = Record<string, unknown>;
/** Sets `field` of `context` (undefined removes it), noting what it was. */
type Setter = (field: string, value: unknown) => void;

function setter(context: Fields, prefix: string, overridden: string[]): Setter {
  return (field, value) => {
    const show = (v: unknown) => (v === undefined ? "unset" : JSON.stringify(v));
    overridden.push(`${prefix}.${field} (${show(context[field])} → ${show(value)})`);
    if (value === undefined) delete context[field];
    else context[field] = value;
  };
}

/** The rules pod and container contexts both answer to. */
function enforceCommon(
  context: V1PodSecurityContext | V1SecurityContext,
  set: Setter,
  level: PodSecurityLevel,
): void {
  if (context.windowsOptions?.hostProcess)
    set("windowsOptions", { ...context.windowsOptions, hostProcess: false });
  if (context.appArmorProfile?.type === "Unconfined") set("appArmorProfile", undefined);
  const se = context.seLinuxOptions;
  if (se && (se.user || se.role || !SELINUX_TYPES.has(se.type ?? ""))) {
    const { user: _user, role: _role, type, ...rest } = se;
    set("seLinuxOptions", { ...rest, ...(type && SELINUX_TYPES.has(type) ? { type } : {}) });
  }
  if (context.seccompProfile?.type === "Unconfined")
    set("seccompProfile", { type: "RuntimeDefault" });
  if (level === "restricted" && context.runAsUser === 0) set("runAsUser", WEIR_USER);
}

function enforcePodContext(
  context: V1PodSecurityContext,
  set: Setter,
  level: PodSecurityLevel,
): void {
  enforceCommon(context, set, level);
  const sysctls = context.sysctls ?? [];
  const safe = sysctls.filter((s) => SAFE_SYSCTLS.has(s.name));
  if (safe.length < sysctls.length) set("sysctls", safe.length > 0 ? safe : undefined);
  if (level !== "restricted") return;
  if (context.runAsNonRoot !== true) set("runAsNonRoot", true);
  // Unset leaves the container runtime's choice, which may be unconfined.
  if (!context.seccompProfile?.type) set("seccompProfile", { type: "RuntimeDefault" });
}

function enforceContainerContext(
  context: V1SecurityContext,
  set: Setter,
  level: PodSecurityLevel,
): void {
  enforceCommon(context, set, level);
  if (context.privileged) set("privileged", false);
  if (context.procMount && context.procMount !== "Default") set("procMount", undefined);
  const allowed = level === "restricted" ? RESTRICTED_CAPABILITIES : BASELINE_CAPABILITIES;
  const add = context.capabilities?.add ?? [];
  const kept = add.filter((c) => allowed.has(c));
  const drop = context.capabilities?.drop ?? [];
  const dropAll = level === "restricted" && !drop.includes("ALL");
  if (kept.length < add.length || dropAll)
    set("capabilities", {
      ...(kept.length > 0 ? { add: kept } : {}),
      ...(dropAll ? { drop: [...drop, "ALL"] } : drop.length > 0 ? { drop } : {}),
    });
  if (level !== "restricted") return;
  if (context.allowPrivilegeEscalation !== false) set("allowPrivilegeEscalation", false);
  if (context.runAsNonRoot === false) set("runAsNonRoot", true);
  // Beyond the standard: nothing a job runs needs to write outside /tmp.
  if (context.readOnlyRootFilesystem !== true) set("readOnlyRootFilesystem", true);
}

/** The pod as the level allows it (a copy; "privileged" leaves it as the template made it). */
export function enforcePodSecurity(pod: V1Pod, level: PodSecurityLevel): EnforcedPod {
  const overridden: string[] = [];
  if (level === "privileged" || !pod.spec) return { pod, overridden };
  const enforced = structuredClone(pod);
  const spec = enforced.spec as NonNullable<V1Pod["spec"]>;
  spec.securityContext ??= {};
  enforcePodContext(
    spec.securityContext,
    setter(spec.securityContext as Fields, "spec.podTemplate.spec.securityContext", overridden),
    level,
  );
  for (const container of spec.containers) {
    container.securityContext ??= {};
    enforceContainerContext(
      container.securityContext,
      setter(
        container.securityContext as Fields,
        "spec.podTemplate.spec.containerSecurityContext",
        overridden,
      ),
      level,
    );
  }
  return { pod: enforced, overridden };
}
