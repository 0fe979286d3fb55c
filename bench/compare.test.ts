import assert from "node:assert/strict";
import { test } from "node:test";
import {
  comparisonTable,
  type Figure,
  type Figures,
  perCore,
  targetLines,
  targets,
  weirRatio,
} from "./compare.ts";

const figure = (records: number, cpuSeconds: number, seconds = 10): Figure => ({
  records,
  seconds,
  cpuSeconds,
  brokerCpuSeconds: 3,
});

// Per core: stateless Weir 100k, Kafka Streams 50k, Flink 90k, pass-through 160k;
// keyed Weir 60k, Kafka Streams 40k (exactly 1.5×), Flink 48k (1.25×).
const figures: Figures = {
  stateless: {
    weir: figure(1_200_000, 12),
    "kafka-streams": figure(1_200_000, 24),
    flink: figure(1_200_000, 1_200_000 / 90_000),
    "pass-through": figure(1_200_000, 7.5),
  },
  keyed: {
    weir: figure(600_000, 10),
    "kafka-streams": figure(600_000, 15),
    flink: figure(600_000, 12.5),
  },
};

test("records per core are input records over the process's CPU seconds", () => {
  assert.equal(perCore(figure(1_000, 4)), 250);
});

test("Weir's ratio is its records per core over the other engine's", () => {
  assert.equal(weirRatio(figures, "stateless", "kafka-streams"), 2);
  assert.equal(weirRatio(figures, "stateless", "pass-through"), 0.625);
  assert.equal(weirRatio(figures, "keyed", "flink"), 1.25);
  assert.equal(weirRatio(figures, "keyed", "pass-through"), undefined);
  assert.equal(weirRatio({ stateless: {}, keyed: {} }, "stateless", "flink"), undefined);
});

test("each target is met at or above its bar, missed below, not measured without its peer", () => {
  const verdicts = Object.fromEntries(targets(figures).map((t) => [t.description, t.met]));
  assert.deepEqual(verdicts, {
    "stateless: Weir ≥ 1.5× Kafka Streams per core": true,
    // 100k / 90k = 1.11
    "stateless: Weir ≥ 1.2× Flink per core": false,
    // exactly 1.5: the bar is inclusive
    "keyed: Weir ≥ 1.5× Kafka Streams per core": true,
    "keyed: Weir ≥ 1.2× Flink per core": true,
    // 62.5%
    "stateless: Weir ≥ 70% of the pass-through per core": false,
  });
  const skipped = targets({ stateless: { weir: figure(1, 1) }, keyed: {} });
  assert.ok(skipped.every((t) => t.met === undefined && t.ratio === undefined));
});

test("the target lines say met, MISSED or not measured, with the ratio", () => {
  const lines = targetLines(targets(figures)).split("\n");
  assert.equal(lines[0], "  met          stateless: Weir ≥ 1.5× Kafka Streams per core (2.00×)");
  assert.equal(lines[1], "  MISSED       stateless: Weir ≥ 1.2× Flink per core (1.11×)");
  assert.equal(
    lines[4],
    "  MISSED       stateless: Weir ≥ 70% of the pass-through per core (62.5%)",
  );
  assert.equal(
    targetLines(targets({ stateless: {}, keyed: {} })).split("\n")[0],
    "  not measured stateless: Weir ≥ 1.5× Kafka Streams per core",
  );
});

test("the table has a row per engine measured, with Weir's ratio or share", () => {
  const rows = comparisonTable(figures).trimEnd().split("\n");
  assert.equal(rows.length, 2 + 4 + 3);
  const cells = (row: string) => row.split(/ {2,}/);
  const [, , ...body] = rows;
  assert.deepEqual(cells(body[0] as string).slice(1, 7), [
    "Weir",
    "1200000",
    "10.0",
    "120,000",
    "12.0",
    "100,000",
  ]);
  assert.deepEqual(cells(body[1] as string).slice(6, 8), ["50,000", "2.00×"]);
  assert.deepEqual(cells(body[3] as string).slice(6, 8), ["160,000", "63%"]);
  assert.deepEqual(cells(body[6] as string).slice(1, 2), ["Flink (MiniCluster)"]);
  assert.deepEqual(cells(body[6] as string).slice(6, 8), ["48,000", "1.25×"]);
});
