import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { Counter, Registry } from "prom-client";
import { AnswerTooLarge, boundedFetch, OperatorHttpServer } from "./http.ts";

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

test("boundedFetch: an answer too long or too slow costs neither memory nor time", async () => {
  const peer = createServer((req, res) => {
    if (req.url === "/small") res.end("ok");
    // Endless, without a content-length: cut off once it passes the limit.
    else if (req.url === "/endless") {
      const chunk = Buffer.alloc(64 * 1024, "x");
      const more = () => {
        while (res.write(chunk));
        res.once("drain", more);
      };
      more();
    } else if (req.url === "/declared") res.writeHead(200, { "content-length": 1e9 }).write("x");
    // Headers at once, then a body that never ends: the deadline covers the body too.
    else res.writeHead(200).write("partial");
  });
  await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", resolve));
  const url = (path: string) => `http://127.0.0.1:${(peer.address() as AddressInfo).port}${path}`;
  try {
    const limits = { timeoutMs: 500, maxBytes: 1 << 20 };
    assert.deepEqual(await boundedFetch(url("/small"), limits), { status: 200, text: "ok" });
    await assert.rejects(boundedFetch(url("/endless"), limits), AnswerTooLarge);
    await assert.rejects(boundedFetch(url("/declared"), limits), AnswerTooLarge);
    const started = performance.now();
    await assert.rejects(boundedFetch(url("/stalled"), limits), { name: "TimeoutError" });
    assert.ok(performance.now() - started < 2_000);
  } finally {
    peer.closeAllConnections();
    peer.close();
  }
});
