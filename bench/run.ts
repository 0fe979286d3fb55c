// `npm run bench -- <name>`: runs one benchmark and prints its figures on stdout. For one that
// needs the local cluster, like `npm test`, it brings the cluster up when it is not, and takes
// it down again only if this run started it.
import { down, status, up } from "../test-e2e/cluster/cluster.ts";

/** Each benchmark: whether it needs the local cluster, and its run (false: its bar was not met). */
const benchmarks: Record<string, { cluster: boolean; run: () => Promise<unknown> }> = {
  runtime: { cluster: true, run: async () => (await import("./runtime.ts")).runtimeBenchmark() },
  upgrade: { cluster: true, run: async () => (await import("./upgrade.ts")).upgradeBenchmark() },
  operator: {
    cluster: true,
    run: async () => (await import("./operator.ts")).operatorBenchmark(),
  },
  checkpoints: {
    cluster: true,
    run: async () => (await import("./checkpoints.ts")).checkpointsBenchmark(),
  },
  // A simulation: no cluster.
  autoscaler: {
    cluster: false,
    run: async () => (await import("./autoscaler.ts")).autoscalerBenchmark(),
  },
};

const name = process.argv[2] ?? "";
const benchmark = benchmarks[name];
if (!benchmark) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benchmarks).join(" | ")}>\n`);
  process.exit(2);
}

let wasUp = !benchmark.cluster || (await status()).every((component) => component.healthy);
if (!wasUp) {
  process.stderr.write("[bench] bringing the local cluster up\n");
  // A running cluster that only lacked new components is someone's: it stays up after.
  wasUp = (await up()) !== "started";
}
let met: unknown;
try {
  met = await benchmark.run();
} finally {
  if (!wasUp) await down({ quiet: true });
}
// Kafka clients may keep sockets open for a moment after closing; the figures are out.
process.exit(met === false ? 1 : 0);
