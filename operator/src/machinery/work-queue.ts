// A controller work queue (client-go's workqueue, in small): keys wait de-duplicated, no key is
// ever processed by two workers at once, failures retry with per-key exponential back-off and a
// worker can ask to run again later.
//
//   const queue = new WorkQueue(async (key) => { ...reconcile...; return { requeueAfter: 30_000 } });
//   informer.on("update", (obj) => queue.add(objectKey(obj)));
//   ...
//   await queue.shutdown();
import { type Backoff, backoffDelay } from "./backoff.ts";

/** What a worker returns: nothing (done until the next add) or when to run the key again. */
export type WorkResult = { requeueAfter: number } | undefined;
export type Worker = (key: string) => Promise<WorkResult>;

export type WorkOutcome = "success" | "requeue" | "error";

/** Observation points for metrics and logs; every hook is optional. */
export interface WorkQueueHooks {
  /** A key was added (counted even when it was already waiting). */
  onAdd?(key: string): void;
  /** The number of keys waiting to be processed changed. */
  onDepth?(depth: number): void;
  /** A worker threw; the key runs again after `delayMs` (attempt 1 = first retry). */
  onRetry?(key: string, error: unknown, attempt: number, delayMs: number): void;
  /** A worker finished. */
  onProcessed?(key: string, outcome: WorkOutcome, seconds: number): void;
}

export interface WorkQueueOptions {
  /** Keys processed at the same time (different keys only). Default 2. */
  concurrency?: number;
  /** Per-key retry back-off after a worker throws. Default 1 s doubling to 5 min, 20% jitter. */
  backoff?: Backoff;
  /** Each set of hooks sees every observation (e.g. metrics and logging). */
  hooks?: WorkQueueHooks[];
}

export const DEFAULT_QUEUE_BACKOFF: Backoff = { baseMs: 1_000, capMs: 300_000, jitter: 0.2 };
/** Node runs a longer timer at once (after 1 ms): a delay beyond it would be a hot loop. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Semantics, per key:
 * - `add` runs the key as soon as a worker is free, replacing any run scheduled for later
 *   (a fresh reconcile re-decides whether it still needs one). While the key is being
 *   processed, `add` marks it dirty instead: it runs again right after the current run — or,
 *   if that run throws, after its back-off.
 * - a worker that throws is retried after back-off(failures so far); the count resets on the
 *   first run that does not throw.
 * - `{ requeueAfter }` schedules the key again (unless something adds it sooner).
 */
export class WorkQueue {
  readonly #worker: Worker;
  readonly #concurrency: number;
  readonly #backoff: Backoff;
  readonly #hooks: WorkQueueHooks[];

  /** Keys waiting for a worker, in order; `#waiting` is the same set for lookups. */
  readonly #order: string[] = [];
  readonly #waiting = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #scheduled = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #failures = new Map<string, number>();
  readonly #inFlight = new Set<Promise<void>>();
  #shuttingDown = false;

  constructor(worker: Worker, options: WorkQueueOptions = {}) {
    this.#worker = worker;
    this.#concurrency = options.concurrency ?? 2;
    if (!(this.#concurrency >= 1)) throw new Error("concurrency must be at least 1");
    this.#backoff = options.backoff ?? DEFAULT_QUEUE_BACKOFF;
    this.#hooks = options.hooks ?? [];
  }

  /** Keys waiting for a worker (not those being processed or scheduled for later). */
  get depth(): number {
    return this.#order.length;
  }

  /** Failures of `key` since its last successful run. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  add(key: string): void {
    if (this.#shuttingDown) return;
    this.#notify((hooks) => hooks.onAdd?.(key));
    this.#cancelScheduled(key);
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#waiting.has(key)) return;
    this.#waiting.add(key);
    this.#order.push(key);
    this.#notify((hooks) => hooks.onDepth?.(this.#order.length));
    this.#pump();
  }

  /** Adds `key` after `delayMs` (at most ~24.8 days); an earlier scheduled run is kept. */
  addAfter(key: string, requestedMs: number): void {
    if (this.#shuttingDown) return;
    const delayMs = Math.min(requestedMs, MAX_TIMER_MS);
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.#scheduled.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#scheduled.delete(key);
      this.add(key);
    }, delayMs);
    this.#scheduled.set(key, { at, timer });
  }

  /**
   * Stops taking work: waiting and scheduled keys are dropped, adds are ignored, and the
   * returned promise resolves once every run in progress has finished.
   */
  async shutdown(): Promise<void> {
    this.#shuttingDown = true;
    for (const { timer } of this.#scheduled.values()) clearTimeout(timer);
    this.#scheduled.clear();
    this.#order.length = 0;
    this.#waiting.clear();
    this.#dirty.clear();
    this.#notify((hooks) => hooks.onDepth?.(0));
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /** Hooks observe; one that throws must not wedge a key, so its error is dropped. */
  #notify(call: (hooks: WorkQueueHooks) => void): void {
    for (const hooks of this.#hooks) {
      try {
        call(hooks);
      } catch {
        // observation only
      }
    }
  }

  #cancelScheduled(key: string): void {
    const scheduled = this.#scheduled.get(key);
    if (!scheduled) return;
    clearTimeout(scheduled.timer);
    this.#scheduled.delete(key);
  }

  #pump(): void {
    while (!this.#shuttingDown && this.#processing.size < this.#concurrency) {
      const key = this.#order.shift();
      if (key === undefined) return;
      this.#waiting.delete(key);
      this.#notify((hooks) => hooks.onDepth?.(this.#order.length));
      this.#processing.add(key);
      const run = this.#process(key);
      this.#inFlight.add(run);
      void run.finally(() => this.#inFlight.delete(run));
    }
  }

  async #process(key: string): Promise<void> {
    const started = performance.now();
    let outcome: WorkOutcome;
    let retryDelay: number | undefined;
    let requeueAfter: number | undefined;
    try {
      requeueAfter = (await this.#worker(key))?.requeueAfter;
      this.#failures.delete(key);
      outcome = requeueAfter === undefined ? "success" : "requeue";
    } catch (error) {
      const attempt = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, attempt);
      const delay = backoffDelay(attempt, this.#backoff);
      retryDelay = delay;
      outcome = "error";
      this.#notify((hooks) => hooks.onRetry?.(key, error, attempt, delay));
    }
    this.#notify((hooks) =>
      hooks.onProcessed?.(key, outcome, (performance.now() - started) / 1000),
    );
    this.#processing.delete(key);
    const dirty = this.#dirty.delete(key);
    if (this.#shuttingDown) return;
    if (retryDelay !== undefined) this.addAfter(key, retryDelay);
    else if (dirty) this.add(key);
    else if (requeueAfter !== undefined) this.addAfter(key, requeueAfter);
    this.#pump();
  }
}
