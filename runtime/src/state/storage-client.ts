// The S3 client of a runtime process. The `minio` package has no request timeout: against a
// store that accepts connections but never answers (a hung or SIGSTOPped server) a call would
// wait forever, and with it the checkpoint and the task's processing. Every request here is
// destroyed after `timeoutMs` without a byte moving, so the call fails and is retried later.
import http from "node:http";
import https from "node:https";
import { Client } from "minio";

export interface StorageClientOptions {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region?: string;
  /** Longest silence on a request's connection before it fails. Default 10 s. */
  timeoutMs?: number;
}

export function storageClient(options: StorageClientOptions): Client {
  const endpoint = new URL(options.endpoint);
  const secure = endpoint.protocol === "https:";
  const timeoutMs = options.timeoutMs ?? 10_000;
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
  return new Client({
    endPoint: endpoint.hostname,
    port: Number(endpoint.port || (secure ? 443 : 80)),
    useSSL: secure,
    accessKey: options.accessKey,
    secretKey: options.secretKey,
    region: options.region ?? "us-east-1",
    transport,
  });
}
