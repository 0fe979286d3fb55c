// The one place an S3 client is built from a job's storage settings, for the runtime and the
// operator alike: endpoint, region, addressing, the CA bundle that verifies the endpoint (and
// STS), and the credentials — a Secret's static keys, or the AWS default chain
// (aws-credentials.ts) when no Secret is named.
//
// The `minio` package has no request timeout: against a store that accepts connections but
// never answers (a hung or SIGSTOPped server) a call would wait forever, and with it the
// checkpoint and the task's processing. Every request here is destroyed after `timeoutMs`
// without a byte moving, so the call fails and is retried later.
import http from "node:http";
import https from "node:https";
import { rootCertificates } from "node:tls";
import { Client, type ClientOptions } from "minio";
import {
  ChainCredentialProvider,
  type CredentialSource,
  credentialSource,
} from "./aws-credentials.ts";

/** `path`: https://host/bucket/key (MinIO, Ceph, most S3-compatible stores); `virtual-host`:
 * https://bucket.host/key (AWS's preferred form). */
export type Addressing = "path" | "virtual-host";

export type StorageCredentials =
  | { kind: "static"; accessKey: string; secretKey: string }
  /** The AWS default chain over this environment, or one source of it chosen by the caller. */
  | { kind: "chain"; env?: NodeJS.ProcessEnv; source?: CredentialSource }
  /** A provider the caller keeps (and so its cached credentials) across clients. */
  | { kind: "provider"; provider: ChainCredentialProvider };

export interface StorageClientOptions {
  endpoint: string;
  region?: string;
  addressing?: Addressing;
  /** PEM certificates trusted for the endpoint and STS, besides the system's own. */
  ca?: string;
  /** Where web identity asks STS (default: AWS_ENDPOINT_URL_STS, else AWS's regional STS). */
  stsEndpoint?: string;
  credentials: StorageCredentials;
  /** Longest silence on a request's connection before it fails. Default 10 s. */
  timeoutMs?: number;
}

const DEFAULT_REGION = "us-east-1";

export function storageClient(options: StorageClientOptions): Client {
  const endpoint = new URL(options.endpoint);
  const secure = endpoint.protocol === "https:";
  const timeoutMs = options.timeoutMs ?? 10_000;
  const region = options.region ?? DEFAULT_REGION;
  const agent = secure && options.ca ? trustingAgent(options.ca) : undefined;
  const base = secure ? https : http;
  const transport = {
    request: ((
      requestOptions: http.RequestOptions,
      callback?: (response: http.IncomingMessage) => void,
    ) => {
      const request = base.request(requestOptions, callback);
      request.setTimeout(timeoutMs, () =>
        request.destroy(new Error(`storage did not answer within ${timeoutMs} ms`)),
      );
      return request;
    }) as typeof http.request,
  };
  const { credentials } = options;
  return new Client({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port || (secure ? 443 : 80)),
    useSSL: secure,
    region,
    pathStyle: (options.addressing ?? "path") === "path",
    transport,
    ...(agent ? { transportAgent: agent } : {}),
    ...(credentials.kind === "static"
      ? { accessKey: credentials.accessKey, secretKey: credentials.secretKey }
      : {
          accessKey: "",
          secretKey: "",
          // minio's types come from its CommonJS build, its code (and this class's base) from the
          // ES module one: the same class at run time, two declarations to the type checker.
          credentialsProvider: (credentials.kind === "provider"
            ? credentials.provider
            : new ChainCredentialProvider(
                credentials.source ??
                  credentialSource(credentials.env ?? process.env, {
                    region,
                    ...(options.stsEndpoint ? { stsEndpoint: options.stsEndpoint } : {}),
                  }),
                { ...(agent ? { agent } : {}), timeoutMs },
              )) as unknown as ClientOptions["credentialsProvider"],
        }),
  });
}

/** Agents by CA bundle: the operator opens a store per reconcile, and its sockets are reused. */
const agents = new Map<string, https.Agent>();

/** An agent trusting `ca` besides the system's roots (not instead: AWS STS stays trusted). */
export function trustingAgent(ca: string): https.Agent {
  let agent = agents.get(ca);
  if (!agent) {
    agent = new https.Agent({ keepAlive: true, ca: [...rootCertificates, ca] });
    agents.set(ca, agent);
  }
  return agent;
}
