// A MinIO of a test's own, for tests that stop or kill the object store: the cluster's MinIO
// is shared and must never be touched. Same cached binary and credentials as the cluster's,
// another loopback port, its own data folder; `remove` ends it and deletes its data.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "minio";
import { STORAGE } from "../cluster/components.ts";
import { cacheDir } from "../cluster/layout.ts";
import { answersOk } from "../cluster/probe.ts";
import { MINIO_VERSION } from "../cluster/versions.ts";
import { eventually } from "./wait.ts";

const HOST = "127.0.0.1";
const binary = join(cacheDir, `minio-${MINIO_VERSION}`, "bin", "minio");

/** A port nothing listens on right now (the kernel's pick). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface PrivateMinioOptions {
  /** Extra server settings (MINIO_IDENTITY_OPENID_*, say). */
  env?: Record<string, string>;
  /** Its --certs-dir: `CAs/` it trusts for its own requests (an OpenID issuer, say). */
  certsDir?: string;
}

export class PrivateMinio {
  readonly endpoint: string;
  readonly bucket = STORAGE.bucket;
  readonly #port: number;
  readonly #dataDir: string;
  readonly #options: PrivateMinioOptions;
  #process: ChildProcess | undefined;

  private constructor(port: number, dataDir: string, options: PrivateMinioOptions) {
    this.#port = port;
    this.#dataDir = dataDir;
    this.#options = options;
    this.endpoint = `http://${HOST}:${port}`;
  }

  /** Starts one on a free port with an empty bucket. */
  static async start(options: PrivateMinioOptions = {}): Promise<PrivateMinio> {
    const minio = new PrivateMinio(
      await freePort(),
      mkdtempSync(join(tmpdir(), "weir-minio-")),
      options,
    );
    try {
      await minio.restart();
      await minio.client().makeBucket(minio.bucket, STORAGE.region);
    } catch (error) {
      await minio.remove();
      throw error;
    }
    return minio;
  }

  client(): Client {
    return new Client({
      endPoint: HOST,
      port: this.#port,
      useSSL: false,
      accessKey: STORAGE.accessKey,
      secretKey: STORAGE.secretKey,
      region: STORAGE.region,
    });
  }

  /** (Re)starts the server on its port and data; resolves once it is ready. */
  async restart(): Promise<void> {
    // setpriv: the server dies with the test process, even when that is killed.
    const child = spawn(
      "setpriv",
      [
        "--pdeathsig",
        "KILL",
        binary,
        "server",
        `--address=${HOST}:${this.#port}`,
        `--console-address=${HOST}:${await freePort()}`,
        ...(this.#options.certsDir ? [`--certs-dir=${this.#options.certsDir}`] : []),
        this.#dataDir,
      ],
      {
        stdio: "ignore",
        env: {
          ...process.env,
          MINIO_ROOT_USER: STORAGE.accessKey,
          MINIO_ROOT_PASSWORD: STORAGE.secretKey,
          MINIO_BROWSER: "off",
          MINIO_UPDATE: "off",
          MINIO_REGION: STORAGE.region,
          ...this.#options.env,
        },
      },
    );
    this.#process = child;
    await eventually(
      `private MinIO on port ${this.#port} to be ready`,
      async () => {
        if (child.exitCode !== null) throw new Error(`private MinIO exited (${child.exitCode})`);
        return (await answersOk(`${this.endpoint}/minio/health/ready`)) ? true : undefined;
      },
      30_000,
    );
  }

  /** SIGSTOP: connections are accepted by the kernel, and nothing answers. */
  hang(): void {
    this.#process?.kill("SIGSTOP");
  }

  resume(): void {
    this.#process?.kill("SIGCONT");
  }

  /** SIGKILL, waiting until it is gone. */
  async kill(): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGCONT");
    child.kill("SIGKILL");
    await exited;
  }

  /** Ends the server (by its own pid) and deletes its data. */
  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.#dataDir, { recursive: true, force: true });
  }
}
