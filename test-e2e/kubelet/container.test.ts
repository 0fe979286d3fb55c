// A container's processes (real ones, in their own namespaces) never outlive the kubelet
// that started them, and a graceful stop delivers SIGTERM to the command.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ContainerProcess } from "./container.ts";

const work = mkdtempSync(join(tmpdir(), "weir-container-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** The pids a helper process writes to `file`. */
async function pidsIn(file: string, count: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    try {
      const pids = readFileSync(file, "utf8").trim().split(/\s+/).map(Number);
      if (pids.length === count && pids.every((p) => p > 0)) return pids;
    } catch {}
    await sleep(25);
  }
  throw new Error(`no pids in ${file}`);
}

/** The process kubelet's per-container staging folders (see container.ts). */
function stagingDirs(): string[] {
  return readdirSync("/")
    .filter((name) => name.startsWith(".weir-"))
    .map((name) => `/${name}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== "Z";
  } catch {
    return false;
  }
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting: ${what}`);
}

test("when the kubelet dies, every process of its containers dies with it", async () => {
  const pidsFile = join(work, "pids");
  const script = "sleep 300 & sleep 300 & wait";
  const stagingBefore = stagingDirs();
  const kubelet = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { ContainerProcess } from ${JSON.stringify(join(import.meta.dirname, "container.ts"))};
       const c = new ContainerProcess({ argv: ["sh", "-c", ${JSON.stringify(script)}], env: new Map([["PATH", process.env.PATH]]),
         mounts: [], logFile: ${JSON.stringify(join(work, "log"))} });
       const pid = await c.mainPid();
       (await import("node:fs")).writeFileSync(${JSON.stringify(pidsFile)}, String(pid));
       setInterval(() => {}, 1000);`,
    ],
    { stdio: "ignore" },
  );
  const [command] = await pidsIn(pidsFile, 1);
  assert.ok(command && alive(command), "the container's command runs");
  let children: number[] = [];
  await until("the command to start its two children", () => {
    children = readFileSync(`/proc/${command}/task/${command}/children`, "utf8")
      .trim()
      .split(" ")
      .filter(Boolean)
      .map(Number);
    return children.length === 2;
  });

  kubelet.kill("SIGKILL");
  await until(
    "the command and its children to die",
    () => !alive(command ?? 0) && !children.some(alive),
  );
  // A killed kubelet cannot remove its containers' (empty) staging folders: the test does.
  for (const dir of stagingDirs()) {
    if (!stagingBefore.includes(dir)) rmSync(dir, { recursive: true, force: true });
  }
});

test("stop sends SIGTERM to the command and reports its exit", async () => {
  const record = join(work, "term");
  const container = new ContainerProcess({
    argv: [
      "sh",
      "-c",
      `trap 'echo TERM > ${record}; exit 3' TERM; echo trapping; while :; do sleep 0.05; done`,
    ],
    env: new Map([["PATH", process.env.PATH ?? "/usr/bin:/bin"]]),
    mounts: [],
    logFile: join(work, "stop.log"),
  });
  assert.ok(await container.mainPid());
  await until("the trap to be installed", () =>
    readFileSync(join(work, "stop.log"), "utf8").includes("trapping"),
  );
  const exit = await container.stop(10_000);
  assert.equal(exit.exitCode, 3);
  assert.equal(readFileSync(record, "utf8").trim(), "TERM");
});
