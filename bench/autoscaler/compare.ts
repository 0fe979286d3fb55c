// The comparison `npm run bench -- autoscaler` prints: every trace × {Weir, KEDA-like,
// Flink-like} on the same job model, and whether Weir's policy meets its bar.
import type { AutoscalerSpec } from "../../operator/src/api/types.generated.ts";
import type { ModelParameters } from "./model.ts";
import { flinkPolicy, kedaPolicy, type Policy, weirPolicy } from "./policies.ts";
import { type SimulationResult, simulate } from "./simulate.ts";
import { type Trace, traces } from "./traces.ts";

// The model's parameters, to be calibrated from the real runtime. Per-pod capacity: what
// `npm run bench -- runtime` measures for one runtime process (stateless example, ~70,000
// records/s on the development machine; docs/architecture.md, "Benchmarks"). The figures scale
// with it (traces are in multiples of it). Rescale downtime: what a savepoint rescale takes on
// the local cluster (stop with savepoint → the new run processing), not measured yet (the
// savepoint rescale is the lifecycle issue's); the comparison is sensitive to it (see docs).
export const POD_CAPACITY = 70_000;
export const RESCALE_DOWNTIME_SECONDS = 30;
export const MODEL: ModelParameters = {
  partitions: 60,
  podCapacity: POD_CAPACITY,
  capacitySpread: 0.05,
  jitter: 0.05,
  rescaleDowntimeSeconds: RESCALE_DOWNTIME_SECONDS,
  downtimeSpread: 0.2,
  metricDelaySeconds: 2,
  scrapeIntervalSeconds: 15,
  checkpointIntervalSeconds: 10,
  seed: 7,
};
/** The lag objective: the oldest unprocessed record at most this old. */
export const SLO_LAG_SECONDS = 60;
/**
 * KEDA's lagThreshold: the lag one replica drains within the SLO, i.e. KEDA asks for as many
 * replicas as it takes to be back within the SLO.
 */
export const KEDA_LAG_THRESHOLD = POD_CAPACITY * SLO_LAG_SECONDS;
const INITIAL_PARALLELISM = 2;

/** Weir's spec: the API's defaults. */
export const WEIR_SPEC: AutoscalerSpec = {
  enabled: true,
  dryRun: false,
  minParallelism: 1,
  targetUtilization: 0.7,
  catchUpDuration: "5m",
  scaleDownDelay: "10m",
  metricsInterval: "15s",
  metricsWindow: "2m",
  maxRescalesPerHour: 6,
  deadBand: 0.1,
};

export function policies(): Policy[] {
  return [
    weirPolicy(WEIR_SPEC, MODEL.partitions),
    kedaPolicy(KEDA_LAG_THRESHOLD, MODEL.partitions),
    flinkPolicy(MODEL.partitions, MODEL.scrapeIntervalSeconds * 1000),
  ];
}

export function compare(selected: Trace[] = traces(POD_CAPACITY, MODEL.seed)): SimulationResult[] {
  return selected.flatMap((trace) =>
    policies().map((policy) =>
      simulate(trace, policy, MODEL, {
        initialParallelism: INITIAL_PARALLELISM,
        sloLagSeconds: SLO_LAG_SECONDS,
      }),
    ),
  );
}

export interface Verdict {
  totals: Record<string, { replicaMinutes: number; secondsOverSlo: number; rescales: number }>;
  fewerReplicaMinutes: boolean;
  noMoreSecondsOverSlo: boolean;
  stepsSettledInTwoRescales: boolean;
}

/** Weir's bar: fewer replica-minutes than each peer over all traces, no more time over the SLO, each step settled in ≤ 2 rescales. */
export function verdict(results: SimulationResult[]): Verdict {
  const totals: Verdict["totals"] = {};
  for (const r of results) {
    const t = totals[r.policy] ?? { replicaMinutes: 0, secondsOverSlo: 0, rescales: 0 };
    totals[r.policy] = {
      replicaMinutes: t.replicaMinutes + r.replicaMinutes,
      secondsOverSlo: t.secondsOverSlo + r.secondsOverSlo,
      rescales: t.rescales + r.rescales,
    };
  }
  const weir = totals.weir;
  const peers = Object.entries(totals).filter(([name]) => name !== "weir");
  return {
    totals,
    fewerReplicaMinutes:
      weir !== undefined && peers.every(([, p]) => weir.replicaMinutes < p.replicaMinutes),
    noMoreSecondsOverSlo:
      weir !== undefined && peers.every(([, p]) => weir.secondsOverSlo <= p.secondsOverSlo),
    stepsSettledInTwoRescales: results
      .filter((r) => r.policy === "weir")
      .every((r) => r.steps.every((s) => s.rescales <= 2)),
  };
}
