// What a container gets from the API before it starts: its environment (env, envFrom,
// fieldRef, secretKeyRef, configMapKeyRef) and its volumes' files (emptyDir, configMap,
// secret, downwardAPI, projected service-account tokens). Resolved as the node's identity, so
// the Node authorizer decides what this kubelet may read, as on a real node.
import { chmodSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import {
  ApiException,
  type CoreV1Api,
  type V1Container,
  type V1DownwardAPIVolumeFile,
  type V1KeyToPath,
  type V1ObjectFieldSelector,
  type V1Pod,
  type V1ResourceFieldSelector,
  type V1ServiceAccountTokenProjection,
  type V1Volume,
} from "@kubernetes/client-node";
import { expandVars } from "./pod-spec.ts";

export class MissingInput extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

function notFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

export interface PodInputs {
  api: CoreV1Api;
  apiServerHost: string;
  apiServerPort: number;
  hostIP: string;
}

/** `key="value"` lines, sorted, as the downward API writes labels and annotations. */
export function formatMap(map: Record<string, string> | undefined): string {
  return Object.entries(map ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join("\n");
}

/** What this node offers (main.ts reports the same capacity and allocatable on its Node). */
function nodeAllocatable(): { cpu: number; memory: number } {
  return { cpu: cpus().length, memory: totalmem() };
}

/** The value of a downward-API field of `pod`. */
export function fieldValue(pod: V1Pod, ref: V1ObjectFieldSelector, hostIP: string): string {
  const path = ref.fieldPath;
  const mapKey = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (mapKey) {
    const map = mapKey[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[mapKey[2] ?? ""] ?? "";
  }
  switch (path) {
    case "metadata.name":
      return pod.metadata?.name ?? "";
    case "metadata.namespace":
      return pod.metadata?.namespace ?? "";
    case "metadata.uid":
      return pod.metadata?.uid ?? "";
    case "metadata.labels":
      return formatMap(pod.metadata?.labels);
    case "metadata.annotations":
      return formatMap(pod.metadata?.annotations);
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.podIP":
      return pod.status?.podIP ?? "";
    case "status.podIPs":
      return (pod.status?.podIPs ?? []).map((ip) => ip.ip).join(",");
    case "status.hostIP":
    case "status.hostIPs":
      return hostIP;
    default:
      throw new MissingInput("CreateContainerConfigError", `unsupported fieldPath ${path}`);
  }
}

/** A resource quantity ("250m", "1.5", "512Mi", "1e3") in its base unit (cores, bytes). */
export function quantityValue(text: string): number {
  const match = /^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/.exec(
    text.trim(),
  );
  if (!match) throw new MissingInput("CreateContainerConfigError", `bad quantity "${text}"`);
  const [, number = "0", exponent, suffix = ""] = match;
  if (exponent) return Number(number + exponent);
  const binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].indexOf(suffix);
  const decimal: Record<string, number> = {
    n: -9,
    u: -6,
    m: -3,
    k: 3,
    M: 6,
    G: 9,
    T: 12,
    P: 15,
    E: 18,
  };
  return binary >= 0
    ? Number(number) * 1024 ** (binary + 1)
    : Number(number) * 10 ** (decimal[suffix] ?? 0);
}

/**
 * A downward-API resourceFieldRef, as a kubelet resolves it: the container's limit (without
 * one, the node's allocatable) or request, divided by the divisor (default 1) and rounded up:
 * `limits.cpu` 250m with divisor 1 is "1", with divisor 1m "250".
 */
export function resourceValue(
  container: V1Container,
  ref: V1ResourceFieldSelector,
  allocatable: { cpu: number; memory: number },
): string {
  const match = /^(limits|requests)\.(cpu|memory)$/.exec(ref.resource);
  if (!match)
    throw new MissingInput("CreateContainerConfigError", `unsupported resource ${ref.resource}`);
  const [, kind = "limits", name = "cpu"] = match;
  const set = container.resources?.[kind as "limits" | "requests"]?.[name];
  const fallback = name === "cpu" ? allocatable.cpu : allocatable.memory;
  // A request not set defaults to the limit; a limit not set is the node's allocatable.
  const given = set ?? (kind === "requests" ? container.resources?.limits?.[name] : undefined);
  const value =
    given === undefined ? (kind === "limits" ? fallback : 0) : quantityValue(String(given));
  const divisor = quantityValue(String(ref.divisor ?? "1"));
  // In milli-units for CPU, as Kubernetes divides MilliValue()s, so 0.1 / 1m is exactly 100.
  return name === "cpu"
    ? String(Math.ceil(Math.round(value * 1000) / Math.round(divisor * 1000)))
    : String(Math.ceil(value / divisor));
}

type DataKind = "configmap" | "secret";

/** The key → text data of a ConfigMap or Secret, or undefined when it does not exist. */
async function readData(
  api: CoreV1Api,
  kind: DataKind,
  namespace: string,
  name: string | undefined,
): Promise<Record<string, string> | undefined> {
  const decode = (data: Record<string, string> | undefined) =>
    Object.fromEntries(
      Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]),
    );
  try {
    if (kind === "configmap") {
      const configMap = await api.readNamespacedConfigMap({ name: name ?? "", namespace });
      return { ...configMap.data, ...decode(configMap.binaryData) };
    }
    const secret = await api.readNamespacedSecret({ name: name ?? "", namespace });
    return { ...decode(secret.data), ...secret.stringData };
  } catch (error) {
    if (notFound(error)) return undefined;
    throw error;
  }
}

