// The local cluster's components: how each starts, what it depends on, how it is known to
// be healthy, and where users reach it. All listen on loopback only.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import { createServer } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { Admin, type AdminOptions } from "@platformatic/kafka";
import { Client as MinioClient } from "minio";
import { run } from "./exec.ts";
import { clusterPaths, logFile, repoRoot } from "./layout.ts";
import { KAFKA_CLIENT, type Pki } from "./pki.ts";
import { answersOk } from "./probe.ts";
import type { Binaries } from "./toolchain.ts";

const HOST = "127.0.0.1";

export const PORTS = {
  etcdClient: 2379,
  etcdPeer: 2380,
  apiServer: 6443,
  controllerManager: 10257,
  scheduler: 10259,
  minio: 9000,
  minioConsole: 9001,
  minioTls: 9443,
  minioTlsConsole: 9444,
  kafka: 9092,
  kafkaController: 9093,
  kafkaSasl: 9094,
  kafkaMtls: 9095,
  kubelet: 10250,
};

/** The process kubelet's Node is named after the machine (as a valid DNS label). */
export const NODE_NAME = nodeNameFor(hostname());

export function nodeNameFor(host: string): string {
  const label = host
    .toLowerCase()
    .split(".")[0]
    ?.replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63);
  return label || "node";
}

/**
 * Fixed local-only credentials and names, so the sample manifests work as they are on the
 * local cluster. Nothing listens beyond loopback.
 */
export const STORAGE = {
  accessKey: "weir-local",
  secretKey: "weir-local-secret",
  bucket: "weir-savepoints",
  region: "us-east-1",
};

/**
 * The Kafka user of the SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN): fixed
 * local-only values like STORAGE's, so that sample manifests can name them.
 */
export const KAFKA_USER = { username: "weir", password: "weir-local-kafka-secret" };

/** True when nothing listens on host:port (we could bind it ourselves). */
export function portFree(port: number, host = HOST): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export const addresses = {
  apiServer: `https://${HOST}:${PORTS.apiServer}`,
  kafkaBootstrap: `${HOST}:${PORTS.kafka}`,
  kafkaSaslBootstrap: `${HOST}:${PORTS.kafkaSasl}`,
  kafkaMtlsBootstrap: `${HOST}:${PORTS.kafkaMtls}`,
  s3Endpoint: `http://${HOST}:${PORTS.minio}`,
  s3TlsEndpoint: `https://${HOST}:${PORTS.minioTls}`,
};

export interface ComponentContext {
  bin: Binaries;
  pki: Pki;
}

