// A model of one Weir job under load, one step per simulated second: partitions owned by
// subtasks as the runtime assigns them, each pod processing up to its (noisy) capacity, backlog
// per partition, rescales as the operator runs them (a savepoint while the old run still
// processes, then a downtime that processes nothing, both noisy), and the runtime's metrics as
// the operator scrapes them (the same RuntimeSample type, counters per pod since its start).

import type { AutoscalerRescale } from "../../operator/src/api/types.generated.ts";
import type { RuntimeSample } from "../../operator/src/observe/runtime-metrics.ts";
import { partitionsOf } from "../../runtime/src/engine/assignment.ts";
import { normal, seeded } from "./random.ts";

/** What a savepoint rescale costs, as the operator measures it (its RunReady Event). */
export interface RescaleCost {
  /** Mean seconds from the decision until the old run stops: its savepoint, taken while it processes. */
  savepointSeconds: number;
  /** Mean seconds nothing is processed: the old pods stop, the new ones start, restore, are ready. */
  downtimeSeconds: number;
}

export interface ModelParameters {
  partitions: number;
  /** Records per second one pod processes at 100 % busy (calibrate from `npm run bench -- runtime`). */
  podCapacity: number;
  /** Relative spread of a pod's capacity, drawn once per pod (machines and neighbours differ). */
  capacitySpread: number;
  /** Relative second-to-second jitter of a pod's capacity and of the arrival rate. */
  jitter: number;
  /** Scale-ups and scale-downs are measured apart: a scale-up stops a run under load. */
  scaleUp: RescaleCost;
  scaleDown: RescaleCost;
  /** Relative spread of a rescale's savepoint and downtime. */
  downtimeSpread: number;
  /** Seconds between the state a scrape shows and the moment the operator reads it. */
  metricDelaySeconds: number;
  scrapeIntervalSeconds: number;
  /** The runtime commits its consumer offsets at checkpoints; broker-side lag (KEDA) sees that. */
  checkpointIntervalSeconds: number;
  seed: number;
}

interface Pod {
  subtask: number;
  partitions: number[];
  capacity: number;
  recordsIn: number;
  busySeconds: number;
}

export class JobModel {
  readonly params: ModelParameters;
  /** Seconds since the start. */
  t = 0;
  parallelism: number;
  run = 1;
  /** Set while a rescale is in progress: the parallelism it goes to, when the old run stops and when the new one runs. */
  rescaling: { to: number; stop: number; until: number } | undefined;
  readonly rescales: AutoscalerRescale[] = [];
  readonly backlog: number[];
  /** Records processed per partition since the start (for the time lag). */
  readonly processed: number[];
  /** Records arrived in the whole job by the end of each second (index t + 1). */
  readonly arrived: number[] = [0];
  #pods: Pod[] = [];
  #random: () => number;
  #processedAtCheckpoint = 0;
  #scrapes: { due: number; samples: RuntimeSample[] }[] = [];

  constructor(params: ModelParameters, parallelism: number) {
    this.params = params;
    this.parallelism = parallelism;
    this.backlog = new Array(params.partitions).fill(0);
    this.processed = new Array(params.partitions).fill(0);
    this.#random = seeded(params.seed);
    this.#startRun();
  }

  /** Pods that count: the run's, and once it stopped in a rescale the ones being started. */
  get replicas(): number {
    return this.rescaling && this.t >= this.rescaling.stop ? this.rescaling.to : this.parallelism;
  }

