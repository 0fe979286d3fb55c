// The runtime benchmark's inputs, shared by every engine (Weir, Kafka Streams, Flink, the
// pass-through): deterministic, so each engine reads the same bytes (one input topic per
// workload, read by all), and the output each must produce, checked record by record.
import { inputProducer } from "../test-e2e/support/kafka.ts";

/** An output record as read back: key and value as strings. */
export interface OutputRecord {
  key: string | null;
  value: string | null;
}

// ---- filter-enrich (stateless) ----

/** Page view i: every 20th is a bot's, every 20th+1 has no valid URL. */
export function pageView(i: number): string {
  const agent = i % 20 === 0 ? "Googlebot/2.1" : "Mozilla/5.0 (X11; Linux x86_64)";
  const url = i % 20 === 1 ? "not a url" : `https://shop${i % 50}.example.com/item/${i}`;
  return JSON.stringify({ user: `u${i % 10_000}`, url, agent });
}

/** What filter-enrich makes of page view i (keyed by its user), or undefined when dropped. */
export function enrichedPageView(i: number): OutputRecord | undefined {
  if (i % 20 <= 1) return undefined;
  const user = `u${i % 10_000}`;
  const url = `https://shop${i % 50}.example.com/item/${i}`;
  const agent = "Mozilla/5.0 (X11; Linux x86_64)";
  return {
    key: user,
    value: JSON.stringify({ user, url, agent, domain: `shop${i % 50}.example.com` }),
  };
}

export function expectedPageViews(records: number): number {
  let kept = 0;
  for (let i = 0; i < records; i++) if (enrichedPageView(i)) kept++;
  return kept;
}

// ---- clicks-per-user (keyed, windowed) ----

const USERS = 5_000;
const START = Date.UTC(2025, 0, 1);
const SPAN_MS = 10 * 60_000;
const WINDOW_MS = 60_000;

/** Clicks of 5,000 users over 10 minutes of event time, in order, and the windows they fill. */
export function clickStream(records: number) {
  const ts = (i: number) => START + Math.floor((i * SPAN_MS) / records);
  const user = (i: number) => `u${(i * 7_919) % USERS}`;
  return {
    /** Input record i: `records` clicks, then the closing one. */
    value: (i: number) =>
      i < records
        ? JSON.stringify({ user: user(i), url: `/item/${i % 1_000}`, ts: ts(i) })
        : // Beyond every window's end, out-of-orderness bound and allowed lateness: it closes
          // every window (and sits in one that never closes).
          JSON.stringify({ user: "closing", url: "/", ts: START + SPAN_MS + 10 * 60_000 }),
    /** Every window's output `{user, start, end, clicks}` (keyed by user), each once. */
    windows: (): OutputRecord[] => {
      const counts = new Map<string, { user: string; start: number; clicks: number }>();
      for (let i = 0; i < records; i++) {
        const start = Math.floor(ts(i) / WINDOW_MS) * WINDOW_MS;
        const id = `${user(i)}@${start}`;
        const window = counts.get(id) ?? { user: user(i), start, clicks: 0 };
        window.clicks++;
        counts.set(id, window);
      }
      return [...counts.values()].map((w) => ({
        key: w.user,
        value: JSON.stringify({
          user: w.user,
          start: w.start,
          end: w.start + WINDOW_MS,
          clicks: w.clicks,
        }),
      }));
    },
  };
}

// ---- the checks ----

/**
 * What is wrong with an output that should be exactly `expected` in this order (one partition:
 * every engine keeps the input's order); empty when nothing is.
 */
export function inOrderProblems(
  output: readonly OutputRecord[],
  expected: (index: number) => OutputRecord,
  count: number,
): string[] {
  const problems: string[] = [];
  if (output.length !== count) problems.push(`${output.length} records, expected ${count}`);
  for (let i = 0; i < Math.min(output.length, count); i++) {
    const want = expected(i);
    const got = output[i] as OutputRecord;
    if (got.value !== want.value || (want.key !== null && got.key !== want.key)) {
      problems.push(
        `record ${i} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)} (and maybe more)`,
      );
      break;
    }
  }
  return problems;
}

/** What is wrong with an output that should hold each of `expected` once, in any order. */
export function setProblems(
  output: readonly OutputRecord[],
  expected: readonly OutputRecord[],
): string[] {
  const wanted = new Map(expected.map((r) => [r.value, r.key]));
  const seen = new Set<string | null>();
  let unexpected = 0;
  let twice = 0;
  let example = "";
  for (const record of output) {
    if (!wanted.has(record.value) || wanted.get(record.value) !== record.key) {
      unexpected++;
      example ||= JSON.stringify(record);
    } else if (seen.has(record.value)) twice++;
    else seen.add(record.value);
  }
  const problems: string[] = [];
  if (unexpected > 0) problems.push(`${unexpected} unexpected records (e.g. ${example})`);
  if (twice > 0) problems.push(`${twice} records more than once`);
  const missing = expected.length - seen.size;
  if (missing > 0) {
    const first = expected.find((r) => !seen.has(r.value));
    problems.push(
      `${missing} of ${expected.length} records missing (e.g. ${JSON.stringify(first)})`,
    );
  }
  return problems;
}

/** The filter-enrich output of the first `records` page views. */
export function filterEnrichProblems(output: readonly OutputRecord[], records: number): string[] {
  const kept: number[] = [];
  for (let i = 0; i < records; i++) if (enrichedPageView(i)) kept.push(i);
  return inOrderProblems(
    output,
    (index) => enrichedPageView(kept[index] as number) as OutputRecord,
    kept.length,
  );
}

/** The pass-through's output: its input, value for value, in order. */
export function copyProblems(
  output: readonly OutputRecord[],
  input: (i: number) => string,
  records: number,
): string[] {
  return inOrderProblems(output, (i) => ({ key: null, value: input(i) }), records);
}

// ---- producing ----

/** Produces `count` records (`value(i)`, no key) to partition 0 of a topic, in order. */
export async function produce(
  topic: string,
  count: number,
  value: (i: number) => string,
): Promise<void> {
  const producer = inputProducer();
  try {
    for (let from = 0; from < count; from += 5_000) {
      const messages = [];
      for (let i = from; i < Math.min(count, from + 5_000); i++)
        messages.push({ topic, partition: 0, value: value(i) });
      await producer.send({ messages });
    }
  } finally {
    await producer.close();
  }
}