export interface LaunchSpec {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

export interface Component {
  name: string;
  /** Where a user or a test reaches it. */
  address: string;
  /** Components that must be healthy before this one starts. */
  after: string[];
  /** Ports it listens on: checked free before it starts, so a health probe never mistakes
   * someone else's server on that port for this component. */
  ports: number[];
  /** One-off set-up before the first start: config files, storage formatting. */
  prepare?(ctx: ComponentContext): Promise<void>;
  launch(ctx: ComponentContext): LaunchSpec;
  healthy(ctx: Pick<ComponentContext, "pki">): Promise<boolean>;
  /** Runs once after the component first became healthy. */
  initialize?(ctx: ComponentContext): Promise<void>;
}

export function kubeconfigFor(identity: string): string {
  return join(clusterPaths.config, `${identity}.kubeconfig`);
}

const etcd: Component = {
  name: "etcd",
  address: `http://${HOST}:${PORTS.etcdClient}`,
  after: [],
  ports: [PORTS.etcdClient, PORTS.etcdPeer],
  launch: ({ bin }) => {
    const client = `http://${HOST}:${PORTS.etcdClient}`;
    const peer = `http://${HOST}:${PORTS.etcdPeer}`;
    return {
      command: bin.etcd,
      args: [
        "--name=weir",
        `--data-dir=${join(clusterPaths.data, "etcd")}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=weir=${peer}`,
        // A throwaway test cluster: durability on power loss is not worth the fsyncs.
        "--unsafe-no-fsync",
      ],
    };
  },
  healthy: () => answersOk(`http://${HOST}:${PORTS.etcdClient}/health`),
};

const apiServer: Component = {
  name: "kube-apiserver",
  address: addresses.apiServer,
  after: ["etcd"],
  ports: [PORTS.apiServer],
  launch: ({ bin, pki }) => ({
    command: bin.kubeApiserver,
    args: [
      `--etcd-servers=http://${HOST}:${PORTS.etcdClient}`,
      `--bind-address=${HOST}`,
      `--advertise-address=${HOST}`,
      `--secure-port=${PORTS.apiServer}`,
      `--cert-dir=${join(clusterPaths.data, "apiserver")}`,
      `--tls-cert-file=${pki.path("apiserver.crt")}`,
      `--tls-private-key-file=${pki.path("apiserver.key")}`,
      `--client-ca-file=${pki.path("ca.crt")}`,
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.path("sa.pub")}`,
      `--service-account-signing-key-file=${pki.path("sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--allow-privileged=true",
      "--profiling=false",
      `--kubelet-client-certificate=${pki.path("apiserver-kubelet-client.crt")}`,
      `--kubelet-client-key=${pki.path("apiserver-kubelet-client.key")}`,
      `--kubelet-certificate-authority=${pki.path("ca.crt")}`,
      "--kubelet-preferred-address-types=InternalIP",
    ],
  }),
  healthy: ({ pki }) =>
    answersOk(`${addresses.apiServer}/readyz`, { ca: readFileSync(pki.path("ca.crt"), "utf8") }),
};

/** Shared flags of the controller manager and the scheduler: who they are, where they serve. */
function controlPlaneClientFlags(identity: string, port: number): string[] {
  const kubeconfig = kubeconfigFor(identity);
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    `--bind-address=${HOST}`,
    `--secure-port=${port}`,
    `--cert-dir=${join(clusterPaths.data, identity)}`,
    "--leader-elect=false",
  ];
}

const controllerManager: Component = {
  name: "kube-controller-manager",
  address: `https://${HOST}:${PORTS.controllerManager}`,
  after: ["kube-apiserver"],
  ports: [PORTS.controllerManager],
  launch: ({ bin, pki }) => ({
    command: bin.kubeControllerManager,
    args: [
      ...controlPlaneClientFlags("kube-controller-manager", PORTS.controllerManager),
      `--service-account-private-key-file=${pki.path("sa.key")}`,
      `--root-ca-file=${pki.path("ca.crt")}`,
      "--use-service-account-credentials=true",
      `--cluster-signing-cert-file=${pki.path("ca.crt")}`,
      `--cluster-signing-key-file=${pki.path("ca.key")}`,
    ],
  }),
  // Healthy once it serves and its service-account controller has made the default account
  // (pods cannot be admitted before that).
  healthy: async () => {
    if (!(await answersOk(`https://${HOST}:${PORTS.controllerManager}/healthz`))) return false;
    try {
      await adminApi().readNamespacedServiceAccount({ name: "default", namespace: "default" });
      return true;
    } catch {
      return false;
    }
  },
};

const scheduler: Component = {
  name: "kube-scheduler",
  address: `https://${HOST}:${PORTS.scheduler}`,
  after: ["kube-apiserver"],
  ports: [PORTS.scheduler],
  launch: ({ bin }) => ({
    command: bin.kubeScheduler,
    args: controlPlaneClientFlags("kube-scheduler", PORTS.scheduler),
  }),
  healthy: () => answersOk(`https://${HOST}:${PORTS.scheduler}/healthz`),
};

export function minioClient(): MinioClient {
  return new MinioClient({
    endPoint: HOST,
    port: PORTS.minio,
    useSSL: false,
    accessKey: STORAGE.accessKey,
    secretKey: STORAGE.secretKey,
    region: STORAGE.region,
  });
}

const minio: Component = {
  name: "minio",
  address: addresses.s3Endpoint,
  after: [],
  ports: [PORTS.minio, PORTS.minioConsole],
  launch: ({ bin }) => ({
    command: bin.minio,
    args: [
      "server",
      `--address=${HOST}:${PORTS.minio}`,
      `--console-address=${HOST}:${PORTS.minioConsole}`,
      join(clusterPaths.data, "minio"),
    ],
    env: {
      ...process.env,
      MINIO_ROOT_USER: STORAGE.accessKey,
      MINIO_ROOT_PASSWORD: STORAGE.secretKey,
      MINIO_BROWSER: "off",
      MINIO_UPDATE: "off",
      MINIO_REGION: STORAGE.region,
    },
  }),
  healthy: () => answersOk(`${addresses.s3Endpoint}/minio/health/ready`),
  initialize: async () => {
    const client = minioClient();
    if (!(await client.bucketExists(STORAGE.bucket))) {
      await client.makeBucket(STORAGE.bucket, STORAGE.region);
    }
  },
};

/** Where a Kafka node keeps its data, the ports it listens on, and its TLS stores. */
export interface KafkaNodeLayout {
  dataDir: string;
  ports: { plaintext: number; sasl: number; mtls: number; controller: number };
  /** PEM file with the server's private key and certificate (Pki.createKafka). */
  keyStore: string;
  /** PEM file with the CA whose client certificates the mTLS listener accepts (`kafka-ca.crt`). */
  trustStore: string;
}

/** The local cluster's node (a test may run a private one on other ports). */
export function clusterKafkaNode(pki: Pki): KafkaNodeLayout {
  return {
    dataDir: join(clusterPaths.data, "kafka"),
    ports: {
      plaintext: PORTS.kafka,
      sasl: PORTS.kafkaSasl,
      mtls: PORTS.kafkaMtls,
      controller: PORTS.kafkaController,
    },
    keyStore: pki.path("kafka-server.pem"),
    trustStore: pki.path("kafka-ca.crt"),
  };
}

/** The SASL mechanisms the SASL_SSL listener accepts, each for KAFKA_USER. */
export const KAFKA_SASL_MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] as const;

