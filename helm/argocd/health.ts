// Runs the Argo CD health check (health.lua) on an object, as Argo CD does: the object as the
// global `obj`, the script's result table read back. With Debian's `lua5.1`, the language
// version of Argo CD's interpreter (gopher-lua); the local cluster's set-up installs it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const LUA = "lua5.1";
const script = readFileSync(join(import.meta.dirname, "health.lua"), "utf8");

export interface Health {
  status: "Healthy" | "Progressing" | "Degraded" | "Suspended" | "Missing" | "Unknown";
  message: string;
}

/** A JSON value as a Lua table constructor (null → nil, arrays 1-based). */
export function luaLiteral(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean" || typeof value === "number") return String(value);
  if (typeof value === "string") {
    // Decimal escapes (three digits, so a digit after one is not read into it) for everything
    // but printable ASCII: valid in every Lua version.
    let out = '"';
    for (const byte of Buffer.from(value, "utf8")) {
      out +=
        byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c
          ? String.fromCharCode(byte)
          : `\\${String(byte).padStart(3, "0")}`;
    }
    return `${out}"`;
  }
  if (Array.isArray(value)) return `{${value.map(luaLiteral).join(", ")}}`;
  const fields = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `[${luaLiteral(k)}] = ${luaLiteral(v)}`);
  return `{${fields.join(", ")}}`;
}

/** health.lua's verdict on `object` (a StreamJob as `kubectl get -o json` shows it). */
export async function argoHealth(object: unknown): Promise<Health> {
  const program = [
    `obj = ${luaLiteral(object)}`,
    `local hs = (function()\n${script}\nend)()`,
    'io.write(hs.status, "\\n", hs.message or "")',
  ].join("\n");
  const lua = spawn(LUA, ["-"], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  lua.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  lua.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  lua.stdin.end(program);
  const [code] = await once(lua, "close");
  if (code !== 0) throw new Error(`health.lua failed (${code}): ${stderr}`);
  const [status = "", ...message] = stdout.split("\n");
  return { status: status as Health["status"], message: message.join("\n") };
}
