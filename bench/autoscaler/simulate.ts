// Runs one policy on one trace through the job model and measures what it cost and how far
// behind the job fell.
import { JobModel, type ModelParameters } from "./model.ts";
import type { Policy } from "./policies.ts";
import type { Trace } from "./traces.ts";

export interface StepResult {
  /** Second of the step. */
  at: number;
  /** Seconds until the last rescale of the segment ended and the lag was last above the SLO (0: nothing to settle). */
  convergeSeconds: number;
  rescales: number;
}

export interface SimulationResult {
  trace: string;
  policy: string;
  replicaMinutes: number;
  /** Replica-minutes of the oracle ceil(arrival / pod capacity). */
  oracleMinutes: number;
  /** Seconds the oldest unprocessed record was older than the SLO. */
  secondsOverSlo: number;
  rescales: number;
  steps: StepResult[];
  maxLagSeconds: number;
}

export function simulate(
  trace: Trace,
  policy: Policy,
  params: ModelParameters,
  options: {
    initialParallelism: number;
    sloLagSeconds: number;
    /** Called after every simulated second with the job and what the policy said (if anything). */
    onSecond?: (job: JobModel, wanted: number | undefined) => void;
  },
): SimulationResult {
  const job = new JobModel(params, options.initialParallelism);
  let replicaSeconds = 0;
  let oracleSeconds = 0;
  let secondsOverSlo = 0;
  let maxLag = 0;
  /** Per second: whether the lag was over the SLO. */
  const over: boolean[] = [];
  for (let t = 0; t < trace.seconds; t++) {
    const rate = trace.rate(t);
    job.step(rate);
    const wanted = policy.tick({
      now: job.t * 1000,
      run: `r${job.run}`,
      parallelism: job.parallelism,
      ...(job.rescaling ? { rescalingTo: job.rescaling.to } : {}),
      samples: job.deliveredSamples(),
      brokerLag: job.brokerLag(),
      rescales: job.rescales,
    });
    if (wanted !== undefined && !job.rescaling && wanted !== job.parallelism) job.rescale(wanted);
    replicaSeconds += job.replicas;
    oracleSeconds += Math.min(params.partitions, Math.max(1, Math.ceil(rate / params.podCapacity)));
    const lag = job.timeLag();
    maxLag = Math.max(maxLag, lag);
    over.push(lag > options.sloLagSeconds);
    if (lag > options.sloLagSeconds) secondsOverSlo++;
    options.onSecond?.(job, wanted);
  }
  const steps = trace.steps.map((at, i) => {
    const end = trace.steps[i + 1] ?? trace.seconds;
    const inSegment = job.rescales.filter((r) => {
      const start = Date.parse(r.time) / 1000;
      return start >= at && start < end;
    });
    const lastRescaleEnd = Math.max(
      at,
      ...inSegment.map((r) => Date.parse(r.time) / 1000 + (r.downtimeSeconds ?? 0)),
    );
    const lastOver = over.slice(at, end).lastIndexOf(true);
    return {
      at,
      convergeSeconds: Math.max(lastRescaleEnd, lastOver < 0 ? at : at + lastOver + 1) - at,
      rescales: inSegment.length,
    };
  });
  return {
    trace: trace.name,
    policy: policy.name,
    replicaMinutes: replicaSeconds / 60,
    oracleMinutes: oracleSeconds / 60,
    secondsOverSlo,
    rescales: job.rescales.length,
    steps,
    maxLagSeconds: maxLag,
  };
}
