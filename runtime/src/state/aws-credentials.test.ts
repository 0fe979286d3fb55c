import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  ChainCredentialProvider,
  credentialSource,
  parseStsResponse,
  stsEndpointFor,
} from "./aws-credentials.ts";

const options = { region: "eu-west-1" };
const everything = {
  AWS_ACCESS_KEY_ID: "AKID",
  AWS_SECRET_ACCESS_KEY: "SECRET",
  AWS_WEB_IDENTITY_TOKEN_FILE: "/var/run/token",
  AWS_ROLE_ARN: "arn:aws:iam::1:role/r",
  AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://169.254.170.23/v1/credentials",
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "/var/run/pod-identity-token",
};

test("the chain's order: environment keys, web identity, container credentials, instance metadata", () => {
  const kinds: string[] = [];
  const env: Record<string, string> = { ...everything };
  kinds.push(credentialSource(env, options).kind);
  delete env.AWS_SECRET_ACCESS_KEY; // half a key pair is no key pair
  kinds.push(credentialSource(env, options).kind);
  delete env.AWS_ROLE_ARN; // a token file without a role is not web identity
  kinds.push(credentialSource(env, options).kind);
  delete env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  kinds.push(credentialSource(env, options).kind);
  assert.deepEqual(kinds, ["environment", "web-identity", "container", "instance-metadata"]);
});

test("each source takes what its environment says", () => {
  assert.deepEqual(credentialSource({ ...everything, AWS_SESSION_TOKEN: "T" }, options), {
    kind: "environment",
    accessKeyId: "AKID",
    secretAccessKey: "SECRET",
    sessionToken: "T",
  });
  assert.deepEqual(
    credentialSource(
      { AWS_WEB_IDENTITY_TOKEN_FILE: "/t", AWS_ROLE_ARN: "arn", AWS_ROLE_SESSION_NAME: "pod-0" },
      options,
    ),
    {
      kind: "web-identity",
      token: { file: "/t" },
      roleArn: "arn",
      sessionName: "pod-0",
      stsEndpoint: "https://sts.eu-west-1.amazonaws.com",
    },
  );
  // EKS Pod Identity: the full URI and a token file (re-read at each refresh).
  assert.deepEqual(
    credentialSource(
      {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://169.254.170.23/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "/p",
      },
      options,
    ),
    {
      kind: "container",
      url: "http://169.254.170.23/v1/credentials",
      authorization: { file: "/p" },
    },
  );
  // ECS: a path relative to its agent's address.
  assert.deepEqual(credentialSource({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/c" }, options), {
    kind: "container",
    url: "http://169.254.170.2/v2/c",
  });
  assert.deepEqual(credentialSource({}, options), {
    kind: "instance-metadata",
    endpoint: "http://169.254.169.254",
  });
  assert.throws(
    () => credentialSource({ AWS_EC2_METADATA_DISABLED: "true" }, options),
    /AWS credential chain found none/,
  );
});

test("STS endpoint: the spec's, else AWS_ENDPOINT_URL_STS, else the region's AWS STS", () => {
  const env = { AWS_ENDPOINT_URL_STS: "https://sts.internal" };
  assert.equal(
    stsEndpointFor(env, { ...options, stsEndpoint: "https://minio:9443" }),
    "https://minio:9443",
  );
  assert.equal(stsEndpointFor(env, options), "https://sts.internal");
  assert.equal(
    stsEndpointFor({ AWS_REGION: "us-west-2" }, options),
    "https://sts.us-west-2.amazonaws.com",
  );
  assert.equal(stsEndpointFor({}, options), "https://sts.eu-west-1.amazonaws.com");
});

test("an STS answer: its credentials, or its refusal in its own words", () => {
  const ok = `<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>
    <AccessKeyId>AK</AccessKeyId><SecretAccessKey>SK</SecretAccessKey><SessionToken>ST</SessionToken>
    <Expiration>2026-12-02T06:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>
    </AssumeRoleWithWebIdentityResponse>`;
  assert.deepEqual(parseStsResponse(200, ok, "https://sts"), {
    accessKey: "AK",
    secretKey: "SK",
    sessionToken: "ST",
    expiresAt: Date.parse("2026-12-02T06:00:00Z"),
  });
  const refused = `<ErrorResponse><Error><Code>InvalidParameterValue</Code><Message>Role arn:x does not exist</Message></Error></ErrorResponse>`;
  assert.throws(
    () => parseStsResponse(400, refused, "https://sts"),
    /STS at https:\/\/sts refused AssumeRoleWithWebIdentity: InvalidParameterValue: Role arn:x does not exist/,
  );
});

/** A loopback server answering as `handle` says, recording each request. */
async function server(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; requests: IncomingMessage[]; close: () => void }> {
  const requests: IncomingMessage[] = [];
  const s = createServer((req, res) => {
    requests.push(req);
    handle(req, res);
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, requests, close: () => s.close() };
}

test("container credentials (EKS Pod Identity): the token file is sent, and credentials are cached until near expiry", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-creds-"));
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "pod-identity-token-1\n");
  let expiresIn = 3_600_000;
  const agent = await server((_req, res) => {
    res.end(
      JSON.stringify({
        AccessKeyId: "AK",
        SecretAccessKey: "SK",
        Token: "ST",
        Expiration: new Date(Date.now() + expiresIn).toISOString(),
      }),
    );
  });
  try {
    const provider = new ChainCredentialProvider(
      { kind: "container", url: `${agent.url}/v1/credentials`, authorization: { file: tokenFile } },
      { timeoutMs: 2_000 },
    );
    const first = await provider.getCredentials();
    assert.deepEqual([first.accessKey, first.secretKey, first.sessionToken], ["AK", "SK", "ST"]);
    await provider.getCredentials();
    assert.equal(agent.requests.length, 1, "cached while far from expiry");
    assert.equal(agent.requests[0]?.headers.authorization, "pod-identity-token-1");
    // Credentials about to expire are fetched again, with the token as the kubelet rotated it.
    expiresIn = 60_000;
    writeFileSync(tokenFile, "pod-identity-token-2\n");
    const provider2 = new ChainCredentialProvider(
      { kind: "container", url: `${agent.url}/v1/credentials`, authorization: { file: tokenFile } },
      { timeoutMs: 2_000 },
    );
    await provider2.getCredentials();
    await provider2.getCredentials();
    assert.equal(agent.requests.length, 3, "expiring within 5 min: fetched each time");
    assert.equal(agent.requests[2]?.headers.authorization, "pod-identity-token-2");
  } finally {
    agent.close();
  }
});

