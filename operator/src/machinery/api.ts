// What every piece of the machinery needs to talk about Kubernetes objects generically: the
// resource type, object keys, the HTTP status of a failure, and a JSON request that returns
// objects exactly as the API server sent them (client-node's typed clients turn timestamps into
// Dates, which a watch does not; an informer needs list and watch to agree).
import {
  ApiException,
  HttpMethod,
  type KubeConfig,
  type KubernetesObject,
  RequestContext,
} from "@kubernetes/client-node";
import { httpLibraryFor } from "./metrics.ts";

/** A resource type: `group` is "" for the core API ("v1"). */
export interface ResourceType {
  group: string;
  version: string;
  /** Lower-case plural used in URLs, e.g. "configmaps", "streamjobs". */
  plural: string;
  /** The kind, e.g. "ConfigMap"; list items lack it, so the informer stamps it on. */
  kind: string;
}

export function apiVersionOf(type: ResourceType): string {
  return type.group === "" ? type.version : `${type.group}/${type.version}`;
}

/** The collection URL path of `type`, in one namespace or (undefined) across all of them. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const root = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const scope = namespace === undefined ? "" : `/namespaces/${encodeURIComponent(namespace)}`;
  return `${root}${scope}/${type.plural}`;
}

/** "namespace/name" for namespaced objects, "name" for cluster-scoped ones (client-go's key). */
export function objectKey(object: KubernetesObject): string {
  const { namespace, name } = object.metadata ?? {};
  if (!name) throw new Error("object has no metadata.name");
  return namespace ? `${namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * The HTTP status behind a failure, wherever it came from: client-node's ApiException, the
 * error its Watch reports for a non-200 response, or a Status object (a watch ERROR event).
 */
export function statusCodeOf(failure: unknown): number | undefined {
  if (failure instanceof ApiException) return failure.code;
  if (typeof failure !== "object" || failure === null) return undefined;
  const { statusCode, code, kind } = failure as {
    statusCode?: unknown;
    code?: unknown;
    kind?: unknown;
  };
  if (typeof statusCode === "number") return statusCode;
  if (kind === "Status" && typeof code === "number") return code;
  return undefined;
}

/** What the API server said when it refused a request: its Status, in its own words. */
export interface ApiStatus {
  code: number;
  /** CamelCase reason, e.g. Invalid, Forbidden, BadRequest. */
  reason?: string;
  message?: string;
  /** The fields it names (`spec.containers[0].image`) and what it says of each. */
  causes: { field?: string; message?: string }[];
}

/**
 * The Status behind a failed request (client-node's ApiException carries the response body as
 * text), or undefined when there was no answer. Never "HTTP-Code: 422" alone: the API server's
 * message is what a person can act on.
 */
export function apiStatusOf(failure: unknown): ApiStatus | undefined {
  const code = statusCodeOf(failure);
  if (code === undefined) return undefined;
  const body = failure instanceof ApiException ? failure.body : failure;
  let status: { reason?: unknown; message?: unknown; details?: { causes?: unknown } } = {};
  try {
    status = typeof body === "string" ? JSON.parse(body) : ((body ?? {}) as typeof status);
  } catch {
    // Not a Status (a proxy's error page): the text itself is the message.
    status = { message: String(body).slice(0, 1000) };
  }
  const causes = Array.isArray(status.details?.causes)
    ? (status.details.causes as { field?: unknown; message?: unknown }[]).map((c) => ({
        ...(typeof c.field === "string" ? { field: c.field } : {}),
        ...(typeof c.message === "string" ? { message: c.message } : {}),
      }))
    : [];
  return {
    code,
    ...(typeof status.reason === "string" ? { reason: status.reason } : {}),
    ...(typeof status.message === "string" && status.message ? { message: status.message } : {}),
    causes,
  };
}

/**
 * GET `path` and parse the JSON body; a non-2xx answer throws client-node's ApiException. Gives
 * up after `timeoutMs`: a connection that died silently must not hang the caller forever.
 */
export async function getJson<T>(
  kubeConfig: KubeConfig,
  path: string,
  query: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<T> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(cluster.server + path);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(name, value);
  }
  const request = new RequestContext(url.toString(), HttpMethod.GET);
  request.setHeaderParam("Accept", "application/json");
  request.setSignal(AbortSignal.timeout(timeoutMs));
  await kubeConfig.applySecurityAuthentication(request);
  const response = await httpLibraryFor(kubeConfig).send(request).toPromise();
  const body = await response.body.text();
  if (response.httpStatusCode < 200 || response.httpStatusCode > 299) {
    throw new ApiException(response.httpStatusCode, `GET ${path}`, body, response.headers);
  }
  return JSON.parse(body) as T;
}
