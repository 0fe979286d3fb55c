// The exactly-once check finds a lost and a repeated count, and passes the exact output.
import assert from "node:assert/strict";
import { test } from "node:test";
import { countMismatches, expectedCounts, total } from "./check.ts";
import { wordsOf } from "./job.ts";
import { lineAt } from "./load.ts";

const counts = (word: string, values: number[]) =>
  values.map((value) => JSON.stringify({ key: word, value }));

test("expected counts: the words of the lines produced, as the job splits them", () => {
  const expected = expectedCounts(7);
  const words = Array.from({ length: 7 }, (_, i) => wordsOf(lineAt(i))).flat();
  assert.equal(total(expected), words.length);
  assert.equal(expected.get("the"), words.filter((w) => w === "the").length);
  assert.ok((expected.get("the") ?? 0) >= 3, "the first lines repeat 'the'");
  assert.deepEqual(wordsOf("The dog's  bark, again!"), ["the", "dog's", "bark", "again"]);
});

test("running counts 1..n exactly once pass; a gap, a repeat or an extra word do not", () => {
  const expected = new Map([
    ["fox", 3],
    ["dog", 2],
  ]);
  assert.deepEqual(
    countMismatches([...counts("dog", [2, 1]), ...counts("fox", [1, 2, 3])], expected),
    [],
  );
  assert.deepEqual(
    countMismatches([...counts("dog", [1, 2]), ...counts("fox", [1, 3])], expected),
    ["fox: 2 counts for 3 occurrences, highest 3"],
  );
  assert.deepEqual(
    countMismatches([...counts("dog", [1, 2]), ...counts("fox", [1, 2, 2])], expected),
    ["fox: 3 counts for 3 occurrences, 1 repeated, highest 2"],
  );
  assert.deepEqual(
    countMismatches(
      [...counts("dog", [1, 2]), ...counts("fox", [1, 2, 3]), ...counts("cat", [1])],
      expected,
    ),
    ["cat: 1 counts for 0 occurrences, highest 1"],
  );
  assert.deepEqual(countMismatches(counts("fox", [1, 2, 3]), expected), [
    "dog: 0 counts for 2 occurrences",
  ]);
});
