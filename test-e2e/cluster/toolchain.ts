// Builds and caches the local cluster's binaries: Go components from the Go module proxy,
// the Kafka broker's jars from Maven Central. Each lands in `<cache>/<name>-<version>/`,
// marked complete only after it fully built, so an interrupted build is redone, not trusted.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./exec.ts";
import { cacheDir } from "./layout.ts";
import { say, timed } from "./progress.ts";
import {
  ETCD_VERSION,
  HELM_VERSION,
  KAFKA_VERSION,
  KUBERNETES_STAGING_MODULES,
  KUBERNETES_VERSION,
  LOG4J_VERSION,
  MIN_GO_VERSION,
  MINIO_VERSION,
} from "./versions.ts";

interface GoComponent {
  name: string;
  version: string;
  /** The module our wrapper module requires. */
  module: string;
  /** Binary name → main package. */
  binaries: Record<string, string>;
  replaces?: string[];
  ldflags?: string[];
}

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  helm: string;
  minio: string;
  /** Folder of jars forming the Kafka broker's classpath. */
  kafkaLibs: string;
}

function kubernetesComponent(): GoComponent {
  const [, minor, patch] = KUBERNETES_VERSION.slice(1).split(".");
  const versionFlags = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap(
    (pkg) => [
      `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
      `-X ${pkg}.gitMajor=1`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
    ],
  );
  return {
    name: "kubernetes",
    version: KUBERNETES_VERSION,
    module: "k8s.io/kubernetes",
    binaries: Object.fromEntries(
      ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"].map((cmd) => [
        cmd,
        `k8s.io/kubernetes/cmd/${cmd}`,
      ]),
    ),
    replaces: KUBERNETES_STAGING_MODULES.map(
      (name) => `k8s.io/${name} => k8s.io/${name} v0.${minor}.${patch}`,
    ),
    ldflags: versionFlags,
  };
}

const goComponents: GoComponent[] = [
  kubernetesComponent(),
  {
    name: "etcd",
    version: ETCD_VERSION,
    module: "go.etcd.io/etcd/server/v3",
    binaries: { etcd: "go.etcd.io/etcd/server/v3" },
  },
  {
    name: "helm",
    version: HELM_VERSION,
    module: "helm.sh/helm/v4",
    binaries: { helm: "helm.sh/helm/v4/cmd/helm" },
    ldflags: [`-X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}`],
  },
  {
    name: "minio",
    version: MINIO_VERSION,
    module: "github.com/minio/minio",
    binaries: { minio: "github.com/minio/minio" },
  },
];

/** Build logs live with the builds they describe, shared by every checkout. */
function buildLog(component: string): string {
  return join(cacheDir, "logs", `build-${component}.log`);
}

function componentDir(name: string, version: string): string {
  return join(cacheDir, `${name}-${version}`);
}

const COMPLETE_MARK = ".complete";

function isComplete(dir: string): boolean {
  return existsSync(join(dir, COMPLETE_MARK));
}

/** Builds whatever is missing from the cache (slow only the first time) and returns the paths. */
export async function ensureBinaries(): Promise<Binaries> {
  const missingGo = goComponents.filter((c) => !isComplete(componentDir(c.name, c.version)));
  const kafkaDir = componentDir("kafka", KAFKA_VERSION);
  if (missingGo.length > 0 || !isComplete(kafkaDir)) {
    say(
      `cold cache: building into ${cacheDir} (a first build takes a while on a small machine; later runs reuse it)`,
    );
  }
  if (missingGo.length > 0) {
    const goEnv = await goEnvironment();
    for (const component of missingGo) await buildGoComponent(component, goEnv);
    // Go's build cache is several GB after these builds and only speeds up a rebuild of the
    // same pins; the binaries are what we keep (the module cache stays, for version bumps).
    await run("go", ["clean", "-cache"], { env: goEnv });
  }
  if (!isComplete(kafkaDir)) await fetchKafka(kafkaDir);

  const bin = (component: string, version: string, binary: string) =>
    join(componentDir(component, version), "bin", binary);
  return {
    etcd: bin("etcd", ETCD_VERSION, "etcd"),
    kubeApiserver: bin("kubernetes", KUBERNETES_VERSION, "kube-apiserver"),
    kubeControllerManager: bin("kubernetes", KUBERNETES_VERSION, "kube-controller-manager"),
    kubeScheduler: bin("kubernetes", KUBERNETES_VERSION, "kube-scheduler"),
    kubectl: bin("kubernetes", KUBERNETES_VERSION, "kubectl"),
    helm: bin("helm", HELM_VERSION, "helm"),
    minio: bin("minio", MINIO_VERSION, "minio"),
    kafkaLibs: join(kafkaDir, "libs"),
  };
}

/** Go's caches live in our cache folder; an older Go fetches the pinned toolchain from the proxy. */
async function goEnvironment(): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GOMODCACHE: join(cacheDir, "go", "mod"),
    GOCACHE: join(cacheDir, "go", "build"),
    GOFLAGS: "-mod=mod",
    GOTOOLCHAIN: "local",
  };
  let version: string;
  try {
    version = (await run("go", ["env", "GOVERSION"], { env })).trim();
  } catch {
    throw new Error(
      `Go ${MIN_GO_VERSION} or newer is needed to build the local cluster, and no 'go' is on PATH`,
    );
  }
  if (compareVersions(version.replace(/^go/, ""), MIN_GO_VERSION) < 0) {
    say(
      `${version} is older than ${MIN_GO_VERSION}: Go fetches go${MIN_GO_VERSION} from the proxy`,
    );
    env.GOTOOLCHAIN = `go${MIN_GO_VERSION}`;
  }
  return env;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  const pb = b.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}

/** The go.mod of the small module that builds a component: require it, plus its replaces. */
export function wrapperGoMod(component: GoComponent): string {
  const lines = [
    `module weir.local/build/${component.name}`,
    "",
    `go ${MIN_GO_VERSION}`,
    "",
    `require ${component.module} ${component.version}`,
  ];
  if (component.replaces?.length) {
    lines.push("", "replace (", ...component.replaces.map((r) => `\t${r}`), ")");
  }
  return `${lines.join("\n")}\n`;
}

async function buildGoComponent(component: GoComponent, env: NodeJS.ProcessEnv): Promise<void> {
  const dir = componentDir(component.name, component.version);
  const srcDir = join(cacheDir, "src", `${component.name}-${component.version}`);
  const log = buildLog(component.name);
  const names = Object.keys(component.binaries);
  await timed(`building ${component.name} ${component.version} (${names.join(", ")})`, async () => {
    mkdirSync(srcDir, { recursive: true });
    writeFileSync(join(srcDir, "go.mod"), wrapperGoMod(component));
    rmSync(dir, { recursive: true, force: true });
    const staging = `${dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(staging, "bin"), { recursive: true });
    const ldflags = ["-s", "-w", ...(component.ldflags ?? [])].join(" ");
    for (const [binary, pkg] of Object.entries(component.binaries)) {
      await run(
        "go",
        ["build", "-trimpath", "-ldflags", ldflags, "-o", join(staging, "bin", binary), pkg],
        { cwd: srcDir, env, logFile: log },
      );
    }
    writeFileSync(join(staging, COMPLETE_MARK), `${component.module} ${component.version}\n`);
    renameSync(staging, dir);
  });
}

