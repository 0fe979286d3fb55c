// The process kubelet: registers this machine as a Node, keeps its heartbeat (status and
// Lease), runs the pods bound to it as local processes (pod-worker.ts), and serves their logs
// to the API server (`kubectl logs`) on the kubelet port.
//
// Configuration comes from the environment, set by the local cluster (components.ts).
import { createReadStream, existsSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:https";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import { parse } from "yaml";
import { KUBERNETES_VERSION } from "../cluster/versions.ts";
import { parseTaints, podIpPrefixOf } from "./node-config.ts";
import type { CatalogImage } from "./pod-spec.ts";
import { logPath, type NodeContext, PodWorker } from "./pod-worker.ts";

function setting(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const nodeName = setting("WEIR_NODE_NAME");
const dataDir = setting("WEIR_KUBELET_DIR");
const hostIP = "127.0.0.1";
const port = Number(setting("WEIR_KUBELET_PORT"));
const apiServer = new URL(setting("WEIR_API_SERVER"));
const repoRoot = setting("WEIR_REPO_ROOT");
const podCidr = setting("WEIR_POD_CIDR");
const podIpPrefix = podIpPrefixOf(podCidr);
// Taints the Node registers with: a node may set its taints only when it registers.
const registerTaints = parseTaints(process.env.WEIR_NODE_TAINTS ?? "");

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

function loadCatalog(file: string): Record<string, CatalogImage> {
  const images = (parse(readFileSync(file, "utf8")) as { images: Record<string, CatalogImage> })
    .images;
  // "{node}" is the Node.js that runs this kubelet (24, from the project's bootstrap), the
  // stand-in for the node binary a real image would carry.
  const resolveNode = (argv: string[] | undefined) =>
    argv?.map((part) => (part === "{node}" ? process.execPath : part));
  for (const image of Object.values(images)) {
    image.entrypoint = resolveNode(image.entrypoint);
    image.cmd = resolveNode(image.cmd);
    if (image.mounts) {
      image.mounts = Object.fromEntries(
        Object.entries(image.mounts).map(([path, local]) => [path, join(repoRoot, local)]),
      );
    }
  }
  return images;
}

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(setting("WEIR_KUBELET_KUBECONFIG"));
const core = kubeConfig.makeApiClient(CoreV1Api);
const coordination = kubeConfig.makeApiClient(CoordinationV1Api);

const node: NodeContext = {
  api: core,
  apiServerHost: apiServer.hostname,
  apiServerPort: Number(apiServer.port),
  hostIP,
  nodeName,
  dataDir,
  catalog: loadCatalog(setting("WEIR_IMAGE_CATALOG")),
  log,
};

// Pod IPs: <prefix>.0.1 upward in the node's /16, one per pod, reused once the pod is gone.
const ipsInUse = new Set<string>();
let nextIp = 0;
function allocateIP(): string {
  for (;;) {
    nextIp = (nextIp + 1) % 65_024;
    const ip = `${podIpPrefix}.${Math.floor(nextIp / 254)}.${(nextIp % 254) + 1}`;
    if (!ipsInUse.has(ip)) {
      ipsInUse.add(ip);
      return ip;
    }
  }
}

const workers = new Map<string, PodWorker>();

function onPod(type: string, pod: V1Pod): void {
  const uid = pod.metadata?.uid;
  if (!uid || pod.spec?.nodeName !== nodeName) return;
  const worker = workers.get(uid);
  if (type === "DELETED") {
    worker?.removed();
    return;
  }
  if (worker) {
    worker.update(pod);
    return;
  }
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed" || pod.metadata?.deletionTimestamp) {
    // Not ours to run (finished before this kubelet started, or already on its way out).
    if (pod.metadata?.deletionTimestamp) {
      void core
        .deleteNamespacedPod({
          name: pod.metadata.name ?? "",
          namespace: pod.metadata.namespace ?? "",
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        })
        .catch(() => {});
    }
    return;
  }
  const ip = allocateIP();
  const started = new PodWorker(pod, ip, node);
  workers.set(uid, started);
  log(`${pod.metadata?.namespace}/${pod.metadata?.name}: started with IP ${ip}`);
}

function forget(uid: string): void {
  const worker = workers.get(uid);
  if (worker) {
    ipsInUse.delete(worker.podIP);
    workers.delete(uid);
  }
}

async function watchPods(): Promise<void> {
  const watch = new Watch(kubeConfig);
  for (;;) {
    try {
      const list = await core.listPodForAllNamespaces({
        fieldSelector: `spec.nodeName=${nodeName}`,
      });
      const seen = new Set<string>();
      for (const pod of list.items) {
        seen.add(pod.metadata?.uid ?? "");
        onPod("MODIFIED", pod);
      }
      for (const uid of workers.keys()) {
        if (!seen.has(uid)) {
          workers.get(uid)?.removed();
          forget(uid);
        }
      }
      await new Promise<void>((resolve) => {
        void watch
          .watch(
            "/api/v1/pods",
            {
              fieldSelector: `spec.nodeName=${nodeName}`,
              resourceVersion: list.metadata?.resourceVersion,
              allowWatchBookmarks: true,
            },
            (type: string, pod: V1Pod) => {
              if (type === "BOOKMARK") return;
              onPod(type, pod);
              if (type === "DELETED" && pod.metadata?.uid) forget(pod.metadata.uid);
            },
            () => resolve(),
          )
          .catch(() => resolve());
      });
    } catch (error) {
      log(`pod watch: ${error}`);
      await sleep(1_000);
    }
  }
}

async function registerNode(): Promise<void> {
  const capacity = {
    cpu: String(cpus().length),
    memory: `${Math.floor(totalmem() / 1024)}Ki`,
    pods: "110",
    "ephemeral-storage": "100Gi",
  };
  const body = {
    metadata: {
      name: nodeName,
      labels: {
        "kubernetes.io/hostname": nodeName,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": process.arch === "x64" ? "amd64" : process.arch,
        "node.weir.dev/process-kubelet": "true",
      },
    },
    // Set once at registration, as the node IPAM controller would (a node may not change it).
    spec: { podCIDR: podCidr, podCIDRs: [podCidr], taints: registerTaints },
  };
  try {
    await core.createNode({ body });
  } catch (error) {
    if (!(error instanceof Error && /409|AlreadyExists/.test(String(error)))) throw error;
  }
  const status = () => {
    const time = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: time,
      lastTransitionTime: startedAt,
    });
    return {
      status: {
        capacity,
        allocatable: capacity,
        conditions: [
          condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
          ),
          condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
          ),
          condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
          ),
          condition("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
        ],
        addresses: [
          { type: "InternalIP", address: hostIP },
          { type: "Hostname", address: nodeName },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
        nodeInfo: {
          machineID: "",
          systemUUID: "",
          bootID: "",
          kernelVersion: "",
          osImage: "local processes",
          containerRuntimeVersion: "weir-process://1",
          kubeletVersion: KUBERNETES_VERSION,
          kubeProxyVersion: "",
          operatingSystem: "linux",
          architecture: process.arch === "x64" ? "amd64" : process.arch,
        },
      },
    };
  };
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const postStatus = () =>
    core.patchNodeStatus(
      { name: nodeName, body: status() },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  await postStatus();
  const renewLease = async () => {
    const spec = {
      holderIdentity: nodeName,
      leaseDurationSeconds: 40,
      renewTime: new Date().toISOString().replace(/Z$/, "000Z"),
    };
    try {
      await coordination.replaceNamespacedLease({
        name: nodeName,
        namespace: "kube-node-lease",
        body: { metadata: { name: nodeName }, spec: spec as never },
      });
    } catch {
      await coordination
        .createNamespacedLease({
          namespace: "kube-node-lease",
          body: { metadata: { name: nodeName }, spec: spec as never },
        })
        .catch(() => {});
    }
  };
  await renewLease();
  setInterval(() => {
    void postStatus().catch((error: unknown) => log(`node status: ${error}`));
    void renewLease();
  }, 10_000);
}

