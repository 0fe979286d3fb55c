// Background processes of the local cluster, tracked by pid files so any later command can
// stop exactly what an earlier one started: by pid and process group, never by name. A pid
// file also records the process's start time, so a pid the kernel reused for something else
// is never signalled.
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcessRecord {
  name: string;
  pid: number;
  /** Start time in clock ticks since boot, from /proc/<pid>/stat. */
  startTime: number;
  /** Milliseconds since the epoch: `stopAll` stops the newest first. */
  startedAt: number;
  command: string;
  logFile: string;
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  pidDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Field 22 of /proc/<pid>/stat; undefined when the process is gone. */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: parse after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  if (state === "Z" || state === "X") return undefined;
  return Number(fields[19]);
}

export function isRunning(record: ProcessRecord): boolean {
  return processStartTime(record.pid) === record.startTime;
}

/** Starts a detached process (its own session and process group) logging to a file. */
export function startProcess(options: StartOptions): ProcessRecord {
  mkdirSync(dirname(options.logFile), { recursive: true });
  mkdirSync(options.pidDir, { recursive: true });
  const out = openSync(options.logFile, "a");
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ["ignore", out, out],
  });
  if (child.pid === undefined) {
    throw new Error(`${options.name}: could not start ${options.command}`);
  }
  const record: ProcessRecord = {
    name: options.name,
    pid: child.pid,
    startTime: processStartTime(child.pid) ?? 0,
    startedAt: Date.now(),
    command: [options.command, ...options.args].join(" "),
    logFile: options.logFile,
  };
  writeFileSync(join(options.pidDir, `${options.name}.json`), JSON.stringify(record, null, 2));
  child.unref();
  return record;
}

export function readRecords(pidDir: string): ProcessRecord[] {
  if (!existsSync(pidDir)) return [];
  return readdirSync(pidDir)
    .filter((file) => file.endsWith(".json"))
    .map((file) => JSON.parse(readFileSync(join(pidDir, file), "utf8")) as ProcessRecord);
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await sleep(50);
  }
  return condition();
}

/**
 * Stops a recorded process and everything in its process group: SIGTERM, then SIGKILL after
 * the grace period. Returns false only if something survived SIGKILL.
 */
export async function stopProcess(record: ProcessRecord, graceMs = 10_000): Promise<boolean> {
  if (isRunning(record)) {
    signalGroup(record.pid, "SIGTERM");
    const stopped = await waitUntil(() => !isRunning(record) && !groupAlive(record.pid), graceMs);
    if (!stopped) {
      signalGroup(record.pid, "SIGKILL");
      if (!(await waitUntil(() => !isRunning(record) && !groupAlive(record.pid), 5_000))) {
        return false;
      }
    }
  } else if (processStartTime(record.pid) === undefined && groupAlive(record.pid)) {
    // The leader exited but left children in its group. They are ours: the kernel does not
    // hand out a pid while a process group of that id exists. (A live process with the pid
    // but another start time is a stranger that got the pid later: it is left alone.)
    signalGroup(record.pid, "SIGKILL");
  }
  return true;
}

/** Stops every recorded process, last started first, and removes their pid files. */
export async function stopAll(pidDir: string, graceMs?: number): Promise<ProcessRecord[]> {
  const records = readRecords(pidDir).sort((a, b) => b.startedAt - a.startedAt);
  const survivors: ProcessRecord[] = [];
  for (const record of records) {
    if (await stopProcess(record, graceMs)) {
      rmSync(join(pidDir, `${record.name}.json`), { force: true });
    } else {
      survivors.push(record);
    }
  }
  return survivors;
}
