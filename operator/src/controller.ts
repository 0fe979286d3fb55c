// The StreamJob controller: informers on StreamJobs and their pods feed a work queue of job
// keys; one reconcile of a key is observe → decide → act. Pods are read from the informer's
// cache; the StreamJob itself is read fresh each time, so a status write never rests on a stale
// copy, and a 409 is retried from a fresh read.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { applyDecision, type Write } from "./act/apply-decision.ts";
import { ControlTokens } from "./act/control-tokens.ts";
import {
  GROUP,
  STREAMJOB_PLURAL,
  STREAMSAVEPOINT_PLURAL,
  type StreamJob,
  type StreamSavepoint,
  VERSION,
} from "./api/types.ts";
import { validateStreamJob } from "./api/validate.ts";
import { DEFAULT_JOB_RESOURCES, type JobPodDefaults } from "./build/job-pod-defaults.ts";
import { LABEL_JOB } from "./build/names.ts";
import type { PodSecurityLevel } from "./build/pod-security.ts";
import { type Decision, decide, type EventSpec, type Measurements } from "./decide/reconcile.ts";
import type { RunSpec } from "./decide/run-spec.ts";
import { operatorChecks } from "./decide/spec-checks.ts";
import {
  apiStatusOf,
  objectKey,
  type ResourceType,
  splitKey,
  statusCodeOf,
} from "./machinery/api.ts";
import { retryOnConflict } from "./machinery/conflict.ts";
import { EventRecorder } from "./machinery/events.ts";
import { Informer } from "./machinery/informer.ts";
import { workQueueHooks } from "./machinery/metrics.ts";
import { WorkQueue, type WorkResult } from "./machinery/work-queue.ts";
import { BackgroundObservations } from "./observe/background.ts";
import { JobMetricsWindows } from "./observe/job-metrics.ts";
import { drainingNodes, isDraining, nodesToMoveTo } from "./observe/nodes.ts";
import { JobStorage, type ObserveContext, observeJob } from "./observe/observe-job.ts";

const STREAMJOB_TYPE: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: STREAMJOB_PLURAL,
  kind: "StreamJob",
};
const POD_TYPE: ResourceType = { group: "", version: "v1", plural: "pods", kind: "Pod" };
const NODE_TYPE: ResourceType = { group: "", version: "v1", plural: "nodes", kind: "Node" };
const STREAMSAVEPOINT_TYPE: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: STREAMSAVEPOINT_PLURAL,
  kind: "StreamSavepoint",
};

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Namespaces to watch; undefined = all. */
  namespaces: string[] | undefined;
  registry: Registry;
  log: Logger;
  /** Asked before every write: false once this replica may no longer act (see ActClients). */
  mayWrite?: () => boolean;
  /** Called after every write (the test-only crash hooks). */
  wrote?: (write: Write) => void;
  /** Test-only: pod watch events reach the cache this much later (a lagging watch cache). */
  podWatchDelayMs?: number;
  /** Reconciles in parallel (never two of one job). */
  concurrency?: number;
  /** What job pods may ask for, whatever their template says (default: restricted). */
  podSecurity?: PodSecurityLevel;
  /** What job pods get where their StreamJob names nothing (default: DEFAULT_JOB_RESOURCES). */
  jobPodDefaults?: JobPodDefaults;
}

export class StreamJobController {
  readonly #options: ControllerOptions;
  readonly #jobs: Informer<StreamJob>[];
  readonly #pods: Informer<V1Pod>[];
  readonly #savepoints: Informer<StreamSavepoint>[];
  /** Every Node (cluster-scoped, whichever namespaces are watched): which are being drained. */
  readonly #nodes: Informer<V1Node>;
  readonly #queue: WorkQueue;
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #objects: KubernetesObjectApi;
  readonly #events: EventRecorder;
  readonly #tokens: ControlTokens;
  readonly #observations: BackgroundObservations;
  readonly #observe: ObserveContext;
  readonly #reconciles: Counter<"result">;
  readonly #duration: Histogram;
  readonly #measure: (measurements: Measurements) => void;
  #leading = false;