function missing(kind: string, name: string | undefined, key?: string): MissingInput {
  return new MissingInput(
    "CreateContainerConfigError",
    key === undefined
      ? `${kind} "${name}" not found`
      : `couldn't find key ${key} in ${kind} ${name}`,
  );
}

/** The container's environment, in Kubernetes' order: image, envFrom, env (with $(VAR)). */
export async function containerEnv(
  pod: V1Pod,
  container: V1Container,
  imageEnv: Record<string, string>,
  inputs: PodInputs,
): Promise<Map<string, string>> {
  const namespace = pod.metadata?.namespace ?? "default";
  const vars = new Map<string, string>(Object.entries(imageEnv));
  vars.set("HOSTNAME", pod.metadata?.name ?? "");
  vars.set("KUBERNETES_SERVICE_HOST", inputs.apiServerHost);
  vars.set("KUBERNETES_SERVICE_PORT", String(inputs.apiServerPort));
  vars.set("KUBERNETES_SERVICE_PORT_HTTPS", String(inputs.apiServerPort));
  vars.set("KUBERNETES_PORT", `tcp://${inputs.apiServerHost}:${inputs.apiServerPort}`);

  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? "";
    const ref = source.configMapRef ?? source.secretRef;
    if (!ref) continue;
    const kind: DataKind = source.configMapRef ? "configmap" : "secret";
    const data = await readData(inputs.api, kind, namespace, ref.name);
    if (!data) {
      if (ref.optional) continue;
      throw missing(kind, ref.name);
    }
    for (const [key, value] of Object.entries(data)) vars.set(prefix + key, value);
  }

  for (const entry of container.env ?? []) {
    const from = entry.valueFrom;
    if (!from) {
      vars.set(entry.name, expandVars(entry.value ?? "", vars));
    } else if (from.fieldRef) {
      vars.set(entry.name, fieldValue(pod, from.fieldRef, inputs.hostIP));
    } else if (from.resourceFieldRef) {
      vars.set(entry.name, resourceValue(container, from.resourceFieldRef, nodeAllocatable()));
    } else if (from.configMapKeyRef || from.secretKeyRef) {
      const ref = (from.configMapKeyRef ?? from.secretKeyRef) as {
        name: string;
        key: string;
        optional?: boolean;
      };
      const kind: DataKind = from.configMapKeyRef ? "configmap" : "secret";
      const data = await readData(inputs.api, kind, namespace, ref.name);
      const value = data?.[ref.key];
      if (value !== undefined) vars.set(entry.name, value);
      else if (!ref.optional) throw missing(kind, ref.name, data ? ref.key : undefined);
    } else {
      throw new MissingInput(
        "CreateContainerConfigError",
        `env ${entry.name}: unsupported valueFrom`,
      );
    }
  }
  return vars;
}

/** A token from the TokenRequest API, bound to the pod, as a projected volume holds it. */
async function writeToken(
  pod: V1Pod,
  source: V1ServiceAccountTokenProjection,
  dir: string,
  mode: number,
  inputs: PodInputs,
): Promise<void> {
  const token = await inputs.api.createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName ?? "default",
    namespace: pod.metadata?.namespace ?? "default",
    body: {
      spec: {
        audiences: source.audience ? [source.audience] : [],
        expirationSeconds: source.expirationSeconds ?? DEFAULT_TOKEN_SECONDS,
        boundObjectRef: {
          kind: "Pod",
          apiVersion: "v1",
          name: pod.metadata?.name,
          uid: pod.metadata?.uid,
        },
      },
    },
  });
  writeFiles(dir, { [source.path]: token.status?.token ?? "" }, undefined, mode);
}

const DEFAULT_TOKEN_SECONDS = 3607;

function tokenSources(pod: V1Pod): { volume: V1Volume; source: V1ServiceAccountTokenProjection }[] {
  return (pod.spec?.volumes ?? []).flatMap((volume) =>
    (volume.projected?.sources ?? []).flatMap((s) =>
      s.serviceAccountToken ? [{ volume, source: s.serviceAccountToken }] : [],
    ),
  );
}

