// Input and expected output of each example, with the examples' default topic names: the unit
// tests (examples.test.ts, in memory) and the end-to-end tests (through Kafka) check both.
// Each input is meant to be its own batch, and the run ends with the watermark at infinity
// (through Kafka: a last record far in the future), so window results are exact.

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
