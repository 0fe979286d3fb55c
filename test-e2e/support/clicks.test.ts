// The windows checker itself: a window missing, emitted twice, with a wrong count, or not in
// the batch answer each fail it, one short line each.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Click } from "../../runtime/examples/clicks-per-user.ts";
import { clicksPerMinute } from "../../runtime/examples/golden.ts";
import { type ClicksSent, checkWindows, describeWindow } from "./clicks.ts";
import type { ReadRecord } from "./kafka.ts";

const start = Date.UTC(2026, 10, 30, 12, 0);
const click = (user: string, ts: number): Click => ({ user, url: "/", ts: start + ts });
const sent: ClicksSent = {
  rounds: 1,
  clicks: [click("u1", 1_000), click("u2", 2_000), click("u1", 61_000), click("end", 400_000)],
  watermark: start + 394_999,
};

/** Window results as the job writes them (to one partition, in order). */
function records(windows: { user: string; start: number; clicks: number }[]): ReadRecord[] {
  return windows.map((w, offset) => ({
    partition: 0,
    offset: BigInt(offset),
    key: w.user,
    value: JSON.stringify({
      user: w.user,
      start: w.start,
      end: w.start + 60_000,
      clicks: w.clicks,
    }),
    timestamp: BigInt(w.start + 59_999),
    headers: {},
  }));
}

const exact = () =>
  clicksPerMinute(sent.clicks, sent.watermark).map(
    (o) => o.value as { user: string; start: number; clicks: number },
  );

test("the batch answer passes; the end of input's own window is not in it", () => {
  const check = checkWindows(records(exact()), sent);
  assert.deepEqual(check, { checked: 3, read: 3, wrong: 0, discrepancies: [] });
});

test("a window missing, repeated, miscounted or extra is wrong, each once", () => {
  const [u1, u2, later] = exact();
  assert.ok(u1 && u2 && later);
  const output = [
    u1,
    { ...u1, clicks: 2 }, // u1's first window twice, the second time over-counted
    { ...later, clicks: 0 }, // a wrong count
    { user: "u3", start: start, clicks: 1 }, // not in the answer
  ]; // u2's window missing
  const check = checkWindows(records(output), sent);
  assert.equal(check.checked, 3);
  assert.equal(check.wrong, 4);
  assert.deepEqual(check.discrepancies.map(describeWindow), [
    "u1's window at 2026-11-30T12:00Z: expected 1 clicks once, got 1, 2",
    "u2's window at 2026-11-30T12:00Z: expected 1 clicks once, got nothing",
    "u3's window at 2026-11-30T12:00Z: expected no such window, got 1",
    "u1's window at 2026-11-30T12:01Z: expected 1 clicks once, got 0",
  ]);
});

test("a record that is not a window result fails the check rather than counting as wrong", () => {
  const [u1] = records(exact());
  assert.ok(u1);
  assert.throws(() => checkWindows([{ ...u1, key: "u9" }], sent), /not a window result/);
});