/** How often the pod's tokens are renewed: at 80% of the shortest lifetime, as a kubelet does. */
export function tokenRefreshMs(pod: V1Pod): number | undefined {
  const lifetimes = tokenSources(pod).map(
    (t) => t.source.expirationSeconds ?? DEFAULT_TOKEN_SECONDS,
  );
  return lifetimes.length > 0 ? Math.min(...lifetimes) * 800 : undefined;
}

/** Renews every projected service-account token of the pod in place. */
export async function refreshTokens(pod: V1Pod, podDir: string, inputs: PodInputs): Promise<void> {
  for (const { volume, source } of tokenSources(pod)) {
    const dir = join(podDir, "volumes", volume.name);
    await writeToken(pod, source, dir, volume.projected?.defaultMode ?? 0o644, inputs);
  }
}

/** Files are replaced atomically (write, then rename), so a reader never sees half of one. */
function writeFiles(
  dir: string,
  data: Record<string, string>,
  items: V1KeyToPath[] | undefined,
  defaultMode: number,
): void {
  const entries = items
    ? items.map((item) => [item.path, data[item.key] ?? "", item.mode ?? defaultMode] as const)
    : Object.entries(data).map(([key, value]) => [key, value, defaultMode] as const);
  for (const [path, value, mode] of entries) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    const staged = `${file}.weir-new`;
    writeFileSync(staged, value);
    chmodSync(staged, mode);
    renameSync(staged, file);
  }
}

function downwardFiles(
  pod: V1Pod,
  items: V1DownwardAPIVolumeFile[],
  hostIP: string,
): Record<string, string> {
  const files: Record<string, string> = {};
  for (const item of items) {
    if (item.fieldRef) files[item.path] = fieldValue(pod, item.fieldRef, hostIP);
  }
  return files;
}

/** Writes one volume's files under `dir`; returns false for a volume type we cannot provide. */
async function materializeVolume(
  pod: V1Pod,
  volume: V1Volume,
  dir: string,
  inputs: PodInputs,
): Promise<void> {
  const namespace = pod.metadata?.namespace ?? "default";
  mkdirSync(dir, { recursive: true });
  if (volume.emptyDir) return;
  if (volume.configMap) {
    const data = await readData(inputs.api, "configmap", namespace, volume.configMap.name);
    if (!data && !volume.configMap.optional) throw missing("configmap", volume.configMap.name);
    writeFiles(dir, data ?? {}, volume.configMap.items, volume.configMap.defaultMode ?? 0o644);
    return;
  }
  if (volume.secret) {
    const name = volume.secret.secretName ?? "";
    const data = await readData(inputs.api, "secret", namespace, name);
    if (!data && !volume.secret.optional) throw missing("secret", name);
    writeFiles(dir, data ?? {}, volume.secret.items, volume.secret.defaultMode ?? 0o644);
    return;
  }
  if (volume.downwardAPI) {
    writeFiles(
      dir,
      downwardFiles(pod, volume.downwardAPI.items ?? [], inputs.hostIP),
      undefined,
      volume.downwardAPI.defaultMode ?? 0o644,
    );
    return;
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    for (const source of volume.projected.sources ?? []) {
      if (source.serviceAccountToken) {
        await writeToken(pod, source.serviceAccountToken, dir, mode, inputs);
      } else if (source.configMap) {
        const data = await readData(inputs.api, "configmap", namespace, source.configMap.name);
        if (!data && !source.configMap.optional) throw missing("configmap", source.configMap.name);
        writeFiles(dir, data ?? {}, source.configMap.items, mode);
      } else if (source.secret) {
        const data = await readData(inputs.api, "secret", namespace, source.secret.name);
        if (!data && !source.secret.optional) throw missing("secret", source.secret.name);
        writeFiles(dir, data ?? {}, source.secret.items, mode);
      } else if (source.downwardAPI) {
        writeFiles(
          dir,
          downwardFiles(pod, source.downwardAPI.items ?? [], inputs.hostIP),
          undefined,
          mode,
        );
      }
    }
    return;
  }
  throw new MissingInput(
    "CreateContainerConfigError",
    `volume ${volume.name}: unsupported volume type on this node`,
  );
}

/** Materializes every volume of the pod under `podDir/volumes`; returns name → folder. */
export async function podVolumes(
  pod: V1Pod,
  podDir: string,
  inputs: PodInputs,
): Promise<Map<string, string>> {
  const folders = new Map<string, string>();
  for (const volume of pod.spec?.volumes ?? []) {
    const dir = join(podDir, "volumes", volume.name);
    await materializeVolume(pod, volume, dir, inputs);
    folders.set(volume.name, dir);
  }
  return folders;
}
