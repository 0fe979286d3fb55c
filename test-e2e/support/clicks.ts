// Clicks-per-user as the event-time yardstick of end-to-end tests: clicks go in on several
// partitions, one partition's 20 s behind the others in event time (what a slow or restarted
// upstream task looks like downstream), and the windows read back must be exactly the batch
// answer over the same input (clicksPerMinute): every user's every window once, with all of
// its clicks. A window missing, emitted twice or with a wrong count is wrong.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { Click } from "../../runtime/examples/clicks-per-user.ts";
import { clicksPerMinute, laggingClicks } from "../../runtime/examples/golden.ts";
import {
  inputProducer,
  type ReadRecord,
  readTopicSettled,
  type SettledReadOptions,
} from "./kafka.ts";

/** Event time covered by one round of clicks (laggingClicks' rounds). */
const ROUND_EVENT_MS = 10_000;
const CLICKS_PER_ROUND = 3;
/** The example's bound on out-of-orderness: a source's watermark is its newest click minus it, minus 1. */
const OUT_OF_ORDERNESS_MS = 5_000;

export interface ClickStreamOptions {
  partitions: number;
  /** Produce this many rounds, then stop by itself (default: until stop()). */
  rounds?: number;
  /** Wall time between rounds (default 200 ms: event time runs 50 times faster than the clock). */
  everyMs?: number;
  seed?: number;
}

/** What a click stream sent: its batch answer is clicksPerMinute(clicks, watermark). */
export interface ClicksSent {
  rounds: number;
  /** Every click produced, the ending ones included. */
  clicks: Click[];
  /** The watermark the ending clicks take every task to: the windows complete at it. */
  watermark: number;
}

/**
 * Produces a round of clicks on every partition every `everyMs` (the last partition's 20 s
 * behind in event time) until `rounds` rounds or stop(). stop() then produces the end of
 * input: one click per partition 5 min past the last round, which completes every window of
 * the clicks and, 5 s of bound short of its own window's end, fires nothing itself.
 */
export function produceClicks(input: string, options: ClickStreamOptions) {
  const { partitions, everyMs = 200, seed = 13 } = options;
  // Event time starts two days ago, on a minute: rounds run ahead of the clock, and the
  // broker refuses timestamps more than an hour ahead of its own (at 50 times the clock, two
  // days are over two hours of clicks); the topics keep a week.
  const start = Math.floor((Date.now() - 2 * 86_400_000) / 60_000) * 60_000;
  const producer = inputProducer();
  const clicks: Click[] = [];
  const send = async (batch: { partition: number; click: Click }[]) => {
    await producer.send({
      messages: batch.map(({ partition, click }) => ({
        topic: input,
        partition,
        value: JSON.stringify(click),
      })),
    });
    clicks.push(...batch.map((b) => b.click));
  };
  let stopping = false;
  let rounds = 0;
  const loop = (async () => {
    while (!stopping && rounds < (options.rounds ?? Number.POSITIVE_INFINITY)) {
      const round = laggingClicks({
        partitions,
        rounds: 1,
        clicksPerRound: CLICKS_PER_ROUND,
        start: start + rounds * ROUND_EVENT_MS,
        lagMs: 20_000,
        lagging: partitions - 1,
        seed: seed + rounds,
      });
      await send(
        round.flatMap(([own = []], partition) => own.map((click) => ({ partition, click }))),
      );
      rounds++;
      await sleep(everyMs);
    }
  })();
  return {
    get rounds() {
      return rounds;
    },
    /** Ends the input (with `rounds`, once they are all out) and resolves with what was sent. */
    async stop(): Promise<ClicksSent> {
      if (options.rounds === undefined) stopping = true;
      try {
        await loop;
        const end = start + rounds * ROUND_EVENT_MS + 5 * 60_000;
        await send(
          Array.from({ length: partitions }, (_, partition) => ({
            partition,
            click: { user: "end", url: "/", ts: end },
          })),
        );
        return { rounds, clicks, watermark: end - OUT_OF_ORDERNESS_MS - 1 };
      } finally {
        await producer.close();
      }
    },
  };
}

