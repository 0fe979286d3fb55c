// Arrival-rate traces (records per second over time), in multiples of one pod's capacity so the
// same shapes hold whatever the calibrated capacity is.
import { normal, seeded } from "./random.ts";

export interface Trace {
  name: string;
  seconds: number;
  /** Mean arrival rate at second `t`. */
  rate(t: number): number;
  /** Seconds at which the rate steps to a new level (the convergence figures are per step). */
  steps: number[];
}

const MIN = 60;

/** Piecewise constant levels: [from minute, rate in pod capacities]. */
function levels(name: string, minutes: number, capacity: number, at: [number, number][]): Trace {
  return {
    name,
    seconds: minutes * MIN,
    rate: (t) => capacity * (at.findLast(([from]) => t >= from * MIN)?.[1] ?? 0),
    steps: at.slice(1).map(([from]) => from * MIN),
  };
}

export function traces(capacity: number, seed: number): Trace[] {
  const steps = levels("step up/down", 180, capacity, [
    [0, 2],
    [20, 8],
    [60, 3],
    [100, 11],
    [140, 1.5],
  ]);
  const cosine: Trace = {
    name: "cosine (1 h period)",
    seconds: 180 * MIN,
    rate: (t) => capacity * (6 - 5 * Math.cos((2 * Math.PI * t) / (60 * MIN))),
    steps: [],
  };
  // A random walk of the level every 30 s, kept between 0.5 and 12 pods' worth.
  const random = seeded(seed);
  const walk: number[] = [];
  let level = 5;
  for (let i = 0; i <= (180 * MIN) / 30; i++) {
    walk.push(level);
    level = Math.min(12, Math.max(0.5, level + 0.25 * normal(random)));
  }
  const randomWalk: Trace = {
    name: "random walk",
    seconds: 180 * MIN,
    rate: (t) => capacity * (walk[Math.floor(t / 30)] ?? level),
    steps: [],
  };
  const ramp: Trace = {
    name: "ramp up/down",
    seconds: 180 * MIN,
    rate: (t) => {
      const m = t / MIN;
      const level =
        m < 10
          ? 1
          : m < 70
            ? 1 + ((m - 10) / 60) * 11
            : m < 90
              ? 12
              : m < 150
                ? 12 - ((m - 90) / 60) * 11
                : 1;
      return capacity * level;
    },
    steps: [],
  };
  // 20 s at 2.5× the base rate every 30 minutes: shorter than the 60 s a rescale was assumed to
  // take (the measured ones take ~10 s), so better absorbed than answered with pods.
  const spike: Trace = {
    name: "20 s spike",
    seconds: 180 * MIN,
    rate: (t) => capacity * (t % (30 * MIN) >= 15 * MIN && t % (30 * MIN) < 15 * MIN + 20 ? 10 : 4),
    steps: [],
  };
  return [steps, cosine, randomWalk, ramp, spike];
}
