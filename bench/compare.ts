// The runtime benchmark's comparison of engines (pure): records per CPU-second of each job's
// process, Weir's ratio to each peer, the targets of issue 16 met or missed, and the table.
import { table } from "./measure.ts";

export type EngineName = "weir" | "kafka-streams" | "flink" | "pass-through";
export type JobName = "stateless" | "keyed";

export const ENGINE_LABELS: Record<EngineName, string> = {
  weir: "Weir",
  "kafka-streams": "Kafka Streams",
  flink: "Flink (MiniCluster)",
  "pass-through": "pass-through (no processing)",
};

export const JOB_LABELS: Record<JobName, string> = {
  stateless: "stateless (filter-enrich)",
  keyed: "keyed windowed (clicks-per-user)",
};

/** One engine's run of one job. */
export interface Figure {
  /** Input records processed. */
  records: number;
  /** Wall seconds from readiness until the output was complete for read_committed. */
  seconds: number;
  /** CPU seconds of the job's process over the same span (a JVM's every thread included). */
  cpuSeconds: number;
  /** CPU seconds of the broker over the same span. */
  brokerCpuSeconds: number;
}

export type Figures = Record<JobName, Partial<Record<EngineName, Figure>>>;

/** Issue 16's targets: Weir per core against each peer, and against its design's ceiling. */
export const TARGETS = {
  /** Weir ≥ 1.5× Kafka Streams per core, both jobs. */
  overKafkaStreams: 1.5,
  /** Weir ≥ 1.2× Flink per core, both jobs. */
  overFlink: 1.2,
  /** Stateless Weir ≥ 70% of the pass-through per core. */
  shareOfPassThrough: 0.7,
};

export function perCore(figure: Figure): number {
  return figure.records / figure.cpuSeconds;
}

/** Weir's records per core over `engine`'s, or undefined when either was not measured. */
export function weirRatio(figures: Figures, job: JobName, engine: EngineName): number | undefined {
  const weir = figures[job].weir;
  const other = figures[job][engine];
  if (!weir || !other) return undefined;
  return perCore(weir) / perCore(other);
}

export interface Target {
  description: string;
  ratio: number | undefined;
  target: number;
  /** Shown as a share (the pass-through) rather than a multiple (a peer). */
  share: boolean;
  /** undefined: not measured in this run (a peer skipped). */
  met: boolean | undefined;
}

export function targets(figures: Figures): Target[] {
  const target = (
    description: string,
    ratio: number | undefined,
    bar: number,
    share = false,
  ): Target => ({
    description,
    ratio,
    target: bar,
    share,
    met: ratio === undefined ? undefined : ratio >= bar,
  });
  return [
    ...(["stateless", "keyed"] as const).flatMap((job) => [
      target(
        `${job}: Weir ≥ ${TARGETS.overKafkaStreams}× Kafka Streams per core`,
        weirRatio(figures, job, "kafka-streams"),
        TARGETS.overKafkaStreams,
      ),
      target(
        `${job}: Weir ≥ ${TARGETS.overFlink}× Flink per core`,
        weirRatio(figures, job, "flink"),
        TARGETS.overFlink,
      ),
    ]),
    target(
      `stateless: Weir ≥ ${TARGETS.shareOfPassThrough * 100}% of the pass-through per core`,
      weirRatio(figures, "stateless", "pass-through"),
      TARGETS.shareOfPassThrough,
      true,
    ),
  ];
}

function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Weir's ratio as the table shows it: × for a peer, a share for the pass-through. */
function ratioCell(figures: Figures, job: JobName, engine: EngineName): string {
  if (engine === "weir") return "";
  const ratio = weirRatio(figures, job, engine);
  if (ratio === undefined) return "";
  return engine === "pass-through" ? `${(ratio * 100).toFixed(0)}%` : `${ratio.toFixed(2)}×`;
}

const ENGINE_ORDER: EngineName[] = ["weir", "kafka-streams", "flink", "pass-through"];

/** The figures of every engine and job, with Weir's ratio to each. */
export function comparisonTable(figures: Figures): string {
  const rows = (["stateless", "keyed"] as const).flatMap((job) =>
    ENGINE_ORDER.flatMap((engine) => {
      const f = figures[job][engine];
      if (!f) return [];
      return [
        [
          JOB_LABELS[job],
          ENGINE_LABELS[engine],
          String(f.records),
          f.seconds.toFixed(1),
          thousands(f.records / f.seconds),
          f.cpuSeconds.toFixed(1),
          thousands(perCore(f)),
          ratioCell(figures, job, engine),
          f.brokerCpuSeconds.toFixed(1),
        ],
      ];
    }),
  );
  return table([
    [
      "job",
      "engine",
      "records",
      "wall s",
      "records/s",
      "process CPU s",
      "records/s per core",
      "Weir ×/share",
      "broker CPU s",
    ],
    ...rows,
  ]);
}

/** The targets, a line each: the ratio, the bar, met or missed. */
export function targetLines(list: readonly Target[]): string {
  return list
    .map((t) => {
      const verdict = t.met === undefined ? "not measured" : t.met ? "met" : "MISSED";
      const shown =
        t.ratio === undefined
          ? ""
          : t.share
            ? ` (${(t.ratio * 100).toFixed(1)}%)`
            : ` (${t.ratio.toFixed(2)}×)`;
      return `  ${verdict.padEnd(12)} ${t.description}${shown}\n`;
    })
    .join("");
}
