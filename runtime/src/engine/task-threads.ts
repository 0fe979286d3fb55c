// Where a pod's tasks run: on the main thread (one CPU or one task), or spread over worker
// threads, one per CPU the pod may use (docs/architecture.md, "Tasks on worker threads"). Each
// worker runs a TaskGroup of its own (task-worker.ts) with its own Kafka and storage clients,
// built from the same configuration; the main thread keeps the control API and asks the
// workers for figures, savepoint parts and a graceful stop. Exactly-once stays per task: every
// TaskRunner keeps its own transactional producer and fencing, whichever thread it is on.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { getHeapStatistics } from "node:v8";
import { Worker } from "node:worker_threads";
import {
  figuresOf,
  type MetricsSource,
  type TaskFigures,
  type TaskFiguresData,
} from "../metrics.ts";
import type { TaskRef } from "../state/metadata.ts";
import {
  DescribedError,
  type JobResources,
  type RestoreDecision,
  type TaskFailure,
  TaskGroup,
  type TaskGroupBase,
  type TaskSavepoint,
  type TaskSpec,
  type TaskStarted,
} from "./task-group.ts";

/** The variable the operator sets from the container's `limits.cpu` (downward API, in m). */
export const CPU_LIMIT_ENV = "WEIR_CPU_LIMIT_MILLICORES";

/** CPUs of a cgroup v2 `cpu.max` ("<quota> <period>"); undefined for "max" (no limit). */
export function cgroupV2Cpus(cpuMax: string): number | undefined {
  const [quota, period = "100000"] = cpuMax.trim().split(/\s+/);
  if (quota === undefined || quota === "max") return undefined;
  return cpusOf(Number(quota), Number(period));
}

/** CPUs of cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`; -1 is no limit. */
export function cgroupV1Cpus(quotaUs: string, periodUs: string): number | undefined {
  return cpusOf(Number(quotaUs.trim()), Number(periodUs.trim()));
}

function cpusOf(quota: number, period: number): number | undefined {
  return Number.isFinite(quota) && Number.isFinite(period) && quota > 0 && period > 0
    ? quota / period
    : undefined;
}

/** CPUs of the operator's variable (millicores, rounded up by the API server); else undefined. */
export function envCpus(millicores: string | undefined): number | undefined {
  const value = Number(millicores);
  return millicores?.trim() && Number.isFinite(value) && value > 0 ? value / 1000 : undefined;
}

const CGROUP = "/sys/fs/cgroup";

/**
 * The CPU limit of this container, or undefined when it has none: the smallest of the cgroup's
 * quota (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) and the operator's
 * variable (`CPU_LIMIT_ENV`), whichever are there.
 */
export function cpuLimit(
  env: NodeJS.ProcessEnv,
  read: (file: string) => string | undefined = readIfThere,
): number | undefined {
  const v2 = read(`${CGROUP}/cpu.max`);
  const v1 = ["cpu", "cpu,cpuacct"].map((dir) => {
    const quota = read(`${CGROUP}/${dir}/cpu.cfs_quota_us`);
    const period = read(`${CGROUP}/${dir}/cpu.cfs_period_us`);
    return quota === undefined || period === undefined ? undefined : cgroupV1Cpus(quota, period);
  });
  const limits = [
    v2 === undefined ? undefined : cgroupV2Cpus(v2),
    ...v1,
    envCpus(env[CPU_LIMIT_ENV]),
  ];
  const known = limits.filter((cpus): cpus is number => cpus !== undefined);
  return known.length > 0 ? Math.min(...known) : undefined;
}

function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * CPUs the process may use: its limit, at most the CPUs it may run on (affinity, cpuset).
 * Without a limit, one: a container without a CPU limit shares its node's CPUs with everyone
 * else's, and each worker thread costs a second or more of start-up (its own modules) and its
 * own heap; more threads are for a pod that was given the CPUs for them.
 */
export function usableCpus(limit: number | undefined, available = availableParallelism()): number {
  return Math.min(limit ?? 1, available);
}

/**
 * How many threads run the tasks: one per whole CPU, at most one per task. 1 means the main
 * thread runs them all (no worker): a fraction of a CPU more buys nothing but hand-offs.
 */
export function workerCount(tasks: number, cpus: number): number {
  return Math.max(1, Math.min(tasks, Math.floor(cpus)));
}

/**
 * Which tasks each of `workers` threads runs (indices into `tasks`, which come stage by
 * stage): dealt in turn, so every thread has the same number of tasks within one, and of every
 * stage within one, and consecutive stages start on different threads: the two tasks of a
 * keyed job with one partition run on two threads, not one.
 */
