import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import type { StreamJob } from "../api/types.ts";
import { runSpecOf, specHash } from "../decide/run-spec.ts";
import { enforcePodSecurity } from "./pod-security.ts";
import { buildPod, type RunRef } from "./run-objects.ts";

function runWith(podTemplateSpec: Record<string, unknown>): RunRef {
  const job = {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team", uid: "0123456789ab" },
    spec: {
      image: "weir/runtime:1",
      job: { entry: "/app/runtime/examples/word-count.ts" },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      parallelism: 1,
      podTemplate: { spec: podTemplateSpec },
    },
  } as unknown as StreamJob;
  const spec = runSpecOf(job);
  return { job, id: "r1", spec, specHash: specHash(spec) };
}

/**
 * What the API server's PodSecurity admission checks of "restricted" (written from the
 * standard, not from the enforcer), plus Weir's read-only root filesystem: every violation.
 */
function restrictedViolations(pod: V1Pod): string[] {
  const spec = pod.spec;
  const out: string[] = [];
  if (!spec) return ["no spec"];
  const psc = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push("host namespaces");
  const allowedVolumes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"];
  allowedVolumes.push("persistentVolumeClaim", "projected", "secret");
  for (const volume of spec.volumes ?? []) {
    const kinds = Object.keys(volume).filter((k) => k !== "name");
    if (!kinds.every((k) => allowedVolumes.includes(k))) out.push(`volume ${volume.name}`);
  }
  if (
    (psc.sysctls ?? []).some(
      (s) => !s.name.startsWith("net.ipv4.") && s.name !== "kernel.shm_rmid_forced",
    )
  )
    out.push("sysctls");
  if (psc.runAsUser === 0) out.push("pod runAsUser 0");
  if (psc.seLinuxOptions?.user || psc.seLinuxOptions?.role) out.push("pod seLinux");
  const podSeccomp = psc.seccompProfile?.type;
  for (const c of spec.containers) {
    const sc = c.securityContext ?? {};
    const name = `container ${c.name}:`;
    if (sc.privileged) out.push(`${name} privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${name} allowPrivilegeEscalation`);
    if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) out.push(`${name} runAsNonRoot`);
    if (sc.runAsUser === 0) out.push(`${name} runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") out.push(`${name} seccomp`);
    if (!sc.capabilities?.drop?.includes("ALL")) out.push(`${name} drop ALL`);
    if ((sc.capabilities?.add ?? []).some((a) => a !== "NET_BIND_SERVICE")) out.push(`${name} add`);
    if (sc.procMount && sc.procMount !== "Default") out.push(`${name} procMount`);
    if (sc.seLinuxOptions?.user || sc.seLinuxOptions?.role) out.push(`${name} seLinux`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${name} readOnlyRootFilesystem`);
    if ((c.ports ?? []).some((p) => p.hostPort)) out.push(`${name} hostPort`);
  }
  return out;
}

const hostile = {
  securityContext: {
    runAsNonRoot: false,
    runAsUser: 0,
    seccompProfile: { type: "Unconfined" },
    seLinuxOptions: { user: "system_u", role: "system_r", type: "spc_t", level: "s0" },
    sysctls: [
      { name: "kernel.msgmax", value: "1" },
      { name: "net.ipv4.tcp_syncookies", value: "1" },
    ],
    fsGroup: 2000,
  },
  containerSecurityContext: {
    privileged: true,
    allowPrivilegeEscalation: true,
    runAsNonRoot: false,
    runAsUser: 0,
    readOnlyRootFilesystem: false,
    procMount: "Unmasked",
    capabilities: { add: ["SYS_ADMIN", "NET_BIND_SERVICE", "CHOWN"], drop: ["NET_RAW"] },
    seccompProfile: { type: "Unconfined" },
    appArmorProfile: { type: "Unconfined" },
  },
};

test("Weir's own pod meets restricted as built; enforcing changes nothing and says nothing", () => {
  const pod = buildPod(runWith({}), 0);
  assert.deepEqual(restrictedViolations(pod), []);
  const enforced = enforcePodSecurity(pod, "restricted");
  assert.deepEqual(enforced.overridden, []);
  assert.deepEqual(enforced.pod, pod);
});

