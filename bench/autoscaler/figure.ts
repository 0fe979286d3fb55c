// `npm run bench -- autoscaler --figure`: docs/figures/autoscaler-traces.png, Weir's policy on
// each of the simulator's traces, drawn by the demo's chart (scripts/demo/plot.ts): arrival and
// processed rate, backlog, and pods with the policy's last recommendation, on the calibrated
// model (the same run as the comparison's, one sample every 30 simulated seconds).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type PlotData, type PlotSample, stackedSpec } from "../../scripts/demo/plot.ts";
import { renderPng } from "../../scripts/demo/render.ts";
import {
  INITIAL_PARALLELISM,
  modelParameters,
  policies,
  SEED,
  SLO_LAG_SECONDS,
} from "./compare.ts";
import type { ModelParameters } from "./model.ts";
import type { Policy } from "./policies.ts";
import { simulate } from "./simulate.ts";
import { type Trace, traces } from "./traces.ts";

export const FIGURE = join(
  import.meta.dirname,
  "..",
  "..",
  "docs",
  "figures",
  "autoscaler-traces.png",
);
const EVERY = 30;

/** One trace under one policy, sampled every EVERY s (rates averaged over the interval). */
export function traceSamples(trace: Trace, policy: Policy, params: ModelParameters): PlotSample[] {
  const samples: PlotSample[] = [];
  let recommended: number | undefined;
  let arrivedBefore = 0;
  let processedBefore = 0;
  simulate(trace, policy, params, {
    initialParallelism: INITIAL_PARALLELISM,
    sloLagSeconds: SLO_LAG_SECONDS,
    onSecond: (job, wanted) => {
      if (wanted !== undefined) recommended = wanted;
      if (job.t % EVERY !== 0) return;
      const arrived = job.arrived.at(-1) ?? 0;
      const processed = job.processed.reduce((a, b) => a + b, 0);
      samples.push({
        t: job.t,
        inputRate: (arrived - arrivedBefore) / EVERY,
        processedRate: (processed - processedBefore) / EVERY,
        backlog: job.backlog.reduce((a, b) => a + b, 0),
        parallelism: job.replicas,
        ...(recommended === undefined ? {} : { recommended }),
      });
      arrivedBefore = arrived;
      processedBefore = processed;
    },
  });
  return samples;
}

/** The figure's charts: Weir's policy on every trace, the step trace's levels as phases. */
export function figureCharts(params: ModelParameters = modelParameters()): PlotData[] {
  const weir = () => policies(params).find((p) => p.name === "weir") as Policy;
  return traces(params.podCapacity, params.seed).map((trace) => {
    const starts = [0, ...trace.steps];
    return {
      title: trace.name,
      samples: traceSamples(trace, weir(), params),
      phases:
        trace.steps.length === 0
          ? []
          : starts.map((start, i) => ({
              name: `${Number((trace.rate(start) / params.podCapacity).toFixed(1))} pods' worth`,
              start,
              end: starts[i + 1] ?? trace.seconds,
            })),
      marks: [],
      unit: "records",
    };
  });
}

export async function writeFigure(file = FIGURE): Promise<boolean> {
  const params = modelParameters();
  const spec = stackedSpec(
    `Weir's autoscaler in the simulator: ${params.podCapacity.toLocaleString("en-US")} records/s per pod, ` +
      `${params.partitions} partitions, SLO lag ≤ ${SLO_LAG_SECONDS} s, seed ${SEED}`,
    figureCharts(params),
  );
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, await renderPng(spec, { width: 1200 }));
  process.stdout.write(`wrote ${file}\n`);
  return true;
}

if (import.meta.main) await writeFigure();