export function spreadTasks(tasks: readonly TaskSpec[], workers: number): number[][] {
  const order = tasks
    .map((task, index) => ({ task, index }))
    .sort((a, b) => a.task.stage - b.task.stage || a.index - b.index);
  const spread = Array.from({ length: Math.max(1, workers) }, (): number[] => []);
  for (const [i, { index }] of order.entries()) spread[i % spread.length]?.push(index);
  return spread.map((indices) => indices.sort((a, b) => a - b));
}

/**
 * Each worker's share of the heap the process was given: V8's heap flags apply to every
 * isolate, so `--max-old-space-size-percentage=75` (the operator's, of the memory limit) would
 * let each worker have 75% of the container's memory. Their tasks, and so their state, are
 * spread evenly; the main thread keeps little.
 */
export function workerHeapMb(workers: number, heapLimit = getHeapStatistics().heap_size_limit) {
  return Math.max(64, Math.floor(heapLimit / 2 ** 20 / Math.max(1, workers)));
}

/** Where the pod's tasks run, as main.ts sees it, whichever thread they are on. */
export interface TaskHost {
  /** Worker threads running the tasks: 0 when they run on the main thread. */
  readonly workers: number;
  /** What metrics and status read of the tasks (none before they start). */
  readonly source: MetricsSource;
  /** Builds and starts the tasks with the state the main thread decided on. */
  start(restore: RestoreDecision): Promise<TaskStarted[]>;
  /** Whether every thread running tasks turns its event loop (the liveness probe's answer). */
  healthy(): boolean;
  savepoint(id: string, stop: boolean): Promise<TaskSavepoint[]>;
  stop(): Promise<void>;
}

/** The tasks on the main thread, as they ran before workers existed. */
export class InThreadTasks implements TaskHost {
  readonly workers = 0;
  readonly #base: TaskGroupBase;
  readonly #resources: JobResources;
  readonly #failed: (failure: TaskFailure) => void;
  #group: TaskGroup | undefined;

  constructor(base: TaskGroupBase, resources: JobResources, failed: (f: TaskFailure) => void) {
    this.#base = base;
    this.#resources = resources;
    this.#failed = failed;
  }

  get source(): MetricsSource {
    const tasks = () => this.#group;
    return {
      get runners() {
        return tasks()?.runners ?? [];
      },
      end: (task) => this.#group?.offsets.end(task),
      now: Date.now,
    };
  }

  start(restore: RestoreDecision): Promise<TaskStarted[]> {
    this.#group = new TaskGroup({ ...this.#base, ...restore }, this.#resources);
    return this.#group.start(this.#failed);
  }

  /** The main thread answers the probe only when its loop turns: that is the check. */
  healthy(): boolean {
    return true;
  }

