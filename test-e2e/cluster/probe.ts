// Health probes for the cluster's components: an HTTP(S) GET with a deadline.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export interface ProbeResult {
  status: number;
  body: string;
}

export interface ProbeOptions {
  /** PEM CA to verify an HTTPS server with; without it HTTPS is not verified (self-signed health ports). */
  ca?: string;
  timeoutMs?: number;
}

export function httpGet(url: string, options: ProbeOptions = {}): Promise<ProbeResult> {
  const target = new URL(url);
  const request = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: "GET",
        timeout: options.timeoutMs ?? 2_000,
        ca: options.ca,
        rejectUnauthorized: options.ca !== undefined,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** True when `url` answers 200. */
export async function answersOk(url: string, options?: ProbeOptions): Promise<boolean> {
  try {
    return (await httpGet(url, options)).status === 200;
  } catch {
    return false;
  }
}
