// Prometheus' text format as tests compare it: each series as printed (name and labels) → its
// value. (The operator's own reader, operator/src/observe/runtime-metrics.ts, parses labels.)

export function seriesValues(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const split = line.lastIndexOf(" ");
    series.set(line.slice(0, split), Number(line.slice(split + 1)));
  }
  return series;
}
