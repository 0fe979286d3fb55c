// A list+watch cache of one resource type (client-go's reflector + store + informer, in small).
//
//   const pods = new Informer<V1Pod>(kubeConfig, { group: "", version: "v1", plural: "pods", kind: "Pod" }, {
//     namespace: "jobs",                      // or undefined: all namespaces
//     labelSelector: "app.kubernetes.io/managed-by=weir",
//   });
//   pods.on("add", (pod) => queue.add(ownerKey(pod)));
//   pods.start();
//   await pods.synced;
//   pods.get("jobs", "word-count-0");
//
// Several namespaces: one informer per namespace.
//
// How it stays right:
// - list (paged), then watch from the list's resourceVersion with bookmarks; every event and
//   bookmark moves the resourceVersion the next watch resumes from.
// - 410 Gone (the resourceVersion left the API server's window, as an ERROR event or as the
//   HTTP status) → relist, and the differences from the cache are delivered as add / update /
//   delete, so handlers see every change they missed. Unchanged objects are not re-delivered.
// - any other error, or a stream that ends → watch again from the same resourceVersion after an
//   exponential back-off with jitter (reset once a stream delivers something).
// - watchdog: a stream silent for longer than `watchdogMs` (bookmarks count as life; the API
//   server sends one about every minute) is presumed dead, e.g. a connection a middlebox dropped
//   without telling anyone → relist.
// - a handler that throws is logged and the informer carries on.
import { type KubeConfig, type KubernetesObject, Watch } from "@kubernetes/client-node";
import {
  apiVersionOf,
  collectionPath,
  getJson,
  objectKey,
  type ResourceType,
  statusCodeOf,
} from "./api.ts";
import { type Backoff, backoffDelay, Pause } from "./backoff.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { countRequest } from "./metrics.ts";

export interface InformerOptions {
  /** One namespace, or undefined for all namespaces (or a cluster-scoped type). */
  namespace?: string;
  labelSelector?: string;
  /** Relist when a watch stream has been silent this long. Default 3 minutes. */
  watchdogMs?: number;
  /** Back-off between failed lists or watches. Default 250 ms doubling to 30 s, 50% jitter. */
  backoff?: Backoff;
  /** Page size of lists. Default 500. */
  pageSize?: number;
  /** Test-only: watch events are applied this much later, in order (a lagging cache). */
  delayEventsMs?: number;
  logger?: Logger;
}

/** Why the cache was (re)built from a list. */
/**
 * The object as the cache keeps it: without `metadata.managedFields`, which nothing of the
 * operator reads and which is often the larger part of an object (one entry per field manager
 * with every field it owns): at a thousand jobs it was most of the caches' memory.
 */
export function withoutManagedFields<T extends KubernetesObject>(object: T): T {
  if (object.metadata?.managedFields === undefined) return object;
  const { managedFields: _dropped, ...metadata } = object.metadata;
  return { ...object, metadata };
}

export type RelistReason = "initial" | "expired" | "watchdog";

export interface InformerHandlers<T> {
  add: (object: T) => void;
  update: (object: T, old: T) => void;
  /** The object as last known (after a relist, its state before it vanished). */
  delete: (object: T) => void;
  relist: (reason: RelistReason) => void;
}

export type Change<T> =
  | { type: "add"; object: T }
  | { type: "update"; object: T; old: T }
  | { type: "delete"; object: T };

/** What happened between two snapshots of the cache, keyed by `objectKey`. */
export function diffSnapshots<T extends KubernetesObject>(
  before: ReadonlyMap<string, T>,
  after: ReadonlyMap<string, T>,
): Change<T>[] {
  const changes: Change<T>[] = [];
  for (const [key, old] of before) {
    if (!after.has(key)) changes.push({ type: "delete", object: old });
  }
  for (const [key, object] of after) {
    const old = before.get(key);
    if (!old) changes.push({ type: "add", object });
    else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion)
      changes.push({ type: "update", object, old });
  }
  return changes;
}

interface ObjectList<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** How one watch stream ended: the resourceVersion expired, the watchdog fired, or it failed/closed. */
type StreamEnd = { kind: "expired" } | { kind: "watchdog" } | { kind: "failed"; error?: unknown };