test("instance metadata: IMDSv2's session token on every request, then the instance role's credentials", async () => {
  const imds = await server((req, res) => {
    if (req.method === "PUT" && req.url === "/latest/api/token") {
      res.end("imds-session");
      return;
    }
    if (req.headers["x-aws-ec2-metadata-token"] !== "imds-session") {
      res.statusCode = 401;
      res.end();
      return;
    }
    if (req.url === "/latest/meta-data/iam/security-credentials/") res.end("node-role\n");
    else if (req.url === "/latest/meta-data/iam/security-credentials/node-role")
      res.end(
        JSON.stringify({ Code: "Success", AccessKeyId: "AK", SecretAccessKey: "SK", Token: "ST" }),
      );
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  try {
    const provider = new ChainCredentialProvider(
      credentialSource({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url }, options),
      {
        timeoutMs: 2_000,
      },
    );
    const credentials = await provider.getCredentials();
    assert.deepEqual([credentials.accessKey, credentials.sessionToken], ["AK", "ST"]);
    assert.deepEqual(
      imds.requests.map((r) => `${r.method} ${r.url}`),
      [
        "PUT /latest/api/token",
        "GET /latest/meta-data/iam/security-credentials/",
        "GET /latest/meta-data/iam/security-credentials/node-role",
      ],
    );
  } finally {
    imds.close();
  }
});
