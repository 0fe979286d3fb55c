// The chart spec has every series in its panel, the titles and the time axis; the renderer makes
// a real PNG of the asked width with more than background in it; m:ss.
import assert from "node:assert/strict";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import {
  chartSpec,
  clock,
  PANELS,
  PLOT_WIDTH,
  type PlotData,
  renderPlot,
  tickEvery,
} from "./plot.ts";

const data: PlotData = {
  title: "Weir demo",
  samples: Array.from({ length: 60 }, (_, i) => ({
    t: i * 2.5,
    inputRate: i < 20 ? 100 : 800,
    processedRate: i < 20 ? 100 : 450,
    backlog: i < 20 ? 0 : (i - 20) * 300,
    parallelism: i < 40 ? 1 : 3,
    ...(i < 10 ? {} : { recommended: i < 35 ? 1 : 3 }),
  })),
  phases: [
    { name: "low load", start: 0, end: 50 },
    { name: "high load", start: 50, end: 150 },
  ],
  marks: [{ t: 90, label: "rescale 1 > 3" }],
};

// The spec's shape as chartSpec builds it (Vega-Lite's own types are a wide union).
interface Layer {
  data?: { values: Record<string, unknown>[] };
  mark: { type: string; strokeDash?: number[] };
  transform?: { filter: { equal: string } }[];
  encoding: Record<string, { title?: string; axis?: { title?: string } | null }>;
}
interface Spec {
  title: { text: string };
  vconcat: { name: string; layer: Layer[] }[];
  config: { font: string };
}

test("the spec: one panel per measure, every series drawn from the samples, titles and axes", () => {
  const spec = chartSpec(data) as unknown as Spec;
  assert.equal(spec.title.text, "Weir demo");
  assert.equal(spec.config.font, "DejaVu Sans");
  assert.deepEqual(
    spec.vconcat.map((p) => p.name),
    ["rates", "backlog", "parallelism"],
  );
  const lines = spec.vconcat.map((p) => p.layer.filter((l) => l.mark.type === "line"));
  // Each series: a line of its own, in its panel, over rows taken from every sample that has it.
  const drawn = lines.map((ls) => ls.map((l) => l.transform?.[0]?.filter.equal));
  assert.deepEqual(drawn, [["input", "processed"], ["backlog"], ["pods", "recommended"]]);
  for (const [i, ls] of lines.entries()) {
    for (const l of ls) {
      const name = l.transform?.[0]?.filter.equal;
      const rows = (l.data?.values ?? []).filter((r) => r.series === name);
      assert.equal(rows.length, name === "recommended" ? 50 : 60, `${name} rows`);
      assert.equal(l.encoding.y?.title, PANELS[i]?.title);
    }
  }
  const backlog = lines[1]?.[0]?.data?.values.filter((r) => r.series === "backlog");
  assert.deepEqual(backlog?.at(-1), { t: 147.5, series: "backlog", value: 11_700 });
  assert.deepEqual(lines[2]?.[1]?.mark.strokeDash, [6, 4], "the recommendation dashed");
  // Only the bottom panel has the time axis; bands for the phases and a rule per mark in each.
  const x = lines.map((ls) => ls[0]?.encoding.x?.axis);
  assert.deepEqual(
    x.map((a) => a?.title ?? null),
    [null, null, "time (min:s)"],
  );
  for (const panel of spec.vconcat) {
    const rect = panel.layer.find((l) => l.mark.type === "rect");
    assert.deepEqual(
      rect?.data?.values.map((v) => v.name),
      ["low load", "high load"],
    );
    const rule = panel.layer.find((l) => l.mark.type === "rule");
    assert.deepEqual(rule?.data?.values, [{ t: 90, label: "rescale 1 > 3" }]);
  }
});

test("the spec of no samples is an empty chart, not an error", () => {
  const spec = chartSpec({ title: "", samples: [], phases: [], marks: [] }) as unknown as Spec;
  assert.equal(spec.vconcat.length, 3);
});

/** The PNG's chunks, CRCs aside: signature, IHDR first, IEND last. */
function readPng(png: Buffer) {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks: { type: string; data: Buffer }[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    chunks.push({
      type: png.subarray(at + 4, at + 8).toString("ascii"),
      data: png.subarray(at + 8, at + 8 + length),
    });
    at += 12 + length;
  }
  assert.equal(chunks[0]?.type, "IHDR");
  assert.equal(chunks.at(-1)?.type, "IEND");
  const header = chunks[0].data;
  return {
    width: header.readUInt32BE(0),
    height: header.readUInt32BE(4),
    bitDepth: header[8],
    colourType: header[9],
    idat: Buffer.concat(chunks.filter((c) => c.type === "IDAT").map((c) => c.data)),
  };
}

type Rgb = [number, number, number];

/** The RGB of every pixel, PNG row filters undone (8-bit, `channels` bytes a pixel). */
function unfilter(raw: Buffer, width: number, height: number, channels: number): Rgb[] {
  const stride = width * channels;
  assert.equal(raw.length, (stride + 1) * height);
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number;
    assert.ok(filter <= 4, `filter type ${filter}`);
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i] as number;
      const a = i >= channels ? (out[y * stride + i - channels] as number) : 0;
      const b = y > 0 ? (out[(y - 1) * stride + i] as number) : 0;
      const c = y > 0 && i >= channels ? (out[(y - 1) * stride + i - channels] as number) : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const predictor =
        filter === 0
          ? 0
          : filter === 1
            ? a
            : filter === 2
              ? b
              : filter === 3
                ? (a + b) >> 1
                : paeth;
      out[y * stride + i] = (x + predictor) & 0xff;
    }
  }
  const pixels: Rgb[] = [];
  for (let i = 0; i < out.length; i += channels) {
    pixels.push([out[i] as number, out[i + 1] as number, out[i + 2] as number]);
  }
  return pixels;
}

test("the render: a PNG of the asked width, with more than a blank page in it", async () => {
  const png = readPng(await renderPlot(data));
  assert.equal(png.width, PLOT_WIDTH);
  assert.ok(png.height > 600 && png.height < 1200, `height ${png.height}`);
  assert.equal(png.bitDepth, 8);
  assert.ok(png.colourType === 2 || png.colourType === 6, "RGB or RGBA");
  const pixels = unfilter(
    inflateSync(png.idat),
    png.width,
    png.height,
    png.colourType === 6 ? 4 : 3,
  );
  const ink = pixels.filter(([r, g, b]) => r < 250 || g < 250 || b < 250).length;
  assert.ok(ink > pixels.length * 0.05, `more than background: ${ink} of ${pixels.length}`);
  // The series' own colours are there (within antialiasing): input blue, backlog orange, pods violet.
  for (const [name, [r, g, b]] of [
    ["input", [37, 99, 235]],
    ["backlog", [234, 88, 12]],
    ["pods", [124, 58, 237]],
  ] as const) {
    const near = pixels.filter(
      ([pr, pg, pb]) => Math.abs(pr - r) + Math.abs(pg - g) + Math.abs(pb - b) < 30,
    ).length;
    assert.ok(near > 100, `${name} drawn (${near} pixels)`);
  }
});

test("time axis: ticks by length, m:ss", () => {
  assert.deepEqual([60, 180, 600, 3600, 10_800].map(tickEvery), [30, 30, 60, 300, 1800]);
  assert.deepEqual([0, 59.6, 61, 605].map(clock), ["0:00", "1:00", "1:01", "10:05"]);
});
