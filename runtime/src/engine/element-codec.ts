// How records travel through a repartition topic between two stages of a job. Each carries
// the upstream task that wrote it and that task's watermark then, so that the reading task's
// event time is the minimum over its upstream tasks (see UpstreamWatermarks in time.ts); an
// upstream task with nothing to send tells its watermark in a watermark-only record.
//
// Format 2 (written since issue 16), a header and the element:
//   byte 0       format version (2)
//   byte 1       what follows: 0 element in the compact encoding below, 1 element as v8
//                serialization, 2 watermark only, 3 watermark only and the upstream task is idle
//   varint       upstream task: the source partition of the task that wrote it
//   8 bytes      that task's watermark when it wrote the record (float64 LE; -Infinity: none)
//   then         the element (kinds 0 and 1)
//
// The element must come back exactly as it was sent (structured-clone semantics). The compact
// encoding covers plain data: null, undefined, booleans, numbers (-0, NaN and ±Infinity too),
// well-formed strings, dense arrays and plain objects of those, each object appearing once. It
// is one pass, no JSON text: a click of ~85 bytes as JSON is ~55 here, and encoding costs about
// half of JSON.stringify plus its exactness check. Everything else (Map, Date, bigint, Buffer,
// shared references...) goes through node:v8's serializer, exact but ~4 µs a call.
//
// Compact tags: 0 null, 1 false, 2 true, 3 undefined, 4 int32 (zigzag varint), 5 float64 LE,
// 6 ASCII string, 7 UTF-8 string (both: varint byte length, bytes), 8 array (varint length,
// items), 9 object (varint count, then key as a string tag 6/7 and value, in key order).
//
// Still read: format 1 (a 14-byte header: format, kind 0 JSON text / 1 v8 / 2 / 3, upstream
// uint32 BE, watermark float64 BE), and before it the element alone, JSON text or v8 (which
// starts with 0xFF, a byte no format starts with): after an upgrade through a savepoint the
// restored tasks still read what the old version wrote and they had not read yet.
import { deserialize, serialize } from "node:v8";

