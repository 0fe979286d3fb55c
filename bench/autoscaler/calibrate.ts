// Writes the measured half of the simulator's calibration (bench/autoscaler/calibration.json):
// the savepoint rescales the operator made on the local cluster, as its RunReady Events report
// them ("rescale completed in X s (downtime Y s): run rN has all P pods ready") in its logs.
//
//   set -a; source .cluster/env; set +a
//   scripts/run -- node --test --test-timeout=1000000 test-e2e/tests/autoscaler.e2e.test.ts
//   scripts/run -- node bench/autoscaler/calibrate.ts [operator logs…]
//
// Without arguments it reads every operator log of the local cluster: .cluster/logs/chart-*.log
// (operator pods, kept by the tests when they uninstall the chart) and operator-*.log (operators
// the tests ran as processes).
// Only rescales in savepoint mode count (the autoscaler's); earlier measurements in the file are kept,
// and so is the per-pod capacity (it comes from the runtime benchmark, see calibration.ts).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CALIBRATION_FILE, type Calibration, type MeasuredRescale } from "./calibration.ts";

interface LogLine {
  time: string;
  namespace?: string;
  job?: string;
  reason?: string;
  msg?: string;
}

/** The savepoint rescales in operator log lines (JSON, one per line; others are skipped). */
export function measuredRescales(lines: readonly string[]): MeasuredRescale[] {
  const events = lines
    .flatMap((line) => {
      try {
        const parsed = JSON.parse(line) as LogLine;
        return parsed.reason && parsed.namespace && parsed.job ? [parsed] : [];
      } catch {
        return [];
      }
    })
    .sort((a, b) => a.time.localeCompare(b.time));
  const jobs = new Map<string, { pods?: number; mode?: string; standby?: boolean }>();
  const found: MeasuredRescale[] = [];
  for (const e of events) {
    const key = `${e.namespace}/${e.job}`;
    const job = jobs.get(key) ?? {};
    jobs.set(key, job);
    const started =
      e.reason === "OperationStarted" && /^rescale of run \S+ \(mode (\S+)\)/.exec(e.msg ?? "");
    if (started) {
      job.mode = started[1];
      job.standby = /the next run starts warm first/.test(e.msg ?? "");
    }
    if (e.reason !== "RunReady") continue;
    const ready =
      /(?:rescale completed in ([\d.]+) s \(downtime ([\d.]+) s\): )?run \S+ has all (\d+) pods ready/.exec(
        e.msg ?? "",
      );
    if (!ready) continue;
    const pods = Number(ready[3]);
    if (ready[1] !== undefined && job.mode === "savepoint" && job.pods !== undefined) {
      found.push({
        time: e.time,
        job: key,
        from: job.pods,
        to: pods,
        seconds: Number(ready[1]),
        downtimeSeconds: Number(ready[2]),
        ...(job.standby ? { standby: true } : {}),
      });
    }
    job.pods = pods;
    job.mode = undefined;
  }
  return found;
}

if (import.meta.main) {
  const dir = join(import.meta.dirname, "../../.cluster/logs");
  const files =
    process.argv.length > 2
      ? process.argv.slice(2)
      : readdirSync(dir)
          .filter((f) => /^(chart|operator)-.*\.log$/.test(f))
          .map((f) => join(dir, f));
  const rescales = measuredRescales(files.flatMap((f) => readFileSync(f, "utf8").split("\n")));
  if (rescales.length === 0) {
    process.stderr.write(`no savepoint rescale with measured downtime in ${files.join(", ")}\n`);
    process.exit(1);
  }
  // Measurements accumulate across runs (logs of earlier runs may be gone); the same one once.
  const previous = JSON.parse(readFileSync(CALIBRATION_FILE, "utf8")) as Calibration;
  const seen = new Set(rescales.map((r) => `${r.time} ${r.job}`));
  const measured = [
    ...previous.rescales.measured.filter((r) => !seen.has(`${r.time} ${r.job}`)),
    ...rescales,
  ].sort((a, b) => a.time.localeCompare(b.time));
  const next: Calibration = {
    ...previous,
    rescales: { source: previous.rescales.source, measured },
  };
  writeFileSync(CALIBRATION_FILE, `${JSON.stringify(next, null, 2)}\n`);
  for (const r of rescales)
    process.stdout.write(
      `${r.time} ${r.job} ${r.from} → ${r.to}: ${r.seconds} s, downtime ${r.downtimeSeconds} s\n`,
    );
  process.stdout.write(
    `${rescales.length} rescales found, ${measured.length} in ${CALIBRATION_FILE}\n`,
  );
}
