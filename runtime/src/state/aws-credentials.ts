// Storage credentials when no Secret is named: the AWS default credential chain, as the AWS SDKs
// resolve it from the process's environment, in their order (shared config files aside):
//   1. environment keys        AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. web identity            AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (IRSA's webhook mounts
//                              them): STS AssumeRoleWithWebIdentity with the token
//   3. container credentials   AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_
//                              TOKEN_FILE (EKS Pod Identity), or ECS's _RELATIVE_URI
//   4. instance metadata       IMDSv2 (a session token, then the instance role's credentials)
// The first source the environment configures is the one used: a configured source that fails
// (STS refuses the role) says so, rather than falling through to an instance role that would
// hide the mistake. Credentials are cached until five minutes before they expire.
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { CredentialProvider } from "minio/dist/esm/CredentialProvider.mjs";
import { Credentials } from "minio/dist/esm/Credentials.mjs";

export type CredentialSource =
  | { kind: "environment"; accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  | {
      kind: "web-identity";
      /** The token: a file re-read at every refresh (the kubelet rotates it), or a function. */
      token: { file: string } | { read: () => Promise<string> };
      roleArn: string;
      sessionName: string;
      stsEndpoint: string;
    }
  | {
      kind: "container";
      url: string;
      authorization?: { file: string } | { value: string };
    }
  | { kind: "instance-metadata"; endpoint: string };

/** What resolving credentials needs besides the environment. */
export interface ChainOptions {
  /** The bucket's region: names AWS's regional STS endpoint when none is configured. */
  region: string;
  /** STS endpoint for web identity (MinIO's is the storage endpoint); else AWS_ENDPOINT_URL_STS. */
  stsEndpoint?: string;
}

const ECS_HOST = "http://169.254.170.2";
const IMDS_ENDPOINT = "http://169.254.169.254";

/** The chain's pick for this environment (pure: the order above). */
export function credentialSource(env: NodeJS.ProcessEnv, options: ChainOptions): CredentialSource {
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return {
      kind: "environment",
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE && env.AWS_ROLE_ARN) {
    return {
      kind: "web-identity",
      token: { file: env.AWS_WEB_IDENTITY_TOKEN_FILE },
      roleArn: env.AWS_ROLE_ARN,
      sessionName: env.AWS_ROLE_SESSION_NAME || `weir-${Date.now()}`,
      stsEndpoint: stsEndpointFor(env, options),
    };
  }
  const container = env.AWS_CONTAINER_CREDENTIALS_FULL_URI
    ? env.AWS_CONTAINER_CREDENTIALS_FULL_URI
    : env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
      ? `${ECS_HOST}${env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}`
      : undefined;
  if (container) {
    const authorization = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
      ? { file: env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE }
      : env.AWS_CONTAINER_AUTHORIZATION_TOKEN
        ? { value: env.AWS_CONTAINER_AUTHORIZATION_TOKEN }
        : undefined;
    return { kind: "container", url: container, ...(authorization ? { authorization } : {}) };
  }
  if (env.AWS_EC2_METADATA_DISABLED?.toLowerCase() === "true") {
    throw new Error(
      "no storage credentials: no Secret is named and the AWS credential chain found none (environment keys, web identity token file, container credentials; instance metadata is disabled)",
    );
  }
  return {
    kind: "instance-metadata",
    endpoint: env.AWS_EC2_METADATA_SERVICE_ENDPOINT || IMDS_ENDPOINT,
  };
}

/** Where AssumeRoleWithWebIdentity goes: configured, AWS_ENDPOINT_URL_STS, or AWS's regional STS. */
export function stsEndpointFor(env: NodeJS.ProcessEnv, options: ChainOptions): string {
  return (
    options.stsEndpoint ||
    env.AWS_ENDPOINT_URL_STS ||
    `https://sts.${env.AWS_REGION || options.region}.amazonaws.com`
  );
}

/** Credentials with the time they stop working (undefined: they do not expire). */
export interface Expiring {
  accessKey: string;
  secretKey: string;
  sessionToken?: string;
  expiresAt?: number;
}

/** How requests for credentials travel: the storage client's agent (its CA) and deadline. */
export interface Transport {
  agent?: https.Agent;
  timeoutMs: number;
}

const REFRESH_BEFORE_MS = 5 * 60_000;

/** A minio CredentialProvider over one source of the chain, refreshing before expiry. */
export class ChainCredentialProvider extends CredentialProvider {
  readonly #source: CredentialSource;
  readonly #transport: Transport;
  #current: Expiring | undefined;
  #pending: Promise<Expiring> | undefined;

  constructor(source: CredentialSource, transport: Transport) {
    super({ accessKey: "", secretKey: "" });
    this.#source = source;
    this.#transport = transport;
  }

  /** Which source this is, for a message that names it (never the credentials). */
  get kind(): CredentialSource["kind"] {
    return this.#source.kind;
  }

  override async getCredentials(): Promise<Credentials> {
    let current = this.#current;
    if (
      !current ||
      (current.expiresAt !== undefined && current.expiresAt - Date.now() < REFRESH_BEFORE_MS)
    ) {
      // One refresh at a time, however many requests want credentials.
      this.#pending ??= fetchCredentials(this.#source, this.#transport).finally(() => {
        this.#pending = undefined;
      });
      current = await this.#pending;
      this.#current = current;
    }
    const { accessKey, secretKey, sessionToken } = current;
    return new Credentials({ accessKey, secretKey, ...(sessionToken ? { sessionToken } : {}) });
  }
}