/**
 * A second MinIO serving TLS only (MinIO serves TLS from `--certs-dir` and then nothing else on
 * its address), with a certificate from the cluster's CA and its own data folder: the same
 * credentials and bucket name as the plaintext one, which stays for quick tests. The CA is
 * in its `CAs/` too, so MinIO trusts the cluster's own services (an OpenID issuer) as well.
 */
const minioTls: Component = {
  name: "minio-tls",
  address: addresses.s3TlsEndpoint,
  after: [],
  ports: [PORTS.minioTls, PORTS.minioTlsConsole],
  prepare: async ({ pki }) => {
    await pki.servingCertificate("minio-tls", ["IP:127.0.0.1", "DNS:localhost"]);
    const certs = join(clusterPaths.data, "minio-tls-certs");
    mkdirSync(join(certs, "CAs"), { recursive: true });
    writeFileSync(join(certs, "public.crt"), readFileSync(pki.path("minio-tls.crt")));
    writeFileSync(join(certs, "private.key"), readFileSync(pki.path("minio-tls.key")), {
      mode: 0o600,
    });
    writeFileSync(join(certs, "CAs", "ca.crt"), readFileSync(pki.path("ca.crt")));
  },
  launch: ({ bin }) => ({
    command: bin.minio,
    args: [
      "server",
      `--address=${HOST}:${PORTS.minioTls}`,
      `--console-address=${HOST}:${PORTS.minioTlsConsole}`,
      `--certs-dir=${join(clusterPaths.data, "minio-tls-certs")}`,
      join(clusterPaths.data, "minio-tls"),
    ],
    env: {
      ...process.env,
      MINIO_ROOT_USER: STORAGE.accessKey,
      MINIO_ROOT_PASSWORD: STORAGE.secretKey,
      MINIO_BROWSER: "off",
      MINIO_UPDATE: "off",
      MINIO_REGION: STORAGE.region,
    },
  }),
  healthy: async ({ pki }) => {
    if (!existsSync(pki.path("ca.crt"))) return false;
    return answersOk(`${addresses.s3TlsEndpoint}/minio/health/ready`, {
      ca: readFileSync(pki.path("ca.crt"), "utf8"),
    });
  },
  initialize: async ({ pki }) => {
    const client = minioTlsClient(readFileSync(pki.path("ca.crt"), "utf8"));
    if (!(await client.bucketExists(STORAGE.bucket))) {
      await client.makeBucket(STORAGE.bucket, STORAGE.region);
    }
  },
};

