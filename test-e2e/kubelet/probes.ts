// Running one probe (httpGet, tcpSocket, exec) against a container, with its timeout.
import { execFile } from "node:child_process";
import { connect } from "node:net";
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import { httpGet } from "../cluster/probe.ts";

/** A probe's port, by number or by the name of one of the container's ports. */
export function probePort(port: number | string, container: V1Container): number {
  if (typeof port === "number") return port;
  const named = container.ports?.find((p) => p.name === port);
  if (named) return named.containerPort;
  const numeric = Number(port);
  if (Number.isInteger(numeric)) return numeric;
  throw new Error(`port ${port} is not a port of container ${container.name}`);
}

export interface ProbeTarget {
  podIP: string;
  container: V1Container;
  /** Host pid of the container's PID 1, for exec probes (run in its mount namespace). */
  mainPid?: number;
}

/** Resolves to undefined on success, or to why the probe failed. */
export async function runProbe(probe: V1Probe, target: ProbeTarget): Promise<string | undefined> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.httpGet) {
      const host = probe.httpGet.host ?? target.podIP;
      const port = probePort(probe.httpGet.port, target.container);
      const scheme = (probe.httpGet.scheme ?? "HTTP").toLowerCase();
      const result = await httpGet(`${scheme}://${host}:${port}${probe.httpGet.path ?? "/"}`, {
        timeoutMs,
      });
      return result.status >= 200 && result.status < 400
        ? undefined
        : `HTTP probe failed with statuscode: ${result.status}`;
    }
    if (probe.tcpSocket) {
      const port = probePort(probe.tcpSocket.port, target.container);
      await new Promise<void>((resolve, reject) => {
        const socket = connect({
          host: probe.tcpSocket?.host ?? target.podIP,
          port,
          timeout: timeoutMs,
        });
        socket.once("connect", () => {
          socket.destroy();
          resolve();
        });
        socket.once("timeout", () => socket.destroy(new Error("timeout")));
        socket.once("error", reject);
      });
      return undefined;
    }
    if (probe.exec?.command?.length) {
      if (target.mainPid === undefined) return "container is not running";
      await new Promise<void>((resolve, reject) => {
        execFile(
          "nsenter",
          [
            "--target",
            String(target.mainPid),
            "--mount",
            "--pid",
            "--",
            ...(probe.exec?.command ?? []),
          ],
          { timeout: timeoutMs },
          (error) => (error ? reject(error) : resolve()),
        );
      });
      return undefined;
    }
    return "probe has no handler";
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