/** The broker's classpath, resolved by Maven from Central: Kafka plus a log4j2 binding. */
export function kafkaPom(): string {
  const dependency = (groupId: string, artifactId: string, version: string) =>
    `    <dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${version}</version></dependency>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>weir.local</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
${dependency("org.apache.kafka", "kafka_2.13", KAFKA_VERSION)}
${dependency("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION)}
${dependency("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION)}
  </dependencies>
</project>
`;
}

async function fetchKafka(dir: string): Promise<void> {
  const srcDir = join(cacheDir, "src", `kafka-${KAFKA_VERSION}`);
  await timed(`fetching Kafka ${KAFKA_VERSION} from Maven Central`, async () => {
    mkdirSync(srcDir, { recursive: true });
    writeFileSync(join(srcDir, "pom.xml"), kafkaPom());
    const staging = `${dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    await run(
      "mvn",
      [
        "-B",
        "-q",
        `-Dmaven.repo.local=${join(cacheDir, "maven")}`,
        "dependency:copy-dependencies",
        `-DoutputDirectory=${join(staging, "libs")}`,
        "-DincludeScope=runtime",
      ],
      { cwd: srcDir, logFile: buildLog("kafka") },
    );
    const jars = readdirSync(join(staging, "libs"));
    if (!jars.some((jar) => jar.startsWith(`kafka_2.13-${KAFKA_VERSION}`))) {
      throw new Error(`Maven resolved no kafka_2.13-${KAFKA_VERSION} jar into ${staging}/libs`);
    }
    writeFileSync(join(staging, COMPLETE_MARK), `kafka ${KAFKA_VERSION}\n`);
    renameSync(staging, dir);
  });
}
