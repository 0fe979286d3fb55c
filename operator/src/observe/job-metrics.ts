// The operator's eyes on a running job's load: every `metricsInterval`, one scrape of each pod of
// its run, in the background (observe/background.ts). Every job gets its lag and source
// partitions from it (status.lag, status.partitions); an autoscaled one also a window of
// samples (in the operator's memory: after a restart the window fills again, and until it spans
// `metricsWindow` nothing is decided).
import type { StreamJob } from "../api/types.ts";
import { parseDuration } from "../api/validate.ts";
import {
  type MetricsWindow,
  recordSamples,
  summarize,
  type WindowSummary,
} from "../decide/metrics-window.ts";
import type { JobLoad, ObservedPod } from "../decide/reconcile.ts";
import { objectKey } from "../machinery/api.ts";
import type { BackgroundObservations } from "./background.ts";
import { type RuntimeSample, type ScrapeResult, scrapeRuntimePod } from "./runtime-metrics.ts";

/** A fresh look at a job's load, for one decision. */
export interface AutoscalingInputs {
  summary: WindowSummary;
  /** Source partitions (every stage has as many): the cap on parallelism. */
  partitions: number;
}

/** What one reconcile learns of the job's load. */
export interface LoadLook {
  /** From the latest scrape of every pod of the run; absent until one is complete. */
  load?: JobLoad;
  /** Present once per scrape, while the autoscaler is on. */
  autoscaling?: AutoscalingInputs;
}

const SCRAPE_TIMEOUT_MS = 2_000;

export class JobMetricsWindows {
  readonly #observations: BackgroundObservations;
  /**
   * Per job uid: its window, the start of the latest scrape recorded in it, and the partitions
   * the last whole scrape saw (a scrape that misses a pod, crashed or restarting, misses its
   * partitions too: the cap on parallelism must not drop with it).
   */
  readonly #windows = new Map<
    string,
    { window: MetricsWindow; recorded: number; partitions: number }
  >();

  constructor(observations: BackgroundObservations) {
    this.#observations = observations;
  }

  /** Frees a deleted job's window (a job that only stops running frees it at its next look). */
  forget(job: StreamJob): void {
    this.#windows.delete(job.metadata.uid ?? "");
  }

  /** The latest scrape of the job's run (asking for the next when one is due). */
  look(job: StreamJob, pods: ObservedPod[], now: number): LoadLook {
    const uid = job.metadata.uid ?? "";
    const run = job.status?.run;
    const autoscaler = job.spec.autoscaler;
    if (!run?.id || job.status?.state !== "Running") {
      this.#windows.delete(uid);
      return {};
    }
    const options = {
      windowMs: parseDuration(autoscaler.metricsWindow),
      intervalMs: parseDuration(autoscaler.metricsInterval),
    };
    const targets = pods.filter(
      (p) => p.run === run.id && !p.terminating && p.ip && p.subtask !== undefined,
    );
    const scrape = this.#observations.latest(
      objectKey(job),
      `metrics:${uid}:${run.id}`,
      options.intervalMs,
      () =>
        Promise.all(
          targets.map((p) =>
            scrapeRuntimePod(
              { pod: p.name, subtask: p.subtask ?? 0, ip: p.ip ?? "" },
              { timeoutMs: SCRAPE_TIMEOUT_MS },
            ),
          ),
        ),
    );
    if (!scrape) return {};
    const look: LoadLook = {};
    const load = loadOf(scrape.value, run.parallelism ?? 0);
    if (load) look.load = load;
    const previous = this.#windows.get(uid);
    if (!autoscaler.enabled) {
      this.#windows.delete(uid);
      return look;
    }
    if (previous?.window.run === run.id && previous.recorded >= scrape.startedAt) return look;
    // A failed scrape leaves a gap the window notices: no decision rests on missing data.
    const samples = scrape.value.flatMap((r) => (r.ok ? [r.sample] : []));
    const window = recordSamples(previous?.window, run.id, samples, now, options);
    const partitions = load?.partitions ?? previous?.partitions ?? 0;
    this.#windows.set(uid, { window, recorded: scrape.startedAt, partitions });
    look.autoscaling = {
      summary: summarize(window, run.id, run.parallelism ?? 0, now, options),
      partitions,
    };
    return look;
  }
}

/**
 * Lag and partitions from one scrape, when it is whole: every subtask of the run answered and
 * knows the backlog of each of its tasks (a part would undercount both).
 */
function loadOf(results: readonly ScrapeResult[], parallelism: number): JobLoad | undefined {
  const samples = results.flatMap((r) => (r.ok ? [r.sample] : []));
  const subtasks = new Set(samples.map((s) => s.subtask));
  if (parallelism === 0 || subtasks.size !== parallelism) return undefined;
  if (samples.some((s) => s.backlog.length < s.tasks)) return undefined;
  const lag = samples.reduce((sum, s) => sum + s.backlog.reduce((n, b) => n + b.records, 0), 0);
  return { lag: Math.round(lag), partitions: partitionsOf(samples) };
}

/** The most partitions any topic of the job has, as the pods report their tasks' backlog. */
function partitionsOf(samples: readonly RuntimeSample[]): number {
  const byTopic = new Map<string, Set<number>>();
  for (const sample of samples) {
    for (const b of sample.backlog) {
      const partitions = byTopic.get(b.topic) ?? new Set<number>();
      partitions.add(b.partition);
      byTopic.set(b.topic, partitions);
    }
  }
  return Math.max(0, ...[...byTopic.values()].map((set) => set.size));
}