/** GET /containerLogs/<namespace>/<pod>/<container>?previous&follow&tailLines, for the API server. */
function serveLogs(): void {
  const pki = (name: string) => readFileSync(join(setting("WEIR_KUBELET_PKI"), name));
  const server = createServer(
    {
      cert: pki("kubelet-serving.crt"),
      key: pki("kubelet-serving.key"),
      ca: pki("ca.crt"),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const url = new URL(req.url ?? "/", "https://kubelet");
      const match = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (req.url === "/healthz") {
        res.end("ok");
        return;
      }
      if (!match) {
        res.writeHead(404).end("not found");
        return;
      }
      const [, namespace, name, container] = match;
      const worker = [...workers.values()].find((w) => w.matches(namespace ?? "", name ?? ""));
      const pod = worker?.current;
      const run = pod ? worker?.restartsOf(container ?? "") : undefined;
      if (!pod || run === undefined) {
        res
          .writeHead(404)
          .end(`container ${container} of pod ${namespace}/${name} not found on this node`);
        return;
      }
      const previous = url.searchParams.get("previous") === "true";
      const index = previous ? run - 1 : run;
      const file = logPath(dataDir, pod, container ?? "", index);
      if (index < 0 || !existsSync(file)) {
        res
          .writeHead(400)
          .end(`previous terminated container "${container}" in pod "${name}" not found`);
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" });
      const tailLines = url.searchParams.get("tailLines");
      if (tailLines !== null) {
        const lines = readFileSync(file, "utf8").split("\n");
        const keep = lines.at(-1) === "" ? lines.slice(0, -1) : lines;
        res.end(
          keep
            .slice(-Number(tailLines))
            .map((l) => `${l}\n`)
            .join(""),
        );
        return;
      }
      if (url.searchParams.get("follow") !== "true") {
        createReadStream(file).pipe(res);
        return;
      }
      let offset = 0;
      const timer = setInterval(() => {
        const size = statSync(file).size;
        if (size > offset) {
          createReadStream(file, { start: offset, end: size - 1 }).pipe(res, { end: false });
          offset = size;
        } else if (!worker?.isRunning(container ?? "")) {
          clearInterval(timer);
          res.end();
        }
      }, 200);
      req.on("close", () => clearInterval(timer));
    },
  );
  server.listen(port, hostIP);
}

// One pod's trouble must not take the node down with every other pod: report and go on.
process.on("uncaughtException", (error) => log(`uncaught: ${error.stack ?? error}`));
process.on("unhandledRejection", (error) => log(`unhandled rejection: ${error}`));

// On SIGTERM (`cluster down`), stop every pod's processes before leaving, so nothing they
// made on the host outlives them. (Were the kubelet killed outright, each container's
// parent-death signal still takes its processes down.)
process.once("SIGTERM", () => {
  log("SIGTERM: stopping all pods");
  for (const worker of workers.values()) worker.removed();
  const all = Promise.all([...workers.values()].map((w) => w.finished));
  void Promise.race([all, sleep(5_000)]).then(() => process.exit(0));
});

await registerNode();
serveLogs();
log(`node ${nodeName} registered; serving on ${hostIP}:${port}`);
await watchPods();
