// npm run cluster -- up [--nodes N] | down | status

import { down, printStatus, status, up } from "./cluster.ts";
import { MAX_NODES } from "./components.ts";

const USAGE = "usage: npm run cluster -- up [--nodes N] | down | status";

/** `--nodes N` or `--nodes=N` (default 1). */
function nodesOption(args: string[]): number {
  const at = args.findIndex((a) => a === "--nodes" || a.startsWith("--nodes="));
  if (at === -1) return 1;
  const value = args[at]?.includes("=") ? args[at]?.split("=")[1] : args[at + 1];
  const nodes = Number(value);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
    throw new Error(`--nodes: ${value} is not a node count from 1 to ${MAX_NODES}`);
  }
  return nodes;
}

async function main(command: string | undefined, args: string[]): Promise<number> {
  switch (command) {
    case "up":
      await up({ nodes: nodesOption(args) });
      return 0;
    case "down":
      await down();
      return 0;
    case "status": {
      const states = await status();
      printStatus(states);
      return states.every((s) => s.healthy) ? 0 : 3;
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

main(process.argv[2], process.argv.slice(3)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`[cluster] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
