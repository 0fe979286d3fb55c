// What the benchmarks measure with, as pure functions where they can be: CPU time of a
// process, percentiles, and the table the figures are printed in.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** User + system CPU seconds from the text of `/proc/<pid>/stat` (see proc(5)). */
export function cpuSecondsFromStat(stat: string, ticksPerSecond: number): number {
  // The command name (field 2) may hold spaces and parentheses: fields are counted after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the line, 12th and 13th after the name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`unexpected /proc stat line: ${stat}`);
  return ticks / ticksPerSecond;
}

let ticksPerSecond: number | undefined;

/** CPU seconds a running process has used so far. */
export function cpuSeconds(pid: number): number {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  return cpuSecondsFromStat(readFileSync(`/proc/${pid}/stat`, "utf8"), ticksPerSecond);
}

/** Wall and CPU time of some processes between `start()` and `stop()`. */
export function stopwatch(pids: Record<string, number | undefined>) {
  const cpuNow = () =>
    Object.fromEntries(
      Object.entries(pids).map(([name, pid]) => [name, pid === undefined ? 0 : cpuSeconds(pid)]),
    );
  const started = performance.now();
  const cpuAtStart = cpuNow();
  return {
    /** Seconds since start, and CPU seconds each process used meanwhile. */
    stop(): { seconds: number; cpu: Record<string, number> } {
      const seconds = (performance.now() - started) / 1000;
      const cpuAtEnd = cpuNow();
      const cpu = Object.fromEntries(
        Object.keys(pids).map((name) => [name, (cpuAtEnd[name] ?? 0) - (cpuAtStart[name] ?? 0)]),
      );
      return { seconds, cpu };
    },
  };
}

/** The nearest-rank `p`-th percentile (0 < p ≤ 100) of some numbers. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

/** A plain-text table: the first row is the header, columns padded to their widest cell. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0))) ?? [];
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return `${[line(rows[0] ?? []), rule, ...rows.slice(1).map(line)].join("\n")}\n`;
}
