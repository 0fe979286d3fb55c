// Kubernetes Events about the objects the operator acts on, in the events.k8s.io/v1 API (the
// current one; `kubectl get events` and `kubectl describe` show them like core/v1 Events, with
// the series count as the count).
//
//   const events = new EventRecorder(kubeConfig, { component: "weir-operator" });
//   void events.record(job, "Normal", "PodsCreated", "created 3 pods for run 2");
//
// - a repeat of the same (object, type, reason, action, message) from this recorder does not
//   create another Event: it raises the existing one's series count and lastObservedTime.
// - recording never throws into the caller and never rejects: a failure is logged and dropped
//   (an Event is a courtesy; the reconcile must not fail for it).
// - messages are shown to anyone who may read Events in the namespace: the caller must never
//   put secrets in them (this recorder cannot tell). They are cut to the API's 1 kB limit.
import { hostname } from "node:os";
import {
  EventsV1Api,
  type EventsV1Event,
  type KubeConfig,
  type KubernetesObject,
  V1MicroTime,
} from "@kubernetes/client-node";
import { statusCodeOf } from "./api.ts";
import { type Logger, silentLogger } from "./logger.ts";

export type EventType = "Normal" | "Warning";

export interface EventRecorderOptions {
  /** reportingController, e.g. "weir-operator" (or "weir.dev/operator"). */
  component: string;
  /** reportingInstance; default `<component>-<hostname>` (the pod name in a cluster). */
  instance?: string;
  logger?: Logger;
  /** How many distinct events are remembered for aggregation. Default 4096. */
  cacheSize?: number;
}

const NOTE_LIMIT_BYTES = 1024;
const FIELD_LIMIT = 128;

/** Cuts `text` to at most `bytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, bytes: number): string {
  if (Buffer.byteLength(text) <= bytes) return text;
  const ellipsis = "…";
  const budget = bytes - Buffer.byteLength(ellipsis);
  let used = 0;
  let end = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (used + size > budget) break;
    used += size;
    end += char.length;
  }
  return text.slice(0, end) + ellipsis;
}

interface Series {
  namespace: string;
  name: string;
  count: number;
}

export class EventRecorder {
  readonly #api: EventsV1Api;
  readonly #component: string;
  readonly #instance: string;
  readonly #log: Logger;
  readonly #cacheSize: number;
  /** Per aggregation key: the Event written so far, behind the previous write of the same key. */
  readonly #series = new Map<string, Promise<Series | undefined>>();

  constructor(kubeConfig: KubeConfig, options: EventRecorderOptions) {
    this.#api = kubeConfig.makeApiClient(EventsV1Api);
    this.#component = options.component;
    this.#instance = truncateUtf8(
      options.instance ?? `${options.component}-${hostname()}`,
      FIELD_LIMIT,
    );
    this.#log = options.logger ?? silentLogger;
    this.#cacheSize = options.cacheSize ?? 4096;
  }

  /**
   * Records that `action` (default: the reason) happened to `regarding`. Resolves when the Event
   * is written or the failure logged; never rejects, so callers need not await it.
   */
  record(
    regarding: KubernetesObject,
    type: EventType,
    reason: string,
    message: string,
    action = reason,
  ): Promise<void> {
    const note = truncateUtf8(message, NOTE_LIMIT_BYTES);
    const meta = regarding.metadata ?? {};
    const key = JSON.stringify([
      regarding.apiVersion,
      regarding.kind,
      meta.namespace,
      meta.name,
      meta.uid,
      type,
      reason,
      action,
      note,
    ]);
    const previous = this.#series.get(key) ?? Promise.resolve(undefined);
    const next = previous.then((series) =>
      this.#write(series, regarding, type, reason, action, note),
    );
    // Most recently used last, so the oldest key is the first to forget.
    this.#series.delete(key);
    this.#series.set(key, next);
    if (this.#series.size > this.#cacheSize) {
      const oldest = this.#series.keys().next().value;
      if (oldest !== undefined) this.#series.delete(oldest);
    }
    return next.then(() => undefined);
  }

  /** Raises the series of the existing Event, or creates one; never throws. */
  async #write(
    series: Series | undefined,
    regarding: KubernetesObject,
    type: EventType,
    reason: string,
    action: string,
    note: string,
  ): Promise<Series | undefined> {
    const fields = {
      kind: regarding.kind,
      namespace: regarding.metadata?.namespace,
      name: regarding.metadata?.name,
      reason,
    };
    try {
      if (series) {
        const count = series.count + 1;
        try {
          await this.#api.patchNamespacedEvent({
            namespace: series.namespace,
            name: series.name,
            body: [
              { op: "add", path: "/series", value: { count, lastObservedTime: new V1MicroTime() } },
            ],
          });
          return { ...series, count };
        } catch (error) {
          // Events expire (an hour by default): start a new one.
          if (statusCodeOf(error) !== 404) throw error;
        }
      }
      const created = await this.#api.createNamespacedEvent({
        namespace: regarding.metadata?.namespace || "default",
        body: this.#event(regarding, type, reason, action, note),
      });
      return {
        namespace: created.metadata?.namespace ?? "default",
        name: created.metadata?.name ?? "",
        count: 1,
      };
    } catch (error) {
      this.#log.warn({ ...fields, err: error }, "could not record an Event");
      return series;
    }
  }

  #event(
    regarding: KubernetesObject,
    type: EventType,
    reason: string,
    action: string,
    note: string,
  ): EventsV1Event {
    const meta = regarding.metadata ?? {};
    const namespace = meta.namespace || "default";
    return {
      metadata: {
        // As client-go names them: the object's name and a unique suffix.
        name: `${meta.name ?? "object"}.${Date.now().toString(16)}${Math.random().toString(16).slice(2, 8)}`,
        namespace,
      },
      eventTime: new V1MicroTime(),
      reportingController: this.#component,
      reportingInstance: this.#instance,
      type,
      reason: truncateUtf8(reason, FIELD_LIMIT),
      action: truncateUtf8(action, FIELD_LIMIT),
      note,
      regarding: {
        apiVersion: regarding.apiVersion,
        kind: regarding.kind,
        namespace: meta.namespace,
        name: meta.name,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
    };
  }
}
