import assert from "node:assert/strict";
import { test } from "node:test";
import { cpuSecondsFromStat, percentile, table } from "./measure.ts";

test("CPU seconds are utime + stime, counted after a command name with spaces and parens", () => {
  const stat =
    "4242 (node (main) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 37 0 0 20 0 11 0 9000 1 2";
  assert.equal(cpuSecondsFromStat(stat, 100), 2.87);
});

test("a stat line without CPU fields is refused", () => {
  assert.throws(() => cpuSecondsFromStat("4242 (node) S 1", 100), /unexpected/);
});

test("nearest-rank percentiles", () => {
  const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  assert.equal(percentile(values, 50), 5);
  assert.equal(percentile(values, 99), 10);
  assert.equal(percentile(values, 10), 1);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test("tables pad columns to the widest cell", () => {
  assert.equal(
    table([
      ["what", "value"],
      ["stateless", "1"],
    ]),
    "what       value\n---------  -----\nstateless  1\n",
  );
});
