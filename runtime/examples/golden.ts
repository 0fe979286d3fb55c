// Input and expected output of each example, with the examples' default topic names: the unit
// tests (examples.test.ts, in memory) and the end-to-end tests (through Kafka) check both.
// Each input is meant to be its own batch, and the run ends with the watermark at infinity
// (through Kafka: a last record far in the future), so window results are exact.
//
// For clicks-per-user over many partitions there is a batch answer instead (clicksPerMinute),
// and input in which one partition lags behind the others in event time (laggingClicks).
import type { Click } from "./clicks-per-user.ts";

export interface GoldenInput {
  value: string;
  /** Kafka record timestamp; default 0. */
  timestamp?: number;
}

export interface GoldenOutput {
  topic: string;
  key: string | null;
  /** The JSON value. */
  value: unknown;
  timestamp: number;
}

export interface Golden {
  inputs: GoldenInput[];
  outputs: GoldenOutput[];
}

const count = (key: string, value: number, timestamp: number): GoldenOutput => ({
  topic: "word-counts",
  key,
  value: { key, value },
  timestamp,
});

export const wordCountGolden: Golden = {
  inputs: [
    { value: "The cat", timestamp: 1 },
    { value: "the dog,  the END", timestamp: 2 },
  ],
  outputs: [
    count("the", 1, 1),
    count("cat", 1, 1),
    count("the", 2, 2),
    count("dog", 1, 2),
    count("the", 3, 2),
    count("end", 1, 2),
  ],
};

const click = (user: string, ts: number): GoldenInput => ({
  value: JSON.stringify({ user, url: "/", ts }),
});
const clicks = (user: string, start: number, n: number): GoldenOutput => ({
  topic: "clicks-per-user",
  key: user,
  value: { user, start, end: start + 60_000, clicks: n },
  timestamp: start + 59_999,
});

export const clicksPerUserGolden: Golden = {
  inputs: [
    click("u1", 1000),
    click("u2", 2000),
    click("u1", 30_000),
    click("u1", 61_000), // watermark 55999: nothing complete yet
    click("u2", 70_000), // watermark 64999: [0, 60000) fires
    click("u1", 50_000), // late but within 10 s of lateness: updates u1's window at once
    click("u1", 80_000), // watermark 74999: [0, 60000) is cleaned up
    click("u2", 10_000), // too late: side output
  ],
  outputs: [
    clicks("u1", 0, 2),
    clicks("u2", 0, 1),
    clicks("u1", 0, 3),
    {
      topic: "clicks-per-user-clicks-per-minute-late",
      key: "u2",
      value: { user: "u2", url: "/", ts: 10_000 },
      timestamp: 10_000,
    },
    // The end of input (watermark at infinity) completes [60000, 120000).
    clicks("u1", 60_000, 2),
    clicks("u2", 60_000, 1),
  ],
};

export const filterEnrichGolden: Golden = {
  inputs: [
    { value: JSON.stringify({ user: "ann", url: "https://example.com/a" }), timestamp: 5 },
    { value: JSON.stringify({ user: "", url: "https://example.com/" }) },
    { value: JSON.stringify({ user: "bob", url: "not a url" }) },
    { value: JSON.stringify({ user: "bot", url: "https://x.org/", agent: "Googlebot/2.1" }) },
    { value: JSON.stringify([1, 2]) },
    {
      value: JSON.stringify({ user: "cy", url: "http://shop.test:8080/p?q=1", agent: "Firefox" }),
      timestamp: 9,
    },
  ],
  outputs: [
    {
      topic: "page-views-enriched",
      key: "ann",
      value: { user: "ann", url: "https://example.com/a", domain: "example.com" },
      timestamp: 5,
    },
    {
      topic: "page-views-enriched",
      key: "cy",
      value: {
        user: "cy",
        url: "http://shop.test:8080/p?q=1",
        agent: "Firefox",
        domain: "shop.test",
      },
      timestamp: 9,
    },
  ],
};

/**
 * The batch answer of clicks-per-user for clicks none of which is late: per user and 60 s
 * window, one result counting all of its clicks, for the windows complete at `watermark` (the
 * end of input's). Sorted by window, then user.
 */
export function clicksPerMinute(
  input: readonly Click[],
  watermark = Number.POSITIVE_INFINITY,
): GoldenOutput[] {
  const counts = new Map<string, { user: string; start: number; n: number }>();
  for (const { user, ts } of input) {
    const start = ts - (((ts % 60_000) + 60_000) % 60_000);
    const id = `${start} ${user}`;
    const entry = counts.get(id) ?? { user, start, n: 0 };
    entry.n++;
    counts.set(id, entry);
  }
  return [...counts.values()]
    .filter(({ start }) => start + 59_999 <= watermark)
    .sort((a, b) => a.start - b.start || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
    .map(({ user, start, n }) => clicks(user, start, n));
}

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32): tests that can repeat. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface LaggingClicksOptions {
  partitions: number;
  /** Rounds of 10 s of event time each. */
  rounds: number;
  clicksPerRound: number;
  /** Event time of the first round. */
  start: number;
  /** How far partition `lagging` is behind the others in event time. */
  lagMs: number;
  lagging: number;
  seed: number;
}

/**
 * Clicks per source partition, per round: round `r` of every partition covers event time
 * [start + 10 s·r, +10 s), but the lagging partition's is `lagMs` earlier. Within a partition
 * clicks are in order, the others' shuffled by up to 2 s (within the example's 5 s bound), so
 * no click is late: what a slow or restarted upstream task looks like to its downstream tasks.
 */
export function laggingClicks(options: LaggingClicksOptions): Click[][][] {
  const random = seededRandom(options.seed);
  const step = 10_000 / options.clicksPerRound;
  return Array.from({ length: options.partitions }, (_, partition) =>
    Array.from({ length: options.rounds }, (_, round) =>
      Array.from({ length: options.clicksPerRound }, (_, i) => {
        const base = options.start + round * 10_000 + Math.floor(i * step);
        const ts =
          partition === options.lagging
            ? base - options.lagMs
            : base + Math.floor((random() - 0.5) * 4000);
        return { user: `u${Math.floor(random() * 7)}`, url: `/p${partition}`, ts };
      }),
    ),
  );
}
