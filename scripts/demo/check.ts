// The demo's exactly-once check: after an upgrade and rescales, every word's running counts in
// the output are 1, 2, …, n exactly once, n being how often the word was produced. A lost
// record leaves a gap, a duplicated one a repeat or a count beyond n. The demo reads the whole
// output to its read_committed end (never just until it holds as many records as there are
// word occurrences, which could leave extra counts unread).
import { wordsOf } from "./job.ts";
import { lineAt } from "./load.ts";

/** How often each word occurs in the first `produced` lines of the load generator. */
export function expectedCounts(produced: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < produced; i++) {
    for (const word of wordsOf(lineAt(i))) counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

export function total(counts: Map<string, number>): number {
  return [...counts.values()].reduce((sum, n) => sum + n, 0);
}

/** The words whose output (JSON `{key, value}` records) is not exactly 1..n; empty when all are. */
export function countMismatches(
  output: readonly string[],
  expected: Map<string, number>,
): string[] {
  const seen = new Map<string, number[]>();
  for (const record of output) {
    const { key, value } = JSON.parse(record) as { key: string; value: number };
    const values = seen.get(key) ?? [];
    values.push(value);
    seen.set(key, values);
  }
  const mismatches: string[] = [];
  for (const word of new Set([...expected.keys(), ...seen.keys()])) {
    const n = expected.get(word) ?? 0;
    const values = (seen.get(word) ?? []).sort((a, b) => a - b);
    const exact = values.length === n && values.every((value, i) => value === i + 1);
    if (!exact) {
      const repeats = values.length - new Set(values).size;
      mismatches.push(
        `${word}: ${values.length} counts for ${n} occurrences` +
          (repeats > 0 ? `, ${repeats} repeated` : "") +
          (values.length > 0 ? `, highest ${values.at(-1)}` : ""),
      );
    }
  }
  return mismatches;
}