const FORMAT = 2;
const FORMAT_1 = 1;
const FORMAT_1_HEADER_BYTES = 14;
const KIND_COMPACT = 0;
const KIND_V8 = 1;
const KIND_WATERMARK = 2;
const KIND_IDLE = 3;
/** Format 1's kind 0. */
const KIND_JSON = 0;
const V8_HEADER = 0xff;
/** How JSON.stringify's output can start: `{ [ " - 0-9 t f n`. */
const JSON_START = /^[{["\-0-9tfn]$/;
const MAX_DEPTH = 64;

const T_NULL = 0;
const T_FALSE = 1;
const T_TRUE = 2;
const T_UNDEFINED = 3;
const T_INT = 4;
const T_FLOAT = 5;
const T_ASCII = 6;
const T_UTF8 = 7;
const T_ARRAY = 8;
const T_OBJECT = 9;

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

/** Not plain data: the element goes through v8 instead. */
class NotCompact extends Error {}

/**
 * Writes into one growing scratch buffer (records are written one at a time, synchronously);
 * each record is then copied out at its exact size.
 */
class Writer {
  buffer = Buffer.allocUnsafe(64 * 1024);
  at = 0;

  reserve(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const larger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(larger, 0, 0, this.at);
    this.buffer = larger;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.at++] = value;
  }

  varint(value: number): void {
    this.reserve(5);
    let rest = value >>> 0;
    while (rest >= 0x80) {
      this.buffer[this.at++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.buffer[this.at++] = rest;
  }

  float(value: number): void {
    this.reserve(8);
    this.buffer.writeDoubleLE(value, this.at);
    this.at += 8;
  }

  string(text: string): void {
    const start = this.at;
    const length = text.length;
    this.byte(T_ASCII);
    this.varint(length);
    this.reserve(length);
    const buffer = this.buffer;
    let at = this.at;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        this.#utf8(text, start);
        return;
      }
      buffer[at++] = code;
    }
    this.at = at;
  }

  /** Rewinds to `start` and writes `text` as UTF-8 (it is not all ASCII). */
  #utf8(text: string, start: number): void {
    // A lone surrogate would come back as U+FFFD: such a string goes through v8.
    if (!text.isWellFormed()) throw new NotCompact();
    this.at = start;
    const bytes = Buffer.byteLength(text, "utf8");
    this.byte(T_UTF8);
    this.varint(bytes);
    this.reserve(bytes);
    this.at += this.buffer.write(text, this.at, "utf8");
  }

  value(value: unknown, seen: object[], depth: number): void {
    switch (typeof value) {
      case "string":
        this.string(value);
        return;
      case "boolean":
        this.byte(value ? T_TRUE : T_FALSE);
        return;
      case "undefined":
        this.byte(T_UNDEFINED);
        return;
      case "number":
        if ((value | 0) === value && !Object.is(value, -0)) {
          this.byte(T_INT);
          this.varint((value << 1) ^ (value >> 31));
        } else {
          this.byte(T_FLOAT);
          this.float(value);
        }
        return;
      case "object": {
        if (value === null) {
          this.byte(T_NULL);
          return;
        }
        // A shared or cyclic reference would come back as copies.
        if (depth >= MAX_DEPTH || seen.includes(value)) throw new NotCompact();
        seen.push(value);
        if (Array.isArray(value)) {
          this.byte(T_ARRAY);
          this.varint(value.length);
          for (let i = 0; i < value.length; i++) {
            // Holes do not survive; neither would named properties on an array.
            if (!(i in value)) throw new NotCompact();
            this.value(value[i], seen, depth + 1);
          }
          if (Object.keys(value).length !== value.length) throw new NotCompact();
          return;
        }
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) throw new NotCompact();
        const keys = Object.keys(value);
        this.byte(T_OBJECT);
        this.varint(keys.length);
        for (const key of keys) {
          this.string(key);
          this.value((value as Record<string, unknown>)[key], seen, depth + 1);
        }
        return;
      }
      default:
        throw new NotCompact();
    }
  }

  header(kind: number, upstream: number, watermark: number): void {
    if (!Number.isInteger(upstream) || upstream < 0 || upstream > 0xffff_ffff) {
      throw new Error(`upstream task must be a uint32, got ${String(upstream)}`);
    }
    this.at = 0;
    this.byte(FORMAT);
    this.byte(kind);
    this.varint(upstream);
    this.float(watermark);
  }

  /** What was written, as a buffer of its own. */
  take(): Buffer {
    const data = Buffer.allocUnsafe(this.at);
    this.buffer.copy(data, 0, 0, this.at);
    return data;
  }
}

const writer = new Writer();

/** An element for a repartition topic, written by task `upstream` at `watermark`. */
export function encodeElement(value: unknown, upstream: number, watermark: number): Buffer {
  writer.header(KIND_COMPACT, upstream, watermark);
  const start = writer.at;
  try {
    writer.value(value, [], 0);
  } catch (error) {
    if (!(error instanceof NotCompact)) throw error;
    writer.buffer[1] = KIND_V8;
    writer.at = start;
    const payload = serialize(value);
    writer.reserve(payload.length);
    payload.copy(writer.buffer, start);
    writer.at += payload.length;
  }
  return writer.take();
}

/** A watermark-only record: task `upstream` is at `watermark` (and idle, or not). */
export function encodeWatermark(upstream: number, watermark: number, idle: boolean): Buffer {
  writer.header(idle ? KIND_IDLE : KIND_WATERMARK, upstream, watermark);
  return writer.take();
}

/** Reads the compact encoding from `data` at `at`. */
class Reader {
  readonly data: Buffer;
  at: number;

  constructor(data: Buffer, at: number) {
    this.data = data;
    this.at = at;
  }