/** One window of one user that did not come out exactly once with its batch count. */
export interface WindowDiscrepancy {
  user: string;
  start: number;
  /** Its clicks in the batch answer (0: a window the answer does not have). */
  expected: number;
  /** The counts it came out with, in output order (none: missing; two or more: repeated). */
  got: number[];
}

export interface WindowsCheck {
  /** Windows in the batch answer. */
  checked: number;
  /** Window results read. */
  read: number;
  /** Windows not exactly once with the batch answer's count, and windows it does not have. */
  wrong: number;
  discrepancies: WindowDiscrepancy[];
}

interface WindowResult {
  user: string;
  start: number;
  end: number;
  clicks: number;
}

/** Compares clicks-per-user's output records with the batch answer over what `sent` sent. */
export function checkWindows(records: readonly ReadRecord[], sent: ClicksSent): WindowsCheck {
  const id = (user: string, start: number) => `${start} ${user}`;
  const expected = new Map<string, { user: string; start: number; clicks: number }>();
  for (const out of clicksPerMinute(sent.clicks, sent.watermark)) {
    const value = out.value as WindowResult;
    expected.set(id(value.user, value.start), { ...value });
  }
  const got = new Map<string, { user: string; start: number; counts: number[] }>();
  for (const record of records) {
    const value = JSON.parse(record.value ?? "null") as WindowResult | null;
    if (
      typeof value?.user !== "string" ||
      !Number.isInteger(value.start) ||
      value.end !== value.start + 60_000 ||
      record.key !== value.user ||
      Number(record.timestamp) !== value.end - 1
    )
      throw new Error(`not a window result of clicks-per-user: ${record.key} ${record.value}`);
    const window = got.get(id(value.user, value.start)) ?? { ...value, counts: [] };
    window.counts.push(value.clicks);
    got.set(id(value.user, value.start), window);
  }
  const discrepancies: WindowDiscrepancy[] = [];
  for (const [key, want] of expected) {
    const counts = got.get(key)?.counts ?? [];
    if (counts.length !== 1 || counts[0] !== want.clicks)
      discrepancies.push({
        user: want.user,
        start: want.start,
        expected: want.clicks,
        got: counts,
      });
  }
  for (const [key, window] of got) {
    if (!expected.has(key))
      discrepancies.push({
        user: window.user,
        start: window.start,
        expected: 0,
        got: window.counts,
      });
  }
  discrepancies.sort((a, b) => a.start - b.start || a.user.localeCompare(b.user));
  return {
    checked: expected.size,
    read: records.length,
    wrong: discrepancies.length,
    discrepancies,
  };
}

/** `u3's window at 2026-11-30T12:01Z: expected 14 clicks once, got 13, 14`. */
export function describeWindow(d: WindowDiscrepancy): string {
  const at = new Date(d.start).toISOString().replace(":00.000Z", "Z");
  const want = d.expected === 0 ? "no such window" : `${d.expected} clicks once`;
  const got = d.got.length === 0 ? "nothing" : d.got.join(", ");
  return `${d.user}'s window at ${at}: expected ${want}, got ${got}`;
}

/**
 * Asserts the windows read to the output's read_committed end (once it has settled: see
 * readTopicSettled) are exactly the batch answer over what `sent` sent: each window once,
 * with its count, and no other.
 */
export async function assertWindows(
  output: string,
  sent: ClicksSent,
  options: SettledReadOptions = {},
): Promise<WindowsCheck> {
  const total = clicksPerMinute(sent.clicks, sent.watermark).length;
  const contents = await readTopicSettled(output, total, options);
  const check = checkWindows(contents.records, sent);
  if (check.wrong === 0) return check;
  assert.fail(
    [
      `${output}: ${check.wrong} of ${check.checked} windows not the batch answer (${check.read} results read to the read_committed end)`,
      ...(contents.reachedCount
        ? []
        : [`  (the output never held ${total} results within the wait)`]),
      ...check.discrepancies.slice(0, 20).map((d) => `  ${describeWindow(d)}`),
      ...(check.wrong > 20 ? [`  and ${check.wrong - 20} more`] : []),
    ].join("\n"),
  );
}
