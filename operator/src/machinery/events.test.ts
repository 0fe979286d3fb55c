import assert from "node:assert/strict";
import { test } from "node:test";
import { truncateUtf8 } from "./events.ts";

test("short text is kept as it is", () => {
  assert.equal(truncateUtf8("started 3 pods", 1024), "started 3 pods");
});

test("long text is cut to the byte limit, ending in an ellipsis", () => {
  const cut = truncateUtf8("x".repeat(2000), 1024);
  assert.equal(Buffer.byteLength(cut), 1024);
  assert.ok(cut.endsWith("…"));
});

test("multi-byte characters are never split", () => {
  const cut = truncateUtf8("é".repeat(600), 1024);
  assert.ok(Buffer.byteLength(cut) <= 1024);
  assert.match(cut, /^é+…$/);
});
