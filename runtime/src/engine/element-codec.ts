// How records travel through a repartition topic between two stages of a job. Each carries
// the upstream task that wrote it and that task's watermark then, so that the reading task's
// event time is the minimum over its upstream tasks (see UpstreamWatermarks in time.ts); an
// upstream task with nothing to send tells its watermark in a watermark-only record.
//
// Format 1, a 14-byte header and the element:
//   byte 0       format version (1)
//   byte 1       what follows: 0 element as JSON text, 1 element as v8 serialization,
//                2 watermark only, 3 watermark only and the upstream task is idle
//   bytes 2-5    upstream task: the source partition of the task that wrote it (uint32 BE)
//   bytes 6-13   that task's watermark when it wrote the record (float64 BE; -Infinity: none)
//   bytes 14-    the element (kinds 0 and 1)
//
// The element must come back exactly as it was sent (structured-clone semantics: Map, Date,
// bigint, Buffer, undefined, -0, shared references...), which node:v8's serializer gives; but
// a v8 serializer costs about 4 µs to set up per call, most of a keyed job's per-record budget.
// Plain JSON data, the common case, is sent as JSON text instead (~1 µs both ways).
//
// Before format 1 a value was the element alone, JSON text or v8 (which starts with 0xFF,
// a byte neither format 1 nor JSON text starts with): after an upgrade through a savepoint
// the restored tasks still read what the old version wrote and they had not read yet.
import { deserialize, serialize } from "node:v8";

const FORMAT = 1;
const HEADER_BYTES = 14;
const KIND_JSON = 0;
const KIND_V8 = 1;
const KIND_WATERMARK = 2;
const KIND_IDLE = 3;
const V8_HEADER = 0xff;
/** How JSON.stringify's output can start: `{ [ " - 0-9 t f n`. */
const JSON_START = /^[{["\-0-9tfn]$/;
const MAX_DEPTH = 64;

/** Where a repartition record comes from: its upstream task and that task's watermark. */
export interface UpstreamClock {
  upstream: number;
  watermark: number;
  /** The upstream task has no input (only watermark-only records say so). */
  idle: boolean;
}

export type RepartitionRecord =
  | { kind: "element"; value: unknown; clock: UpstreamClock | undefined }
  | { kind: "watermark"; clock: UpstreamClock };

function header(kind: number, upstream: number, watermark: number, bytes: number): Buffer {
  if (!Number.isInteger(upstream) || upstream < 0 || upstream > 0xffff_ffff) {
    throw new Error(`upstream task must be a uint32, got ${String(upstream)}`);
  }
  const data = Buffer.allocUnsafe(HEADER_BYTES + bytes);
  data[0] = FORMAT;
  data[1] = kind;
  data.writeUInt32BE(upstream, 2);
  data.writeDoubleBE(watermark, 6);
  return data;
}

/** An element for a repartition topic, written by task `upstream` at `watermark`. */
export function encodeElement(value: unknown, upstream: number, watermark: number): Buffer {
  if (isJsonExact(value, [], 0)) {
    const text = JSON.stringify(value);
    const data = header(KIND_JSON, upstream, watermark, Buffer.byteLength(text));
    data.write(text, HEADER_BYTES, "utf8");
    return data;
  }
  const payload = serialize(value);
  const data = header(KIND_V8, upstream, watermark, payload.length);
  payload.copy(data, HEADER_BYTES);
  return data;
}

/** A watermark-only record: task `upstream` is at `watermark` (and idle, or not). */
export function encodeWatermark(upstream: number, watermark: number, idle: boolean): Buffer {
  return header(idle ? KIND_IDLE : KIND_WATERMARK, upstream, watermark, 0);
}

/** Decodes what `encodeElement` or `encodeWatermark` wrote, or an element of before format 1. */
export function decodeRepartition(data: Buffer): RepartitionRecord {
  const first = data[0];
  if (first === V8_HEADER) return { kind: "element", value: deserialize(data), clock: undefined };
  if (first !== FORMAT) {
    const text = first === undefined ? "" : String.fromCharCode(first);
    if (JSON_START.test(text)) {
      return { kind: "element", value: JSON.parse(data.toString("utf8")), clock: undefined };
    }
    throw new Error(
      `repartition record in an unknown format (first byte ${first === undefined ? "none: empty" : `0x${first.toString(16)}`}); this runtime reads format ${FORMAT}`,
    );
  }
  if (data.length < HEADER_BYTES) {
    throw new Error(`repartition record of ${data.length} bytes: shorter than its header`);
  }
  const kind = data[1];
  const upstream = data.readUInt32BE(2);
  const watermark = data.readDoubleBE(6);
  switch (kind) {
    case KIND_JSON:
    case KIND_V8: {
      const value =
        kind === KIND_JSON
          ? JSON.parse(data.toString("utf8", HEADER_BYTES))
          : deserialize(data.subarray(HEADER_BYTES));
      return { kind: "element", value, clock: { upstream, watermark, idle: false } };
    }
    case KIND_WATERMARK:
    case KIND_IDLE:
      return { kind: "watermark", clock: { upstream, watermark, idle: kind === KIND_IDLE } };
    default:
      throw new Error(`repartition record of format ${FORMAT} with unknown kind ${String(kind)}`);
  }
}

/**
 * Whether JSON round-trips `value` to an equal value: finite numbers other than -0, strings,
 * booleans, null, and dense arrays and plain objects of those, each object appearing once (a
 * shared or cyclic reference would come back as copies).
 */
function isJsonExact(value: unknown, seen: object[], depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_DEPTH || seen.includes(value)) return false;
      seen.push(value);
      if (Array.isArray(value)) {
        // Holes and extra named properties do not survive JSON.
        if (Object.keys(value).length !== value.length) return false;
        for (const item of value) if (!isJsonExact(item, seen, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!isJsonExact((value as Record<string, unknown>)[key], seen, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