  savepoint(id: string, stop: boolean): Promise<TaskSavepoint[]> {
    if (!this.#group) return Promise.reject(new Error("the tasks have not started"));
    return this.#group.savepoint(id, stop);
  }

  stop(): Promise<void> {
    return this.#group?.stop() ?? Promise.resolve();
  }
}

/** What the main thread asks of a worker (posted with an `id` the answer names). */
export type ToWorker =
  /** Build the tasks with this state and start them (answered by "started"). */
  | ({ type: "start" } & RestoreDecision)
  | { type: "figures" }
  | { type: "savepoint"; savepoint: string; stop: boolean }
  | { type: "stop" }
  /** After a failure: end the thread (its output flushed), the process ends next. */
  | { type: "exit"; status: number };

/** What a worker tells the main thread. */
export type FromWorker =
  | { type: "started"; tasks: TaskStarted[]; figures: TaskFiguresData[] }
  | { type: "start-failed"; error: string }
  /** Every ~500 ms unasked (without state sizes), and as the answer to a "figures" request. */
  | { type: "figures"; id?: number; figures: TaskFiguresData[] }
  | { type: "savepoint"; id: number; parts: TaskSavepoint[] }
  | { type: "stopped"; id: number }
  | { type: "refused"; id: number; error: string }
  | { type: "failed"; failure: TaskFailure };

/** How long a scrape waits for a worker deep in a batch before reading its last figures. */
const FIGURES_WAIT_MS = 1_000;
/** Figures this fresh serve a scrape (several scrapers, or metrics and status at once). */
const FIGURES_FRESH_MS = 100;
/** A worker that reported a failure gets this long to end (flushing its stderr) by itself. */
const FAILED_EXIT_WAIT_MS = 2_000;
/**
 * A started worker silent this long (it posts figures every 500 ms) has its event loop stuck:
 * the pod is unhealthy, as it would be with its tasks on the main thread, whose probe would
 * then time out (the probe's timeoutSeconds is 5).
 */
const SILENT_WORKER_MS = 5_000;

interface Thread {
  worker: Worker;
  /** Indices of its tasks in the pod's order. */
  tasks: number[];
  pending: Map<number, { resolve(message: FromWorker): void; reject(error: unknown): void }>;
  started: PromiseWithResolvers<TaskStarted[]>;
  /** When it last posted anything (undefined until it started its tasks). */
  heardAt: number | undefined;
}

/**
 * The tasks spread over worker threads (see spreadTasks), one TaskGroup each. The workers
 * start at once, loading their modules and the job while the main thread prepares (topics,
 * the restore decision, the control API): most of a worker's start-up is loading modules.
 */
export class TaskThreads implements TaskHost {
  readonly #spec: Omit<TaskGroupBase, "tasks" | "clientId">;
  readonly #tasks: readonly TaskSpec[];
  readonly #spread: number[][];
  readonly #failed: (failure: TaskFailure) => void;
  readonly #threads: Thread[] = [];
  /** The latest figures of each task, in the pod's order (undefined before its worker's first). */
  readonly #figures: (TaskFiguresData | undefined)[];
  /** The last state size each task reported (the frequent figures leave it out). */
  readonly #stateBytes: (number | undefined)[];
  #nextId = 0;
  #refreshing: Promise<void> | undefined;
  #refreshedAt = 0;
  #stopping = false;
  #failure: TaskFailure | undefined;

  constructor(
    spec: Omit<TaskGroupBase, "tasks" | "clientId">,
    tasks: readonly TaskSpec[],
    workers: number,
    failed: (failure: TaskFailure) => void,
  ) {
    this.#spec = spec;
    this.#tasks = tasks;
    this.#spread = spreadTasks(tasks, workers);
    this.#failed = failed;
    this.#figures = tasks.map(() => undefined);
    this.#stateBytes = tasks.map(() => undefined);
    this.#spawn();
  }

  get workers(): number {
    return this.#spread.length;
  }

  get source(): MetricsSource {
    const figures = (): TaskFigures[] =>
      this.#figures.flatMap((data, i) => (data ? [figuresOf(data, this.#stateBytes[i])] : []));
    const ends = (): Map<string, bigint | undefined> =>
      new Map(
        this.#figures.flatMap((data) =>
          data ? [[`${data.task.topic}-${data.task.partition}`, data.end] as const] : [],
        ),
      );
    return {
      get runners() {
        return figures();
      },
      end: (task: TaskRef) => ends().get(`${task.topic}-${task.partition}`),
      now: Date.now,
      refresh: () => this.#refresh(),
    };
  }

