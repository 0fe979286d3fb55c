// Running a tool to completion, its output captured in a log file that an error points to.
import { spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Output goes here (appended); without it, output is collected and returned. */
  logFile?: string;
  input?: string;
}

export class CommandError extends Error {}

/** Runs `command`, resolves with its stdout (or "" when logging to a file), throws on non-zero exit. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let out: number | "pipe" = "pipe";
    if (options.logFile) {
      mkdirSync(dirname(options.logFile), { recursive: true });
      out = openSync(options.logFile, "a");
    }
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", out, out],
    });
    const chunks: Buffer[] = [];
    child.stdout?.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => chunks.push(chunk));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.on("error", (error) =>
      reject(new CommandError(`${command}: ${error.message}`, { cause: error })),
    );
    child.on("close", (code, signal) => {
      const output = Buffer.concat(chunks).toString();
      if (code === 0) return resolvePromise(output);
      const where = options.logFile
        ? `see ${options.logFile}:\n${tail(readFileSync(options.logFile, "utf8"), 15)}`
        : tail(output, 15);
      reject(
        new CommandError(
          `${command} ${args.join(" ")} failed (${signal ?? `exit ${code}`}); ${where}`,
        ),
      );
    });
  });
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
