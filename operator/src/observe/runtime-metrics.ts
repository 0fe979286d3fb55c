// What a runtime pod's `/metrics` (Prometheus text, port 9249) says about its work: the figures
// the autoscaler reads (docs/architecture.md, "Runtime" → Metrics). The text format is small
// enough to parse here (https://prometheus.io/docs/instrumenting/exposition_formats/); no
// client library parses it.
import { boundedFetch } from "../machinery/http.ts";

/** One series of an exposition: `name{labels} value`. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Records of one source partition (task) not processed yet. */
export interface PartitionBacklog {
  topic: string;
  partition: number;
  records: number;
}

/** One scrape of one pod. Counters are the pod's totals since it started. */
export interface RuntimeSample {
  pod: string;
  subtask: number;
  /** When it was scraped (ms since the epoch). */
  time: number;
  /** Tasks the pod runs (one per owned partition of every stage). */
  tasks: number;
  /** Per task; a task whose end offset is not known yet has no entry. */
  backlog: PartitionBacklog[];
  recordsIn: number;
  recordsOut: number;
  busySeconds: number;
}

export type ScrapeResult =
  | { ok: true; sample: RuntimeSample }
  | { ok: false; pod: string; subtask: number; time: number; error: string };

export const METRICS_PORT = 9249;
/** A pod's /metrics beyond this is not the runtime's (a few hundred bytes per task). */
const MAX_METRICS_BYTES = 4 << 20;

/** Parses the Prometheus text format; throws naming the line it cannot read. */
export function parsePrometheusText(text: string): Series[] {
  const series: Series[] = [];
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    try {
      series.push(parseLine(line));
    } catch (error) {
      throw new Error(
        `metrics line ${index + 1}: ${error instanceof Error ? error.message : String(error)}: ${line}`,
      );
    }
  }
  return series;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseLine(line: string): Series {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error("no metric name");
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1).trimStart();
    while (!rest.startsWith("}")) {
      const label = LABEL_NAME.exec(rest)?.[0];
      if (!label) throw new Error("bad label name");
      rest = rest.slice(label.length).trimStart();
      if (!rest.startsWith('="')) throw new Error(`label ${label} has no quoted value`);
      const { value, length } = quoted(rest.slice(1));
      labels[label] = value;
      rest = rest.slice(1 + length).trimStart();
      if (rest.startsWith(",")) rest = rest.slice(1).trimStart();
      else if (!rest.startsWith("}")) throw new Error("expected , or } after a label");
    }
    rest = rest.slice(1);
  }
  // The value, then an optional timestamp (ignored: a scrape is timed by its reader).
  const [valueText] = rest.trim().split(/\s+/);
  const value = parseValue(valueText ?? "");
  return { name, labels, value };
}

/** A double-quoted label value with \\, \" and \n escapes; `length` includes both quotes. */
function quoted(text: string): { value: string; length: number } {
  let value = "";
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (c === '"') return { value, length: i + 1 };
    if (c === "\\") {
      const next = text[++i];
      value += next === "n" ? "\n" : (next ?? "");
    } else value += c;
  }
  throw new Error("unterminated label value");
}

function parseValue(text: string): number {
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  const value = Number(text);
  if (text === "" || Number.isNaN(value)) throw new Error(`bad value ${JSON.stringify(text)}`);
  return value;
}

/** The autoscaler's figures from one scrape's text; throws when one the runtime always has is missing. */
export function runtimeSample(
  text: string,
  at: { pod: string; subtask: number; time: number },
): RuntimeSample {
  const series = parsePrometheusText(text);
  const single = (name: string): number => {
    const found = series.find((s) => s.name === name);
    if (found === undefined || !Number.isFinite(found.value))
      throw new Error(`${at.pod}: no ${name} in its metrics`);
    return found.value;
  };
  const backlog = series
    .filter((s) => s.name === "weir_source_backlog_records")
    .map((s) => ({
      topic: s.labels.topic ?? "",
      partition: Number(s.labels.partition),
      records: s.value,
    }))
    .filter((b) => Number.isInteger(b.partition) && Number.isFinite(b.records));
  return {
    ...at,
    tasks: single("weir_tasks"),
    backlog,
    recordsIn: single("weir_records_in_total"),
    recordsOut: single("weir_records_out_total"),
    busySeconds: single("weir_busy_seconds_total"),
  };
}

/**
 * Reads one pod's `/metrics`. Never throws: a refused connection, a timeout, a non-200 answer or
 * text without the runtime's figures come back as a failure saying which.
 */
export async function scrapeRuntimePod(
  target: { pod: string; subtask: number; ip: string; port?: number },
  options: { timeoutMs: number; now?: () => number },
): Promise<ScrapeResult> {
  const now = options.now ?? Date.now;
  const time = now();
  const { pod, subtask } = target;
  const host = target.ip.includes(":") ? `[${target.ip}]` : target.ip;
  const url = `http://${host}:${target.port ?? METRICS_PORT}/metrics`;
  try {
    const { status, text } = await boundedFetch(url, {
      timeoutMs: options.timeoutMs,
      maxBytes: MAX_METRICS_BYTES,
    });
    if (status !== 200) return { ok: false, pod, subtask, time, error: `${url}: HTTP ${status}` };
    return { ok: true, sample: runtimeSample(text, { pod, subtask, time }) };
  } catch (error) {
    const why =
      error instanceof Error && error.name === "TimeoutError"
        ? `no answer within ${options.timeoutMs} ms`
        : describe(error);
    return { ok: false, pod, subtask, time, error: `${url}: ${why}` };
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch hides the socket error (ECONNREFUSED, …) in `cause`.
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
}
