// The demo's plot: input and processed rate, backlog and parallelism over time, one panel each
// on a shared time axis, with the load phases as bands and the upgrade and rescales as marks.
// `chartSpec` is pure (samples in, a Vega-Lite spec out); render.ts draws any such spec to PNG.
// The autoscaler simulator's docs figure (bench/autoscaler/figure.ts) draws the same chart.
import type { TopLevelSpec } from "vega-lite";
import { renderPng } from "./render.ts";

export interface PlotSample {
  /** Seconds since the demo's load started. */
  t: number;
  /** Lines per second produced and processed (committed by the job). */
  inputRate: number;
  processedRate: number;
  /** Lines not yet processed. */
  backlog: number;
  /** Pods running, and what the autoscaler recommends (when it said). */
  parallelism: number;
  recommended?: number;
}

export interface PlotData {
  title: string;
  samples: readonly PlotSample[];
  phases: readonly { name: string; start: number; end: number }[];
  /** Moments worth a vertical line: the upgrade, each rescale. */
  marks: readonly { t: number; label: string }[];
  /** What the rates and the backlog count (the axis titles): "lines" unless said. */
  unit?: string;
}

/** Width of the PNG in pixels (its height follows from the chart). */
export const PLOT_WIDTH = 1200;
const PANEL_WIDTH = 1000;
const PANEL_HEIGHT = 190;
export const FONT = "DejaVu Sans";

/** Each series: its legend name, the panel it is drawn in, and its colour. */
export const SERIES = {
  input: { name: "input", panel: "rates", colour: "#2563eb" },
  processed: { name: "processed", panel: "rates", colour: "#16a34a" },
  backlog: { name: "backlog", panel: "backlog", colour: "#ea580c" },
  pods: { name: "pods", panel: "parallelism", colour: "#7c3aed" },
  recommended: { name: "recommended", panel: "parallelism", colour: "#9ca3af" },
} as const;
type SeriesKey = keyof typeof SERIES;

export const PANELS = [
  { id: "rates", title: "lines/s", series: ["input", "processed"] },
  { id: "backlog", title: "backlog (lines)", series: ["backlog"] },
  { id: "parallelism", title: "parallelism (pods)", series: ["pods", "recommended"] },
] as const satisfies readonly { id: string; title: string; series: readonly SeriesKey[] }[];

const BANDS = ["#eff6ff", "#fff7ed", "#f0fdf4", "#faf5ff"];
const MARK = "#4b5563";
const AXIS = "#6b7280";
/** Axis labels as counts: 1500 → 1.5K, 2000000 → 2M. */
const COUNT =
  "datum.value >= 1e6 ? format(datum.value / 1e6, '~g') + 'M' : " +
  "datum.value >= 1e3 ? format(datum.value / 1e3, '~g') + 'K' : format(datum.value, '~g')";

/** The long-form rows a panel draws: one per sample and series that has a value. */
function rows(samples: readonly PlotSample[], panel: (typeof PANELS)[number]) {
  const value: Record<SeriesKey, (s: PlotSample) => number | undefined> = {
    input: (s) => s.inputRate,
    processed: (s) => s.processedRate,
    backlog: (s) => s.backlog,
    pods: (s) => s.parallelism,
    recommended: (s) => s.recommended,
  };
  return samples.flatMap((s) =>
    panel.series.flatMap((key) => {
      const v = value[key](s);
      return v === undefined ? [] : [{ t: s.t, series: SERIES[key].name, value: v }];
    }),
  );
}

/** Seconds between time-axis ticks for a chart `end` seconds long. */
export function tickEvery(end: number): number {
  return end <= 180 ? 30 : end <= 600 ? 60 : end <= 3600 ? 300 : 1800;
}

