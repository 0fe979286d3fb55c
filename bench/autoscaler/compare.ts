// The comparison `npm run bench -- autoscaler` prints: every trace × {Weir, KEDA-like,
// Flink-like} on the same job model, calibrated from measurements (calibration.ts), and
// whether Weir's policy meets its bar.
import { defaultedAutoscaler } from "../../operator/src/api/validate.ts";
import { type Calibrated, calibrated, readCalibration } from "./calibration.ts";
import type { ModelParameters } from "./model.ts";
import { flinkPolicy, kedaPolicy, type Policy, weirPolicy } from "./policies.ts";
import { type SimulationResult, simulate } from "./simulate.ts";
import { type Trace, traces } from "./traces.ts";

/** The measured figures (calibration.json): per-pod capacity and the rescales' cost. */
export const CALIBRATED: Calibrated = calibrated(readCalibration());
export const SEED = 7;

/** The job model at a calibration; what is not measured is stated here. */
export function modelParameters(c: Calibrated = CALIBRATED, seed = SEED): ModelParameters {
  return {
    partitions: 60,
    podCapacity: c.podCapacity,
    capacitySpread: c.capacitySpread,
    // Not measured: second-to-second noise of a pod's capacity and of the arrival rate.
    jitter: 0.05,
    scaleUp: c.scaleUp,
    scaleDown: c.scaleDown,
    downtimeSpread: c.downtimeSpread,
    // Not measured: a scrape takes milliseconds on the local cluster; 2 s leaves room for a slow
    // reconcile. Scrapes every 15 s: the API's default metricsInterval.
    metricDelaySeconds: 2,
    scrapeIntervalSeconds: 15,
    // The CRD's default checkpoint interval.
    checkpointIntervalSeconds: 10,
    seed,
  };
}

/** The lag objective: the oldest unprocessed record at most this old. */
export const SLO_LAG_SECONDS = 60;
/**
 * KEDA's lagThreshold (records per replica; KEDA's default of 10 is for slow consumers): what
 * one replica processes in half the SLO. The HPA steers the lag to about lagThreshold per
 * replica, i.e. the oldest record to about lagThreshold / capacity seconds; half the SLO leaves
 * the other half for what it sees late (a 15 s sync, its 10 % tolerance, offsets committed at
 * checkpoints, a restart). A whole SLO's worth would settle right at the SLO.
 */
export function kedaLagThreshold(podCapacity: number): number {
  return (podCapacity * SLO_LAG_SECONDS) / 2;
}
export const INITIAL_PARALLELISM = 2;

/**
 * Weir's spec for a job whose rescales take seconds (as measured), over the API's defaults
 * (which assume a rescale costs about a minute): 5 % headroom, since a rise is answered within
 * a window and a rescale; a 1 min window, so a new run is judged soon; scale-downs 1 min after
 * the load drops, since scaling back up costs seconds too; and rescales as often as that needs.
 */
export const WEIR_SPEC = defaultedAutoscaler({
  enabled: true,
  targetUtilization: 0.95,
  scaleDownDelay: "1m",
  metricsWindow: "1m",
  maxRescalesPerHour: 30,
});

export function policies(model: ModelParameters, spec = WEIR_SPEC): Policy[] {
  return [
    weirPolicy(spec, model.partitions),
    kedaPolicy(kedaLagThreshold(model.podCapacity), model.partitions),
    flinkPolicy(model.partitions, model.scrapeIntervalSeconds * 1000),
  ];
}

/** Every trace (or the selected ones) × every policy on the model. */
export function compare(
  model: ModelParameters = modelParameters(),
  selected: (trace: Trace) => boolean = () => true,
): SimulationResult[] {
  return traces(model.podCapacity, model.seed)
    .filter(selected)
    .flatMap((trace) =>
      policies(model).map((policy) =>
        simulate(trace, policy, model, {
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
