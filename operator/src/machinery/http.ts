// The operator's own HTTP endpoints: GET /healthz (liveness), /readyz (readiness), /metrics.
//
//   const http = new OperatorHttpServer({ registry, healthy: () => true, ready: () => synced() });
//   await http.listen("0.0.0.0", 8080);
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
