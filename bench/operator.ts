// `npm run bench -- operator`: the operator at 1,000 StreamJobs (issue 18).
//
// A real operator process (OperatorTestbed with process operators: `node operator/src/main.ts`
// on this machine, its own namespace, config/rbac's least-privilege ServiceAccount, a Lease of
// its own) against the local cluster's API server. The fleet grows 0 → 100 → 500 → 1,000 jobs:
// most suspended (no pods), `--running=N` (default 10) word-count jobs at parallelism 1 on
// topics of their own. At each size, once every job is settled (status.observedGeneration is
// its generation and it is Suspended, or Running for the running ones):
// - the process's RSS at rest (/proc/<pid>/status VmRSS, and VmHWM: its peak so far);
// - one job's reconcile latency: a suspended probe job's spec changed (readinessTimeout, which
//   no pod carries) → its status.observedGeneration says so, five times.
// At 1,000: the API requests per second at rest over 60 s (the operator's own
// weir_operator_api_requests_total, by verb and resource); then
// - a restart (SIGTERM, a new process): start → caches synced (/readyz) → every job reconciled
//   by the new process (its reconciles_total reaches the job count with its work queue empty:
//   on leading it queues every job once, in order);
// - a restart with every job's spec changed while no operator ran: start → every job's
//   status.observedGeneration current, which only the new process can have written;
// - leader hand-over: a stand-by replica (caches warm), the leader SIGKILLed → the stand-by
//   leads (the Lease expires: 15 s) → it has reconciled every job.
// Figures against the targets are printed; missed targets are printed, not failed.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { StreamJob } from "../operator/src/api/types.ts";
import { adminKubeConfig, clusterEnv, s3Client } from "../test-e2e/support/cluster.ts";
import {
  type Operator,
  type OperatorProcess,
  OperatorTestbed,
} from "../test-e2e/support/operator.ts";
import { eventually } from "../test-e2e/support/wait.ts";
import {
  type Figures,
  fleetTable,
  meanReconcileSeconds,
  reconciledAll,
  requestRates,
  targetTable,
  vmMb,
} from "./operator/figures.ts";

const SIZES = [0, 100, 500, 1_000];
const LATENCY_TRIES = 5;
const REST_SECONDS = 60;
/** Requests the benchmark itself sends at once (creates, patches). */
const CONCURRENCY = 16;
const STREAMJOBS = { group: "weir.dev", version: "v1alpha1", plural: "streamjobs" } as const;
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

const flag = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

const log = (message: string) =>
  process.stderr.write(`[bench] ${new Date().toISOString().slice(11, 19)} ${message}\n`);

