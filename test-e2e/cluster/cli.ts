// npm run cluster -- up | down | status
import { down, printStatus, status, up } from "./cluster.ts";

const USAGE = "usage: npm run cluster -- up | down | status";

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case "up":
      await up();
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

main(process.argv[2]).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`[cluster] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
