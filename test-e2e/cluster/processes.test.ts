// Process tracking with real processes: `down` must find and stop everything an `up` started,
// including children, even when the `up` that started them was killed.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  isRunning,
  type ProcessRecord,
  processStartTime,
  readRecords,
  startProcess,
  stopAll,
  stopProcess,
} from "./processes.ts";

const work = mkdtempSync(join(tmpdir(), "weir-processes-"));
after(() => rmSync(work, { recursive: true, force: true }));

function alive(pid: number): boolean {
  return processStartTime(pid) !== undefined;
}

/** Pids of a shell's background children, which it writes to a file once started. */
async function childPids(file: string): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    try {
      const pids = readFileSync(file, "utf8").trim().split(/\s+/).map(Number);
      if (pids.length === 2 && pids.every((p) => p > 0)) return pids;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no child pids in ${file}`);
}

test("stopAll stops a recorded process and its children, after the starter was killed", async () => {
  const pidDir = join(work, "pids");
  const pidsFile = join(work, "children");
  // A starter process (like `cluster up`) starts a component that forks two children, then
  // gets SIGKILLed before it can clean anything up.
  const starter = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { startProcess } from ${JSON.stringify(join(import.meta.dirname, "processes.ts"))};
       startProcess({ name: "component", command: "sh",
         args: ["-c", "sleep 300 & a=$!; sleep 300 & echo $a $! > ${pidsFile}; wait"],
         logFile: ${JSON.stringify(join(work, "component.log"))}, pidDir: ${JSON.stringify(pidDir)} });
       setInterval(() => {}, 1000);`,
    ],
    { stdio: "ignore" },
  );
  const children = await childPids(pidsFile);
  starter.kill("SIGKILL");

  const [record] = readRecords(pidDir);
  assert.ok(record, "the starter wrote a pid file");
  assert.equal(isRunning(record), true);
  assert.ok(children.every(alive), "the children run on after their starter died");

  const survivors = await stopAll(pidDir, 2_000);
  assert.deepEqual(survivors, []);
  assert.equal(isRunning(record), false);
  assert.ok(!children.some(alive), "no child is left behind");
  assert.deepEqual(readRecords(pidDir), [], "pid files are removed");
});

test("a process that ignores SIGTERM is killed after the grace period", async () => {
  const pidDir = join(work, "stubborn");
  const record = startProcess({
    name: "stubborn",
    command: "sh",
    args: ["-c", "trap '' TERM; while :; do sleep 0.1; done"],
    logFile: join(work, "stubborn.log"),
    pidDir,
  });
  assert.equal(isRunning(record), true);
  assert.deepEqual(await stopAll(pidDir, 300), []);
  assert.equal(isRunning(record), false);
});

test("a recorded pid now used by another process is never signalled", async () => {
  const pidDir = join(work, "reused");
  const record = startProcess({
    name: "bystander",
    command: "sleep",
    args: ["300"],
    logFile: join(work, "bystander.log"),
    pidDir,
  });
  // Same pid, another start time: what a pid file looks like once its pid was reused.
  const stale: ProcessRecord = { ...record, startTime: record.startTime - 1 };
  assert.equal(isRunning(stale), false);
  assert.equal(await stopProcess(stale, 100), true);
  assert.equal(alive(record.pid), true, "the process that owns the pid now still runs");
  assert.deepEqual(await stopAll(pidDir, 1_000), []);
  assert.equal(alive(record.pid), false);
});
