import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import {
  type MetricsSource,
  runtimeMetrics,
  type TaskFigures,
} from "../../../runtime/src/metrics.ts";
import { parsePrometheusText, runtimeSample, scrapeRuntimePod } from "./runtime-metrics.ts";

// The text comes from the runtime's own registry, so a renamed metric fails here.
function task(topic: string, partition: number, figures: Partial<TaskFigures> = {}): TaskFigures {
  return {
    task: { topic, partition },
    position: 100n,
    watermark: undefined,
    processorMetrics: { lateRecords: 0, lateDropped: 0 },
    stateBytes: () => 0,
    plan: undefined,
    recordsIn: 100,
    recordsOut: 90,
    failures: { decode: 0, user: 0, encode: 0 },
    deadLetters: 0,
    skipped: 0,
    checkpointFailures: 0,
    busyMs: 2500,
    lastCheckpoint: undefined,
    checkpointedAt: 0,
    processingSince: undefined,
    ...figures,
  };
}

function runtimeText(runners: TaskFigures[], ends: Record<string, bigint>): Promise<string> {
  const source: MetricsSource = {
    runners,
    end: (t) => ends[`${t.topic}/${t.partition}`],
    now: () => 1_000,
  };
  return runtimeMetrics(source).metrics();
}

const POD = { pod: "wc-r1-1", subtask: 1, time: 5_000 };

test("a runtime pod's metrics become a sample: backlog per task, pod totals", async () => {
  const text = await runtimeText(
    [
      task("words", 2, { position: 100n }),
      task("words", 3, { position: 40n, recordsIn: 40, busyMs: 500 }),
      task("wc-count-repartition", 3, { position: 7n, recordsIn: 7, recordsOut: 0 }),
    ],
    { "words/2": 130n, "words/3": 40n, "wc-count-repartition/3": 8n },
  );
  const sample = runtimeSample(text, POD);
  assert.deepEqual(sample, {
    ...POD,
    tasks: 3,
    backlog: [
      { topic: "words", partition: 2, records: 30 },
      { topic: "words", partition: 3, records: 0 },
      { topic: "wc-count-repartition", partition: 3, records: 1 },
    ],
    recordsIn: 147,
    recordsOut: 180,
    busySeconds: 5.5,
  });
});

test("a task whose end offset is not known yet has no backlog entry (the window sees it partial)", async () => {
  const text = await runtimeText([task("words", 0), task("words", 1)], { "words/0": 100n });
  const sample = runtimeSample(text, POD);
  assert.equal(sample.tasks, 2);
  assert.deepEqual(sample.backlog, [{ topic: "words", partition: 0, records: 0 }]);
});

test("the text format: escapes, special values, timestamps, comments", () => {
  const series = parsePrometheusText(
    [
      "# HELP x_total A counter",
      "# TYPE x_total counter",
      'x_total{path="/a\\"b\\\\c\\nd",code="200"} 12 1700000000000',
      "up 1",
      "",
      'g{a="1",} NaN',
      "inf +Inf",
      "ninf -Inf",
      "sci 1.5e3",
    ].join("\n"),
  );
  assert.deepEqual(series[0], {
    name: "x_total",
    labels: { path: '/a"b\\c\nd', code: "200" },
    value: 12,
  });
  assert.deepEqual(series[1], { name: "up", labels: {}, value: 1 });
  assert.ok(Number.isNaN(series[2]?.value));
  assert.equal(series[3]?.value, Number.POSITIVE_INFINITY);
  assert.equal(series[4]?.value, Number.NEGATIVE_INFINITY);
  assert.equal(series[5]?.value, 1500);
});

test("malformed text is refused naming the line", () => {
  assert.throws(() => parsePrometheusText('ok 1\nbad{a="1" 2'), /line 2/);
  assert.throws(() => parsePrometheusText("x abc"), /bad value/);
  assert.throws(() => parsePrometheusText('x{a="1} 1'), /unterminated/);
});

test("text without the runtime's figures is refused, not read as zeros", () => {
  assert.throws(() => runtimeSample("up 1\n", POD), /wc-r1-1: no weir_tasks/);
});

async function serve(handler: RequestListener) {
  const server = createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

test("scraping a pod over HTTP: a sample, or a failure that says why", async (t) => {
  const text = await runtimeText([task("words", 0)], { "words/0": 120n });
  const ok = await serve((_req, res) => res.end(text));
  const failing = await serve((_req, res) => {
    res.statusCode = 503;
    res.end("starting");
  });
  const silent = await serve(() => {}); // accepts and never answers
  t.after(() => {
    ok.close();
    failing.close();
    silent.close();
  });
  const target = (port: number) => ({ pod: "wc-r1-0", subtask: 0, ip: "127.0.0.1", port });
  const options = { timeoutMs: 300, now: () => 42 };

  const scraped = await scrapeRuntimePod(target(ok.port), options);
  assert.ok(scraped.ok);
  assert.equal(scraped.sample.time, 42);
  assert.deepEqual(scraped.sample.backlog, [{ topic: "words", partition: 0, records: 20 }]);

  const refused503 = await scrapeRuntimePod(target(failing.port), options);
  assert.ok(!refused503.ok);
  assert.match(refused503.error, /HTTP 503/);
  assert.equal(refused503.pod, "wc-r1-0");

  const started = performance.now();
  const timedOut = await scrapeRuntimePod(target(silent.port), options);
  assert.ok(!timedOut.ok);
  assert.match(timedOut.error, /no answer within 300 ms/);
  assert.ok(performance.now() - started < 2_000);

  const closed = await serve(() => {});
  closed.close();
  const refused = await scrapeRuntimePod(target(closed.port), options);
  assert.ok(!refused.ok);
  assert.match(refused.error, /ECONNREFUSED|fetch failed/);
});
