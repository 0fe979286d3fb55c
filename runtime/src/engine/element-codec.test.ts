import assert from "node:assert/strict";
import { test } from "node:test";
import { serialize } from "node:v8";
import { decodeRepartition, encodeElement, encodeWatermark } from "./element-codec.ts";

const roundTrip = (value: unknown) => {
  const decoded = decodeRepartition(encodeElement(value, 3, 1000));
  assert.equal(decoded.kind, "element");
  return decoded.kind === "element" ? decoded.value : undefined;
};

/** A record as format 1 wrote it (the runtime before issue 16): 14-byte header, JSON text. */
function format1(kind: number, upstream: number, watermark: number, element = ""): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 1;
  header[1] = kind;
  header.writeUInt32BE(upstream, 2);
  header.writeDoubleBE(watermark, 6);
  return Buffer.concat([header, Buffer.from(element, "utf8")]);
}

test("plain data travels in the compact encoding after a short header, and comes back equal", () => {
  const click = { user: "u1", url: "/a", ts: 1_735_689_600_000, tags: ["x", 1, true, null] };
  const data = encodeElement(click, 5, 1_735_689_590_000);
  assert.deepEqual([data[0], data[1], data[2]], [2, 0, 5], "format 2, compact, upstream 5");
  assert.equal(data.readDoubleLE(3), 1_735_689_590_000);
  assert.ok(
    data.length < JSON.stringify(click).length,
    `smaller than its JSON text (${data.length} bytes)`,
  );
  assert.deepEqual(decodeRepartition(data), {
    kind: "element",
    value: click,
    clock: { upstream: 5, watermark: 1_735_689_590_000, idle: false },
  });
  const values: unknown[] = [
    "text",
    "",
    "ünïcödé and 😀",
    0,
    1.5,
    -7,
    2 ** 31 - 1,
    -(2 ** 31),
    2 ** 31,
    Number.MAX_SAFE_INTEGER,
    -0,
    Number.NaN,
    Number.NEGATIVE_INFINITY,
    undefined,
    false,
    null,
    [],
    {},
    [undefined, null],
    { missing: undefined },
    { ключ: { nested: [1, [2, [3]]] } },
    "x".repeat(100_000),
  ];
  for (const value of values) {
    assert.equal(encodeElement(value, 0, 0)[1], 0, `${String(value).slice(0, 20)} is compact`);
    assert.deepEqual(roundTrip(value), value);
  }
  const proto = roundTrip(JSON.parse('{"__proto__": {"polluted": true}}')) as object;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, "__proto__ stays an own key");
  assert.deepEqual(Object.keys(proto), ["__proto__"]);
});

test("random plain data round-trips exactly", () => {
  let seed = 7;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pick = (depth: number): unknown => {
    const r = random();
    if (depth > 3 || r < 0.4) {
      const leaves = [
        () => Math.floor(random() * 2 ** 40) - 2 ** 39,
        () => random() * 1e6,
        () =>
          String.fromCodePoint(
            ...Array.from({ length: 8 }, () => Math.floor(random() * 0x10ffff) % 0xd800),
          ),
        () => "a".repeat(Math.floor(random() * 300)),
        () => random() < 0.5,
        () => null,
      ];
      return (leaves[Math.floor(random() * leaves.length)] as () => unknown)();
    }
    if (r < 0.7) return Array.from({ length: Math.floor(random() * 5) }, () => pick(depth + 1));
    return Object.fromEntries(
      Array.from({ length: Math.floor(random() * 5) }, (_, i) => [
        `k${i}${random()}`,
        pick(depth + 1),
      ]),
    );
  };
  for (let i = 0; i < 2_000; i++) {
    const value = pick(0);
    assert.deepEqual(roundTrip(value), value);
  }
});

test("what the compact encoding cannot carry travels through v8 and comes back exactly", () => {
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
    { when: new Date(5) },
    sparse,
    named,
    "\ud800 lone surrogate",
    { "\udc00 lone key": 1 },
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
  assert.equal(encodeWatermark(2, 59_999, false).length, 11, "format, kind, upstream, watermark");
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

test("format 1 (the runtime before issue 16) still decodes: JSON, v8 and watermark records", () => {
  const click = { user: "u1", ts: 5 };
  assert.deepEqual(decodeRepartition(format1(0, 4, 999, JSON.stringify(click))), {
    kind: "element",
    value: click,
    clock: { upstream: 4, watermark: 999, idle: false },
  });
  const v8 = Buffer.concat([format1(1, 2, 7), serialize(new Map([["a", 1]]))]);
  assert.deepEqual(decodeRepartition(v8), {
    kind: "element",
    value: new Map([["a", 1]]),
    clock: { upstream: 2, watermark: 7, idle: false },
  });
  assert.deepEqual(decodeRepartition(format1(3, 1, Number.NEGATIVE_INFINITY)), {
    kind: "watermark",
    clock: { upstream: 1, watermark: Number.NEGATIVE_INFINITY, idle: true },
  });
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

test("an unknown format, kind, tag or a truncated record is refused, naming what it found", () => {
  assert.throws(
    () => decodeRepartition(Buffer.from([9, 0, 0])),
    /repartition record in an unknown format \(first byte 0x9\); this runtime reads formats 1 and 2/,
  );
  assert.throws(() => decodeRepartition(Buffer.alloc(0)), /unknown format \(first byte none/);
  assert.throws(
    () => decodeRepartition(Buffer.from([1, 0, 0, 0])),
    /4 bytes: shorter than its header/,
  );
  const unknownKind = encodeWatermark(0, 0, false);
  unknownKind[1] = 9;
  assert.throws(() => decodeRepartition(unknownKind), /format 2 with unknown kind 9/);
  const full = encodeElement({ user: "u1", n: [1, 2, 3] }, 0, 0);
  for (let cut = 2; cut < full.length; cut++) {
    assert.throws(() => decodeRepartition(full.subarray(0, cut)), /ends inside its element/);
  }
  assert.throws(
    () => decodeRepartition(Buffer.concat([full, Buffer.from([0])])),
    /1 bytes after its element/,
  );
  const unknownTag = encodeElement(null, 0, 0);
  unknownTag[unknownTag.length - 1] = 42;
  assert.throws(() => decodeRepartition(unknownTag), /element of unknown tag 42/);
});
