// `up`, `down` and `status` of the local cluster.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  addresses,
  type Component,
  type ComponentContext,
  componentsFor,
  KAFKA_USER,
  kubeconfigFor,
  NODE_NAME,
  portFree,
  STORAGE,
} from "./components.ts";
import { ensureHostTools } from "./host-tools.ts";
import { clusterDir, clusterPaths, logFile } from "./layout.ts";
import { KAFKA_CLIENT, Pki } from "./pki.ts";
import { isRunning, type ProcessRecord, readRecords, startProcess, stopAll } from "./processes.ts";
import { formatDuration, say, timed } from "./progress.ts";
import { type Binaries, ensureBinaries } from "./toolchain.ts";

const STARTUP_TIMEOUT_MS = 180_000;

export class ComponentFailed extends Error {
  constructor(component: string, reason: string) {
    super(`${component} ${reason}; its log: ${logFile(component)}`);
  }
}

interface ComponentState {
  name: string;
  address: string;
  running: boolean;
  healthy: boolean;
  pid?: number;
  log: string;
}

/** The cluster's node count, as the `up` that started (or extended) it recorded it. */
export function nodeCount(): number {
  if (!existsSync(clusterPaths.state)) return 1;
  const state = JSON.parse(readFileSync(clusterPaths.state, "utf8")) as { nodes?: number };
  return state.nodes ?? 1;
}

function recordNodeCount(nodes: number): void {
  writeFileSync(clusterPaths.state, `${JSON.stringify({ nodes })}\n`);
}

export async function status(nodes = nodeCount()): Promise<ComponentState[]> {
  const records = new Map(readRecords(clusterPaths.pids).map((r) => [r.name, r]));
  const pki = new Pki(clusterPaths.pki);
  return Promise.all(
    componentsFor(nodes).map(async (component) => {
      const record = records.get(component.name);
      const running = record !== undefined && isRunning(record);
      return {
        name: component.name,
        address: component.address,
        running,
        healthy: running && (await component.healthy({ pki })),
        pid: running ? record?.pid : undefined,
        log: logFile(component.name),
      };
    }),
  );
}

