// The plot is a real PNG of the stated size (read back chunk by chunk, CRCs checked) with the
// series drawn in their colours; the axis helpers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32, inflateSync } from "node:zlib";
import {
  clock,
  formatCount,
  niceCeiling,
  PLOT_HEIGHT,
  PLOT_WIDTH,
  type PlotData,
  renderPlot,
} from "./plot.ts";

/** Reads an 8-bit RGB, unfiltered PNG as encodePng writes it: size and pixels. */
function readPng(png: Buffer) {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks: { type: string; data: Buffer }[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const typed = png.subarray(at + 4, at + 8 + length);
    assert.equal(png.readUInt32BE(at + 8 + length), crc32(typed), "chunk CRC");
    chunks.push({ type: typed.subarray(0, 4).toString("ascii"), data: typed.subarray(4) });
    at += 12 + length;
  }
  assert.deepEqual(
    chunks.map((c) => c.type),
    ["IHDR", "IDAT", "IEND"],
  );
  const header = chunks[0]?.data as Buffer;
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  assert.deepEqual([...header.subarray(8)], [8, 2, 0, 0, 0], "8-bit RGB");
  const rows = inflateSync(chunks[1]?.data as Buffer);
  assert.equal(rows.length, (width * 3 + 1) * height);
  const colours = new Map<string, number>();
  for (let y = 0; y < height; y++) {
    assert.equal(rows[y * (width * 3 + 1)], 0, "filter type none");
    for (let x = 0; x < width; x++) {
      const i = y * (width * 3 + 1) + 1 + x * 3;
      const key = `${rows[i]},${rows[i + 1]},${rows[i + 2]}`;
      colours.set(key, (colours.get(key) ?? 0) + 1);
    }
  }
  return { width, height, colours };
}

const data: PlotData = {
  title: "Weir demo",
  samples: Array.from({ length: 60 }, (_, i) => ({
    t: i * 2.5,
    inputRate: i < 20 ? 100 : 800,
    processedRate: i < 20 ? 100 : 450,
    backlog: i < 20 ? 0 : (i - 20) * 300,
    parallelism: i < 40 ? 1 : 3,
    recommended: i < 35 ? 1 : 3,
  })),
  phases: [
    { name: "low load", start: 0, end: 50 },
    { name: "high load", start: 50, end: 150 },
  ],
  marks: [{ t: 90, label: "rescale 1 > 3" }],
};

test("the plot: a PNG of the stated size with every series in its colour", () => {
  const { width, height, colours } = readPng(renderPlot(data));
  assert.equal(width, PLOT_WIDTH);
  assert.equal(height, PLOT_HEIGHT);
  const white = colours.get("255,255,255") ?? 0;
  assert.ok(white < width * height * 0.9, "more than a blank page");
  for (const [name, rgb] of [
    ["input", "37,99,235"],
    ["processed", "22,163,74"],
    ["backlog", "234,88,12"],
    ["pods", "124,58,237"],
    ["recommended", "156,163,175"],
  ]) {
    assert.ok((colours.get(rgb as string) ?? 0) > 200, `${name} drawn`);
  }
});

test("the plot of no samples is an empty chart, not an error", () => {
  const { width, height } = readPng(renderPlot({ title: "", samples: [], phases: [], marks: [] }));
  assert.deepEqual([width, height], [PLOT_WIDTH, PLOT_HEIGHT]);
});

test("axis helpers: round ceilings, short counts, m:ss", () => {
  assert.deepEqual(
    [0, 1, 7, 10, 11, 180, 250, 251, 4_200].map(niceCeiling),
    [1, 1, 10, 10, 20, 200, 250, 500, 5_000],
  );
  assert.deepEqual([0, 2.5, 500, 1_500, 20_000, 2_000_000].map(formatCount), [
    "0",
    "2.5",
    "500",
    "1.5K",
    "20K",
    "2M",
  ]);
  assert.deepEqual([0, 59.6, 61, 605].map(clock), ["0:00", "1:00", "1:01", "10:05"]);
});