export async function fetchCredentials(
  source: CredentialSource,
  transport: Transport,
): Promise<Expiring> {
  switch (source.kind) {
    case "environment":
      return {
        accessKey: source.accessKeyId,
        secretKey: source.secretAccessKey,
        ...(source.sessionToken ? { sessionToken: source.sessionToken } : {}),
      };
    case "web-identity":
      return assumeRoleWithWebIdentity(source, transport);
    case "container":
      return containerCredentials(source, transport);
    case "instance-metadata":
      return instanceCredentials(source, transport);
  }
}

async function assumeRoleWithWebIdentity(
  source: Extract<CredentialSource, { kind: "web-identity" }>,
  transport: Transport,
): Promise<Expiring> {
  const token =
    "file" in source.token
      ? (await readFile(source.token.file, "utf8")).trim()
      : await source.token.read();
  const body = new URLSearchParams({
    Action: "AssumeRoleWithWebIdentity",
    Version: "2011-06-15",
    RoleArn: source.roleArn,
    RoleSessionName: source.sessionName,
    WebIdentityToken: token,
  }).toString();
  const response = await send(source.stsEndpoint, transport, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  return parseStsResponse(response.status, response.body, source.stsEndpoint);
}

/** The credentials in an STS answer, or its error in STS's own words. */
export function parseStsResponse(status: number, xml: string, endpoint: string): Expiring {
  const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  const accessKey = tag("AccessKeyId");
  const secretKey = tag("SecretAccessKey");
  if (status !== 200 || !accessKey || !secretKey) {
    const code = tag("Code") ?? `HTTP ${status}`;
    const message = tag("Message");
    throw Object.assign(
      new Error(
        `STS at ${endpoint} refused AssumeRoleWithWebIdentity: ${code}${message ? `: ${message}` : ""}`,
      ),
      { code: "WebIdentityRefused" },
    );
  }
  const sessionToken = tag("SessionToken");
  const expiration = tag("Expiration");
  return {
    accessKey,
    secretKey,
    ...(sessionToken ? { sessionToken } : {}),
    ...(expiration ? { expiresAt: Date.parse(expiration) } : {}),
  };
}

async function containerCredentials(
  source: Extract<CredentialSource, { kind: "container" }>,
  transport: Transport,
): Promise<Expiring> {
  const authorization = source.authorization
    ? "file" in source.authorization
      ? (await readFile(source.authorization.file, "utf8")).trim()
      : source.authorization.value
    : undefined;
  const response = await send(source.url, transport, {
    method: "GET",
    headers: authorization ? { authorization } : {},
  });
  return parseCredentialsJson(
    response.status,
    response.body,
    `container credentials at ${source.url}`,
  );
}

async function instanceCredentials(
  source: Extract<CredentialSource, { kind: "instance-metadata" }>,
  transport: Transport,
): Promise<Expiring> {
  const base = source.endpoint.replace(/\/$/, "");
  // IMDSv2: a session token first; every later request carries it.
  const session = await send(`${base}/latest/api/token`, transport, {
    method: "PUT",
    headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" },
  });
  if (session.status !== 200)
    throw new Error(`instance metadata refused a session (${session.status})`);
  const headers = { "x-aws-ec2-metadata-token": session.body };
  const roles = `${base}/latest/meta-data/iam/security-credentials/`;
  const role = await send(roles, transport, { method: "GET", headers });
  const name = role.body.split(/\r?\n/)[0]?.trim();
  if (role.status !== 200 || !name)
    throw new Error("instance metadata names no IAM role for this instance");
  const response = await send(`${roles}${encodeURIComponent(name)}`, transport, {
    method: "GET",
    headers,
  });
  return parseCredentialsJson(response.status, response.body, `instance role ${name}`);
}

/** The JSON both container and instance credentials come as (ECS/EKS: Token; EC2: Token too). */
export function parseCredentialsJson(status: number, text: string, what: string): Expiring {
  let parsed: Record<string, string> = {};
  try {
    parsed = JSON.parse(text) as Record<string, string>;
  } catch {}
  const accessKey = parsed.AccessKeyId;
  const secretKey = parsed.SecretAccessKey;
  if (status !== 200 || !accessKey || !secretKey || (parsed.Code && parsed.Code !== "Success")) {
    throw new Error(
      `${what} gave no credentials (HTTP ${status}${parsed.Code ? `, ${parsed.Code}` : ""}${parsed.Message ? `: ${parsed.Message}` : ""})`,
    );
  }
  return {
    accessKey,
    secretKey,
    ...(parsed.Token ? { sessionToken: parsed.Token } : {}),
    ...(parsed.Expiration ? { expiresAt: Date.parse(parsed.Expiration) } : {}),
  };
}

interface Answer {
  status: number;
  body: string;
}

/** One bounded HTTP(S) request (64 KiB of answer at most: credentials are small). */
function send(
  url: string,
  transport: Transport,
  request: { method: string; headers: Record<string, string>; body?: string },
): Promise<Answer> {
  const target = new URL(url);
  const secure = target.protocol === "https:";
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      target,
      {
        method: request.method,
        headers: {
          ...request.headers,
          ...(request.body === undefined
            ? {}
            : { "content-length": Buffer.byteLength(request.body) }),
        },
        ...(secure && transport.agent ? { agent: transport.agent } : {}),
        timeout: transport.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > 65_536) req.destroy(new Error(`${target.origin} answered more than 64 KiB`));
          else chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () =>
      req.destroy(new Error(`${target.origin} did not answer within ${transport.timeoutMs} ms`)),
    );
    req.on("error", reject);
    req.end(request.body);
  });
}
