// The word-count example as the exactly-once yardstick of end-to-end tests: rounds of known
// lines go in, and every word's running count must come out as 1..n, each exactly once —
// a lost record leaves a gap, a duplicated one a repeat or a count beyond n.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { inputProducer, readTopicSettled, type SettledReadOptions } from "./kafka.ts";

const lines = ["the quick brown fox", "jumps over the lazy dog", "The dog barks", "the end"];

/** Input records (lines) in one round. */
export const LINES_PER_ROUND = lines.length;

/** Produces `rounds` rounds of the lines, spread over the topic's partitions. */
export async function produceRounds(
  input: string,
  partitions: number,
  rounds: number,
): Promise<void> {
  const producer = inputProducer();
  for (let round = 0; round < rounds; round++)
    await producer.send({ messages: roundOf(input, partitions, round) });
  await producer.close();
}

function roundOf(input: string, partitions: number, round: number) {
  return lines.map((line, i) => ({
    topic: input,
    partition: (round + i) % partitions,
    value: line,
  }));
}

/**
 * Produces `roundsPerTick` rounds every `everyMs` until stopped, as live traffic would arrive
 * during upgrades (`setRoundsPerTick` changes the rate on the way); `stop()` resolves with the
 * number of rounds produced.
 */
export function produceContinuously(
  input: string,
  partitions: number,
  everyMs = 50,
  roundsPerTick = 1,
) {
  const producer = inputProducer();
  let stopping = false;
  let rounds = 0;
  let perTick = roundsPerTick;
  const loop = (async () => {
    while (!stopping) {
      // The rate as of now: setRoundsPerTick during the send must not change what it counts
      // (it once made a test expect 3 rounds fewer than it had produced).
      const tick = perTick;
      const messages = [];
      for (let i = 0; i < tick; i++) messages.push(...roundOf(input, partitions, rounds + i));
      if (messages.length > 0) await producer.send({ messages });
      rounds += tick;
      await sleep(everyMs);
    }
    await producer.close();
  })();
  return {
    get rounds() {
      return rounds;
    },
    setRoundsPerTick(n: number): void {
      perTick = n;
    },
    async stop(): Promise<number> {
      stopping = true;
      await loop;
      return rounds;
    },
  };
}

/** How often each word occurs in `rounds` rounds of the lines: its last running count. */
export function expectedCounts(rounds: number): Map<string, number> {
  const expected = new Map<string, number>();
  for (const line of lines) {
    for (const word of line.toLowerCase().split(" "))
      expected.set(word, (expected.get(word) ?? 0) + rounds);
  }
  return expected;
}

/** Where one word's running counts depart from exactly first..last, each once. */
export interface CountDiscrepancy {
  word: string;
  first: number;
  last: number;
  /** Values of first..last that never came out: lost records. */
  missing: number[];
  /** Values of first..last that came out more than once (once per extra time). */
  repeated: number[];
  /** Values outside first..last (above last: an over-count). */
  outside: number[];
}

export interface RunningCountsCheck {
  /** Running counts read (one output record each). */
  read: number;
  /** Running counts first..last of every word, the number an exact output holds. */
  expected: number;
  discrepancies: CountDiscrepancy[];
  /** Values missing, over all words. */
  lost: number;
  /** Values repeated or outside their range, over all words. */
  duplicated: number;
}

/**
 * Compares the word count's output records (`{key, value}` JSON) with exactly
 * `before + 1 .. n` per word, n from `rounds` (and `before` from `fromRounds`) rounds of input.
 */
