// Weir's container images built from images/*.Dockerfile and run for real, on machines without
// a Docker engine: buildah builds them, podman runs them (both from Debian's packages, installed
// with the cluster's host tools). Their base, node:24-slim, is not reachable from here (no
// container registry is), so a stand-in is made once: Debian bookworm (debootstrap, minbase)
// with this Node 24 and npm, tagged docker.io/library/node:24-slim in the local storage and
// kept as an OCI archive in the cache. A machine that has the real one uses it.
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../cluster/exec.ts";
import { cacheDir, repoRoot } from "../cluster/layout.ts";

const BASE = "docker.io/library/node:24-slim";
const DEBIAN_MIRROR = process.env.WEIR_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
const NPM_VERSION = "11";

/**
 * Limits below the machine's own: the container runtime's defaults are higher than a
 * sandboxed machine lets a process raise them to.
 */
const ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"];

/** podman, with runc: crun refuses hosts with hybrid cgroups (v1 and v2 mounted). */
export function podman(args: string[]): Promise<string> {
  return run("podman", ["--runtime", "runc", ...args]);
}

async function succeeds(command: string, args: string[]): Promise<boolean> {
  return run(command, args).then(
    () => true,
    () => false,
  );
}

/** The base image in the local storage: present, loaded from the cache, or made (~1.5 min). */
export async function ensureNodeBase(): Promise<void> {
  if (await succeeds("podman", ["image", "exists", BASE])) return;
  const archive = join(cacheDir, "images", `node-${process.version}-bookworm-minbase.oci.tar`);
  if (existsSync(archive)) {
    await podman(["load", "-i", archive]);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), "weir-base-"));
  try {
    const rootfs = join(work, "rootfs");
    await run("debootstrap", ["--variant=minbase", "bookworm", rootfs, DEBIAN_MIRROR], {
      logFile: join(cacheDir, "logs", "debootstrap.log"),
    });
    rmSync(join(rootfs, "var", "cache", "apt", "archives"), { recursive: true, force: true });
    rmSync(join(rootfs, "var", "lib", "apt", "lists"), { recursive: true, force: true });
    // Node and npm where the official image has them.
    cpSync(process.execPath, join(rootfs, "usr", "local", "bin", "node"));
    const packed = (await run("npm", ["pack", `npm@${NPM_VERSION}`, "--silent"], { cwd: work }))
      .trim()
      .split("\n")
      .at(-1);
    const npmDir = join(rootfs, "usr", "local", "lib", "node_modules", "npm");
    mkdirSync(npmDir, { recursive: true });
    await run("tar", ["xzf", join(work, packed ?? ""), "-C", npmDir, "--strip-components=1"]);
    symlinkSync(
      "../lib/node_modules/npm/bin/npm-cli.js",
      join(rootfs, "usr", "local", "bin", "npm"),
    );
    symlinkSync(
      "../lib/node_modules/npm/bin/npx-cli.js",
      join(rootfs, "usr", "local", "bin", "npx"),
    );
    await run("sh", [
      "-c",
      `tar -C "$1" -c . | podman import --change 'CMD ["node"]' --change "LABEL dev.weir.base=debootstrap-bookworm-minbase" - ${BASE}`,
      "sh",
      rootfs,
    ]);
    mkdirSync(join(cacheDir, "images"), { recursive: true });
    await podman(["save", "--format", "oci-archive", "-o", archive, BASE]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * `buildah bud` of images/<component>.Dockerfile from the repository root as `tag`. Where this
 * machine reaches the npm registry through a proxy with its own CA (NODE_EXTRA_CA_CERTS), the
 * build's `npm ci` is given that CA by a mount that is not part of the image.
 */
export async function buildImage(component: "operator" | "runtime", tag: string): Promise<void> {
  const trust: string[] = [];
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa && existsSync(extraCa)) {
    const npmrc = join(mkdtempSync(join(tmpdir(), "weir-npmrc-")), "npmrc");
    writeFileSync(npmrc, "cafile=/run/weir-build/ca.crt\n");
    trust.push(
      "-v",
      `${extraCa}:/run/weir-build/ca.crt:ro`,
      "-v",
      `${npmrc}:/usr/local/etc/npmrc:ro`,
    );
  }
  await run(
    "buildah",
    [
      "bud",
      "--layers",
      "--isolation",
      "chroot",
      "--network",
      "host",
      ...ULIMITS,
      ...trust,
      "-f",
      join(repoRoot, "images", `${component}.Dockerfile`),
      "-t",
      tag,
      repoRoot,
    ],
    { logFile: join(cacheDir, "logs", `image-${component}.log`) },
  );
}

export interface ContainerOptions {
  name: string;
  image: string;
  args?: string[];
  env?: Record<string, string>;
  /** Host file → container path, read-only. */
  files?: Record<string, string>;
}

/**
 * Starts a container as the chart and the operator run Weir's pods: the image's own user, a
 * read-only root filesystem with a writable /tmp, every capability dropped, no privilege
 * escalation; on the host's network (the local cluster listens on loopback).
 */
export async function startContainer(options: ContainerOptions): Promise<void> {
  await podman([
    "run",
    "--detach",
    "--name",
    options.name,
    "--read-only",
    // Only /tmp writable, as in the pods (podman would add /run and /var/tmp).
    "--read-only-tmpfs=false",
    "--tmpfs",
    "/tmp:rw,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "host",
    ...ULIMITS,
    ...Object.entries(options.env ?? {}).flatMap(([name, value]) => ["-e", `${name}=${value}`]),
    ...Object.entries(options.files ?? {}).flatMap(([host, path]) => ["-v", `${host}:${path}:ro`]),
    options.image,
    ...(options.args ?? []),
  ]);
}

/** `podman exec`; resolves with its output, rejects with it when the command fails. */
export function execIn(container: string, command: string[]): Promise<string> {
  return podman(["exec", container, ...command]);
}

/** Stops a container (SIGTERM, SIGKILL after `graceSeconds`) and returns its exit code. */
export async function stopContainer(container: string, graceSeconds = 20): Promise<number> {
  await podman(["stop", "-t", String(graceSeconds), container]);
  return Number((await podman(["inspect", "--format", "{{.State.ExitCode}}", container])).trim());
}

export async function removeContainer(container: string): Promise<void> {
  await podman(["rm", "-f", container]).catch(() => {});
}

/** The container's last log lines (for a failure's message). */
export async function containerLogs(container: string, lines = 20): Promise<string> {
  return podman(["logs", "--tail", String(lines), container]).catch(
    (error: Error) => error.message,
  );
}
