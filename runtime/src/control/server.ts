// The runtime's control API (the operator–runtime contract in DESIGN.md), HTTP on the pod IP:
//   GET  /healthz, /readyz          liveness and readiness
//   GET  /metrics                   Prometheus text
//   GET  /v1/status                 tasks owned, offsets, lag, last checkpoint
//   POST /v1/savepoints {id, stop}  → 202; the savepoint runs in the background
//   GET  /v1/savepoints/{id}        → in_progress | completed (with files) | failed (with why)
//   POST /v1/start {restoreFrom}    a pod in standby (WEIR_STANDBY) restores and starts: a
//                                   savepoint path, `none` (empty state), or "" (its checkpoints);
//                                   → 202; asked again (or not in standby) → 200, nothing done
// With a token (the job's control token, which only the operator also reads), everything but
// the probes and /metrics needs `Authorization: Bearer <token>`; anything else is a 401.
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export const CONTROL_PORT = 9249;

export type SavepointState =
  | { state: "in_progress" }
  | {
      state: "completed";
      path: string;
      files: string[];
      bytes: number;
      /** The job's stateful steps: what completing the savepoint fingerprints. */
      operators: string[];
    }
  | { state: "failed"; reason: string };

export interface SavepointRequest {
  id: string;
  stop: boolean;
}

export interface StartRequest {
  restoreFrom: string;
}

/** Where a pod is in its start: waiting warm for its restore source, restoring, or processing. */
export type StartPhase = "standby" | "starting" | "running";

/** What the server asks of the running job. */
export interface ControlHandlers {
  healthy(): boolean;
  ready(): boolean;
  status(): unknown;
  metrics: Registry;
  /** Starts a savepoint; resolves with its outcome (the server keeps it for GET). */
  savepoint(request: SavepointRequest): Promise<Extract<SavepointState, { state: "completed" }>>;
  /** Where the pod's start is (none: it started with the process, it is running). */
  phase?(): StartPhase;
  /** Starts a pod in standby with its restore source (called only in phase `standby`). */
  start?(request: StartRequest): void;
}

const SAVEPOINT_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class BadRequest extends Error {}

/** Validates a POST /v1/savepoints body. */
export function parseSavepointRequest(body: string): SavepointRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new BadRequest("body is not JSON");
  }
  const { id, stop } = (parsed ?? {}) as { id?: unknown; stop?: unknown };
  if (typeof id !== "string" || !SAVEPOINT_ID.test(id)) {
    throw new BadRequest("id must be a DNS label (lowercase letters, digits, '-'; at most 63)");
  }
  if (stop !== undefined && typeof stop !== "boolean")
    throw new BadRequest("stop must be a boolean");
  return { id, stop: stop ?? false };
}

/** Validates a POST /v1/start body. */
export function parseStartRequest(body: string): StartRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new BadRequest("body is not JSON");
  }
  const { restoreFrom } = (parsed ?? {}) as { restoreFrom?: unknown };
  if (
    typeof restoreFrom !== "string" ||
    restoreFrom.length > 1024 ||
    !(restoreFrom === "" || restoreFrom === "none" || restoreFrom.startsWith("s3://"))
  ) {
    throw new BadRequest(
      'restoreFrom must be a savepoint path (s3://…), "none" (empty state) or "" (the checkpoints)',
    );
  }
  return { restoreFrom };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  contentType = "application/json",
): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "Content-Type": contentType }).end(text);
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BadRequest("body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString();
}

export interface ControlOptions {
  /** Required of every request but the probes and /metrics; none: the API is open. */
  token?: string;
  /** Where refused requests are reported (never with what they presented). */
  log?: (line: Record<string, unknown>) => void;
}

/** Open to anyone who reaches the port: the kubelet's probes and Prometheus. */
const PUBLIC = new Set(["/healthz", "/readyz", "/metrics"]);

const digest = (text: string) => createHash("sha256").update(text).digest();

