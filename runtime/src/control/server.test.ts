// The control API over real HTTP on loopback: the contract the operator relies on.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Counter, Registry } from "prom-client";
import {
  BadRequest,
  ControlServer,
  parseSavepointRequest,
  parseStartRequest,
  type SavepointRequest,
  type StartPhase,
  type StartRequest,
} from "./server.ts";

const metrics = new Registry();
const recordsIn = new Counter({
  name: "weir_records_in_total",
  help: "records read",
  registers: [metrics],
});
let ready = false;
const requests: SavepointRequest[] = [];
let finishSavepoint: (() => void) | undefined;
let phase: StartPhase = "standby";
const starts: StartRequest[] = [];

const server = new ControlServer({
  healthy: () => true,
  ready: () => ready,
  status: () => ({ tasks: [{ topic: "in", partition: 0, offset: "42" }] }),
  metrics,
  phase: () => phase,
  start: (request) => {
    starts.push(request);
    phase = "starting";
  },
  savepoint: async (request) => {
    requests.push(request);
    if (request.id === "doomed") throw new Error("storage unreachable");
    await new Promise<void>((resolve) => {
      finishSavepoint = resolve;
    });
    return {
      state: "completed",
      path: `s3://bucket/sp/${request.id}`,
      files: ["task-0"],
      bytes: 10,
      operators: ["counts"],
    };
  },
});
let base = "";

before(async () => {
  const address = await server.listen("127.0.0.1", 0);
  base = `http://127.0.0.1:${address.port}`;
});
after(() => server.close());

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(base + path);
  return { status: res.status, body: await res.text() };
}

async function post(
  path: string,
  body: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, { method: "POST", body });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function savepointState(id: string, state: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const res = await get(`/v1/savepoints/${id}`);
    const json = JSON.parse(res.body) as Record<string, unknown>;
    if (json.state === state) return json;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`savepoint ${id} never reached ${state}`);
}

test("health and readiness follow the job", async () => {
  assert.equal((await get("/healthz")).status, 200);
  assert.equal((await get("/readyz")).status, 503);
  ready = true;
  assert.equal((await get("/readyz")).status, 200);
});

test("metrics are Prometheus text", async () => {
  recordsIn.inc(3);
  const { status, body } = await get("/metrics");
  assert.equal(status, 200);
  assert.match(body, /^weir_records_in_total 3$/m);
});

test("status is JSON", async () => {
  assert.deepEqual(JSON.parse((await get("/v1/status")).body), {
    tasks: [{ topic: "in", partition: 0, offset: "42" }],
  });
});

test("a savepoint is accepted, in progress, then completed; a repeat is not started twice", async () => {
  const accepted = await post("/v1/savepoints", JSON.stringify({ id: "sp-1", stop: true }));
  assert.equal(accepted.status, 202);
  assert.equal(accepted.json.state, "in_progress");
  assert.equal((await savepointState("sp-1", "in_progress")).id, "sp-1");
  const repeated = await post("/v1/savepoints", JSON.stringify({ id: "sp-1", stop: true }));
  assert.equal(repeated.status, 202);
  assert.equal(requests.filter((r) => r.id === "sp-1").length, 1);
  finishSavepoint?.();
  const done = await savepointState("sp-1", "completed");
  assert.equal(done.path, "s3://bucket/sp/sp-1");
  assert.deepEqual(requests[0], { id: "sp-1", stop: true });
});

test("a failed savepoint says why", async () => {
  await post("/v1/savepoints", JSON.stringify({ id: "doomed" }));
  assert.equal((await savepointState("doomed", "failed")).reason, "storage unreachable");
});

test("bad requests are refused with a reason; unknown savepoints are 404", async () => {
  const bad = await post("/v1/savepoints", "{not json");
  assert.equal(bad.status, 400);
  assert.match(String(bad.json.error), /not JSON/);
  assert.equal((await post("/v1/savepoints", JSON.stringify({ id: "Bad_Id" }))).status, 400);
  assert.equal((await get("/v1/savepoints/nope")).status, 404);
  assert.throws(() => parseSavepointRequest(JSON.stringify({ id: "ok", stop: "yes" })), BadRequest);
});

