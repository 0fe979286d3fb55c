// `npm run bench -- autoscaler`: Weir's autoscaling policy next to a KEDA-like and a Flink-like
// one, simulated on the same traces (bench/autoscaler/: the job model, the traces, the peers),
// the model calibrated from measurements (bench/autoscaler/calibration.json). Needs no cluster.
// Prints one row per trace × policy, the totals, and whether Weir's policy meets its bar (exit
// status 1 if not).
//
// Flags: --calibration=FILE (another calibration.json), --seed=N, --downtime=S (the measured
// downtimes scaled to a mean of S s), --sensitivity (only the bar's totals over seeds ×
// downtimes; exit status 1 if it fails anywhere), --figure (only docs/figures/autoscaler-traces.png:
// Weir's policy on every trace, drawn by the demo's chart; bench/autoscaler/figure.ts).
import {
  type Calibrated,
  calibrated,
  readCalibration,
  withMeanDowntime,
} from "./autoscaler/calibration.ts";
import {
  CALIBRATED,
  compare,
  kedaLagThreshold,
  modelParameters,
  SEED,
  SLO_LAG_SECONDS,
  type Verdict,
  verdict,
} from "./autoscaler/compare.ts";
import type { RescaleCost } from "./autoscaler/model.ts";
import type { SimulationResult } from "./autoscaler/simulate.ts";
import { table } from "./measure.ts";

const SENSITIVITY_SEEDS = [1, 2, 3, 7, 42];
const SENSITIVITY_DOWNTIMES = [2, 5, 10, 30, 60];

export function autoscalerBenchmark(
  argv: readonly string[] = process.argv,
): boolean | Promise<boolean> {
  if (argv.includes("--figure"))
    return import("./autoscaler/figure.ts").then((f) => f.writeFigure());
  const flag = (name: string) =>
    argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const file = flag("calibration");
  let c = file === undefined ? CALIBRATED : calibrated(readCalibration(file));
  const downtime = flag("downtime");
  if (downtime !== undefined) c = withMeanDowntime(c, Number(downtime));
  const seed = Number(flag("seed") ?? SEED);
  return argv.includes("--sensitivity") ? sensitivity(c) : comparison(c, seed);
}

function comparison(c: Calibrated, seed: number): boolean {
  const started = performance.now();
  const model = modelParameters(c, seed);
  const results = compare(model);
  const out = (text: string) => process.stdout.write(text);
  out(
    `Autoscaler simulation: ${model.partitions} partitions, ${model.podCapacity} records/s per pod ` +
      `(±${model.capacitySpread * 100}% per pod, ±${model.jitter * 100}% per second); rescale: ` +
      `up ${cost(model.scaleUp)}, down ${cost(model.scaleDown)} (±${Math.round(model.downtimeSpread * 100)}%; ` +
      `measured: ${c.samples.up} up, ${c.samples.down} down); metrics every ${model.scrapeIntervalSeconds}s ` +
      `seen ${model.metricDelaySeconds}s late; SLO: oldest unprocessed record ≤ ${SLO_LAG_SECONDS}s; ` +
      `KEDA lagThreshold ${kedaLagThreshold(model.podCapacity)}; seed ${seed}.\n\n`,
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
  return met(v);
}

/** The bar's totals for every seed × mean downtime (the calibrated one first). */
function sensitivity(c: Calibrated): boolean {
  const out = (text: string) => process.stdout.write(text);
  out(
    `Sensitivity: all traces, seeds ${SENSITIVITY_SEEDS.join(", ")}; mean rescale downtime as ` +
      `measured (${c.meanDowntimeSeconds}s) and scaled (up/down ratio kept); replica-min / s over SLO.\n\n`,
  );
  let all = true;
  const rows: string[][] = [];
  for (const seconds of new Set([c.meanDowntimeSeconds, ...SENSITIVITY_DOWNTIMES])) {
    for (const seed of SENSITIVITY_SEEDS) {
      const results = compare(modelParameters(withMeanDowntime(c, seconds), seed));
      const v = verdict(results);
      all &&= met(v);
      const total = (policy: string) => {
        const t = v.totals[policy];
        return t ? `${t.replicaMinutes.toFixed(0)} / ${t.secondsOverSlo}` : "-";
      };
      const weirSteps = results
        .filter((r) => r.policy === "weir")
        .flatMap((r) => r.steps.map((s) => s.rescales));
      rows.push([
        `${seconds}`,
        String(seed),
        total("weir"),
        total("keda-like"),
        total("flink-like"),
        String(Math.max(0, ...weirSteps)),
        met(v) ? "yes" : "NO",
      ]);
    }
  }
  out(
    table([
      ["downtime s", "seed", "weir", "keda-like", "flink-like", "weir rescales/step", "bar met"],
      ...rows,
    ]),
  );
  return all;
}

function met(v: Verdict): boolean {
  return v.fewerReplicaMinutes && v.noMoreSecondsOverSlo && v.stepsSettledInTwoRescales;
}

function cost(c: RescaleCost): string {
  return `${c.savepointSeconds}s savepoint + ${c.downtimeSeconds.toFixed(1)}s down`;
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

if (import.meta.main) process.exitCode = (await autoscalerBenchmark()) ? 0 : 1;