export async function operatorBenchmark(): Promise<boolean> {
  const running = Number(flag("running") ?? 10);
  const sizes = (flag("sizes") ?? SIZES.join(",")).split(",").map(Number);
  const bed = new OperatorTestbed("bench-operator", { operators: "process" });
  const custom = adminKubeConfig().makeApiClient(CustomObjectsApi);
  const operators: Operator[] = [];
  const figures: Figures = { fleets: [] };
  const started = Date.now();
  log(`load: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
  try {
    await bed.setUp();
    if (bed.operator) operators.push(bed.operator);
    let operator = bed.operator as OperatorProcess;
    const ns = bed.namespace;
    // From the API server's watch cache (resourceVersion 0): a quorum read of 1,000 objects
    // every poll would load etcd on the machine the operator shares.
    const list = async () =>
      (
        (await custom.listNamespacedCustomObject({
          ...STREAMJOBS,
          namespace: ns,
          resourceVersion: "0",
        })) as { items: StreamJob[] }
      ).items;

    // The probe: a suspended job whose spec changes, not counted in the fleet.
    await custom.createNamespacedCustomObject({
      ...STREAMJOBS,
      namespace: ns,
      body: suspendedJob(bed, "probe"),
    });
    let created = 0;
    let timeout = 60;
    for (const size of sizes) {
      const first = created;
      const manifests: object[] = [];
      for (let i = first; i < size; i++) {
        if (i < running) {
          const job = await bed.wordCountJob(
            `run-${i}`,
            { parallelism: 1, checkpoints: { interval: "10s" } },
            { partitions: 1 },
          );
          manifests.push(job.manifest);
        } else manifests.push(suspendedJob(bed, `job-${i}`));
      }
      const t0 = Date.now();
      await inParallel(manifests, (body) =>
        custom.createNamespacedCustomObject({ ...STREAMJOBS, namespace: ns, body }),
      );
      created = size;
      log(`${size} jobs: ${size - first} created in ${secondsSince(t0)}`);
      await settled(list, size + 1, 180_000);
      log(`${size} jobs: settled ${secondsSince(t0)} after the first create`);
      await sleep(5_000);
      const rss = memory(operator);
      const latenciesMs: number[] = [];
      for (let k = 0; k < LATENCY_TRIES; k++) {
        latenciesMs.push(await latency(custom, ns, `${timeout++}s`));
        await sleep(500);
      }
      figures.fleets.push({ jobs: size, rssMb: rss.rss, peakMb: rss.peak, latenciesMs });
      log(`${size} jobs: RSS ${rss.rss?.toFixed(0)} MB, latencies ${latenciesMs.join(", ")} ms`);
    }
    const jobs = created + 1;

    // At rest: requests per second over a minute.
    const before = await operator.metrics();
    await sleep(REST_SECONDS * 1_000);
    const after = await operator.metrics();
    figures.rest = { seconds: REST_SECONDS, ...requestRates(before, after, REST_SECONDS) };
    const mean = meanReconcileSeconds(before, after);
    log(
      `at rest: ${figures.rest.total.toFixed(1)} requests/s; mean reconcile ${mean === undefined ? "-" : `${(mean * 1000).toFixed(0)} ms`}`,
    );

    // A restart: a new process, the same Lease (released by the SIGTERM).
    await operator.stop();
    let t0 = Date.now();
    operator = (await bed.startOperator("operator-b")) as OperatorProcess;
    operators.push(operator);
    bed.operator = operator;
    const syncedS = (Date.now() - t0) / 1000;
    await reconciled(operator, jobs, 180_000);
    const reconciledS = (Date.now() - t0) / 1000;
    await sleep(5_000);
    figures.restart = { syncedS, reconciledS, rssMb: memory(operator).rss };
    log(`restart: synced ${syncedS.toFixed(1)} s, all reconciled ${reconciledS.toFixed(1)} s`);

    // A restart after every spec changed while no operator ran.
    await operator.stop();
    const all = (await list()).map((job) => job.metadata.name ?? "");
    const t1 = Date.now();
    await inParallel(all, (name) =>
      custom.patchNamespacedCustomObject(
        { ...STREAMJOBS, namespace: ns, name, body: { spec: { readinessTimeout: "3599s" } } },
        mergePatch,
      ),
    );
    log(`${all.length} specs changed in ${secondsSince(t1)} with no operator running`);
    t0 = Date.now();
    operator = (await bed.startOperator("operator-c")) as OperatorProcess;
    operators.push(operator);
    bed.operator = operator;
    const changedSyncedS = (Date.now() - t0) / 1000;
    await poll(
      "every job's status to be of its generation",
      async () => ((await list()).every(current) ? true : undefined),
      240_000,
    );
    const statusesS = (Date.now() - t0) / 1000;
    figures.restartChanged = { syncedS: changedSyncedS, statusesS };
    log(
      `restart after changes: synced ${changedSyncedS.toFixed(1)} s, statuses ${statusesS.toFixed(1)} s`,
    );

    // Hand-over: a stand-by with warm caches; the leader killed.
    const standby = (await bed.startOperator("operator-d")) as OperatorProcess;
    operators.push(standby);
    await sleep(3_000);
    const standbyRssMb = memory(standby).rss;
    await operator.kill();
    t0 = Date.now();
    bed.operator = standby;
    await eventually(
      "the stand-by to lead",
      async () =>
        (await standby.logs()).some((line) => line.msg === "leading: reconciling")
          ? true
          : undefined,
      60_000,
    );
    const leadingS = (Date.now() - t0) / 1000;
    await reconciled(standby, jobs, 180_000);
    figures.handover = { leadingS, reconciledS: (Date.now() - t0) / 1000, standbyRssMb };
    log(
      `hand-over: leading ${leadingS.toFixed(1)} s, all reconciled ${figures.handover.reconciledS.toFixed(1)} s`,
    );
  } finally {
    await removeJobs(bed, custom).catch((error: unknown) => log(`cleanup: ${String(error)}`));
    for (const op of operators) if (op !== bed.operator) await op.kill().catch(() => {});
    await bed.tearDown();
    await removeSnapshots(bed.namespace).catch(() => {});
  }
  report(figures, running, started);
  return true;
}

function suspendedJob(bed: OperatorTestbed, name: string): object {
  const env = clusterEnv();
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name, namespace: bed.namespace },
    spec: {
      image: "weir/runtime:dev",
      state: "suspended",
      job: {
        entry: "/app/runtime/examples/word-count.ts",
        config: { name: `${bed.namespace}-${name}`, input: `${name}-in`, output: `${name}-out` },
      },
      kafka: { bootstrapServers: [env.kafkaBootstrap] },
      parallelism: 1,
      savepoints: {
        storage: {
          endpoint: env.s3Endpoint,
          bucket: env.s3Bucket,
          prefix: "operator-tests",
          credentialsSecret: "weir-storage",
        },
      },
    },
  };
}

/** The operator's status is of the job's current spec. */
const current = (job: StreamJob) =>
  job.status?.observedGeneration !== undefined &&
  job.status.observedGeneration === job.metadata.generation;

/** Every job's status is current and it is at rest (Suspended, or Running with no operation). */
async function settled(list: () => Promise<StreamJob[]>, jobs: number, timeoutMs: number) {
  await poll(
    `${jobs} jobs to settle`,
    async () => {
      const items = await list();
      const atRest = items.filter(
        (job) =>
          current(job) &&
          !job.status?.upgrade &&
          (job.status?.state === "Suspended" || job.status?.state === "Running"),
      );
      return items.length >= jobs && atRest.length === items.length ? true : undefined;
    },
    timeoutMs,
  );
}

async function reconciled(operator: Operator, jobs: number, timeoutMs: number) {
  await eventually(
    `operator ${operator.identity} to reconcile ${jobs} jobs`,
    async () => (reconciledAll(await operator.metrics(), jobs) ? true : undefined),
    timeoutMs,
  );
}

/** `eventually`, every 500 ms: each look lists every job. */
async function poll(what: string, check: () => Promise<true | undefined>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while ((await check()) === undefined) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(500);
  }
}

/** The probe's spec changed → its status says the operator saw it (ms). */
async function latency(custom: CustomObjectsApi, namespace: string, readinessTimeout: string) {
  const t0 = performance.now();
  const patched = (await custom.patchNamespacedCustomObject(
    { ...STREAMJOBS, namespace, name: "probe", body: { spec: { readinessTimeout } } },
    mergePatch,
  )) as StreamJob;
  const generation = patched.metadata.generation ?? 0;
  for (;;) {
    const job = (await custom.getNamespacedCustomObject({
      ...STREAMJOBS,
      namespace,
      name: "probe",
    })) as StreamJob;
    if ((job.status?.observedGeneration ?? 0) >= generation)
      return Math.round(performance.now() - t0);
    if (performance.now() - t0 > 60_000) throw new Error("the probe's status never caught up");
    await sleep(20);
  }
}

function memory(operator: OperatorProcess): { rss?: number; peak?: number } {
  const status = readFileSync(`/proc/${operator.process.pid}/status`, "utf8");
  const rss = vmMb(status, "VmRSS");
  const peak = vmMb(status, "VmHWM");
  return { ...(rss === undefined ? {} : { rss }), ...(peak === undefined ? {} : { peak }) };
}

async function inParallel<T>(items: readonly T[], each: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await each(item);
      }
    }),
  );
}

/**
 * Deletes every StreamJob. The running ones go through the operator (it deletes their pods,
 * then their finalizer); the suspended ones own nothing (no pods, ConfigMaps or Secrets: they
 * never ran), so their finalizers are removed by hand rather than waiting for 1,000 reconciles,
 * and the namespace takes the rest.
 */
async function removeJobs(bed: OperatorTestbed, custom: CustomObjectsApi) {
  const namespace = bed.namespace;
  const t0 = Date.now();
  const list = async () =>
    (
      (await custom.listNamespacedCustomObject({ ...STREAMJOBS, namespace })) as {
        items: StreamJob[];
      }
    ).items;
  const dropFinalizers = (jobs: StreamJob[]) =>
    inParallel(jobs, (job) =>
      custom
        .patchNamespacedCustomObject(
          {
            ...STREAMJOBS,
            namespace,
            name: job.metadata.name ?? "",
            body: { metadata: { finalizers: null } },
          },
          mergePatch,
        )
        .catch(() => {}),
    );
  await custom.deleteCollectionNamespacedCustomObject({ ...STREAMJOBS, namespace });
  await dropFinalizers((await list()).filter((job) => !job.metadata.name?.startsWith("run-")));
  try {
    await poll(
      "every StreamJob to be gone",
      async () => ((await list()).length === 0 ? true : undefined),
      120_000,
    );
    log(`cleanup: every job deleted in ${secondsSince(t0)}`);
  } catch {
    const left = await list();
    log(`cleanup: ${left.length} jobs left; removing their finalizers`);
    await dropFinalizers(left);
  }
}

/** Checkpoints the running jobs wrote (OperatorTestbed's jobs keep them under operator-tests). */
async function removeSnapshots(namespace: string): Promise<void> {
  const client = s3Client();
  const bucket = clusterEnv().s3Bucket;
  const keys: string[] = [];
  for await (const item of client.listObjectsV2(bucket, `operator-tests/${namespace}/`, true))
    if (item.name) keys.push(item.name);
  for (let i = 0; i < keys.length; i += 1_000)
    await client.removeObjects(bucket, keys.slice(i, i + 1_000)).catch(() => {});
}

const secondsSince = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

function report(figures: Figures, running: number, started: number) {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  out(
    `\noperator at scale: suspended StreamJobs plus ${running} running word-count jobs (parallelism 1), and a suspended probe; load ${readFileSync("/proc/loadavg", "utf8").trim()}; ${secondsSince(started)} in all\n`,
  );
  out(fleetTable(figures.fleets));
  out(targetTable(figures));
  if (figures.restart)
    out(`restart: caches synced (/readyz) ${figures.restart.syncedS.toFixed(1)} s after the start`);
  if (figures.restartChanged)
    out(
      `restart after every spec changed: caches synced ${figures.restartChanged.syncedS.toFixed(1)} s, statuses current ${figures.restartChanged.statusesS.toFixed(1)} s`,
    );
  if (figures.handover?.standbyRssMb !== undefined)
    out(`stand-by replica RSS (caches warm): ${figures.handover.standbyRssMb.toFixed(0)} MB`);
  if (figures.rest) {
    out(`\nAPI requests at rest over ${figures.rest.seconds} s, per second:`);
    for (const [kind, rate] of figures.rest.byKind) out(`  ${kind.padEnd(32)} ${rate.toFixed(2)}`);
  }
}