/** Why a request may not act (undefined: it may), comparing tokens in constant time. */
export function refusalOf(expected: string, authorization: string | undefined): string | undefined {
  const presented = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
  if (!presented) return "no bearer token";
  // Digests have one length, so neither the comparison nor its timing reveals the token's.
  return timingSafeEqual(digest(presented), digest(expected)) ? undefined : "wrong token";
}

export class ControlServer {
  readonly #handlers: ControlHandlers;
  readonly #options: ControlOptions;
  readonly #savepoints = new Map<string, SavepointState>();
  readonly #server: Server;

  constructor(handlers: ControlHandlers, options: ControlOptions = {}) {
    this.#handlers = handlers;
    this.#options = options;
    this.#server = createServer((req, res) => {
      this.#route(req, res).catch((error: unknown) => {
        if (error instanceof BadRequest) send(res, 400, { error: error.message });
        else send(res, 500, { error: error instanceof Error ? error.message : String(error) });
      });
    });
  }

  async listen(host: string, port = CONTROL_PORT): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => resolve());
    });
    return this.#server.address() as AddressInfo;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://runtime").pathname;
    const method = req.method ?? "GET";
    const { token, log } = this.#options;
    const refused =
      token && !(method === "GET" && PUBLIC.has(path))
        ? refusalOf(token, req.headers.authorization)
        : undefined;
    if (refused) {
      log?.({
        msg: "control API request refused",
        method,
        path,
        remote: req.socket.remoteAddress,
        reason: refused,
      });
      res.setHeader("WWW-Authenticate", 'Bearer realm="weir-control"');
      return send(res, 401, { error: refused });
    }
    if (method === "GET" && path === "/healthz") {
      return this.#handlers.healthy()
        ? send(res, 200, "ok", "text/plain")
        : send(res, 503, "unhealthy", "text/plain");
    }
    if (method === "GET" && path === "/readyz") {
      return this.#handlers.ready()
        ? send(res, 200, "ok", "text/plain")
        : send(res, 503, "not ready", "text/plain");
    }
    if (method === "GET" && path === "/metrics") {
      return send(
        res,
        200,
        await this.#handlers.metrics.metrics(),
        this.#handlers.metrics.contentType,
      );
    }
    if (method === "GET" && path === "/v1/status") return send(res, 200, this.#handlers.status());
    if (method === "POST" && path === "/v1/savepoints") {
      const request = parseSavepointRequest(await readBody(req));
      const known = this.#savepoints.get(request.id);
      // Asking again for the same savepoint is not an error: the operator retries after a crash.
      if (known) return send(res, 202, { id: request.id, ...known });
      this.#savepoints.set(request.id, { state: "in_progress" });
      this.#handlers.savepoint(request).then(
        (done) => this.#savepoints.set(request.id, done),
        (error: unknown) =>
          this.#savepoints.set(request.id, {
            state: "failed",
            reason: error instanceof Error ? error.message : String(error),
          }),
      );
      return send(res, 202, { id: request.id, state: "in_progress" });
    }
    if (method === "POST" && path === "/v1/start") {
      const request = parseStartRequest(await readBody(req));
      // Idempotent: the operator asks every pod of the run until each is running.
      const phase = () => this.#handlers.phase?.() ?? "running";
      if (phase() !== "standby" || !this.#handlers.start) return send(res, 200, { phase: phase() });
      this.#handlers.start(request);
      return send(res, 202, { phase: phase() });
    }
    const savepoint = /^\/v1\/savepoints\/([^/]+)$/.exec(path);
    if (method === "GET" && savepoint?.[1]) {
      const state = this.#savepoints.get(savepoint[1]);
      return state
        ? send(res, 200, { id: savepoint[1], ...state })
        : send(res, 404, { error: "no such savepoint" });
    }
    send(res, 404, { error: `no route for ${method} ${path}` });
  }
}
