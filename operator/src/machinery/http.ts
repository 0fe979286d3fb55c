// The operator's HTTP: its own endpoints — GET /healthz (liveness), /readyz (readiness),
// /metrics — and requests to others' (job pods) that can cost neither unbounded time nor memory.
//
//   const http = new OperatorHttpServer({ registry, healthy: () => true, ready: () => synced() });
//   await http.listen("0.0.0.0", 8080);
//   const { status, text } = await boundedFetch(url, { timeoutMs: 2_000, maxBytes: 1 << 20 });
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface OperatorHttpOptions {
  registry: Registry;
  /** Liveness: false (or a throw) answers 503 and the kubelet restarts the pod. */
  healthy: () => boolean | Promise<boolean>;
  /** Readiness: false (or a throw) answers 503. */
  ready: () => boolean | Promise<boolean>;
}

async function check(probe: () => boolean | Promise<boolean>): Promise<boolean> {
  try {
    return await probe();
  } catch {
    return false;
  }
}

export class OperatorHttpServer {
  readonly #server: Server;

  constructor(options: OperatorHttpOptions) {
    this.#server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://operator").pathname;
      const answer = async (): Promise<[number, string, string]> => {
        if (req.method !== "GET") return [405, "text/plain", "method not allowed\n"];
        switch (path) {
          case "/healthz":
            return (await check(options.healthy))
              ? [200, "text/plain", "ok\n"]
              : [503, "text/plain", "unhealthy\n"];
          case "/readyz":
            return (await check(options.ready))
              ? [200, "text/plain", "ok\n"]
              : [503, "text/plain", "not ready\n"];
          case "/metrics":
            return [200, options.registry.contentType, await options.registry.metrics()];
          default:
            return [404, "text/plain", "not found\n"];
        }
      };
      answer().then(
        ([status, contentType, body]) =>
          res.writeHead(status, { "Content-Type": contentType }).end(body),
        (error: unknown) => res.writeHead(500, { "Content-Type": "text/plain" }).end(`${error}\n`),
      );
    });
  }

  /** Resolves once listening; port 0 picks a free port (see `port`). */
  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.close((error) => (error ? reject(error) : resolve()));
      this.#server.closeAllConnections();
    });
  }
}

/** An answer cut off at `maxBytes`: the peer sent more than any sane answer holds. */
export class AnswerTooLarge extends Error {}

/**
 * One request whose answer is read within `timeoutMs` (the body included) and at most
 * `maxBytes` long; throws on a timeout (TimeoutError), a refused connection or AnswerTooLarge.
 */
export async function boundedFetch(
  url: string,
  options: {
    timeoutMs: number;
    maxBytes: number;
    method?: string;
    json?: unknown;
    headers?: Record<string, string>;
  },
): Promise<{ status: number; text: string }> {
  const response = await fetch(url, {
    method: options.method ?? "GET",
    signal: AbortSignal.timeout(options.timeoutMs),
    headers: {
      ...options.headers,
      ...(options.json === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
  });
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > options.maxBytes) {
    await response.body?.cancel();
    throw new AnswerTooLarge(`${url}: answer of ${declared} bytes (at most ${options.maxBytes})`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > options.maxBytes) {
      await response.body?.cancel().catch(() => {});
      throw new AnswerTooLarge(`${url}: answer longer than ${options.maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return { status: response.status, text: Buffer.concat(chunks).toString("utf8") };
}
