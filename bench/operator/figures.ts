// The pure part of `npm run bench -- operator`: what the operator's /metrics and /proc say, and
// the figures against issue 18's targets.
import { seriesValues } from "../../test-e2e/support/metrics-text.ts";
import { table } from "../measure.ts";

/** Issue 18's targets for 1,000 StreamJobs. */
export const TARGETS = { rssMb: 150, resyncSeconds: 30, requestsPerSecond: 5 } as const;

/** VmRSS (or another `Vm*` line) of /proc/<pid>/status, in MB (2^20 bytes). */
export function vmMb(status: string, field: "VmRSS" | "VmHWM" = "VmRSS"): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status);
  return match ? Number(match[1]) / 1024 : undefined;
}

/** The sum of every series of metric `name` (all label sets), 0 when there is none. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const [series, value] of seriesValues(text))
    if (series === name || series.startsWith(`${name}{`)) sum += value;
  return sum;
}

/** The value of one label of a series as printed (`name{a="x",b="y"}`). */
function label(series: string, name: string): string {
  return new RegExp(`[{,]${name}="([^"]*)"`).exec(series)?.[1] ?? "";
}

/** API requests by "verb resource" (weir_operator_api_requests_total, any code). */
export function requestsByKind(text: string): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const [series, value] of seriesValues(text)) {
    if (!series.startsWith("weir_operator_api_requests_total{")) continue;
    const kind = `${label(series, "verb")} ${label(series, "resource")}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + value);
  }
  return kinds;
}

/** Requests per second by kind between two scrapes `seconds` apart, most first. */
export function requestRates(
  before: string,
  after: string,
  seconds: number,
): { total: number; byKind: [string, number][] } {
  const start = requestsByKind(before);
  const byKind: [string, number][] = [...requestsByKind(after)]
    .map(([kind, n]): [string, number] => [kind, (n - (start.get(kind) ?? 0)) / seconds])
    .filter(([, rate]) => rate > 0)
    .sort((a, b) => b[1] - a[1]);
  return { total: byKind.reduce((sum, [, rate]) => sum + rate, 0), byKind };
}

/**
 * Whether a freshly leading operator has reconciled every one of `jobs` and nothing waits: when
 * it starts leading it queues every job it knows once, in order, so once it has finished that
 * many reconciles (at most `concurrency` of the last still in flight) with none waiting, each
 * job has been reconciled by it.
 */
export function reconciledAll(text: string, jobs: number): boolean {
  const reconciles = metricSum(text, "weir_operator_reconciles_total");
  const waiting = metricSum(text, "weir_operator_workqueue_depth");
  return reconciles >= jobs && waiting === 0;
}

/** Mean reconcile duration (s) between two scrapes, from the histogram's sum and count. */
export function meanReconcileSeconds(before: string, after: string): number | undefined {
  const count =
    metricSum(after, "weir_operator_reconcile_duration_seconds_count") -
    metricSum(before, "weir_operator_reconcile_duration_seconds_count");
  const sum =
    metricSum(after, "weir_operator_reconcile_duration_seconds_sum") -
    metricSum(before, "weir_operator_reconcile_duration_seconds_sum");
  return count > 0 ? sum / count : undefined;
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** What one fleet size measured. */
export interface FleetFigures {
  jobs: number;
  /** The operator's VmRSS at rest (MB), and its peak so far (VmHWM). */
  rssMb: number | undefined;
  peakMb: number | undefined;
  /** One job's spec change → its status.observedGeneration, each try (ms). */
  latenciesMs: number[];
}

export interface Figures {
  fleets: FleetFigures[];
  /** API requests per second at rest with the largest fleet settled, over `restSeconds`. */
  rest?: { seconds: number; total: number; byKind: [string, number][] };
  /** Process start → caches synced (/readyz) → every job reconciled, in seconds. */
  restart?: { syncedS: number; reconciledS: number; rssMb?: number | undefined };
  /** The same, every job's spec changed while no operator ran: all statuses caught up. */
  restartChanged?: { syncedS: number; statusesS: number };
  /** The leader killed (SIGKILL) → the stand-by leads → it has reconciled every job. */
  handover?: { leadingS: number; reconciledS: number; standbyRssMb?: number | undefined };
}

const s = (seconds: number | undefined) =>
  seconds === undefined ? "-" : `${seconds.toFixed(1)} s`;
const mb = (value: number | undefined) => (value === undefined ? "-" : `${value.toFixed(0)} MB`);
const verdict = (value: number | undefined, target: number) =>
  value === undefined ? "not measured" : value < target ? "met" : "missed";

/** The per-size table: RSS at rest and one job's reconcile latency. */
export function fleetTable(fleets: readonly FleetFigures[]): string {
  return table([
    ["StreamJobs", "RSS at rest", "peak RSS so far", "reconcile latency (median, max)"],
    ...fleets.map((f) => {
      const m = median(f.latenciesMs);
      const max = f.latenciesMs.length > 0 ? Math.max(...f.latenciesMs) : undefined;
      return [
        String(f.jobs),
        mb(f.rssMb),
        mb(f.peakMb),
        m === undefined ? "-" : `${m.toFixed(0)} ms, ${max?.toFixed(0)} ms`,
      ];
    }),
  ]);
}

/** Issue 18's targets, measured at the largest fleet: met or missed. */
export function targetTable(figures: Figures): string {
  const largest = figures.fleets.at(-1);
  const n = largest?.jobs ?? 0;
  const rows: string[][] = [["figure", "measured", "target", ""]];
  rows.push([
    `RSS at rest, ${n} jobs`,
    mb(largest?.rssMb),
    `< ${TARGETS.rssMb} MB`,
    verdict(largest?.rssMb, TARGETS.rssMb),
  ]);
  if (figures.restart?.rssMb !== undefined)
    rows.push([
      `RSS at rest, ${n} jobs, restarted process`,
      mb(figures.restart.rssMb),
      `< ${TARGETS.rssMb} MB`,
      verdict(figures.restart.rssMb, TARGETS.rssMb),
    ]);
  rows.push([
    "full resync after a restart (start → all reconciled)",
    s(figures.restart?.reconciledS),
    `< ${TARGETS.resyncSeconds} s`,
    verdict(figures.restart?.reconciledS, TARGETS.resyncSeconds),
  ]);
  if (figures.restartChanged)
    rows.push([
      "  … every spec changed while down (start → all statuses current)",
      s(figures.restartChanged.statusesS),
      `< ${TARGETS.resyncSeconds} s`,
      verdict(figures.restartChanged.statusesS, TARGETS.resyncSeconds),
    ]);
  const handover = figures.handover;
  rows.push([
    "leader hand-over (leader killed → all reconciled)",
    s(handover?.reconciledS),
    `< ${TARGETS.resyncSeconds} s`,
    verdict(handover?.reconciledS, TARGETS.resyncSeconds),
  ]);
  if (handover)
    rows.push([
      "  … of which the Lease's expiry (killed → stand-by leads)",
      s(handover.leadingS),
      "",
      "",
    ]);
  const rate = figures.rest?.total;
  rows.push([
    `API requests at rest, ${n} settled jobs`,
    rate === undefined ? "-" : `${rate.toFixed(1)} /s`,
    `< ${TARGETS.requestsPerSecond} /s`,
    verdict(rate, TARGETS.requestsPerSecond),
  ]);
  return table(rows);
}