/** One chart without the top level's settings (so that charts can be stacked). */
function chartBody(data: PlotData, prefix = "") {
  const { samples } = data;
  const end = Math.max(1, ...samples.map((s) => s.t), ...data.phases.map((p) => p.end));
  const step = tickEvery(end);
  const ticks = Array.from({ length: Math.floor(end / step) + 1 }, (_, i) => i * step);
  const podsMax = Math.max(3, ...samples.map((s) => Math.max(s.parallelism, s.recommended ?? 0)));
  const axisOf = (last: boolean) => (field: string) => ({
    field,
    type: "quantitative" as const,
    scale: { domain: [0, end], nice: false, zero: true },
    axis: last
      ? {
          values: ticks,
          // m:ss, as the demo's progress lines print time.
          labelExpr:
            "floor(datum.value / 60) + ':' + (datum.value % 60 < 10 ? '0' : '') + datum.value % 60",
          title: "time (min:s)",
          grid: false,
        }
      : null,
  });
  const colour = {
    field: "series",
    type: "nominal" as const,
    scale: {
      domain: Object.values(SERIES).map((s) => s.name),
      range: Object.values(SERIES).map((s) => s.colour),
    },
    legend: { title: null, orient: "top" as const, direction: "horizontal" as const },
  };
  const phases = data.phases.map((p, i) => ({
    ...p,
    shade: BANDS[i % BANDS.length],
    mid: (p.start + p.end) / 2,
  }));
  const layersOf = (x: ReturnType<typeof axisOf>) => {
    const bands = {
      data: { values: phases },
      mark: { type: "rect" as const },
      encoding: {
        x: x("start"),
        x2: { field: "end" },
        fill: { field: "shade", type: "nominal" as const, scale: null, legend: null },
      },
    };
    const phaseLabels = {
      data: { values: phases },
      mark: { type: "text" as const, baseline: "top" as const, dy: 4, color: AXIS, fontSize: 11 },
      encoding: {
        x: x("mid"),
        y: { value: 0 },
        text: { field: "name", type: "nominal" as const },
      },
    };
    const rules = {
      data: { values: data.marks.map((m) => ({ ...m })) },
      mark: { type: "rule" as const, color: MARK, strokeDash: [4, 4] },
      encoding: { x: x("t") },
    };
    // Mark labels in three rows, so that close marks do not print over each other.
    const ruleLabels = [0, 1, 2].map((row) => ({
      data: { values: data.marks.filter((_, i) => i % 3 === row).map((m) => ({ ...m })) },
      mark: {
        type: "text" as const,
        align: "left" as const,
        baseline: "top" as const,
        dx: 4,
        y: 4 + row * 13,
        color: MARK,
        fontSize: 11,
      },
      encoding: { x: x("t"), text: { field: "label", type: "nominal" as const } },
    }));
    return { bands, phaseLabels, rules, ruleLabels };
  };
  const panel = (p: (typeof PANELS)[number], i: number) => {
    const last = i === PANELS.length - 1;
    const x = axisOf(last);
    const { bands, phaseLabels, rules, ruleLabels } = layersOf(x);
    const values = rows(samples, p);
    const series = {
      data: { values },
      encoding: {
        x: x("t"),
        y: {
          field: "value",
          type: "quantitative" as const,
          title: p.title.replace("lines", data.unit ?? "lines"),
          axis: { labelExpr: COUNT, ...(p.id === "parallelism" ? { tickMinStep: 1 } : {}) },
          scale:
            p.id === "parallelism" ? { domain: [0, podsMax + 0.5], nice: false } : { zero: true },
        },
        color: colour,
      },
    };
    const layers: object[] = [bands];
    if (i === 0) layers.push(phaseLabels);
    if (p.id === "backlog") {
      layers.push({
        ...series,
        mark: { type: "area", opacity: 0.3, color: SERIES.backlog.colour },
        encoding: { ...series.encoding, color: { value: SERIES.backlog.colour } },
      });
    }
    // Each series its own line layer, so that one can be dashed (what the autoscaler recommends).
    for (const key of p.series) {
      layers.push({
        ...series,
        transform: [{ filter: { field: "series", equal: SERIES[key].name } }],
        mark: {
          type: "line",
          strokeWidth: 2,
          ...(p.id === "parallelism" ? { interpolate: "step-after" } : {}),
          ...(key === "recommended" ? { strokeDash: [6, 4] } : {}),
        },
      });
    }
    layers.push(rules);
    if (p.id === "backlog") layers.push(...ruleLabels);
    return { name: `${prefix}${p.id}`, width: PANEL_WIDTH, height: PANEL_HEIGHT, layer: layers };
  };
  return {
    title: { text: data.title, anchor: "start", fontSize: 16 },
    vconcat: PANELS.map(panel),
    spacing: 18,
    resolve: { scale: { x: "shared", color: "shared" } },
  };
}

/** The chart of `data` as a Vega-Lite spec: three panels on one time axis, one legend. */
export function chartSpec(data: PlotData): TopLevelSpec {
  return { ...TOP, ...chartBody(data) } as TopLevelSpec;
}

/** Several such charts one above the other (the simulator's traces), under one title and legend. */
export function stackedSpec(title: string, charts: readonly PlotData[]): TopLevelSpec {
  return {
    ...TOP,
    title: { text: title, anchor: "start", fontSize: 18 },
    vconcat: charts.map((c, i) => chartBody(c, `chart${i}_`)),
    spacing: 36,
    resolve: { scale: { color: "shared" } },
  } as TopLevelSpec;
}

const TOP = {
  $schema: "https://vega.github.io/schema/vega-lite/v6.json",
  background: "white",
  padding: 16,
  config: {
    font: FONT,
    view: { stroke: AXIS },
    axis: { labelFontSize: 12, titleFontSize: 12, labelColor: AXIS, titleColor: "#1f2937" },
    legend: { labelFontSize: 12 },
    title: { subtitleFontSize: 12 },
  },
};

/** The demo's plot as PNG bytes. */
export function renderPlot(data: PlotData): Promise<Buffer> {
  return renderPng(chartSpec(data), { width: PLOT_WIDTH });
}

/** Seconds as m:ss. */
export function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