  /** Starts a rescale to `to`; ignored while one is in progress. */
  rescale(to: number): void {
    if (this.rescaling || to === this.parallelism) return;
    const cost = to > this.parallelism ? this.params.scaleUp : this.params.scaleDown;
    const noisy = (mean: number) =>
      mean * Math.max(0.3, 1 + this.params.downtimeSpread * normal(this.#random));
    const stop = this.t + noisy(cost.savepointSeconds);
    this.rescaling = { to, stop, until: stop + noisy(cost.downtimeSeconds) };
    this.rescales.push({ time: iso(this.t), from: this.parallelism, to });
  }

  /** One second with `rate` records/s arriving (spread evenly over the partitions). */
  step(rate: number): void {
    const { partitions, jitter } = this.params;
    const arriving = Math.max(0, rate * (1 + jitter * normal(this.#random)));
    for (let p = 0; p < partitions; p++)
      this.backlog[p] = (this.backlog[p] ?? 0) + arriving / partitions;
    this.arrived.push((this.arrived.at(-1) ?? 0) + arriving);
    if (this.rescaling && this.t >= this.rescaling.stop && this.#pods.length > 0) {
      // Stop with a savepoint commits everything processed.
      this.#processedAtCheckpoint = this.#totalProcessed();
      this.#pods = [];
    }
    if (this.rescaling && this.t >= this.rescaling.until) {
      // The operator measures downtime from the old run's stop to the new run's readiness.
      const entry = this.rescales.at(-1) as AutoscalerRescale;
      entry.downtimeSeconds = Math.round((this.t - Math.ceil(this.rescaling.stop)) * 10) / 10;
      this.parallelism = this.rescaling.to;
      this.rescaling = undefined;
      this.run++;
      this.#startRun();
    }
    for (const pod of this.#pods) {
      const capacity = Math.max(0, pod.capacity * (1 + jitter * normal(this.#random)));
      const waiting = pod.partitions.reduce((sum, p) => sum + (this.backlog[p] ?? 0), 0);
      const done = Math.min(capacity, waiting);
      // The pod's tasks share it in proportion to what each has waiting.
      if (waiting > 0) {
        for (const p of pod.partitions) {
          const share = (done * (this.backlog[p] ?? 0)) / waiting;
          this.backlog[p] = (this.backlog[p] ?? 0) - share;
          this.processed[p] = (this.processed[p] ?? 0) + share;
        }
      }
      pod.recordsIn += done;
      pod.busySeconds += capacity > 0 ? done / capacity : 1;
    }
    this.t++;
    if (this.t % this.params.checkpointIntervalSeconds === 0) {
      this.#processedAtCheckpoint = this.#totalProcessed();
    }
    if (this.t % this.params.scrapeIntervalSeconds === 0 && this.#pods.length > 0) {
      this.#scrapes.push({
        due: this.t + this.params.metricDelaySeconds,
        samples: this.#pods.map((pod) => this.#sample(pod)),
      });
    }
  }

  /** Scrapes that reach the operator by now (stamped with when they arrive). */
  deliveredSamples(): RuntimeSample[] {
    const due = this.#scrapes.filter((s) => s.due <= this.t);
    this.#scrapes = this.#scrapes.filter((s) => s.due > this.t);
    return due.flatMap((s) => s.samples.map((sample) => ({ ...sample, time: this.t * 1000 })));
  }

  /** What KEDA's Kafka scaler reads: end offsets minus committed offsets, all partitions. */
  brokerLag(): number {
    return (
      this.backlog.reduce((a, b) => a + b, 0) + this.#totalProcessed() - this.#processedAtCheckpoint
    );
  }

  /** Age of the oldest record not processed yet, in seconds (FIFO per partition). */
  timeLag(): number {
    const { partitions } = this.params;
    const slowest = Math.min(...this.processed) * partitions;
    // The second in which the job's arrivals passed what the slowest partition has processed.
    let lo = 0;
    let hi = this.arrived.length - 1;
    if ((this.arrived[hi] ?? 0) - slowest < 1e-6) return 0;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if ((this.arrived[mid] ?? 0) <= slowest) lo = mid;
      else hi = mid;
    }
    const before = this.arrived[lo] ?? 0;
    const after = this.arrived[hi] ?? before;
    const fraction = after > before ? (slowest - before) / (after - before) : 0;
    return this.t - (lo + fraction);
  }

  #startRun(): void {
    const { partitions, capacitySpread, podCapacity } = this.params;
    this.#pods = Array.from({ length: this.parallelism }, (_, subtask) => ({
      subtask,
      partitions: partitionsOf(partitions, this.parallelism, subtask),
      capacity: podCapacity * Math.max(0.5, 1 + capacitySpread * normal(this.#random)),
      recordsIn: 0,
      busySeconds: 0,
    }));
  }

  #sample(pod: Pod): RuntimeSample {
    return {
      pod: `job-r${this.run}-${pod.subtask}`,
      subtask: pod.subtask,
      time: this.t * 1000,
      tasks: pod.partitions.length,
      backlog: pod.partitions.map((p) => ({
        topic: "in",
        partition: p,
        records: Math.round(this.backlog[p] ?? 0),
      })),
      recordsIn: Math.round(pod.recordsIn),
      recordsOut: Math.round(pod.recordsIn),
      busySeconds: pod.busySeconds,
    };
  }

  #totalProcessed(): number {
    return this.processed.reduce((a, b) => a + b, 0);
  }
}

/** Simulated seconds as the timestamps status carries (the simulation starts at the epoch). */
export function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