test("restricted: a template asking for root and privilege gets a restricted pod, each override named", () => {
  const pod = buildPod(runWith(hostile), 0);
  assert.ok(restrictedViolations(pod).length > 10, "the template did ask for more");
  const { pod: enforced, overridden } = enforcePodSecurity(pod, "restricted");
  assert.deepEqual(restrictedViolations(enforced), []);
  const psc = enforced.spec?.securityContext;
  assert.equal(psc?.runAsUser, 65532, "not root: Weir's user");
  assert.equal(psc?.fsGroup, 2000, "what restricted allows is kept");
  assert.deepEqual(psc?.sysctls, [{ name: "net.ipv4.tcp_syncookies", value: "1" }]);
  assert.deepEqual(psc?.seLinuxOptions, { level: "s0" });
  const sc = enforced.spec?.containers[0]?.securityContext;
  assert.deepEqual(sc?.capabilities, { add: ["NET_BIND_SERVICE"], drop: ["NET_RAW", "ALL"] });
  assert.equal(sc?.appArmorProfile, undefined);
  assert.equal(sc?.procMount, undefined);
  assert.deepEqual(overridden, [
    "spec.podTemplate.spec.securityContext.seLinuxOptions" +
      ' ({"user":"system_u","role":"system_r","type":"spc_t","level":"s0"} → {"level":"s0"})',
    'spec.podTemplate.spec.securityContext.seccompProfile ({"type":"Unconfined"} → {"type":"RuntimeDefault"})',
    "spec.podTemplate.spec.securityContext.runAsUser (0 → 65532)",
    'spec.podTemplate.spec.securityContext.sysctls ([{"name":"kernel.msgmax","value":"1"},{"name":"net.ipv4.tcp_syncookies","value":"1"}] → [{"name":"net.ipv4.tcp_syncookies","value":"1"}])',
    "spec.podTemplate.spec.securityContext.runAsNonRoot (false → true)",
    'spec.podTemplate.spec.containerSecurityContext.appArmorProfile ({"type":"Unconfined"} → unset)',
    'spec.podTemplate.spec.containerSecurityContext.seccompProfile ({"type":"Unconfined"} → {"type":"RuntimeDefault"})',
    "spec.podTemplate.spec.containerSecurityContext.runAsUser (0 → 65532)",
    "spec.podTemplate.spec.containerSecurityContext.privileged (true → false)",
    'spec.podTemplate.spec.containerSecurityContext.procMount ("Unmasked" → unset)',
    'spec.podTemplate.spec.containerSecurityContext.capabilities ({"add":["SYS_ADMIN","NET_BIND_SERVICE","CHOWN"],"drop":["NET_RAW"]} → {"add":["NET_BIND_SERVICE"],"drop":["NET_RAW","ALL"]})',
    "spec.podTemplate.spec.containerSecurityContext.allowPrivilegeEscalation (true → false)",
    "spec.podTemplate.spec.containerSecurityContext.runAsNonRoot (false → true)",
    "spec.podTemplate.spec.containerSecurityContext.readOnlyRootFilesystem (false → true)",
  ]);
  assert.equal(
    pod.spec?.containers[0]?.securityContext?.privileged,
    true,
    "the input is not changed",
  );
});

test("baseline: root, escalation and the default capabilities stay; privilege and host access go", () => {
  const { pod, overridden } = enforcePodSecurity(buildPod(runWith(hostile), 0), "baseline");
  const psc = pod.spec?.securityContext;
  assert.equal(psc?.runAsUser, 0);
  assert.equal(psc?.runAsNonRoot, false);
  const sc = pod.spec?.containers[0]?.securityContext;
  assert.equal(sc?.privileged, false);
  assert.equal(sc?.allowPrivilegeEscalation, true);
  assert.equal(sc?.readOnlyRootFilesystem, false);
  assert.deepEqual(sc?.capabilities, { add: ["NET_BIND_SERVICE", "CHOWN"], drop: ["NET_RAW"] });
  assert.deepEqual(sc?.seccompProfile, { type: "RuntimeDefault" });
  assert.equal(overridden.length, 8);
  assert.ok(overridden.every((o) => !/runAsUser|runAsNonRoot|allowPrivilegeEscalation/.test(o)));
});

test("privileged: the template as it is", () => {
  const pod = buildPod(runWith(hostile), 0);
  assert.deepEqual(enforcePodSecurity(pod, "privileged"), { pod, overridden: [] });
});