export function checkRunningCounts(
  values: readonly (string | null)[],
  rounds: number,
  fromRounds = 0,
): RunningCountsCheck {
  const expected = expectedCounts(rounds);
  const before = expectedCounts(fromRounds);
  const seen = new Map<string, number[]>();
  for (const value of values) {
    const record = JSON.parse(value ?? "null") as { key: string; value: number } | null;
    if (typeof record?.key !== "string" || typeof record.value !== "number")
      throw new Error(`not a running count of the word count: ${value}`);
    const counts = seen.get(record.key) ?? [];
    counts.push(record.value);
    seen.set(record.key, counts);
  }
  const discrepancies: CountDiscrepancy[] = [];
  let total = 0;
  for (const word of new Set([...expected.keys(), ...seen.keys()])) {
    const first = (before.get(word) ?? 0) + 1;
    const last = expected.get(word) ?? 0;
    total += Math.max(0, last - first + 1);
    const times = new Map<number, number>();
    for (const count of seen.get(word) ?? []) times.set(count, (times.get(count) ?? 0) + 1);
    const missing: number[] = [];
    const repeated: number[] = [];
    for (let count = first; count <= last; count++) {
      const n = times.get(count) ?? 0;
      if (n === 0) missing.push(count);
      for (let extra = 1; extra < n; extra++) repeated.push(count);
    }
    const outside = [...times]
      .filter(([count]) => count < first || count > last)
      .flatMap(([count, n]) => Array<number>(n).fill(count))
      .sort((a, b) => a - b);
    if (missing.length + repeated.length + outside.length > 0)
      discrepancies.push({ word, first, last, missing, repeated, outside });
  }
  const sum = (pick: (d: CountDiscrepancy) => number) =>
    discrepancies.reduce((acc, d) => acc + pick(d), 0);
  return {
    read: values.length,
    expected: total,
    discrepancies,
    lost: sum((d) => d.missing.length),
    duplicated: sum((d) => d.repeated.length + d.outside.length),
  };
}

/** `1..3, 7, 9..12`, the first `max` runs of sorted numbers and how many more there are. */
export function ranges(numbers: readonly number[], max = 4): string {
  const runs: string[] = [];
  for (let i = 0; i < numbers.length; ) {
    let j = i;
    while (j + 1 < numbers.length && (numbers[j + 1] ?? 0) - (numbers[j] ?? 0) <= 1) j++;
    runs.push(numbers[i] === numbers[j] ? `${numbers[i]}` : `${numbers[i]}..${numbers[j]}`);
    i = j + 1;
  }
  return runs.length > max
    ? `${runs.slice(0, max).join(", ")} and ${runs.length - max} more runs`
    : runs.join(", ");
}

/** One line per word that is not exact: what is missing, repeated, outside its range. */
export function describeDiscrepancy(d: CountDiscrepancy): string {
  const parts = [
    d.missing.length > 0 && `${d.missing.length} missing (${ranges(d.missing)})`,
    d.repeated.length > 0 && `${d.repeated.length} repeated (${ranges(d.repeated)})`,
    d.outside.length > 0 && `${d.outside.length} outside the range (${ranges(d.outside)})`,
  ].filter(Boolean);
  return `${d.word}: expected ${d.first}..${d.last} exactly once; ${parts.join(", ")}`;
}

export interface ExactlyOnceOptions extends SettledReadOptions {
  /**
   * For a job that started from another's savepoint taken after `fromRounds` rounds: its
   * counts start at that job's count + 1.
   */
  fromRounds?: number;
}

/**
 * Asserts every word's running counts came out exactly once: 1..n (from `fromRounds`' count
 * + 1 on), no gap, no repeat, nothing beyond n. Waits until the output holds as many values
 * as that, then until it has been quiet for a while (so that a tail of extra counts would have
 * shown), then reads the whole output to its read_committed end with Kafka's Java client:
 * never "until it has enough", which would leave extra counts unread.
 */
export async function assertExactlyOnce(
  output: string,
  rounds: number,
  options: ExactlyOnceOptions = {},
): Promise<void> {
  const fromRounds = options.fromRounds ?? 0;
  const total = checkRunningCounts([], rounds, fromRounds).expected;
  const contents = await readTopicSettled(output, total, options);
  const check = checkRunningCounts(
    contents.records.map((r) => r.value),
    rounds,
    fromRounds,
  );
  if (check.discrepancies.length === 0) return;
  const open = contents.partitions
    .filter((p) => p.highWatermark > p.lastStableOffset)
    .map((p) => `partition ${p.partition} from offset ${p.lastStableOffset}`);
  assert.fail(
    [
      `${output}: not exactly once: ${check.read} running counts read to the read_committed end, ${check.expected} expected; ${check.lost} lost, ${check.duplicated} duplicated (repeated or beyond n)`,
      ...(contents.reachedCount
        ? []
        : [`  (the output never held ${total} values within the wait)`]),
      ...(open.length > 0 ? [`  (a transaction was still open on ${open.join(", ")})`] : []),
      ...check.discrepancies.map((d) => `  ${describeDiscrepancy(d)}`),
    ].join("\n"),
  );
}
