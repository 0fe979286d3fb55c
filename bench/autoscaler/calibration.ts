// The simulator's calibration: what was measured on the real runtime and the local cluster
// (calibration.json: the per-pod capacity with its source, and each savepoint rescale the
// operator reported, written by calibrate.ts), and the model's figures derived from it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { RescaleCost } from "./model.ts";

export const CALIBRATION_FILE = join(import.meta.dirname, "calibration.json");

/** One savepoint rescale as the operator's RunReady Event reported it. */
export interface MeasuredRescale {
  time: string;
  /** namespace/name of the StreamJob. */
  job: string;
  from: number;
  to: number;
  /** Decision → the new run Ready. */
  seconds: number;
  /** The old run's stop → the new run processing (nothing processed meanwhile). */
  downtimeSeconds: number;
  /** Through a warm standby (issue 17): the next run's pods waited before the old run stopped. */
  standby?: boolean;
}

export interface Calibration {
  podCapacity: { recordsPerSecond: number; spread: number; source: string };
  rescales: { source: string; measured: MeasuredRescale[] };
}

/** The model's figures from a calibration. */
export interface Calibrated {
  podCapacity: number;
  capacitySpread: number;
  scaleUp: RescaleCost;
  scaleDown: RescaleCost;
  /** The larger relative standard deviation of the two directions' downtimes. */
  downtimeSpread: number;
  /** Mean downtime of all measured rescales (what `--downtime` replaces). */
  meanDowntimeSeconds: number;
  samples: { up: number; down: number };
}

export function readCalibration(file = CALIBRATION_FILE): Calibration {
  return JSON.parse(readFileSync(file, "utf8")) as Calibration;
}

export function calibrated(calibration: Calibration): Calibrated {
  const all = calibration.rescales.measured;
  const up = all.filter((r) => r.to > r.from);
  const down = all.filter((r) => r.to < r.from);
  if (up.length === 0 || down.length === 0)
    throw new Error("the calibration needs at least one measured scale-up and one scale-down");
  const cost = (rs: MeasuredRescale[]): RescaleCost => ({
    savepointSeconds: round(mean(rs.map((r) => r.seconds - r.downtimeSeconds))),
    downtimeSeconds: round(mean(rs.map((r) => r.downtimeSeconds))),
  });
  const spread = (rs: MeasuredRescale[]) => {
    const d = rs.map((r) => r.downtimeSeconds);
    const m = mean(d);
    return Math.sqrt(mean(d.map((x) => (x - m) ** 2))) / m;
  };
  return {
    podCapacity: calibration.podCapacity.recordsPerSecond,
    capacitySpread: calibration.podCapacity.spread,
    scaleUp: cost(up),
    scaleDown: cost(down),
    downtimeSpread: round(Math.max(spread(up), spread(down))),
    meanDowntimeSeconds: round(mean(all.map((r) => r.downtimeSeconds))),
    samples: { up: up.length, down: down.length },
  };
}

/** The calibration with its downtimes scaled so that their mean is `seconds` (the up/down ratio kept). */
export function withMeanDowntime(c: Calibrated, seconds: number): Calibrated {
  const factor = seconds / c.meanDowntimeSeconds;
  const scale = (cost: RescaleCost) => ({
    ...cost,
    downtimeSeconds: cost.downtimeSeconds * factor,
  });
  return {
    ...c,
    scaleUp: scale(c.scaleUp),
    scaleDown: scale(c.scaleDown),
    meanDowntimeSeconds: seconds,
  };
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