/** A client of the TLS MinIO, trusting the cluster's CA. */
export function minioTlsClient(ca: string): MinioClient {
  return new MinioClient({
    endPoint: HOST,
    port: PORTS.minioTls,
    useSSL: true,
    transportAgent: new https.Agent({ ca }),
    accessKey: STORAGE.accessKey,
    secretKey: STORAGE.secretKey,
    region: STORAGE.region,
  });
}

/**
 * One KRaft node acting as broker and controller. The internal topics get replication factor
 * and min ISR 1, which a single node needs for consumer groups and transactions to work.
 * Three client listeners: PLAINTEXT for quick tests (and between broker and controller),
 * SASL_SSL as clusters users have it: TLS with the node's own CA, SCRAM users stored in the
 * metadata log (created when the storage is formatted, see kafkaFormatArgs), PLAIN from the
 * listener's JAAS config; and SSL with client certificates required (mTLS): the same server
 * certificate, and a client's certificate must be signed by the node's CA. No authorizer: an
 * authenticated user may do anything.
 */
export function kafkaProperties(node: KafkaNodeLayout): string {
  const { plaintext, sasl, mtls, controller } = node.ports;
  const scramLogin = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
  const plainLogin = `org.apache.kafka.common.security.plain.PlainLoginModule required user_${KAFKA_USER.username}="${KAFKA_USER.password}";`;
  const settings: Record<string, string | number> = {
    "process.roles": "broker,controller",
    "node.id": 1,
    "controller.quorum.voters": `1@${HOST}:${controller}`,
    listeners: `PLAINTEXT://${HOST}:${plaintext},SASL_SSL://${HOST}:${sasl},SSL://${HOST}:${mtls},CONTROLLER://${HOST}:${controller}`,
    "advertised.listeners": `PLAINTEXT://${HOST}:${plaintext},SASL_SSL://${HOST}:${sasl},SSL://${HOST}:${mtls}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map":
      "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT",
    "listener.name.sasl_ssl.sasl.enabled.mechanisms": KAFKA_SASL_MECHANISMS.join(","),
    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scramLogin,
    "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scramLogin,
    "listener.name.sasl_ssl.plain.sasl.jaas.config": plainLogin,
    // Kafka reads PEM stores itself (KIP-651): the key and its certificate in one file.
    "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
    "listener.name.sasl_ssl.ssl.keystore.location": node.keyStore,
    // mTLS: a client without a certificate signed by the node's CA is refused in the handshake.
    "listener.name.ssl.ssl.client.auth": "required",
    "listener.name.ssl.ssl.keystore.type": "PEM",
    "listener.name.ssl.ssl.keystore.location": node.keyStore,
    // A PEM trust store is a file of X.509 certificates (KIP-651), here the one CA.
    "listener.name.ssl.ssl.truststore.type": "PEM",
    "listener.name.ssl.ssl.truststore.location": node.trustStore,
    "log.dirs": node.dataDir,
    "num.partitions": 1,
    "offsets.topic.replication.factor": 1,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "share.coordinator.state.topic.replication.factor": 1,
    "share.coordinator.state.topic.min.isr": 1,
    "min.insync.replicas": 1,
    "group.initial.rebalance.delay.ms": 0,
    // Topics are created on purpose (by tests, the runtime, the operator), never by a typo.
    "auto.create.topics.enable": "false",
  };
  return `${Object.entries(settings)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n")}\n`;
}

const KAFKA_LOG4J2 = `status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = warn
`;

/**
 * Kafka's cluster id format: 16 random bytes, URL-safe base64 without padding. Never one that
 * starts with "-": `kafka-storage format -t <id>` would read it as an option (Kafka's own
 * Uuid.randomUuid() draws again for the same reason), which failed about one `up` in 64.
 */
export function kafkaClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

function kafkaJava(bin: Binaries, mainClass: string, args: string[]): LaunchSpec {
  return {
    command: "java",
    args: [
      "-Xms256m",
      "-Xmx512m",
      "-XX:+UseG1GC",
      "-Djava.awt.headless=true",
      `-Dlog4j2.configurationFile=${join(clusterPaths.config, "kafka-log4j2.properties")}`,
      "-cp",
      `${bin.kafkaLibs}/*`,
      mainClass,
      ...args,
    ],
  };
}

const kafkaPropertiesFile = () => join(clusterPaths.config, "kafka.properties");

/**
 * `kafka-storage format` for a node: a fresh cluster id, and KAFKA_USER's SCRAM credentials
 * written into the metadata log before the first start, so the SASL_SSL listener accepts them
 * from the first connection on.
 */
export function kafkaFormatArgs(clusterId: string, propertiesFile: string): string[] {
  const scram = KAFKA_SASL_MECHANISMS.filter((m) => m.startsWith("SCRAM-")).flatMap((m) => [
    "--add-scram",
    `${m}=[name=${KAFKA_USER.username},password=${KAFKA_USER.password}]`,
  ]);
  return ["format", "-t", clusterId, "-c", propertiesFile, ...scram];
}

const kafka: Component = {
  name: "kafka",
  address: addresses.kafkaBootstrap,
  after: [],
  ports: [PORTS.kafka, PORTS.kafkaController, PORTS.kafkaSasl, PORTS.kafkaMtls],
  prepare: async ({ bin, pki }) => {
    await pki.kafkaClientCertificate();
    mkdirSync(clusterPaths.config, { recursive: true });
    writeFileSync(kafkaPropertiesFile(), kafkaProperties(clusterKafkaNode(pki)));
    writeFileSync(join(clusterPaths.config, "kafka-log4j2.properties"), KAFKA_LOG4J2);
    const format = kafkaJava(
      bin,
      "kafka.tools.StorageTool",
      kafkaFormatArgs(kafkaClusterId(), kafkaPropertiesFile()),
    );
    await run(format.command, format.args, { logFile: logFile("kafka") });
  },
  launch: ({ bin }) => kafkaJava(bin, "kafka.Kafka", [kafkaPropertiesFile()]),
  healthy: async () => {
    const admin = new Admin({
      clientId: "weir-cluster-probe",
      bootstrapBrokers: [addresses.kafkaBootstrap],
      timeout: 2_000,
      retries: 0,
    });
    try {
      const metadata = await admin.metadata({ topics: [] });
      return metadata.brokers.size > 0;
    } catch {
      return false;
    } finally {
      await admin.close().catch(() => {});
    }
  },
  // The SASL_SSL listener must take KAFKA_USER over TLS with the node's CA, and the SSL one
  // the client certificate: an `up` whose secure listeners do not work fails here, naming the
  // listener, instead of in some test later.
  initialize: async ({ pki }) => {
    const ca = readFileSync(pki.path("kafka-ca.crt"), "utf8");
    await probeKafkaListener(
      `kafka's SASL_SSL listener at ${addresses.kafkaSaslBootstrap} refused user ${KAFKA_USER.username}`,
      {
        bootstrapBrokers: [addresses.kafkaSaslBootstrap],
        tls: { ca },
        sasl: { mechanism: "SCRAM-SHA-512", ...KAFKA_USER },
      },
    );
    await probeKafkaListener(
      `kafka's mTLS (SSL) listener at ${addresses.kafkaMtlsBootstrap} refused the client certificate ${KAFKA_CLIENT.name}.crt`,
      {
        bootstrapBrokers: [addresses.kafkaMtlsBootstrap],
        tls: {
          ca,
          cert: readFileSync(pki.path(`${KAFKA_CLIENT.name}.crt`), "utf8"),
          key: readFileSync(pki.path(`${KAFKA_CLIENT.name}.key`), "utf8"),
        },
      },
    );
  },
};

/** One metadata request through a listener; a failure is thrown as `refused: <why>`. */
async function probeKafkaListener(
  refused: string,
  options: Pick<AdminOptions, "bootstrapBrokers" | "tls" | "sasl">,
): Promise<void> {
  const admin = new Admin({ clientId: "weir-cluster-probe", retries: 0, ...options });
  try {
    await admin.metadata({ topics: [] });
  } catch (error) {
    throw new Error(`${refused}: ${String(error)}`, { cause: error });
  } finally {
    await admin.close().catch(() => {});
  }
}

/** Admin access for health checks that ask the API server. */
function adminApi(): CoreV1Api {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(clusterPaths.adminKubeconfig);
  return kubeConfig.makeApiClient(CoreV1Api);
}

/**
 * One process kubelet's Node: its name, kubelet port, pod IP range (a /16 of loopback: pods of
 * different nodes never share an address), data folder and identity. Node 1 is the machine's
 * (NODE_NAME, port 10250, 127.1.0.0/16, as before there were several); node i ≥ 2 is
 * `<machine>-<i>` on port 10260 + i with 127.(10 + i).0.0/16 (127.2–127.9 and 127.77 are the
 * runtime tests' own pods, 127.100+ the operator's unit tests).
 */
export interface NodeLayout {
  index: number;
  name: string;
  port: number;
  podCidr: string;
  dataDir: string;
  /** The kubeconfig of its identity `system:node:<name>`, and the identity's file stem. */
  identity: string;
  kubeconfig: string;
  /** Taints it registers with (`key=value:Effect`), e.g. to keep others' pods off a test node. */
  taints: string[];
}

/** The highest node index: the pod ranges stay below 127.77. */
export const MAX_NODES = 40;

export function nodeLayout(index: number, taints: string[] = []): NodeLayout {
  if (!Number.isInteger(index) || index < 1 || index > MAX_NODES) {
    throw new Error(`node ${index}: nodes are numbered 1 to ${MAX_NODES}`);
  }
  const first = index === 1;
  const identity = first ? "kubelet" : `kubelet-${index}`;
  return {
    index,
    name: first ? NODE_NAME : `${NODE_NAME}-${index}`,
    port: first ? PORTS.kubelet : 10_260 + index,
    podCidr: first ? "127.1.0.0/16" : `127.${10 + index}.0.0/16`,
    dataDir: join(clusterPaths.data, identity),
    identity,
    kubeconfig: kubeconfigFor(identity),
    taints,
  };
}

/** How a process kubelet for `node` starts (a cluster component, or a test's extra node). */
export function kubeletLaunch(node: NodeLayout, pki: Pki): LaunchSpec {
  return {
    command: process.execPath,
    args: [join(repoRoot, "test-e2e", "kubelet", "main.ts")],
    env: {
      ...process.env,
      WEIR_NODE_NAME: node.name,
      WEIR_KUBELET_DIR: node.dataDir,
      WEIR_KUBELET_PORT: String(node.port),
      WEIR_KUBELET_KUBECONFIG: node.kubeconfig,
      WEIR_KUBELET_PKI: pki.dir,
      WEIR_API_SERVER: addresses.apiServer,
      WEIR_IMAGE_CATALOG: join(repoRoot, "test-e2e", "image-catalog.yaml"),
      WEIR_REPO_ROOT: repoRoot,
      WEIR_POD_CIDR: node.podCidr,
      WEIR_NODE_TAINTS: node.taints.join(","),
    },
  };
}

/** The identity of a node after the first (made from the cluster's CA when missing). */
export async function prepareNodeIdentity(node: NodeLayout, pki: Pki): Promise<void> {
  if (node.index === 1) return;
  await pki.nodeClientCertificate(node.identity, node.name);
  pki.writeKubeconfig(node.kubeconfig, node.identity, addresses.apiServer);
}

/** Whether `name`'s Node reports Ready. */
export async function nodeReady(name: string): Promise<boolean> {
  try {
    const node = await adminApi().readNode({ name });
    return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  } catch {
    return false;
  }
}

/** The process kubelet (test-e2e/kubelet) of one node: runs the pods bound to its Node. */
function kubeletComponent(node: NodeLayout): Component {
  return {
    name: node.identity,
    address: `https://${HOST}:${node.port}`,
    after: ["kube-apiserver"],
    ports: [node.port],
    prepare: ({ pki }) => prepareNodeIdentity(node, pki),
    launch: ({ pki }) => kubeletLaunch(node, pki),
    // Healthy once its Node reports Ready.
    healthy: () => nodeReady(node.name),
  };
}

/** Every component, in an order that respects `after`. */
export const COMPONENTS: Component[] = [
  etcd,
  minio,
  minioTls,
  kafka,
  apiServer,
  controllerManager,
  scheduler,
  kubeletComponent(nodeLayout(1)),
];

/** A cluster of `nodes` nodes: COMPONENTS, and a kubelet for each node after the first. */
export function componentsFor(nodes: number): Component[] {
  const more = Array.from({ length: nodes - 1 }, (_, i) => kubeletComponent(nodeLayout(i + 2)));
  return [...COMPONENTS, ...more];
}
