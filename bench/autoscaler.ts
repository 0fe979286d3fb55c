// `npm run bench -- autoscaler`: Weir's autoscaling policy next to a KEDA-like and a Flink-like
// one, simulated on the same traces (bench/autoscaler/: the job model, the traces, the peers).
// Needs no cluster; runs in seconds. Prints one row per trace × policy, the totals, and whether
// Weir's policy meets its bar (exit status 1 if not).

import {
  compare,
  KEDA_LAG_THRESHOLD,
  MODEL,
  RESCALE_DOWNTIME_SECONDS,
  SLO_LAG_SECONDS,
  verdict,
} from "./autoscaler/compare.ts";
import type { SimulationResult } from "./autoscaler/simulate.ts";
import { table } from "./measure.ts";

export function autoscalerBenchmark(): boolean {
  const started = performance.now();
  const results = compare();
  const out = (text: string) => process.stdout.write(text);
  out(
    `Autoscaler simulation: ${MODEL.partitions} partitions, ${MODEL.podCapacity} records/s per pod ` +
      `(±${MODEL.capacitySpread * 100}% per pod, ±${MODEL.jitter * 100}% per second), rescale downtime ` +
      `${RESCALE_DOWNTIME_SECONDS}s (±${MODEL.downtimeSpread * 100}%), metrics every ${MODEL.scrapeIntervalSeconds}s ` +
      `seen ${MODEL.metricDelaySeconds}s late, SLO: oldest unprocessed record ≤ ${SLO_LAG_SECONDS}s, ` +
      `KEDA lagThreshold ${KEDA_LAG_THRESHOLD}.\n\n`,
  );
  out(
    table([
      [
        "trace",
        "policy",
        "replica-min",
        "over oracle",
        "s over SLO",
        "max lag s",
        "rescales",
        "per step: converge/rescales",
      ],
      ...results.map(row),
    ]),
  );
  const v = verdict(results);
  out("\nAll traces:\n\n");
  out(
    table([
      ["policy", "replica-min", "s over SLO", "rescales"],
      ...Object.entries(v.totals).map(([policy, t]) => [
        policy,
        t.replicaMinutes.toFixed(0),
        String(t.secondsOverSlo),
        String(t.rescales),
      ]),
    ]),
  );
  const check = (ok: boolean) => (ok ? "yes" : "NO");
  out(
    `\nWeir: fewer replica-minutes than each peer: ${check(v.fewerReplicaMinutes)}; ` +
      `no more seconds over the SLO: ${check(v.noMoreSecondsOverSlo)}; ` +
      `each step settled in ≤ 2 rescales: ${check(v.stepsSettledInTwoRescales)} ` +
      `(${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
  );
  return v.fewerReplicaMinutes && v.noMoreSecondsOverSlo && v.stepsSettledInTwoRescales;
}

function row(r: SimulationResult): string[] {
  const over = (r.replicaMinutes / r.oracleMinutes - 1) * 100;
  return [
    r.trace,
    r.policy,
    r.replicaMinutes.toFixed(0),
    `${over >= 0 ? "+" : ""}${over.toFixed(0)}%`,
    String(r.secondsOverSlo),
    r.maxLagSeconds.toFixed(0),
    String(r.rescales),
    r.steps.map((s) => `${(s.convergeSeconds / 60).toFixed(1)}m/${s.rescales}`).join(" ") || "-",
  ];
}

if (import.meta.main) process.exitCode = autoscalerBenchmark() ? 0 : 1;