  /** A worker per group of tasks, loading its modules until start() says how to restore. */
  #spawn(): void {
    for (const [index, tasks] of this.#spread.entries()) {
      const spec: TaskGroupBase = {
        ...this.#spec,
        tasks: tasks.map((i) => this.#tasks[i] as TaskSpec),
        clientId: `weir-${this.#spec.job.name}-offsets-${index}`,
      };
      const worker = new Worker(new URL("./task-worker.ts", import.meta.url), {
        workerData: spec,
        name: `weir-tasks-${index}`,
        resourceLimits: { maxOldGenerationSizeMb: workerHeapMb(this.#spread.length) },
      });
      const thread: Thread = {
        worker,
        tasks,
        pending: new Map(),
        started: Promise.withResolvers(),
        heardAt: undefined,
      };
      this.#threads.push(thread);
      worker.on("message", (message: FromWorker) => this.#received(thread, message));
      worker.on("error", (error) =>
        this.#fail({ line: { msg: "task failed", error: error.message }, status: 1 }, thread),
      );
      worker.on("exit", (code) => this.#exited(thread, index, code));
    }
  }

  /** Resolves once every task of every worker started. */
  async start(restore: RestoreDecision): Promise<TaskStarted[]> {
    for (const thread of this.#threads)
      thread.worker.postMessage({ type: "start", ...restore, id: 0 });
    const started = await Promise.all(this.#threads.map((t) => t.started.promise));
    // In the pod's order, as the tasks of the main thread are.
    const byIndex = new Map<number, TaskStarted>();
    this.#threads.forEach((t, w) => {
      t.tasks.forEach((i, k) => {
        const task = started[w]?.[k];
        if (task) byIndex.set(i, task);
      });
    });
    return this.#tasks.flatMap((_, i) => byIndex.get(i) ?? []);
  }

  healthy(): boolean {
    const now = Date.now();
    return this.#threads.every(
      (t) => t.heardAt === undefined || now - t.heardAt < SILENT_WORKER_MS,
    );
  }

  async savepoint(id: string, stop: boolean): Promise<TaskSavepoint[]> {
    const answers = await Promise.all(
      this.#threads.map((t) => this.#ask(t, { type: "savepoint", savepoint: id, stop })),
    );
    const parts = new Map<number, TaskSavepoint>();
    answers.forEach((answer, w) => {
      if (answer.type !== "savepoint") return;
      this.#threads[w]?.tasks.forEach((i, k) => {
        const part = answer.parts[k];
        if (part) parts.set(i, part);
      });
    });
    return this.#tasks.flatMap((_, i) => parts.get(i) ?? []);
  }

  /** Every worker finishes its records in hand, checkpoints and commits, and closes. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#threads.map((t) => this.#ask(t, { type: "stop" })));
  }

  /** Fresh figures from every worker (a scrape), or each one's last if it is slow to answer. */
  #refresh(): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    if (Date.now() - this.#refreshedAt < FIGURES_FRESH_MS) return Promise.resolve();
    const asked = Promise.all(
      this.#threads.map((t) => this.#ask(t, { type: "figures" }).catch(() => undefined)),
    );
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, FIGURES_WAIT_MS);
    });
    this.#refreshing = Promise.race([asked.then(() => {}), waited]).finally(() => {
      clearTimeout(timer);
      this.#refreshing = undefined;
      this.#refreshedAt = Date.now();
    });
    return this.#refreshing;
  }

  #ask(thread: Thread, message: ToWorker): Promise<FromWorker> {
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.postMessage({ ...message, id });
    });
  }

  #received(thread: Thread, message: FromWorker): void {
    if (message.type === "started" || thread.heardAt !== undefined) thread.heardAt = Date.now();
    switch (message.type) {
      case "started":
        this.#store(thread, message.figures);
        thread.started.resolve(message.tasks);
        return;
      case "start-failed":
        thread.started.reject(new DescribedError(message.error));
        return;
      case "figures":
        this.#store(thread, message.figures);
        break;
      case "failed":
        this.#fail(message.failure, thread);
        return;
      default:
        break;
    }
    if (message.id === undefined) return;
    const pending = thread.pending.get(message.id);
    thread.pending.delete(message.id);
    if (message.type === "refused") pending?.reject(new Error(message.error));
    else pending?.resolve(message);
  }

  #store(thread: Thread, figures: readonly TaskFiguresData[]): void {
    thread.tasks.forEach((i, k) => {
      const data = figures[k];
      if (!data) return;
      this.#figures[i] = data;
      if (data.stateBytes !== undefined) this.#stateBytes[i] = data.stateBytes;
    });
  }

  /**
   * A task failed: the process ends with its line and status (main.ts), once its worker has
   * ended (so what it wrote to stderr is out) or after a short wait, never hanging.
   */
  #fail(failure: TaskFailure, thread: Thread): void {
    if (this.#failure) return;
    this.#failure = failure;
    const stopped = new Error(`${failure.line.msg}`);
    for (const t of this.#threads) {
      for (const pending of t.pending.values()) pending.reject(stopped);
      t.pending.clear();
    }
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.#failed(failure);
    };
    setTimeout(end, FAILED_EXIT_WAIT_MS);
    const { worker } = thread;
    worker.once("exit", () => {
      // What the worker wrote to stderr (the failed record's own line) reaches it first.
      if (worker.stderr.readableEnded) end();
      else worker.stderr.once("end", end);
    });
    worker.postMessage({ type: "exit", status: failure.status, id: 0 });
  }

  #exited(thread: Thread, index: number, code: number): void {
    if (this.#failure) return;
    if (this.#stopping && thread.pending.size === 0) return;
    // A worker must not end by itself: its tasks would stop while the process looks alive.
    const failure = {
      line: { msg: "task failed", error: `worker thread ${index} exited with status ${code}` },
      status: 1,
    };
    this.#failure = failure;
    thread.started.reject(new DescribedError(failure.line.error));
    this.#failed(failure);
  }
}
