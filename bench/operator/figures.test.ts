import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type Figures,
  fleetTable,
  meanReconcileSeconds,
  median,
  metricSum,
  reconciledAll,
  requestRates,
  targetTable,
  vmMb,
} from "./figures.ts";

const status = "Name:\tnode\nVmPeak:\t 1200000 kB\nVmHWM:\t  307200 kB\nVmRSS:\t  153600 kB\n";

test("VmRSS and VmHWM are read from /proc/<pid>/status in MB", () => {
  assert.equal(vmMb(status), 150);
  assert.equal(vmMb(status, "VmHWM"), 300);
  assert.equal(vmMb("Name:\tnode\n"), undefined);
});

const metrics = (get: number, list: number, reconciles: number, depth: number) =>
  [
    "# HELP weir_operator_api_requests_total Kubernetes API requests",
    `weir_operator_api_requests_total{verb="get",resource="streamjobs",code="200"} ${get}`,
    `weir_operator_api_requests_total{verb="get",resource="streamjobs",code="404"} 1`,
    `weir_operator_api_requests_total{verb="list",resource="pods",code="200"} ${list}`,
    `weir_operator_reconciles_total{result="success"} ${reconciles - 1}`,
    `weir_operator_reconciles_total{result="conflict"} 1`,
    `weir_operator_workqueue_depth{queue="streamjobs"} ${depth}`,
    `weir_operator_reconcile_duration_seconds_sum ${reconciles * 0.02}`,
    `weir_operator_reconcile_duration_seconds_count ${reconciles}`,
  ].join("\n");

test("a metric's series are summed over their labels, and not confused with longer names", () => {
  const text = metrics(10, 2, 5, 0);
  assert.equal(metricSum(text, "weir_operator_api_requests_total"), 13);
  assert.equal(metricSum(text, "weir_operator_reconcile_duration_seconds_count"), 5);
  assert.equal(metricSum(text, "weir_operator_reconcile_duration_seconds"), 0);
});

test("requests per second by verb and resource, most first, over the interval", () => {
  const rates = requestRates(metrics(100, 2, 0, 0), metrics(400, 5, 0, 0), 60);
  assert.deepEqual(rates.byKind, [
    ["get streamjobs", 5],
    ["list pods", 0.05],
  ]);
  assert.equal(rates.total, 5.05);
});

test("every job is reconciled once as many reconciles ended and none waits", () => {
  assert.equal(reconciledAll(metrics(0, 0, 1_001, 0), 1_001), true);
  assert.equal(reconciledAll(metrics(0, 0, 1_001, 3), 1_001), false);
  assert.equal(reconciledAll(metrics(0, 0, 1_000, 0), 1_001), false);
});

test("the mean reconcile is the histogram's sum over its count between two scrapes", () => {
  assert.ok(
    Math.abs((meanReconcileSeconds(metrics(0, 0, 10, 0), metrics(0, 0, 30, 0)) ?? 0) - 0.02) < 1e-9,
  );
  assert.equal(meanReconcileSeconds(metrics(0, 0, 10, 0), metrics(0, 0, 10, 0)), undefined);
});

test("median", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), undefined);
});

test("targets: met below the bar, missed at or above it, not measured when absent", () => {
  const figures: Figures = {
    fleets: [
      { jobs: 0, rssMb: 90, peakMb: 95, latenciesMs: [80, 120, 90] },
      { jobs: 1_000, rssMb: 150, peakMb: 300, latenciesMs: [400] },
    ],
    rest: { seconds: 60, total: 4.5, byKind: [] },
    restart: { syncedS: 3, reconciledS: 12 },
  };
  const text = targetTable(figures);
  const row = (start: string) => text.split("\n").find((line) => line.startsWith(start)) ?? "";
  assert.match(row("RSS at rest, 1000 jobs"), /150 MB\s+< 150 MB\s+missed$/);
  assert.match(row("full resync after a restart"), /12\.0 s\s+< 30 s\s+met$/);
  assert.match(row("leader hand-over"), /-\s+< 30 s\s+not measured$/);
  assert.match(row("API requests at rest"), /4\.5 \/s\s+< 5 \/s\s+met$/);
  const sizes = fleetTable(figures.fleets).split("\n");
  assert.match(sizes[2] ?? "", /^0\s+90 MB\s+95 MB\s+90 ms, 120 ms$/);
});