test("with a token, only the probes and /metrics are open; the rest needs the bearer token", async () => {
  const token = "s3cr3t-token-value";
  const refusals: Record<string, unknown>[] = [];
  const guarded = new ControlServer(
    {
      healthy: () => true,
      ready: () => true,
      status: () => ({ tasks: [] }),
      metrics,
      savepoint: async ({ id }) => ({
        state: "completed",
        path: `s3://bucket/sp/${id}`,
        files: [],
        bytes: 0,
        operators: [],
      }),
    },
    { token, log: (line) => refusals.push(line) },
  );
  const { port } = await guarded.listen("127.0.0.1", 0);
  const at = (path: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${port}${path}`, init);
  const bearer = (value: string) => ({ headers: { authorization: `Bearer ${value}` } });
  try {
    for (const path of ["/healthz", "/readyz", "/metrics"])
      assert.equal((await at(path)).status, 200, path);
    const anonymous = await at("/v1/status");
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer /);
    assert.deepEqual(await anonymous.json(), { error: "no bearer token" });
    assert.equal((await at("/v1/status", bearer(`${token}x`))).status, 401);
    assert.equal((await at("/v1/status", bearer(token.slice(1)))).status, 401);
    assert.equal((await at("/v1/status", { headers: { authorization: token } })).status, 401);
    const post = { method: "POST", body: JSON.stringify({ id: "sp-auth", stop: true }) };
    assert.equal((await at("/v1/savepoints", post)).status, 401);
    assert.equal((await at("/v1/savepoints/sp-auth")).status, 401);
    assert.equal((await at("/nowhere")).status, 401, "routes are not probed without the token");

    assert.equal((await at("/v1/status", bearer(token))).status, 200);
    assert.equal((await at("/v1/savepoints", { ...post, ...bearer(token) })).status, 202);
    assert.equal((await at("/v1/savepoints/sp-auth", bearer(token))).status, 200);

    assert.equal(refusals.length, 7);
    assert.deepEqual(
      refusals.map((r) => r.reason),
      [
        "no bearer token",
        "wrong token",
        "wrong token",
        "no bearer token",
        "no bearer token",
        "no bearer token",
        "no bearer token",
      ],
    );
    assert.deepEqual(refusals[1], {
      msg: "control API request refused",
      method: "GET",
      path: "/v1/status",
      remote: "127.0.0.1",
      reason: "wrong token",
    });
    for (const line of refusals)
      assert.doesNotMatch(JSON.stringify(line), /s3cr3t|3cr3t/, "no token in a log line");
  } finally {
    await guarded.close();
  }
});

test("a standby starts once with its restore source; asking again changes nothing", async () => {
  const path = "s3://bucket/jobs/ns/wc/savepoints/sp-1/";
  const first = await post("/v1/start", JSON.stringify({ restoreFrom: path }));
  assert.deepEqual([first.status, first.json], [202, { phase: "starting" }]);
  const again = await post("/v1/start", JSON.stringify({ restoreFrom: "none" }));
  assert.deepEqual([again.status, again.json], [200, { phase: "starting" }]);
  assert.deepEqual(starts, [{ restoreFrom: path }]);
  assert.equal(
    (await post("/v1/start", JSON.stringify({ restoreFrom: "/etc/passwd" }))).status,
    400,
  );
  assert.equal((await post("/v1/start", "{}")).status, 400);
  for (const restoreFrom of ["", "none", path])
    assert.deepEqual(parseStartRequest(JSON.stringify({ restoreFrom })), { restoreFrom });
  assert.throws(() => parseStartRequest(JSON.stringify({ restoreFrom: 7 })), BadRequest);
});
