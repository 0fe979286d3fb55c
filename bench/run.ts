// `npm run bench -- <name>`: runs one benchmark against the local cluster and prints its
// figures on stdout. Like `npm test`, it brings the cluster up when it is not, and takes it
// down again only if this run started it.
import { down, status, up } from "../test-e2e/cluster/cluster.ts";

const benchmarks: Record<string, () => Promise<void>> = {
  runtime: async () => (await import("./runtime.ts")).runtimeBenchmark(),
};

const name = process.argv[2] ?? "";
const benchmark = benchmarks[name];
if (!benchmark) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benchmarks).join(" | ")}>\n`);
  process.exit(2);
}

const wasUp = (await status()).every((component) => component.healthy);
if (!wasUp) {
  process.stderr.write("[bench] bringing the local cluster up\n");
  await up();
}
try {
  await benchmark();
} finally {
  if (!wasUp) await down({ quiet: true });
}
// Kafka clients may keep sockets open for a moment after closing; the figures are out.
process.exit(0);
