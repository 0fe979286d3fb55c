// How elements travel through a repartition topic between two stages of a job. The value
// must come back exactly as it was sent (structured-clone semantics: Map, Date, bigint,
// Buffer, undefined, -0, shared references...), which node:v8's serializer gives; but a v8
// serializer costs about 4 µs to set up per call, most of a keyed job's per-record budget.
// Plain JSON data, the common case, is sent as JSON text instead (~1 µs both ways), and
// everything else as before. The two cannot be confused: v8's format starts with byte 0xFF,
// which UTF-8 JSON text never holds.
import { deserialize, serialize } from "node:v8";

const V8_HEADER = 0xff;
const MAX_DEPTH = 64;

/** Encodes an element's value for a repartition topic. */
export function encodeElement(value: unknown): Buffer {
  return isJsonExact(value, [], 0) ? Buffer.from(JSON.stringify(value), "utf8") : serialize(value);
}

/** Decodes what `encodeElement` produced (or what v8.serialize alone produced before it). */
export function decodeElement(data: Buffer): unknown {
  return data[0] === V8_HEADER ? deserialize(data) : JSON.parse(data.toString("utf8"));
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