// client-node's Watch aborts a stream after 30 s without data, which is shorter than the API
// server's bookmark interval; the watchdog is the judge of silence here, so the Watch gets a
// little longer than the watchdog (it is a private field of Watch, set the only way there is).
const WATCH_TIMEOUT_MARGIN_MS = 10_000;

export class Informer<T extends KubernetesObject> {
  readonly #kubeConfig: KubeConfig;
  readonly #type: ResourceType;
  readonly #namespace: string | undefined;
  readonly #delayEventsMs: number;
  readonly #labelSelector: string | undefined;
  readonly #watchdogMs: number;
  readonly #backoff: Backoff;
  readonly #pageSize: number;
  readonly #log: Logger;
  readonly #handlers: { [E in keyof InformerHandlers<T>]: InformerHandlers<T>[E][] } = {
    add: [],
    update: [],
    delete: [],
    relist: [],
  };

  #cache = new Map<string, T>();
  #resourceVersion = "";
  #synced = false;
  #resolveSynced!: () => void;
  #rejectSynced!: (error: Error) => void;
  /** Resolves once the first list is in the cache (rejects if stopped before). */
  readonly synced: Promise<void>;

  #running: Promise<void> | undefined;
  #stopped = false;
  /** Ends whatever the loop is waiting for: the current stream or a back-off pause. */
  #interrupt: (() => void) | undefined;
  readonly #pause = new Pause();

  constructor(kubeConfig: KubeConfig, type: ResourceType, options: InformerOptions = {}) {
    this.#kubeConfig = kubeConfig;
    this.#type = type;
    this.#namespace = options.namespace;
    this.#delayEventsMs = options.delayEventsMs ?? 0;
    this.#labelSelector = options.labelSelector;
    this.#watchdogMs = options.watchdogMs ?? 180_000;
    this.#backoff = options.backoff ?? { baseMs: 250, capMs: 30_000, jitter: 0.5 };
    this.#pageSize = options.pageSize ?? 500;
    this.#log = options.logger ?? silentLogger;
    this.synced = new Promise((resolve, reject) => {
      this.#resolveSynced = resolve;
      this.#rejectSynced = reject;
    });
    this.synced.catch(() => {}); // awaited by whoever cares; not an unhandled rejection otherwise
  }

  on<E extends keyof InformerHandlers<T>>(event: E, handler: InformerHandlers<T>[E]): this {
    this.#handlers[event].push(handler);
    return this;
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion the next watch resumes from (the last list, event or bookmark). */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.#cache.get(namespace ? `${namespace}/${name}` : name);
  }

  /** By work-queue key ("namespace/name", or "name" when cluster-scoped). */
  getByKey(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = this.#run();
  }

  /** Ends the watch and waits for the informer's loop to finish; the cache stays readable. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#interrupt?.();
    this.#pause.wake();
    if (!this.#synced) this.#rejectSynced(new Error("informer stopped before it synced"));
    await this.#running;
  }

  async #run(): Promise<void> {
    let relist: RelistReason | undefined = "initial";
    let failures = 0;
    while (!this.#stopped) {
      if (failures > 0) await this.#pause.wait(backoffDelay(failures, this.#backoff));
      if (this.#stopped) break;
      if (relist) {
        try {
          await this.#relist(relist);
          relist = undefined;
        } catch (error) {
          failures++;
          this.#log.warn({ ...this.#fields(), err: error, failures }, "list failed; retrying");
          continue;
        }
      }
      if (this.#stopped) break;
      const end = await this.#watch(() => {
        failures = 0;
      });
      if (this.#stopped) break;
      if (end.kind === "failed") {
        failures++;
        this.#log.info(
          { ...this.#fields(), err: end.error, failures },
          "watch ended; watching again",
        );
      } else {
        failures++;
        relist = end.kind;
        this.#log.info({ ...this.#fields(), reason: end.kind }, "relisting");
      }
    }
  }

  /** Lists every page into a fresh snapshot, swaps it in and delivers the differences. */
  async #relist(reason: RelistReason): Promise<void> {
    const snapshot = new Map<string, T>();
    let resourceVersion = "";
    let token: string | undefined;
    do {
      const page = await getJson<ObjectList<T>>(
        this.#kubeConfig,
        collectionPath(this.#type, this.#namespace),
        {
          labelSelector: this.#labelSelector,
          limit: String(this.#pageSize),
          continue: token,
        },
      );
      for (const item of page.items ?? []) {
        const object = withoutManagedFields({
          ...item,
          apiVersion: apiVersionOf(this.#type),
          kind: this.#type.kind,
        });
        snapshot.set(objectKey(object), object);
      }
      resourceVersion = page.metadata?.resourceVersion ?? "";
      token = page.metadata?.continue || undefined;
    } while (token);
    const changes = diffSnapshots(this.#cache, snapshot);
    this.#cache = snapshot;
    this.#resourceVersion = resourceVersion;
    this.#emit("relist", reason);
    for (const change of changes) {
      if (change.type === "update") this.#emit("update", change.object, change.old);
      else this.#emit(change.type, change.object);
    }
    if (!this.#synced) {
      this.#synced = true;
      this.#resolveSynced();
    }
  }

  /** One watch stream from the current resourceVersion, applied to the cache until it ends. */
  #watch(onLife: () => void): Promise<StreamEnd> {
    const path = collectionPath(this.#type, this.#namespace);
    const query = {
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      labelSelector: this.#labelSelector,
    };
    const watch = new Watch(this.#kubeConfig);
    Object.assign(watch, { requestTimeoutMs: this.#watchdogMs + WATCH_TIMEOUT_MARGIN_MS });
    return new Promise<StreamEnd>((resolve) => {
      let ended = false;
      let abort: AbortController | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      const end = (how: StreamEnd) => {
        if (ended) return;
        ended = true;
        clearTimeout(watchdog);
        abort?.abort();
        this.#interrupt = undefined;
        resolve(how);
      };
      const armWatchdog = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => end({ kind: "watchdog" }), this.#watchdogMs);
      };
      this.#interrupt = () => end({ kind: "failed" });
      armWatchdog();
      // Counted like the API clients' requests: the HTTP status the stream started with.
      const count = (code: string) =>
        countRequest(this.#kubeConfig, "GET", `http://api${path}?watch=true`, code);
      watch
        .watch(
          path,
          query,
          (phase, object: T) => {
            if (ended) return;
            armWatchdog();
            if (phase === "ERROR") {
              const expired = statusCodeOf(object) === 410;
              end(expired ? { kind: "expired" } : { kind: "failed", error: object });
              return;
            }
            onLife();
            if (!this.#delayEventsMs) this.#apply(phase, object);
            else
              setTimeout(() => {
                if (!ended) this.#apply(phase, object);
              }, this.#delayEventsMs);
          },
          (error: unknown) => {
            const code = statusCodeOf(error);
            if (!abort) count(code === undefined ? "error" : String(code));
            end(code === 410 ? { kind: "expired" } : { kind: "failed", error });
          },
        )
        .then(
          (controller) => {
            if (ended) {
              controller.abort();
              return;
            }
            abort = controller;
            count("200");
          },
          (error: unknown) => {
            count("error");
            end({ kind: "failed", error });
          },
        );
    });
  }

  #apply(phase: string, watched: T): void {
    const object = withoutManagedFields(watched);
    const resourceVersion = object.metadata?.resourceVersion;
    if (resourceVersion) this.#resourceVersion = resourceVersion;
    if (phase === "BOOKMARK") return;
    const key = objectKey(object);
    const old = this.#cache.get(key);
    if (phase === "DELETED") {
      this.#cache.delete(key);
      this.#emit("delete", object);
    } else if (phase === "ADDED" || phase === "MODIFIED") {
      this.#cache.set(key, object);
      if (old) this.#emit("update", object, old);
      else this.#emit("add", object);
    }
  }

  #emit<E extends keyof InformerHandlers<T>>(
    event: E,
    ...args: Parameters<InformerHandlers<T>[E]>
  ): void {
    for (const handler of this.#handlers[event]) {
      try {
        (handler as (...a: Parameters<InformerHandlers<T>[E]>) => void)(...args);
      } catch (error) {
        this.#log.error({ ...this.#fields(), event, err: error }, "informer handler threw");
      }
    }
  }

  #fields(): Record<string, string | undefined> {
    return {
      resource: this.#type.plural,
      namespace: this.#namespace,
      resourceVersion: this.#resourceVersion,
    };
  }
}