export function printStatus(states: ComponentState[]): void {
  const rows = states.map((s) => [
    s.name,
    s.healthy ? "healthy" : s.running ? "unhealthy" : "stopped",
    s.address,
    s.pid === undefined ? "-" : String(s.pid),
    s.log,
  ]);
  const header = ["COMPONENT", "STATE", "ADDRESS", "PID", "LOG"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  for (const row of [header, ...rows]) {
    process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ")}\n`);
  }
}

/**
 * Brings every component up, healthy, and writes `.cluster/env`; a no-op when already up. A
 * healthy cluster that lacks components added since it started (never started, no pid file)
 * gets just those, so adding one never restarts the others under running tests.
 * `nodes` process kubelets (default 1); a running cluster with fewer gets the rest the same way,
 * one with more keeps them.
 * `started`: everything is new (and `npm test` takes it down again); `extended`: components
 * were added to a running cluster; `unchanged`.
 */
export async function up(
  options: { nodes?: number } = {},
): Promise<"started" | "extended" | "unchanged"> {
  const started = Date.now();
  const nodes = Math.max(options.nodes ?? 1, existsSync(clusterPaths.env) ? nodeCount() : 1);
  const components = componentsFor(nodes);
  const current = await status(nodes);
  if (current.every((s) => s.healthy) && existsSync(clusterPaths.env)) {
    say(`already up (source ${clusterPaths.env}); nothing changed`);
    printStatus(current);
    return "unchanged";
  }
  const added = addedComponents(current);
  if (added.length > 0) {
    const ctx: ComponentContext = { bin: await ensureBinaries(), pki: new Pki(clusterPaths.pki) };
    say(`adding ${added.join(", ")} to the running cluster`);
    await startInOrder(ctx, components, new Set(added));
    recordNodeCount(nodes);
    writeEnvFile(ctx.bin);
    printStatus(await status(nodes));
    return "extended";
  }
  if (readRecords(clusterPaths.pids).some(isRunning)) {
    say("a partly running cluster was left behind: stopping it before starting afresh");
    await down({ quiet: true });
  }

  await ensureHostTools();
  const ctx: ComponentContext = { bin: await ensureBinaries(), pki: new Pki(clusterPaths.pki) };
  resetClusterDir();
  await timed("creating certificates and kubeconfigs", async () => {
    await ctx.pki.create(NODE_NAME);
    mkdirSync(clusterPaths.config, { recursive: true });
    ctx.pki.writeKubeconfig(clusterPaths.adminKubeconfig, "admin", addresses.apiServer);
    for (const identity of ["kube-controller-manager", "kube-scheduler", "kubelet"]) {
      ctx.pki.writeKubeconfig(kubeconfigFor(identity), identity, addresses.apiServer);
    }
  });

  try {
    recordNodeCount(nodes);
    await startInOrder(ctx, components);
  } catch (error) {
    say("start-up failed: stopping everything this `up` started");
    await down({ quiet: true });
    throw error;
  }
  writeEnvFile(ctx.bin);
  say(`up in ${formatDuration(Date.now() - started)}; use it with: source ${clusterPaths.env}`);
  printStatus(await status(nodes));
  return "started";
}

/**
 * Components a healthy running cluster never started (added to the components since, or nodes
 * asked for by `up --nodes`): every other
 * one running and healthy, and its CA and env file in place. Empty otherwise (a crashed
 * component has a pid file: that cluster starts afresh).
 */
function addedComponents(current: ComponentState[]): string[] {
  const recorded = new Set(readRecords(clusterPaths.pids).map((r) => r.name));
  const missing = current.filter((s) => !s.running && !recorded.has(s.name));
  const others = current.filter((s) => !missing.includes(s));
  const intact =
    others.length > 0 &&
    others.every((s) => s.healthy) &&
    existsSync(clusterPaths.env) &&
    existsSync(new Pki(clusterPaths.pki).path("ca.crt"));
  return intact ? missing.map((s) => s.name) : [];
}

/** Clears what a previous cluster left (its data, certificates, configs), keeping logs. */
function resetClusterDir(): void {
  for (const dir of [clusterPaths.data, clusterPaths.pki, clusterPaths.config, clusterPaths.pids]) {
    rmSync(dir, { recursive: true, force: true });
  }
  rmSync(clusterPaths.env, { force: true });
  rmSync(clusterPaths.state, { force: true });
  rmSync(clusterPaths.logs, { recursive: true, force: true });
  mkdirSync(clusterPaths.logs, { recursive: true });
  mkdirSync(clusterPaths.data, { recursive: true });
}

/**
 * Starts each component once what it needs is healthy; independent ones start together. With
 * `only`, just those start (the others are up already).
 */
async function startInOrder(
  ctx: ComponentContext,
  components: Component[],
  only?: Set<string>,
): Promise<void> {
  const done = new Map<string, Promise<void>>();
  const bringUp = async (component: Component): Promise<void> => {
    await Promise.all(component.after.map((name) => done.get(name)));
    if (only && !only.has(component.name)) return;
    for (const port of component.ports) {
      if (!(await portFree(port))) {
        throw new ComponentFailed(component.name, `cannot start: port ${port} is already in use`);
      }
    }
    await component.prepare?.(ctx);
    const launch = component.launch(ctx);
    const record = startProcess({
      name: component.name,
      command: launch.command,
      args: launch.args,
      env: launch.env,
      logFile: logFile(component.name),
      pidDir: clusterPaths.pids,
    });
    await waitHealthy(component, record, ctx);
    await component.initialize?.(ctx);
    say(`${component.name} healthy at ${component.address}`);
  };
  for (const component of components) done.set(component.name, bringUp(component));
  const results = await Promise.allSettled(done.values());
  const failure = results.find((r) => r.status === "rejected");
  if (failure) throw failure.reason;
}

async function waitHealthy(
  component: Component,
  record: ProcessRecord,
  ctx: ComponentContext,
): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isRunning(record)) throw new ComponentFailed(component.name, "exited during start-up");
    if (await component.healthy(ctx)) return;
    await sleep(250);
  }
  throw new ComponentFailed(
    component.name,
    `was not healthy within ${formatDuration(STARTUP_TIMEOUT_MS)}`,
  );
}

