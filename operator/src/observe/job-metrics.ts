// The autoscaler's eyes: every `metricsInterval`, one scrape of each pod of a job's run, kept
// in a short window per job (in the operator's memory: after a restart the window fills again,
// and until it spans `metricsWindow` nothing is decided).
import type { StreamJob } from "../api/types.ts";
import { parseDuration } from "../api/validate.ts";
import {
  type MetricsWindow,
  recordSamples,
  summarize,
  type WindowSummary,
} from "../decide/metrics-window.ts";
import type { ObservedPod } from "../decide/reconcile.ts";
import { type RuntimeSample, scrapeRuntimePod } from "./runtime-metrics.ts";

/** A fresh look at a job's load, for one decision. */
export interface AutoscalingInputs {
  summary: WindowSummary;
  /** Source partitions (every stage has as many): the cap on parallelism. */
  partitions: number;
}

const SCRAPE_TIMEOUT_MS = 2_000;

export class JobMetricsWindows {
  readonly #windows = new Map<string, { window: MetricsWindow; scrapedAt: number }>();

  /**
   * Scrapes the job's run when a scrape is due; undefined when it is not (a decision is made
   * once per interval, not on every reconcile) or the job is not autoscaled.
   */
  async observe(
    job: StreamJob,
    pods: ObservedPod[],
    now: number,
  ): Promise<AutoscalingInputs | undefined> {
    const key = job.metadata.uid ?? "";
    const autoscaler = job.spec.autoscaler;
    const run = job.status?.run;
    if (!autoscaler?.enabled || !run?.id || job.status?.state !== "Running") {
      this.#windows.delete(key);
      return undefined;
    }
    const options = {
      windowMs: parseDuration(autoscaler.metricsWindow),
      intervalMs: parseDuration(autoscaler.metricsInterval),
    };
    const previous = this.#windows.get(key);
    if (previous && previous.window.run === run.id && now - previous.scrapedAt < options.intervalMs)
      return undefined;
    const targets = pods.filter(
      (p) => p.run === run.id && !p.terminating && p.ip && p.subtask !== undefined,
    );
    const results = await Promise.all(
      targets.map((p) =>
        scrapeRuntimePod(
          { pod: p.name, subtask: p.subtask ?? 0, ip: p.ip ?? "" },
          { timeoutMs: SCRAPE_TIMEOUT_MS },
        ),
      ),
    );
    // A failed scrape leaves a gap the window notices: no decision rests on missing data.
    const samples = results.flatMap((r) => (r.ok ? [r.sample] : []));
    const window = recordSamples(previous?.window, run.id, samples, now, options);
    this.#windows.set(key, { window, scrapedAt: now });
    return {
      summary: summarize(window, run.id, run.parallelism ?? 0, now, options),
      partitions: partitionsOf(window.samples),
    };
  }
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
