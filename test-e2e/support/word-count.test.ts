// The exactly-once checker itself: a gap, a repeat and a count beyond n each fail it, and
// what it says about them is short.
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkRunningCounts, describeDiscrepancy, expectedCounts, ranges } from "./word-count.ts";

/** The exact output of `rounds` rounds: every word's counts 1..n, as the job writes them. */
function exactOutput(rounds: number, fromRounds = 0): string[] {
  const before = expectedCounts(fromRounds);
  return [...expectedCounts(rounds)].flatMap(([word, n]) =>
    Array.from({ length: n - (before.get(word) ?? 0) }, (_, i) =>
      JSON.stringify({ key: word, value: (before.get(word) ?? 0) + i + 1 }),
    ),
  );
}

const count = (key: string, value: number) => JSON.stringify({ key, value });

test("an exact output passes, from 1 or from a savepoint's counts on", () => {
  const exact = checkRunningCounts(exactOutput(5), 5);
  assert.deepEqual(exact.discrepancies, []);
  assert.equal(exact.read, exact.expected);
  assert.equal(exact.expected, 14 * 5, "14 words a round");
  assert.deepEqual(checkRunningCounts(exactOutput(7, 3), 7, 3).discrepancies, []);
});

test("a gap, a repeat and counts beyond n are each found, per word", () => {
  const output = exactOutput(5)
    .filter((v) => v !== count("fox", 3))
    .concat(count("dog", 4), count("the", 21), count("the", 22), count("the", 23));
  const check = checkRunningCounts(output, 5);
  assert.equal(check.lost, 1);
  assert.equal(check.duplicated, 4);
  assert.deepEqual(check.discrepancies.map(describeDiscrepancy), [
    "the: expected 1..20 exactly once; 3 outside the range (21..23)",
    "fox: expected 1..5 exactly once; 1 missing (3)",
    "dog: expected 1..10 exactly once; 1 repeated (4)",
  ]);
});

test("a word the input never had is all outside its range", () => {
  const check = checkRunningCounts([...exactOutput(1), count("cat", 1)], 1);
  assert.deepEqual(check.discrepancies.map(describeDiscrepancy), [
    "cat: expected 1..0 exactly once; 1 outside the range (1)",
  ]);
});

test("long lists of counts are said in short runs", () => {
  assert.equal(ranges([1, 2, 3, 7, 9, 10]), "1..3, 7, 9..10");
  assert.equal(ranges([1, 3, 5, 7, 9, 11], 2), "1, 3 and 4 more runs");
  assert.equal(ranges([4, 4, 4]), "4", "a repeated value is said once");
});