export function envFileContents(bin: Binaries): string {
  const pathAdditions = [...new Set([dirname(bin.kubectl), dirname(bin.helm)])].join(":");
  const vars: Record<string, string> = {
    KUBECONFIG: clusterPaths.adminKubeconfig,
    KAFKA_BOOTSTRAP: addresses.kafkaBootstrap,
    KAFKA_SASL_BOOTSTRAP: addresses.kafkaSaslBootstrap,
    KAFKA_SASL_USERNAME: KAFKA_USER.username,
    KAFKA_SASL_PASSWORD: KAFKA_USER.password,
    KAFKA_CA_FILE: new Pki(clusterPaths.pki).path("kafka-ca.crt"),
    // The mTLS (SSL) listener: the same CA, and a client certificate it signed.
    KAFKA_MTLS_BOOTSTRAP: addresses.kafkaMtlsBootstrap,
    KAFKA_CLIENT_CERT_FILE: new Pki(clusterPaths.pki).path(`${KAFKA_CLIENT.name}.crt`),
    KAFKA_CLIENT_KEY_FILE: new Pki(clusterPaths.pki).path(`${KAFKA_CLIENT.name}.key`),
    S3_ENDPOINT: addresses.s3Endpoint,
    S3_ACCESS_KEY: STORAGE.accessKey,
    S3_SECRET_KEY: STORAGE.secretKey,
    S3_BUCKET: STORAGE.bucket,
    S3_REGION: STORAGE.region,
    S3_TLS_ENDPOINT: addresses.s3TlsEndpoint,
    S3_CA_FILE: new Pki(clusterPaths.pki).path("ca.crt"),
    WEIR_CLUSTER_BIN: pathAdditions,
  };
  const lines = Object.entries(vars).map(([key, value]) => `export ${key}='${value}'`);
  lines.push(`export PATH="${pathAdditions}:$PATH"`);
  return `# Written by \`npm run cluster -- up\`; source it to use the local cluster.\n${lines.join("\n")}\n`;
}

function writeEnvFile(bin: Binaries): void {
  writeFileSync(clusterPaths.env, envFileContents(bin));
}

/** Stops every process any `up` started (also after `up` itself crashed) and removes its files. */
export async function down(options: { quiet?: boolean } = {}): Promise<void> {
  const records = readRecords(clusterPaths.pids);
  // A test's extra nodes first (left behind if it crashed), then the cluster's own.
  const survivors = [
    ...(await stopAll(clusterPaths.testNodePids)),
    ...(await stopAll(clusterPaths.pids)),
  ];
  if (survivors.length > 0) {
    throw new Error(
      `could not stop: ${survivors.map((r) => `${r.name} (pid ${r.pid})`).join(", ")}`,
    );
  }
  for (const dir of [clusterPaths.data, clusterPaths.pki, clusterPaths.config]) {
    rmSync(dir, { recursive: true, force: true });
  }
  rmSync(clusterPaths.env, { force: true });
  rmSync(clusterPaths.state, { force: true });
  if (!options.quiet) {
    say(
      records.length > 0
        ? `stopped ${records.map((r) => r.name).join(", ")}; logs kept in ${clusterPaths.logs}`
        : `nothing was running (${clusterDir})`,
    );
  }
}

/** The environment `.cluster/env` sets, for tests and scripts in Node. */
export function readEnvFile(file = clusterPaths.env): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match = /^export ([A-Z0-9_]+)='(.*)'$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) vars[match[1]] = match[2];
  }
  return vars;
}
