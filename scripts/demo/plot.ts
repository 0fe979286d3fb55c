// The demo's plot: input and processed rate, backlog and parallelism over time, one panel each
// on a shared time axis, with the load phases as bands and the upgrade and rescales as marks.
// Pure: data in, PNG bytes out.
import { GLYPH_WIDTH, glyph } from "./font.ts";
import { encodePng, type Raster, type Rgb, raster } from "./png.ts";

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
}

export const PLOT_WIDTH = 1200;
export const PLOT_HEIGHT = 820;

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [31, 41, 55];
const AXIS: Rgb = [107, 114, 128];
const GRID: Rgb = [229, 231, 235];
const INPUT: Rgb = [37, 99, 235];
const PROCESSED: Rgb = [22, 163, 74];
const BACKLOG: Rgb = [234, 88, 12];
const BACKLOG_FILL: Rgb = [254, 215, 170];
const PODS: Rgb = [124, 58, 237];
const RECOMMENDED: Rgb = [156, 163, 175];
const MARK: Rgb = [75, 85, 99];
const BANDS: readonly Rgb[] = [
  [239, 246, 255],
  [255, 247, 237],
  [240, 253, 244],
  [250, 245, 255],
];

const LEFT = 100;
const RIGHT = 30;
const TOP = 56;
const BOTTOM = 48;
const GAP = 40;
const TEXT = 2;

interface Panel {
  top: number;
  height: number;
  max: number;
  title: string;
  legend: [string, Rgb][];
}

export function renderPlot(data: PlotData): Buffer {
  const image = raster(PLOT_WIDTH, PLOT_HEIGHT, WHITE);
  const { samples } = data;
  const end = Math.max(1, ...samples.map((s) => s.t), ...data.phases.map((p) => p.end));
  const plotWidth = PLOT_WIDTH - LEFT - RIGHT;
  const x = (t: number) => LEFT + Math.round((t / end) * plotWidth);
  const panelHeight = Math.floor((PLOT_HEIGHT - TOP - BOTTOM - 2 * GAP) / 3);
  const panel = (i: number, max: number, title: string, legend: [string, Rgb][]): Panel => ({
    top: TOP + i * (panelHeight + GAP),
    height: panelHeight,
    max,
    title,
    legend,
  });
  const rates = panel(
    0,
    niceCeiling(Math.max(...samples.flatMap((s) => [s.inputRate, s.processedRate]))),
    "LINES/S",
    [
      ["INPUT", INPUT],
      ["PROCESSED", PROCESSED],
    ],
  );
  const backlog = panel(1, niceCeiling(Math.max(...samples.map((s) => s.backlog))), "BACKLOG", [
    ["LINES NOT YET PROCESSED", BACKLOG],
  ]);
  const podsMax = Math.max(3, ...samples.map((s) => Math.max(s.parallelism, s.recommended ?? 0)));
  const pods = panel(2, podsMax + 0.5, "PARALLELISM", [
    ["PODS", PODS],
    ["RECOMMENDED", RECOMMENDED],
  ]);
  const y = (p: Panel, value: number) =>
    p.top + p.height - Math.round((Math.min(value, p.max) / p.max) * p.height);

  text(image, LEFT, 12, data.title, INK, TEXT);

  for (const [i, phase] of data.phases.entries()) {
    const band = BANDS[i % BANDS.length] as Rgb;
    for (const p of [rates, backlog, pods]) {
      fill(image, x(phase.start), p.top, x(phase.end) - x(phase.start), p.height, band);
    }
    const label = phase.name.toUpperCase();
    if (textWidth(label, 1) < x(phase.end) - x(phase.start) - 4) {
      text(image, x(phase.start) + 4, rates.top + 4, label, AXIS, 1);
    }
  }

  for (const p of [rates, backlog, pods]) {
    const ticks = p === pods ? integerTicks(podsMax) : [0, p.max / 2, p.max];
    for (const value of ticks) {
      hline(image, LEFT, LEFT + plotWidth, y(p, value), GRID);
      const label = formatCount(value);
      text(image, LEFT - 8 - textWidth(label, TEXT), y(p, value) - 7, label, AXIS, TEXT);
    }
    text(image, LEFT, p.top - 20, p.title, INK, TEXT);
    let legendX = LEFT + textWidth(p.title, TEXT) + 24;
    for (const [name, colour] of p.legend) {
      fill(image, legendX, p.top - 16, 14, 6, colour);
      text(image, legendX + 20, p.top - 20, name, AXIS, TEXT);
      legendX += 20 + textWidth(name, TEXT) + 24;
    }
    vline(image, LEFT, p.top, p.top + p.height, AXIS);
    hline(image, LEFT, LEFT + plotWidth, p.top + p.height, AXIS);
  }

  // The backlog as a filled area under its line; every series is drawn over the bands and grid.
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as PlotSample;
    const b = samples[i] as PlotSample;
    for (let column = x(a.t); column < x(b.t); column++) {
      const share = (column - x(a.t)) / (x(b.t) - x(a.t));
      const top = y(backlog, a.backlog + share * (b.backlog - a.backlog));
      vline(image, column, top, y(backlog, 0), BACKLOG_FILL);
    }
  }
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as PlotSample;
    const b = samples[i] as PlotSample;
    line(image, x(a.t), y(rates, a.processedRate), x(b.t), y(rates, b.processedRate), PROCESSED);
    line(image, x(a.t), y(rates, a.inputRate), x(b.t), y(rates, b.inputRate), INPUT);
    line(image, x(a.t), y(backlog, a.backlog), x(b.t), y(backlog, b.backlog), BACKLOG);
    if (a.recommended !== undefined && b.recommended !== undefined) {
      step(image, x(a.t), y(pods, a.recommended), x(b.t), y(pods, b.recommended), RECOMMENDED, 4);
    }
    step(image, x(a.t), y(pods, a.parallelism), x(b.t), y(pods, b.parallelism), PODS);
  }

  for (const [i, mark] of data.marks.entries()) {
    for (let yy = rates.top; yy < pods.top + pods.height; yy += 8) {
      vline(image, x(mark.t), yy, Math.min(yy + 4, pods.top + pods.height), MARK);
    }
    const label = mark.label.toUpperCase();
    const labelX = Math.min(x(mark.t) + 4, PLOT_WIDTH - RIGHT - textWidth(label, 1));
    text(image, labelX, backlog.top + 4 + (i % 3) * 10, label, MARK, 1);
  }

  const tickEvery = end <= 180 ? 30 : end <= 600 ? 60 : 300;
  for (let t = 0; t <= end; t += tickEvery) {
    vline(image, x(t), pods.top + pods.height, pods.top + pods.height + 5, AXIS);
    const label = clock(t);
    text(image, x(t) - textWidth(label, TEXT) / 2, pods.top + pods.height + 10, label, AXIS, TEXT);
  }
  const axisLabel = "TIME (MIN:S)";
  text(
    image,
    PLOT_WIDTH - RIGHT - textWidth(axisLabel, TEXT),
    PLOT_HEIGHT - 16,
    axisLabel,
    AXIS,
    TEXT,
  );
  return encodePng(image);
}

