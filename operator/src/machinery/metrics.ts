// Prometheus metrics of the machinery, registered in the Registry the operator process owns.
//
//   const registry = new Registry();
//   instrumentKubeConfig(kubeConfig, registry);   // every API client made from it is counted
//   new WorkQueue(worker, { hooks: workQueueHooks(registry, "streamjobs") });
//
// API requests are counted where both the request and its answer are in view: client-node's
// middleware hooks see them separately (`pre` the request, `post` the response, with nothing to
// pair them under concurrency), so the configuration's HttpLibrary is wrapped instead.
import {
  type ApiConstructor,
  type ApiType,
  createConfiguration,
  type HttpLibrary,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  type RequestContext,
  ServerConfiguration,
  setHeaderMiddleware,
  wrapHttpLibrary,
} from "@kubernetes/client-node";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { WorkQueueHooks } from "./work-queue.ts";

const USER_AGENT = "weir-operator";

function metric<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

function apiRequestsCounter(registry: Registry): Counter<"verb" | "resource" | "code"> {
  return metric(
    registry,
    "weir_operator_api_requests_total",
    () =>
      new Counter({
        name: "weir_operator_api_requests_total",
        help: "Kubernetes API requests by verb, resource and HTTP status code ('error': no response)",
        labelNames: ["verb", "resource", "code"],
        registers: [registry],
      }),
  );
}

/** The Kubernetes verb and resource ("pods", "pods/status", "" for discovery) of a request. */
export function describeRequest(method: string, url: string): { verb: string; resource: string } {
  const { pathname, searchParams } = new URL(url);
  const segments = pathname.split("/").filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  const rest =
    segments[0] === "api" ? segments.slice(2) : segments[0] === "apis" ? segments.slice(3) : [];
  const inNamespace = rest[0] === "namespaces" && rest.length >= 3;
  const [plural = "", name, subresource] = inNamespace ? rest.slice(2) : rest;
  const resource = subresource ? `${plural}/${subresource}` : plural;
  const watch = searchParams.get("watch");
  switch (method.toUpperCase()) {
    case "GET":
      if (watch === "true" || watch === "1") return { verb: "watch", resource };
      return { verb: name ? "get" : "list", resource };
    case "POST":
      return { verb: "create", resource };
    case "PUT":
      return { verb: "update", resource };
    case "PATCH":
      return { verb: "patch", resource };
    case "DELETE":
      return { verb: name ? "delete" : "deletecollection", resource };
    default:
      return { verb: method.toLowerCase(), resource };
  }
}

const instrumented = new WeakMap<KubeConfig, HttpLibrary>();
const counters = new WeakMap<KubeConfig, Counter<"verb" | "resource" | "code">>();
const plainHttp = new IsomorphicFetchHttpLibrary();

/** The HttpLibrary requests made with `kubeConfig` go through (counted once instrumented). */
export function httpLibraryFor(kubeConfig: KubeConfig): HttpLibrary {
  return instrumented.get(kubeConfig) ?? plainHttp;
}

/** Counts a request made outside client-node's API clients (the informer's watches). */
export function countRequest(kubeConfig: KubeConfig, method: string, url: string, code: string) {
  const counter = counters.get(kubeConfig);
  if (!counter) return;
  const { verb, resource } = describeRequest(method, url);
  counter.inc({ verb, resource, code });
}

/**
 * Counts every request of every API client `kubeConfig.makeApiClient` makes from now on (and the
 * informer's lists and watches) in `weir_operator_api_requests_total{verb,resource,code}`.
 */
export function instrumentKubeConfig(kubeConfig: KubeConfig, registry: Registry): void {
  const counter = apiRequestsCounter(registry);
  counters.set(kubeConfig, counter);
  const http = wrapHttpLibrary({
    send: async (request: RequestContext) => {
      const { verb, resource } = describeRequest(request.getHttpMethod(), request.getUrl());
      try {
        const response = await plainHttp.send(request).toPromise();
        counter.inc({ verb, resource, code: String(response.httpStatusCode) });
        return response;
      } catch (error) {
        counter.inc({ verb, resource, code: "error" });
        throw error;
      }
    },
  });
  instrumented.set(kubeConfig, http);
  // The same client KubeConfig.makeApiClient builds, with the counting HttpLibrary.
  kubeConfig.makeApiClient = <T extends ApiType>(apiClientType: ApiConstructor<T>): T => {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("No active cluster!");
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kubeConfig },
      httpApi: http,
      middleware: [setHeaderMiddleware("User-Agent", USER_AGENT)],
    });
    return new apiClientType(configuration);
  };
}

/** Work queue metrics, labelled with the queue's name, as hooks for `WorkQueue`. */
export function workQueueHooks(registry: Registry, queue: string): WorkQueueHooks {
  const depth = metric(
    registry,
    "weir_operator_workqueue_depth",
    () =>
      new Gauge({
        name: "weir_operator_workqueue_depth",
        help: "Keys waiting for a worker",
        labelNames: ["queue"],
        registers: [registry],
      }),
  );
  const adds = metric(
    registry,
    "weir_operator_workqueue_adds_total",
    () =>
      new Counter({
        name: "weir_operator_workqueue_adds_total",
        help: "Keys added to the work queue (including retries and requeues)",
        labelNames: ["queue"],
        registers: [registry],
      }),
  );
  const retries = metric(
    registry,
    "weir_operator_workqueue_retries_total",
    () =>
      new Counter({
        name: "weir_operator_workqueue_retries_total",
        help: "Runs that failed and were scheduled again with back-off",
        labelNames: ["queue"],
        registers: [registry],
      }),
  );
  const duration = metric(
    registry,
    "weir_operator_workqueue_processing_duration_seconds",
    () =>
      new Histogram({
        name: "weir_operator_workqueue_processing_duration_seconds",
        help: "How long one run of a key took, by outcome (success, requeue, error)",
        labelNames: ["queue", "outcome"],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      }),
  );
  depth.set({ queue }, 0);
  return {
    onAdd: () => adds.inc({ queue }),
    onDepth: (n) => depth.set({ queue }, n),
    onRetry: () => retries.inc({ queue }),
    onProcessed: (_key, outcome, seconds) => duration.observe({ queue, outcome }, seconds),
  };
}
