import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Counter, Registry } from "prom-client";
import { OperatorHttpServer } from "./http.ts";

const registry = new Registry();
new Counter({ name: "weir_test_total", help: "a counter", registers: [registry] }).inc(3);
let healthy = true;
let ready = false;
const server = new OperatorHttpServer({
  registry,
  healthy: () => healthy,
  ready: async () => {
    if (ready) return true;
    throw new Error("caches not synced");
  },
});

before(() => server.listen("127.0.0.1", 0));
after(() => server.close());

const get = (path: string) => fetch(`http://127.0.0.1:${server.port}${path}`);

test("/healthz and /readyz follow their callbacks; a throwing callback means not ready", async () => {
  assert.equal((await get("/healthz")).status, 200);
  assert.equal((await get("/readyz")).status, 503);
  ready = true;
  healthy = false;
  assert.equal((await get("/readyz")).status, 200);
  assert.equal((await get("/healthz")).status, 503);
});

test("/metrics serves the registry in Prometheus text", async () => {
  const response = await get("/metrics");
  assert.equal(response.status, 200);
  assert.match(await response.text(), /^weir_test_total 3$/m);
});

test("anything else is 404", async () => {
  assert.equal((await get("/nope")).status, 404);
});
