// Where a process's CPU time went, from the `.cpuprofile` files `node --cpu-prof` writes:
// self time by area (the runtime's files, the Kafka client, node internals, GC) and the
// functions that took the most.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { table } from "./measure.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
}

/** The area a function belongs to, from its script URL. */
export function area(functionName: string, url: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1] as string;
  const own = /\/(runtime\/(?:src|examples)\/.+|bench\/.+)$/.exec(url);
  if (own) return own[1] as string;
  if (url.startsWith("node:")) return url;
  return url;
}

export interface Share {
  name: string;
  percent: number;
}

/** Self time by area and by function, in percent of the busy (non-idle) samples. */
export function summarize(profiles: readonly CpuProfile[], top = 15) {
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const profile of profiles) {
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      const { functionName, url, lineNumber } = node.callFrame;
      if (functionName === "(idle)") {
        idle += hits;
        continue;
      }
      busy += hits;
      const where = area(functionName, url);
      byArea.set(where, (byArea.get(where) ?? 0) + hits);
      const fn = `${functionName || "(anonymous)"} ${url ? `${where}:${lineNumber + 1}` : ""}`;
      byFunction.set(fn.trim(), (byFunction.get(fn.trim()) ?? 0) + hits);
    }
  }
  const shares = (map: Map<string, number>): Share[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({ name, percent: (hits / Math.max(1, busy)) * 100 }));
  return {
    busyPercent: (busy / Math.max(1, busy + idle)) * 100,
    areas: shares(byArea),
    functions: shares(byFunction),
  };
}

/** The summary of every profile in `dir`, as text. */
export function summarizeProfiles(dir: string): string {
  const profiles = readdirSync(dir)
    .filter((file) => file.endsWith(".cpuprofile"))
    .map((file) => JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile);
  const summary = summarize(profiles);
  const rows = (shares: Share[]) => shares.map((s) => [s.name, s.percent.toFixed(1)]);
  return [
    `busy ${summary.busyPercent.toFixed(0)}% of the samples; self time of the busy ones (profiles in ${dir}):\n\n`,
    table([["area", "%"], ...rows(summary.areas)]),
    "\n",
    table([["function", "%"], ...rows(summary.functions)]),
  ].join("");
}