  #need(bytes: number): void {
    if (this.at + bytes > this.data.length) {
      throw new Error(`repartition record of ${this.data.length} bytes ends inside its element`);
    }
  }

  byte(): number {
    this.#need(1);
    return this.data[this.at++] as number;
  }

  varint(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.byte();
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    throw new Error("repartition record with a varint longer than 5 bytes");
  }

  float(): number {
    this.#need(8);
    const value = this.data.readDoubleLE(this.at);
    this.at += 8;
    return value;
  }

  #text(encoding: "latin1" | "utf8"): string {
    const bytes = this.varint();
    this.#need(bytes);
    const text = this.data.toString(encoding, this.at, this.at + bytes);
    this.at += bytes;
    return text;
  }

  key(): string {
    const tag = this.byte();
    if (tag === T_ASCII) return this.#text("latin1");
    if (tag === T_UTF8) return this.#text("utf8");
    throw new Error(`repartition record with an object key of tag ${tag}`);
  }

  value(): unknown {
    const tag = this.byte();
    switch (tag) {
      case T_NULL:
        return null;
      case T_FALSE:
        return false;
      case T_TRUE:
        return true;
      case T_UNDEFINED:
        return undefined;
      case T_INT: {
        const zigzag = this.varint();
        return (zigzag >>> 1) ^ -(zigzag & 1);
      }
      case T_FLOAT:
        return this.float();
      case T_ASCII:
        return this.#text("latin1");
      case T_UTF8:
        return this.#text("utf8");
      case T_ARRAY: {
        const length = this.varint();
        const array = new Array(length);
        for (let i = 0; i < length; i++) array[i] = this.value();
        return array;
      }
      case T_OBJECT: {
        const count = this.varint();
        const object: Record<string, unknown> = {};
        for (let i = 0; i < count; i++) {
          const key = this.key();
          const value = this.value();
          // An own property, as JSON.parse and structured clone make it, not the prototype.
          if (key === "__proto__") {
            Object.defineProperty(object, key, {
              value,
              enumerable: true,
              writable: true,
              configurable: true,
            });
          } else {
            object[key] = value;
          }
        }
        return object;
      }
      default:
        throw new Error(`repartition record with an element of unknown tag ${tag}`);
    }
  }
}

/** Decodes what `encodeElement` or `encodeWatermark` wrote, or an element of an older format. */
export function decodeRepartition(data: Buffer): RepartitionRecord {
  const first = data[0];
  if (first === FORMAT) return decodeFormat2(data);
  if (first === FORMAT_1) return decodeFormat1(data);
  if (first === V8_HEADER) return { kind: "element", value: deserialize(data), clock: undefined };
  const text = first === undefined ? "" : String.fromCharCode(first);
  if (JSON_START.test(text)) {
    return { kind: "element", value: JSON.parse(data.toString("utf8")), clock: undefined };
  }
  throw new Error(
    `repartition record in an unknown format (first byte ${first === undefined ? "none: empty" : `0x${first.toString(16)}`}); this runtime reads formats ${FORMAT_1} and ${FORMAT}`,
  );
}

function decodeFormat2(data: Buffer): RepartitionRecord {
  const reader = new Reader(data, 1);
  const kind = reader.byte();
  const upstream = reader.varint();
  const watermark = reader.float();
  switch (kind) {
    case KIND_COMPACT:
    case KIND_V8: {
      const value = kind === KIND_COMPACT ? reader.value() : deserialize(data.subarray(reader.at));
      if (kind === KIND_COMPACT && reader.at !== data.length) {
        throw new Error(
          `repartition record with ${data.length - reader.at} bytes after its element`,
        );
      }
      return { kind: "element", value, clock: { upstream, watermark, idle: false } };
    }
    case KIND_WATERMARK:
    case KIND_IDLE:
      return { kind: "watermark", clock: { upstream, watermark, idle: kind === KIND_IDLE } };
    default:
      throw new Error(`repartition record of format ${FORMAT} with unknown kind ${kind}`);
  }
}

function decodeFormat1(data: Buffer): RepartitionRecord {
  if (data.length < FORMAT_1_HEADER_BYTES) {
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
          ? JSON.parse(data.toString("utf8", FORMAT_1_HEADER_BYTES))
          : deserialize(data.subarray(FORMAT_1_HEADER_BYTES));
      return { kind: "element", value, clock: { upstream, watermark, idle: false } };
    }
    case KIND_WATERMARK:
    case KIND_IDLE:
      return { kind: "watermark", clock: { upstream, watermark, idle: kind === KIND_IDLE } };
    default:
      throw new Error(`repartition record of format ${FORMAT_1} with unknown kind ${String(kind)}`);
  }
}