  constructor(options: ControllerOptions) {
    this.#options = options;
    const { kubeConfig, registry } = options;
    this.#custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#tokens = new ControlTokens(this.#core);
    this.#objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.#events = new EventRecorder(kubeConfig, {
      component: "weir-operator",
      logger: options.log,
    });
    const scopes = options.namespaces ?? [undefined];
    const logger = options.log;
    this.#jobs = scopes.map(
      (namespace) => new Informer<StreamJob>(kubeConfig, STREAMJOB_TYPE, { namespace, logger }),
    );
    // Only the pods of jobs: the selector "weir.dev/job" matches any value of the label.
    this.#pods = scopes.map(
      (namespace) =>
        new Informer<V1Pod>(kubeConfig, POD_TYPE, {
          namespace,
          labelSelector: LABEL_JOB,
          logger,
          ...(options.podWatchDelayMs ? { delayEventsMs: options.podWatchDelayMs } : {}),
        }),
    );
    this.#savepoints = scopes.map(
      (namespace) =>
        new Informer<StreamSavepoint>(kubeConfig, STREAMSAVEPOINT_TYPE, { namespace, logger }),
    );
    this.#nodes = new Informer<V1Node>(kubeConfig, NODE_TYPE, { logger });
    this.#queue = new WorkQueue((key) => this.#reconcile(key), {
      concurrency: options.concurrency ?? 4,
      hooks: [workQueueHooks(registry, "streamjobs")],
    });
    // Only the leader reconciles; a stand-by replica keeps its caches warm.
    const enqueue = (key: string) => {
      if (this.#leading) this.#queue.add(key);
    };
    // What pods and logs answer comes in the background; each answer is looked at at once.
    this.#observations = new BackgroundObservations(enqueue);
    const metricsWindows = new JobMetricsWindows(this.#observations);
    this.#observe = {
      observations: this.#observations,
      metrics: metricsWindows,
      kubeConfig,
      core: this.#core,
      tokens: this.#tokens,
    };
    for (const informer of this.#jobs) {
      informer.on("add", (job) => enqueue(objectKey(job)));
      informer.on("update", (job) => enqueue(objectKey(job)));
      informer.on("delete", (job) => {
        this.#observations.forget(objectKey(job));
        metricsWindows.forget(job);
        this.#tokens.forget(job);
        enqueue(objectKey(job));
      });
    }
    const enqueueOwner = (pod: V1Pod) => {
      const job = pod.metadata?.labels?.[LABEL_JOB];
      if (job) enqueue(`${pod.metadata?.namespace}/${job}`);
    };
    const enqueueSavepointJob = (savepoint: StreamSavepoint) =>
      enqueue(`${savepoint.metadata.namespace}/${savepoint.spec.jobName}`);
    for (const informer of this.#savepoints) {
      informer.on("add", enqueueSavepointJob);
      informer.on("update", enqueueSavepointJob);
    }
    for (const informer of this.#pods) {
      informer.on("add", enqueueOwner);
      informer.on("update", enqueueOwner);
      informer.on("delete", enqueueOwner);
    }
    // A node cordoned (or uncordoned): the jobs with pods on it look again.
    this.#nodes.on("update", (node, old) => {
      if (isDraining(node) === isDraining(old)) return;
      for (const pod of this.#pods.flatMap((informer) => informer.list()))
        if (pod.spec?.nodeName === node.metadata?.name) enqueueOwner(pod);
    });

    this.#reconciles = new Counter({
      name: "weir_operator_reconciles_total",
      help: "StreamJob reconciles by result (success, conflict, error)",
      labelNames: ["result"],
      registers: [registry],
    });
    this.#duration = new Histogram({
      name: "weir_operator_reconcile_duration_seconds",
      help: "Time one StreamJob reconcile took",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.#measure = operationMetrics(registry);
    jobMetrics(registry, () => this.#jobs.flatMap((informer) => informer.list()));
  }

  /** Fills the caches; reconciling starts with `run`, once this replica leads. */
  async start(): Promise<void> {
    const informers = this.#informers();
    for (const informer of informers) informer.start();
    await Promise.all(informers.map((informer) => informer.synced));
  }

  /** Reconciles every known job, and from then on whatever changes. */
  run(): void {
    this.#leading = true;
    for (const informer of this.#jobs)
      for (const job of informer.list()) this.#queue.add(objectKey(job));
  }

  synced(): boolean {
    return this.#informers().every((informer) => informer.hasSynced());
  }

  async stop(): Promise<void> {
    await this.#queue.shutdown();
    await Promise.all(this.#informers().map((informer) => informer.stop()));
  }

  #informers(): Pick<Informer<KubernetesObject>, "start" | "stop" | "hasSynced" | "synced">[] {
    return [...this.#jobs, ...this.#pods, ...this.#savepoints, this.#nodes];
  }

  async #reconcile(key: string): Promise<WorkResult> {
    const { namespace = "", name } = splitKey(key);
    const log = this.#options.log.child({ namespace, job: name });
    const stopTimer = this.#duration.startTimer();
    try {
      const result = await retryOnConflict(
        () => this.#read(namespace, name),
        (job) => (job ? this.#reconcileJob(job, log) : Promise.resolve(undefined)),
      );
      this.#reconciles.inc({ result: "success" });
      return result;
    } catch (error) {
      this.#reconciles.inc({ result: statusCodeOf(error) === 409 ? "conflict" : "error" });
      log.error({ err: describeError(error) }, "reconcile failed; retrying with back-off");
      throw error;
    } finally {
      stopTimer();
    }
  }

  async #read(namespace: string, name: string): Promise<StreamJob | undefined> {
    try {
      return (await this.#custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: STREAMJOB_PLURAL,
        namespace,
        name,
      })) as StreamJob;
    } catch (error) {
      // Gone: its pods and ConfigMaps go with it (owner references).
      if (statusCodeOf(error) === 404) return undefined;
      throw error;
    }
  }

  async #reconcileJob(job: StreamJob, baseLog: Logger): Promise<WorkResult> {
    const checked = validateStreamJob(job);
    const defaulted = checked.ok ? checked.job : job;
    const specErrors = checked.ok ? operatorChecks(defaulted) : checked.errors;
    const storage = new JobStorage(withRunStorage(defaulted), this.#core);
    const inputs = {
      job: defaulted,
      specErrors,
      pods: this.#pods.flatMap((informer) => informer.list()),
      savepoints: this.#savepoints.flatMap((informer) => informer.list()),
      drainingNodes: drainingNodes(this.#nodes.list()),
      nodesToMoveTo: nodesToMoveTo(this.#nodes.list()),
    };
    let observed = await observeJob(inputs, storage, this.#observe);
    let decision = decide(observed);
    if (startsRun(decision, defaulted)) {
      // Two runs never process at once, and the cache may not have seen pods created a moment
      // ago: a new run starts only when the API server itself (a quorum read) lists no pod.
      const live = await this.#core.listNamespacedPod({
        namespace: defaulted.metadata.namespace ?? "",
        labelSelector: `${LABEL_JOB}=${defaulted.metadata.name}`,
      });
      if (live.items.length > 0) {
        baseLog.info(
          { pods: live.items.length },
          "the cache lags: deciding on the pods listed live",
        );
        observed = await observeJob({ ...inputs, pods: live.items }, storage, this.#observe);
        decision = decide(observed);
      }
    }
    // Storage is checked only when the decision is about to take a savepoint: a bucket that
    // is gone or credentials that are refused must stop it before any pod is asked.
    const savepointing = decision.actions.some(
      (a) => a.kind === "triggerSavepoint" || a.kind === "completeSavepoint",
    );
    if (savepointing && !observed.storageError) {
      const problem = await storage.problem();
      if (problem) decision = decide({ ...observed, storageError: problem });
    }
    const clients = {
      core: this.#core,
      custom: this.#custom,
      objects: this.#objects,
      storage,
      tokens: this.#tokens,
      podSecurity: this.#options.podSecurity ?? "restricted",
      jobPodDefaults: this.#options.jobPodDefaults ?? { resources: DEFAULT_JOB_RESOURCES },
      ...(this.#options.mayWrite ? { mayWrite: this.#options.mayWrite } : {}),
      ...(this.#options.wrote ? { wrote: this.#options.wrote } : {}),
      event: (target: StreamJob, event: EventSpec) =>
        this.#events.record(target, event.type, event.reason, event.message),
    };
    const acted = await applyDecision(job, decision, clients);
    const log = baseLog.child({ run: decision.status.run?.id });
    for (const event of decision.events) log.info({ reason: event.reason }, event.message);
    this.#measure(decision.measurements);
    if (acted.refused) {
      // The API server said no to a run's object: decided on now, in its words (Degraded, a
      // rollback), rather than at the next look.
      log.warn({ refused: acted.refused }, "the API server refused an object of the run");
      decision = decide({
        ...observed,
        job: { ...defaulted, metadata: acted.job.metadata, status: acted.job.status },
        refusal: acted.refused,
      });
      await applyDecision(acted.job, decision, clients);
      for (const event of decision.events) log.info({ reason: event.reason }, event.message);
      this.#measure(decision.measurements);
    }
    if (decision.status.state !== job.status?.state)
      log.info({ from: job.status?.state, to: decision.status.state }, "state changed");
    return { requeueAfter: decision.requeueAfterMs };
  }
}

/** Whether the decision starts a new run (it then removes every other run's ConfigMap). */
/** Whether the decision starts a run: the run it records is not the one the job had. */
function startsRun(decision: Decision, job: StreamJob): boolean {
  const next = decision.status.run?.id;
  return next !== undefined && next !== job.status?.run?.id;
}

/**
 * The job as its storage is to be used: the running run's savepoints and checkpoints are where
 * that run writes them, even while a changed spec (another bucket or prefix) waits to be run.
 */
function withRunStorage(job: StreamJob): StreamJob {
  const storage = (job.status?.run?.spec as RunSpec | undefined)?.storage;
  const savepoints = job.spec.savepoints;
  if (!storage || !savepoints) return job;
  return { ...job, spec: { ...job.spec, savepoints: { ...savepoints, storage } } };
}

/**
 * What the StreamJobs in the caches say, read at each scrape: jobs by state, each job's
 * parallelism and, while its autoscaler is on, what the autoscaler recommends and whether it
 * reports a backlog that does not shrink. Labelled `weir_job` as the runtime's metrics are
 * (Prometheus keeps `job` for the scrape job).
 */
function jobMetrics(registry: Registry, jobs: () => StreamJob[]): void {
  const byJob = (job: StreamJob) => ({
    namespace: job.metadata.namespace ?? "",
    weir_job: job.metadata.name ?? "",
  });
  const gauge = (name: string, help: string, value: (job: StreamJob) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ["namespace", "weir_job"],
      registers: [registry],
      collect() {
        this.reset();
        for (const job of jobs()) {
          const v = value(job);
          if (v !== undefined) this.set(byJob(job), v);
        }
      },
    });
  new Gauge({
    name: "weir_operator_streamjobs",
    help: "StreamJobs by state",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      this.reset();
      for (const job of jobs()) this.inc({ state: job.status?.state ?? "Pending" });
    },
  });
  gauge(
    "weir_operator_streamjob_parallelism",
    "Parallelism of the job's current run",
    (job) => job.status?.parallelism,
  );
  const autoscaling = (job: StreamJob) =>
    job.spec.autoscaler?.enabled ? job.status?.autoscaler : undefined;
  gauge(
    "weir_operator_autoscaler_recommended_parallelism",
    "The autoscaler's latest recommendation (jobs with autoscaling on)",
    (job) => autoscaling(job)?.recommendedParallelism,
  );
  gauge(
    "weir_operator_autoscaler_backlog_not_shrinking",
    "1 while the autoscaler reports a backlog that does not shrink despite spare capacity",
    (job) => {
      const status = autoscaling(job);
      return status === undefined ? undefined : status.stuck ? 1 : 0;
    },
  );
}

/** Savepoints and operations as Prometheus sees them (the chart's dashboard charts these). */
function operationMetrics(registry: Registry): (measurements: Measurements) => void {
  const savepoints = new Counter({
    name: "weir_operator_savepoints_total",
    help: "Savepoints the operator took, by result (completed, failed)",
    labelNames: ["result"],
    registers: [registry],
  });
  const savepointSeconds = new Histogram({
    name: "weir_operator_savepoint_duration_seconds",
    help: "From asking the pods to the savepoint's metadata written",
    buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const savepointBytes = new Histogram({
    name: "weir_operator_savepoint_size_bytes",
    help: "Size of completed savepoints",
    buckets: [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10],
    registers: [registry],
  });
  const operationSeconds = new Histogram({
    name: "weir_operator_upgrade_duration_seconds",
    help: "Operations (upgrade, rescale, restart, resume, rollback) from start to the next run Ready",
    labelNames: ["operation"],
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const downtimeSeconds = new Histogram({
    name: "weir_operator_upgrade_downtime_seconds",
    help: "Operations: from the old run stopping to the next run Ready (nothing processed meanwhile)",
    labelNames: ["operation"],
    buckets: [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
    registers: [registry],
  });
  const standbys = new Counter({
    name: "weir_operator_standbys_total",
    help: "Warm standbys of the next run, by how they ended (ready, skipped: no room for both runs, discarded: it could not run)",
    labelNames: ["result"],
    registers: [registry],
  });
  const standbySeconds = new Histogram({
    name: "weir_operator_standby_ready_seconds",
    help: "From creating a standby's pods to every one waiting warm, ready to restore",
    buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120],
    registers: [registry],
  });
  const decisions = new Counter({
    name: "weir_operator_autoscaler_decisions_total",
    help: "The autoscaler's decisions by reason (ScaleUp, ScaleDown, Steady, ScaleDownDelayed, …)",
    labelNames: ["reason"],
    registers: [registry],
  });
  return (measurements) => {
    for (const reason of measurements.autoscalerDecisions) decisions.inc({ reason });
    for (const s of measurements.savepoints) {
      savepoints.inc({ result: s.result });
      if (s.result === "completed") {
        savepointSeconds.observe(s.seconds);
        savepointBytes.observe(s.bytes ?? 0);
      }
    }
    for (const s of measurements.standbys) {
      standbys.inc({ result: s.result });
      if (s.result === "ready") standbySeconds.observe(s.seconds);
    }
    for (const o of measurements.operations) {
      operationSeconds.observe({ operation: o.kind }, o.seconds);
      downtimeSeconds.observe({ operation: o.kind }, o.downtimeSeconds);
    }
  };
}

/**
 * An error as a log field: the API server's own message and status when it answered (never
 * client-node's "HTTP-Code: 422" alone), and never a request body (secrets).
 */
function describeError(error: unknown): { message: string; status?: number } {
  const status = apiStatusOf(error);
  if (status) return { message: status.message ?? status.reason ?? "", status: status.code };
  return { message: error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error) };
}
