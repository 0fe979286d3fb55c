// Programs the cluster build and the tests need from the machine. Where one is missing and we may, it is
// installed from Debian's packages; Go comes from the machine (or, when too old, from the
// Go module proxy: see toolchain.ts).
import { execFileSync } from "node:child_process";
import { run } from "./exec.ts";
import { say } from "./progress.ts";

const TOOLS: { command: string; debianPackage: string; purpose: string }[] = [
  { command: "openssl", debianPackage: "openssl", purpose: "certificates" },
  { command: "java", debianPackage: "openjdk-17-jre-headless", purpose: "the Kafka broker" },
  { command: "mvn", debianPackage: "maven", purpose: "fetching Kafka from Maven Central" },
  // Lua 5.1 is the language of Argo CD's interpreter (gopher-lua): the chart's health check.
  { command: "lua5.1", debianPackage: "lua5.1", purpose: "testing the Argo CD health check" },
  // Weir's images built and run without a Docker engine (test-e2e/support/images.ts).
  { command: "buildah", debianPackage: "buildah", purpose: "building Weir's images" },
  { command: "podman", debianPackage: "podman", purpose: "running Weir's images" },
  { command: "runc", debianPackage: "runc", purpose: "running Weir's images" },
  { command: "debootstrap", debianPackage: "debootstrap", purpose: "the images' base" },
];

function onPath(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export async function ensureHostTools(): Promise<void> {
  const missing = TOOLS.filter((tool) => !onPath(tool.command));
  if (missing.length === 0) return;
  const packages = missing.map((tool) => tool.debianPackage);
  const canInstall = process.getuid?.() === 0 && onPath("apt-get");
  if (!canInstall) {
    throw new Error(
      `missing ${missing.map((t) => `${t.command} (for ${t.purpose})`).join(", ")}; install the Debian packages ${packages.join(" ")}`,
    );
  }
  say(`installing ${packages.join(", ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  await run("apt-get", ["update", "-q"], { env });
  await run("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...packages], { env });
}
