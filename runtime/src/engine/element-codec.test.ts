import assert from "node:assert/strict";
import { test } from "node:test";
import { serialize } from "node:v8";
import { decodeRepartition, encodeElement, encodeWatermark } from "./element-codec.ts";

const roundTrip = (value: unknown) => {
  const decoded = decodeRepartition(encodeElement(value, 3, 1000));
  assert.equal(decoded.kind, "element");
  return decoded.kind === "element" ? decoded.value : undefined;
};

test("plain JSON data travels as JSON text after a 14-byte header, and comes back equal", () => {
  const click = { user: "u1", url: "/a", ts: 1_735_689_600_000, tags: ["x", 1, true, null] };
  const data = encodeElement(click, 5, 1_735_689_590_000);
  assert.deepEqual([data[0], data[1]], [1, 0], "format 1, JSON");
  assert.equal(data.readUInt32BE(2), 5);
  assert.equal(data.readDoubleBE(6), 1_735_689_590_000);
  assert.equal(data.subarray(14).toString("utf8"), JSON.stringify(click));
  assert.deepEqual(decodeRepartition(data), {
    kind: "element",
    value: click,
    clock: { upstream: 5, watermark: 1_735_689_590_000, idle: false },
  });
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
    assert.equal(encodeElement(value, 0, 0)[1], 1, `${String(value)} goes through v8`);
    assert.deepEqual(roundTrip(value), value);
  }
  const pair = roundTrip({ a: shared, b: shared }) as { a: object; b: object };
  assert.equal(pair.a, pair.b, "a shared reference stays shared");
  const back = roundTrip(cyclic) as Record<string, unknown>;
  assert.equal(back.self, back);
});

test("watermark-only records: the upstream task, its watermark, and whether it is idle", () => {
  assert.equal(encodeWatermark(2, 59_999, false).length, 14);
  assert.deepEqual(decodeRepartition(encodeWatermark(2, 59_999, false)), {
    kind: "watermark",
    clock: { upstream: 2, watermark: 59_999, idle: false },
  });
  assert.deepEqual(decodeRepartition(encodeWatermark(0, Number.NEGATIVE_INFINITY, true)), {
    kind: "watermark",
    clock: { upstream: 0, watermark: Number.NEGATIVE_INFINITY, idle: true },
  });
  assert.throws(() => encodeWatermark(-1, 0, false), /upstream task must be a uint32, got -1/);
});

test("elements written before format 1 still decode, without an upstream clock", () => {
  const value = { user: "u1", at: new Date(3) };
  assert.deepEqual(decodeRepartition(serialize(value)), {
    kind: "element",
    value,
    clock: undefined,
  });
  for (const old of [{ user: "u1" }, [1], "s", -2, 7, true, false, null]) {
    assert.deepEqual(decodeRepartition(Buffer.from(JSON.stringify(old))), {
      kind: "element",
      value: old,
      clock: undefined,
    });
  }
});

test("an unknown format, kind or a truncated header is refused, naming what it found", () => {
  assert.throws(
    () => decodeRepartition(Buffer.from([2, 0, 0])),
    /repartition record in an unknown format \(first byte 0x2\); this runtime reads format 1/,
  );
  assert.throws(() => decodeRepartition(Buffer.alloc(0)), /unknown format \(first byte none/);
  assert.throws(
    () => decodeRepartition(Buffer.from([1, 0, 0, 0])),
    /4 bytes: shorter than its header/,
  );
  const unknownKind = encodeWatermark(0, 0, false);
  unknownKind[1] = 9;
  assert.throws(() => decodeRepartition(unknownKind), /format 1 with unknown kind 9/);
});
