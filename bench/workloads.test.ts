import assert from "node:assert/strict";
import { test } from "node:test";
import {
  clickStream,
  copyProblems,
  enrichedPageView,
  expectedPageViews,
  filterEnrichProblems,
  pageView,
  setProblems,
} from "./workloads.ts";

test("filter-enrich keeps 18 of every 20 page views, enriched with the URL's host", () => {
  assert.equal(expectedPageViews(40), 36);
  assert.equal(enrichedPageView(0), undefined);
  assert.equal(enrichedPageView(21), undefined);
  const input = JSON.parse(pageView(57));
  assert.deepEqual(enrichedPageView(57), {
    key: "u57",
    value: JSON.stringify({ ...input, domain: new URL(input.url).hostname }),
  });
});

test("an in-order output must match record for record, keys included", () => {
  const right = Array.from({ length: 100 }, (_, i) => enrichedPageView(i)).filter((r) => !!r);
  assert.deepEqual(filterEnrichProblems(right, 100), []);
  assert.deepEqual(filterEnrichProblems(right.slice(1), 100), [
    "89 records, expected 90",
    `record 0 is ${JSON.stringify(right[1])}, expected ${JSON.stringify(right[0])} (and maybe more)`,
  ]);
  const wrongKey = right.map((r, i) => (i === 5 ? { ...r, key: "x" } : r));
  assert.equal(filterEnrichProblems(wrongKey, 100).length, 1);
  const copy = Array.from({ length: 10 }, (_, i) => ({ key: null, value: pageView(i) }));
  assert.deepEqual(copyProblems(copy, pageView, 10), []);
  assert.equal(copyProblems(copy.toReversed(), pageView, 10).length, 1);
});

test("windows count every click once, and the closing click's window is not among them", () => {
  const clicks = clickStream(50_000);
  const windows = clicks.windows();
  const total = windows.reduce((sum, w) => sum + JSON.parse(w.value ?? "").clicks, 0);
  assert.equal(total, 50_000);
  assert.ok(windows.every((w) => JSON.parse(w.value ?? "").user !== "closing"));
  assert.equal(JSON.parse(clicks.value(50_000)).user, "closing");
});

test("a windowed output must hold each window once, in any order", () => {
  const windows = clickStream(20_000).windows();
  assert.deepEqual(setProblems(windows.toReversed(), windows), []);
  assert.deepEqual(setProblems([...windows, windows[3] as (typeof windows)[number]], windows), [
    "1 records more than once",
  ]);
  assert.deepEqual(setProblems(windows.slice(1), windows), [
    `1 of ${windows.length} records missing (e.g. ${JSON.stringify(windows[0])})`,
  ]);
  const rekeyed = windows.map((w, i) => (i === 0 ? { ...w, key: "other" } : w));
  assert.deepEqual(setProblems(rekeyed, windows), [
    `1 unexpected records (e.g. ${JSON.stringify(rekeyed[0])})`,
    `1 of ${windows.length} records missing (e.g. ${JSON.stringify(windows[0])})`,
  ]);
});
