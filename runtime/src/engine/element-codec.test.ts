import assert from "node:assert/strict";
import { test } from "node:test";
import { serialize } from "node:v8";
import { decodeElement, encodeElement } from "./element-codec.ts";

const roundTrip = (value: unknown) => decodeElement(encodeElement(value));

test("plain JSON data travels as JSON text and comes back equal", () => {
  const click = { user: "u1", url: "/a", ts: 1_735_689_600_000, tags: ["x", 1, true, null] };
  assert.equal(encodeElement(click).toString("utf8"), JSON.stringify(click));
  assert.deepEqual(roundTrip(click), click);
  for (const value of ["text", "", 0, 1.5, -7, false, null, [], {}, "\ud800 lone surrogate"])
    assert.deepEqual(roundTrip(value), value);
});

test("what JSON would change travels through v8 and comes back exactly", () => {
  const shared = { n: 1 };
  const cyclic: Record<string, unknown> = { name: "c" };
  cyclic.self = cyclic;
  const sparse = new Array<number>(3);
  sparse[0] = 1;
  sparse[2] = 3;
  const named = Object.assign([1, 2], { extra: "x" });
  const values: unknown[] = [
    new Date(0),
    new Map([["k", 1]]),
    new Set([1]),
    10n,
    Buffer.from("bytes"),
    undefined,
    -0,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    { missing: undefined },
    { when: new Date(5) },
    sparse,
    named,
  ];
  for (const value of values) {
    assert.equal(encodeElement(value)[0], 0xff, `${String(value)} goes through v8`);
    assert.deepEqual(roundTrip(value), value);
  }
  const pair = roundTrip({ a: shared, b: shared }) as { a: object; b: object };
  assert.equal(pair.a, pair.b, "a shared reference stays shared");
  const back = roundTrip(cyclic) as Record<string, unknown>;
  assert.equal(back.self, back);
});

test("values v8.serialize wrote before this codec still decode", () => {
  const value = { user: "u1", at: new Date(3) };
  assert.deepEqual(decodeElement(serialize(value)), value);
  assert.deepEqual(decodeElement(serialize({ user: "u1" })), { user: "u1" });
});
