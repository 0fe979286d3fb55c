// One run of one container as local processes. The chain
//   setpriv --pdeathsig KILL → unshare --mount --pid --fork --kill-child → sh (mounts) → exec argv
// gives the container its own mount namespace (volumes bind-mounted at their real paths)
// and PID namespace (sh as its init, the command as its child), and ties its life to the
// kubelet's: when the kubelet dies, unshare gets SIGKILL and takes the whole PID namespace
// with it, so a pod's processes never outlive the node.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { constants } from "node:os";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface Mount {
  containerPath: string;
  hostPath: string;
  readOnly: boolean;
}

export interface ContainerLaunch {
  argv: string[];
  env: Map<string, string>;
  mounts: Mount[];
  workingDir?: string;
  logFile: string;
}

export interface ExitStatus {
  exitCode: number;
  /** Kubernetes' terminated reason. */
  reason: "Completed" | "Error";
  signal?: string;
}

export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The shell script that sets up mounts inside the new namespaces, then runs the command.
 *
 * Every volume is first bind-mounted under `stagingDir` (a fresh folder at the root, which no
 * mount path can hide), then from there onto its mount path: so a volume mounted over a
 * folder that holds other volumes' sources (`/work`, say) cannot hide them. The script
 * creates `stagingDir/started` right after forking the command: from then on the command is
 * the script's only child, which is how the kubelet finds its host pid.
 */
export function launchScript(
  mounts: Mount[],
  workingDir: string | undefined,
  stagingDir: string,
): string {
  const lines = ["set -e"];
  const staged = (i: number) => shellQuote(`${stagingDir}/${i}`);
  mounts.forEach((mount, i) => {
    const src = shellQuote(mount.hostPath);
    lines.push(
      `if [ -d ${src} ]; then mkdir ${staged(i)}; else : > ${staged(i)}; fi`,
      `mount --bind ${src} ${staged(i)}`,
    );
  });
  const ordered = mounts
    .map((mount, i) => ({ mount, i }))
    .sort((a, b) => a.mount.containerPath.length - b.mount.containerPath.length);
  for (const { mount, i } of ordered) {
    const dst = shellQuote(mount.containerPath);
    lines.push(
      `if [ -d ${staged(i)} ]; then mkdir -p ${dst}; else mkdir -p "$(dirname ${dst})"; [ -e ${dst} ] || : > ${dst}; fi`,
      `mount --bind ${staged(i)} ${dst}`,
    );
    if (mount.readOnly) lines.push(`mount -o remount,bind,ro ${dst}`);
  }
  if (workingDir) lines.push(`mkdir -p ${shellQuote(workingDir)}`, `cd ${shellQuote(workingDir)}`);
  // sh stays as the namespace's init (like `docker run --init`): the command runs as its
  // child, so it gets SIGTERM with normal signal semantics, and its exit status (128+n when
  // killed by signal n) becomes the container's.
  lines.push("set +e", '"$@" &', `: > ${shellQuote(`${stagingDir}/started`)}`, "wait $!");
  return lines.join("\n");
}

export class ContainerProcess {
  readonly exited: Promise<ExitStatus>;
  readonly startedAt = new Date();
  private readonly wrapperPid: number;
  private readonly startedMarker: string;
  private done = false;

  constructor(launch: ContainerLaunch) {
    mkdirSync(dirname(launch.logFile), { recursive: true });
    const stagingDir = `/.weir-${randomBytes(6).toString("hex")}`;
    mkdirSync(stagingDir);
    this.startedMarker = `${stagingDir}/started`;
    const out = openSync(launch.logFile, "a");
    const child = spawn(
      "setpriv",
      [
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "--mount-proc",
        "--",
        "sh",
        "-c",
        launchScript(launch.mounts, launch.workingDir, stagingDir),
        "container",
        ...launch.argv,
      ],
      { env: Object.fromEntries(launch.env), stdio: ["ignore", out, out], detached: true },
    );
    if (child.pid === undefined) throw new Error("could not start the container's process");
    this.wrapperPid = child.pid;
    const mountPoints = claimMountPoints(launch.mounts.map((m) => m.containerPath));
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.done = true;
        releaseMountPoints(mountPoints);
        // Outside the container's namespace its staging folder holds only empty mount points.
        try {
          rmSync(stagingDir, { recursive: true, force: true });
        } catch (error) {
          process.stderr.write(`could not remove ${stagingDir}: ${error}\n`);
        }
        const exitCode = code ?? 128 + signalNumber(signal);
        resolve({
          exitCode,
          reason: exitCode === 0 ? "Completed" : "Error",
          signal: signal ?? undefined,
        });
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  /** The host pid of the container's command (the only child of the namespace's init once it runs). */
  async mainPid(): Promise<number | undefined> {
    const childOf = (pid: number) => {
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
      return children ? Number(children.split(" ")[0]) : undefined;
    };
    for (let i = 0; i < 500 && !this.done; i++) {
      try {
        if (existsSync(this.startedMarker)) {
          const init = childOf(this.wrapperPid);
          return init === undefined ? undefined : childOf(init);
        }
      } catch {
        return undefined;
      }
      await sleep(10);
    }
    return undefined;
  }

  /**
   * SIGTERM to the container's command, then SIGKILL to the whole namespace after the grace
   * period.
   */
  async stop(graceMs: number): Promise<ExitStatus> {
    if (this.done) return this.exited;
    const main = await this.mainPid();
    if (main !== undefined) signal(main, "SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, graceMs, undefined);
    });
    const result = await Promise.race([this.exited, graceOver]);
    clearTimeout(timer);
    if (result) return result;
    signal(this.wrapperPid, "SIGKILL");
    return this.exited;
  }
}

/**
 * Mount points are made on the host's filesystem (only the mounts are private), and removing
 * one on the host detaches the mounts on it in every namespace. So the folders the kubelet
 * creates for mount points are counted per running container that uses them, and removed
 * (deepest first) only when the last of those containers has ended.
 */
const mountPointUsers = new Map<string, number>();

function claimMountPoints(paths: string[]): string[] {
  const claimed = new Set<string>();
  for (const path of paths) {
    for (
      let dir = path;
      dir !== "/" && (mountPointUsers.has(dir) || !existsSync(dir));
      dir = dirname(dir)
    ) {
      claimed.add(dir);
    }
  }
  for (const dir of claimed) mountPointUsers.set(dir, (mountPointUsers.get(dir) ?? 0) + 1);
  return [...claimed].sort((a, b) => b.length - a.length);
}

function releaseMountPoints(dirs: string[]): void {
  for (const dir of dirs) {
    const users = (mountPointUsers.get(dir) ?? 1) - 1;
    if (users > 0) {
      mountPointUsers.set(dir, users);
      continue;
    }
    mountPointUsers.delete(dir);
    try {
      if (statSync(dir).isDirectory()) rmdirSync(dir);
      else if (statSync(dir).size === 0) unlinkSync(dir);
    } catch {
      // Not empty, or already gone.
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function signalNumber(name: NodeJS.Signals | null): number {
  return name ? (constants.signals[name] ?? 1) : 0;
}
