import assert from "node:assert/strict";
import { test } from "node:test";
import type { RuntimeSample } from "../observe/runtime-metrics.ts";
import {
  type MetricsWindow,
  recordSamples,
  summarize,
  type WindowOptions,
} from "./metrics-window.ts";

const OPTIONS: WindowOptions = { windowMs: 120_000, intervalMs: 15_000 };
const T0 = 1_000_000_000;

/**
 * A pod of `partitions` tasks scraped at `second`: it has read `inPerSecond`, been busy
 * `busy` of the time, and its backlog grows by `backlogPerSecond` (spread over its tasks).
 */
function sample(
  subtask: number,
  second: number,
  rates: {
    inPerSecond?: number;
    busy?: number;
    backlogPerSecond?: number;
    partitions?: number;
  } = {},
): RuntimeSample {
  const { inPerSecond = 100, busy = 0.5, backlogPerSecond = 10, partitions = 2 } = rates;
  const backlog = 50 + backlogPerSecond * second;
  return {
    pod: `job-r1-${subtask}`,
    subtask,
    time: T0 + second * 1000,
    tasks: partitions,
    backlog: Array.from({ length: partitions }, (_, i) => ({
      topic: "in",
      partition: subtask * partitions + i,
      records: backlog / partitions,
    })),
    recordsIn: inPerSecond * second,
    recordsOut: inPerSecond * second,
    busySeconds: busy * second,
  };
}

/** Scrape rounds every 15 s from `from` to `to` seconds, `subtasks` pods each. */
function rounds(
  subtasks: number,
  from: number,
  to: number,
  of: (subtask: number, second: number) => RuntimeSample = sample,
): MetricsWindow {
  let window: MetricsWindow | undefined;
  for (let s = from; s <= to; s += 15) {
    const round = Array.from({ length: subtasks }, (_, i) => of(i, s));
    window = recordSamples(window, "r1", round, T0 + s * 1000, OPTIONS);
  }
  return window as MetricsWindow;
}

const at = (second: number) => T0 + second * 1000;

test("a full window: read and arrival rates, busy ratio, true rate per subtask, backlog and its growth", () => {
  const window = rounds(2, 0, 300);
  const summary = summarize(window, "r1", 2, at(300), OPTIONS);
  assert.ok(summary.complete);
  assert.equal(summary.subtasks, 2);
  assert.equal(summary.tasks, 4);
  assert.equal(summary.spanSeconds, 120);
  assert.equal(summary.recordsInRate, 200);
  assert.equal(summary.backlogRate, 20);
  assert.equal(summary.arrivalRate, 220);
  assert.equal(summary.backlog, 2 * (50 + 10 * 300));
  assert.deepEqual(summary.busyRatio, { mean: 0.5, max: 0.5 });
  assert.equal(summary.trueRatePerSubtask, 200, "100 records per 0.5 busy seconds");
  assert.deepEqual(summary.intervalArrivalRates, new Array(8).fill(220));
});

test("the window keeps just what spans it, and starts over for a new run", () => {
  const window = rounds(2, 0, 300);
  const times = new Set(window.samples.map((s) => (s.time - T0) / 1000));
  assert.deepEqual([...times], [180, 195, 210, 225, 240, 255, 270, 285, 300]);
  const next = recordSamples(window, "r2", [sample(0, 315)], at(315), OPTIONS);
  assert.equal(next.run, "r2");
  assert.equal(next.samples.length, 1);
});

test("a counter reset (the pod's process restarted) is counted from zero, not as a negative rate", () => {
  // Subtask 1 restarts at 240 s: from then on its counters start again from 0.
  const restarted = (subtask: number, second: number) => {
    const s = sample(subtask, second);
    if (subtask !== 1 || second < 240) return s;
    return { ...s, recordsIn: 100 * (second - 235), busySeconds: 0.5 * (second - 235) };
  };
  const summary = summarize(rounds(2, 0, 300, restarted), "r1", 2, at(300), OPTIONS);
  assert.ok(summary.complete);
  // Subtask 1 read 100/s except for the 10 s lost across the restart.
  assert.equal(summary.recordsInRate, 100 + (100 * 110) / 120);
  assert.ok(summary.intervalArrivalRates.every((r) => r > 0));
});

test("no decision on missing or partial metrics: each case says what is missing", () => {
  const full = rounds(2, 0, 300);
  const why = (window: MetricsWindow | undefined, parallelism = 2, now = at(300)) => {
    const summary = summarize(window, "r1", parallelism, now, OPTIONS);
    assert.equal(summary.complete, false);
    return summary.complete ? "" : summary.why;
  };
  assert.match(why(undefined), /no samples of run r1/);
  assert.match(why({ ...full, run: "r0" }), /no samples of run r1/);
  assert.match(why(full, 3), /subtask 2: no samples yet/, "a subtask never scraped");
  assert.match(why(full, 2, at(345)), /subtask 0: latest sample is 45s old/, "scrapes failing");
  assert.match(
    why(rounds(2, 0, 90), 2, at(90)),
    /samples span 90s of the 120s window/,
    "run just started",
  );
  const gap = {
    ...full,
    samples: full.samples.filter(
      (s) => !(s.subtask === 1 && [225, 240, 255].includes((s.time - T0) / 1000)),
    ),
  };
  assert.match(
    why(gap),
    /subtask 1: no sample for 60s/,
    "a pod restarting: scrapes failed meanwhile",
  );
  const partial = rounds(2, 0, 300, (subtask, second) => {
    const s = sample(subtask, second);
    return second === 270 && subtask === 0 ? { ...s, backlog: s.backlog.slice(1) } : s;
  });
  assert.match(
    why(partial),
    /subtask 0: backlog of 1 of 2 tasks known/,
    "end offsets not known yet",
  );
});

test("no busy time at all: no true rate rather than an infinite one", () => {
  const idle = rounds(1, 0, 300, (subtask, second) =>
    sample(subtask, second, { inPerSecond: 0, busy: 0, backlogPerSecond: 0 }),
  );
  const summary = summarize(idle, "r1", 1, at(300), OPTIONS);
  assert.ok(summary.complete);
  assert.equal(summary.trueRatePerSubtask, undefined);
  assert.equal(summary.arrivalRate, 0);
});
