// The word-count example as the exactly-once yardstick of end-to-end tests: rounds of known
// lines go in, and every word's running count must come out as 1..n, each exactly once —
// a lost record leaves a gap, a duplicated one a repeat.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { inputProducer, readTopic } from "./kafka.ts";

const lines = ["the quick brown fox", "jumps over the lazy dog", "The dog barks", "the end"];

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

function expectedCounts(rounds: number): Map<string, number> {
  const expected = new Map<string, number>();
  for (const line of lines) {
    for (const word of line.toLowerCase().split(" "))
      expected.set(word, (expected.get(word) ?? 0) + rounds);
  }
  return expected;
}

/**
 * Reads the output until it holds every expected count; asserts each word's running counts
 * exactly once: 1..n, or — for a job that started from another's savepoint taken after
 * `fromRounds` rounds — from that job's count + 1 to n.
 */
export async function assertExactlyOnce(
  output: string,
  rounds: number,
  timeoutMs = 120_000,
  fromRounds = 0,
): Promise<void> {
  const expected = expectedCounts(rounds);
  const before = expectedCounts(fromRounds);
  const total = [...expected].reduce((sum, [word, n]) => sum + n - (before.get(word) ?? 0), 0);
  const values = await readTopic(output, (read) => read.length >= total, { timeoutMs });
  const counts = new Map<string, number[]>();
  for (const value of values) {
    const { key, value: count } = JSON.parse(value) as { key: string; value: number };
    counts.set(key, [...(counts.get(key) ?? []), count]);
  }
  for (const [word, n] of expected) {
    const first = (before.get(word) ?? 0) + 1;
    assert.deepEqual(
      [...(counts.get(word) ?? [])].sort((a, b) => a - b),
      Array.from({ length: n - first + 1 }, (_, i) => first + i),
      `${word}: ${first}..${n} exactly once`,
    );
  }
}