/** The smallest of 1, 2, 2.5, 5 × 10^k at or above `value` (at least 1). */
export function niceCeiling(value: number): number {
  if (!(value > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function integerTicks(max: number): number[] {
  return Array.from({ length: max + 1 }, (_, i) => i);
}

/** 1500 → "1.5K", 2000000 → "2M". */
export function formatCount(value: number): string {
  const units: [number, string][] = [
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [size, unit] of units) {
    if (value >= size) return `${Number((value / size).toFixed(1))}${unit}`;
  }
  return String(Number(value.toFixed(1)));
}

/** Seconds as m:ss. */
export function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function put(image: Raster, x: number, y: number, colour: Rgb): void {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  image.pixels.set(colour, (y * image.width + x) * 3);
}

function fill(image: Raster, x: number, y: number, w: number, h: number, colour: Rgb): void {
  for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) put(image, xx, yy, colour);
}

function hline(image: Raster, x0: number, x1: number, y: number, colour: Rgb): void {
  fill(image, x0, y, x1 - x0 + 1, 1, colour);
}

function vline(image: Raster, x: number, y0: number, y1: number, colour: Rgb): void {
  fill(image, x, y0, 1, y1 - y0 + 1, colour);
}

/** A line two pixels thick (Bresenham). */
function line(image: Raster, x0: number, y0: number, x1: number, y1: number, colour: Rgb): void {
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let error = dx + dy;
  let [x, y] = [x0, y0];
  for (;;) {
    fill(image, x, y - 1, 2, 2, colour);
    if (x === x1 && y === y1) return;
    const e2 = 2 * error;
    if (e2 >= dy) {
      error += dy;
      x += sx;
    }
    if (e2 <= dx) {
      error += dx;
      y += sy;
    }
  }
}

/** A step: flat at y0 until x1, then up or down to y1 (parallelism changes, it does not slope). */
function step(
  image: Raster,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  colour: Rgb,
  offset = 0,
): void {
  line(image, x0, y0 + offset, x1, y0 + offset, colour);
  line(image, x1, y0 + offset, x1, y1 + offset, colour);
}

function textWidth(value: string, scale: number): number {
  return value.length * (GLYPH_WIDTH + 1) * scale;
}

function text(
  image: Raster,
  x: number,
  y: number,
  value: string,
  colour: Rgb,
  scale: number,
): void {
  for (const [i, char] of [...value].entries()) {
    const left = Math.round(x) + i * (GLYPH_WIDTH + 1) * scale;
    for (const [row, bits] of glyph(char).entries()) {
      for (const [column, ink] of bits.entries()) {
        if (ink) fill(image, left + column * scale, y + row * scale, scale, scale, colour);
      }
    }
  }
}
