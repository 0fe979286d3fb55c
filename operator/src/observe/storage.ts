// The job's snapshot storage as the operator uses it: completing savepoints (writing their
// `_metadata.json` once every pod's part is in), checking one exists, deleting old ones. The
// client is built by the same function the runtime uses (storage-client.ts), with the same CA
// bundle, addressing and source of credentials as the job's pods:
// - credentialsSecret: the Secret's keys;
// - webIdentity: a token of the pods' service account for the STS audience (TokenRequest), so
//   the check proves the role the pods will assume, not one of the operator's own;
// - neither: the AWS default chain of the operator's environment (IRSA, Pod Identity, instance
//   role: the operator's own identity, which must be able to write the job's savepoints).
// Credentials and tokens are handed to the S3 client and never logged, put in status or in an
// Event.
import { ApiException, type CoreV1Api } from "@kubernetes/client-node";
import {
  ChainCredentialProvider,
  credentialSource,
  stsEndpointFor,
} from "../../../runtime/src/state/aws-credentials.ts";
import { SnapshotStore } from "../../../runtime/src/state/snapshot-store.ts";
import {
  type StorageCredentials,
  storageClient,
  trustingAgent,
} from "../../../runtime/src/state/storage-client.ts";
import type { SavepointStorage, StreamJob } from "../api/types.ts";

/** Storage cannot be used as the spec says; the message says why, for a person to act on. */
export class StorageUnusable extends Error {}

const TIMEOUT_MS = 10_000;
/** The TokenRequest API's shortest lifetime: the token lives only as long as one check. */
const CHECK_TOKEN_SECONDS = 600;

export async function openStore(job: StreamJob, core: CoreV1Api): Promise<SnapshotStore> {
  const storage = job.spec.savepoints?.storage;
  if (!storage) throw new StorageUnusable("spec.savepoints.storage is not set");
  const namespace = job.metadata.namespace ?? "";
  const ca = storage.caBundle ? await caBundle(storage.caBundle, namespace, core) : undefined;
  return new SnapshotStore({
    client: storageClient({
      endpoint: storage.endpoint,
      region: storage.region,
      ...(storage.addressing ? { addressing: storage.addressing } : {}),
      ...(ca ? { ca } : {}),
      credentials: await credentials(job, storage, ca, core),
      timeoutMs: TIMEOUT_MS,
    }),
    bucket: storage.bucket,
    prefix: storage.prefix,
    job: { namespace, name: job.metadata.name ?? "" },
  });
}

/**
 * Providers of assumed or chained credentials, one per job's settings: a reconcile opens the
 * store anew, and must not ask STS (and the TokenRequest API) each time while the credentials
 * it got last are good. Bounded: the oldest goes first.
 */
const providers = new Map<string, ChainCredentialProvider>();
const MAX_PROVIDERS = 1024;

function cachedProvider(key: string, make: () => ChainCredentialProvider): ChainCredentialProvider {
  let provider = providers.get(key);
  if (!provider) {
    provider = make();
    providers.set(key, provider);
    if (providers.size > MAX_PROVIDERS) providers.delete(providers.keys().next().value ?? "");
  }
  return provider;
}

async function credentials(
  job: StreamJob,
  storage: SavepointStorage,
  ca: string | undefined,
  core: CoreV1Api,
): Promise<StorageCredentials> {
  const namespace = job.metadata.namespace ?? "";
  if (storage.credentialsSecret) {
    const data = await readKeys(
      "Secret",
      storage.credentialsSecret,
      namespace,
      core,
      "credentials",
    );
    return {
      kind: "static",
      accessKey: requiredKey(data, "Secret", storage.credentialsSecret, "accessKey"),
      secretKey: requiredKey(data, "Secret", storage.credentialsSecret, "secretKey"),
    };
  }
  const sts = {
    region: storage.region,
    ...(storage.stsEndpoint ? { stsEndpoint: storage.stsEndpoint } : {}),
  };
  const transport = {
    ...(ca && storage.endpoint.startsWith("https:") ? { agent: trustingAgent(ca) } : {}),
    timeoutMs: TIMEOUT_MS,
  };
  const webIdentity = storage.webIdentity;
  const serviceAccount = job.spec.podTemplate?.spec?.serviceAccountName ?? "default";
  const key = JSON.stringify([namespace, serviceAccount, webIdentity, sts, ca]);
  const provider = cachedProvider(key, () =>
    webIdentity
      ? new ChainCredentialProvider(
          {
            kind: "web-identity",
            token: {
              read: () =>
                serviceAccountToken(serviceAccount, namespace, webIdentity.audience, core),
            },
            roleArn: webIdentity.roleArn,
            sessionName: `weir-operator-${job.metadata.name ?? ""}`.slice(0, 64),
            stsEndpoint: stsEndpointFor(process.env, sts),
          },
          transport,
        )
      : // Neither named: the operator's own environment (its IRSA role, instance profile, ...).
        new ChainCredentialProvider(credentialSource(process.env, sts), transport),
  );
  return { kind: "provider", provider };
}

async function serviceAccountToken(
  name: string,
  namespace: string,
  audience: string,
  core: CoreV1Api,
): Promise<string> {
  try {
    const answer = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [audience], expirationSeconds: CHECK_TOKEN_SECONDS } },
    });
    return answer.status?.token ?? "";
  } catch (error) {
    if (error instanceof ApiException && error.code === 404)
      throw new StorageUnusable(
        `the service account ${name} (the pods' identity for webIdentity) does not exist in ${namespace}`,
      );
    throw error;
  }
}

async function caBundle(
  ref: NonNullable<SavepointStorage["caBundle"]>,
  namespace: string,
  core: CoreV1Api,
): Promise<string> {
  const kind = ref.secretKeyRef ? "Secret" : "ConfigMap";
  const { name, key = "ca.crt" } = ref.secretKeyRef ?? ref.configMapKeyRef ?? { name: "" };
  const pem = requiredKey(
    await readKeys(kind, name, namespace, core, "CA bundle"),
    kind,
    name,
    key,
  );
  if (!pem.includes("-----BEGIN CERTIFICATE-----"))
    throw new StorageUnusable(`the ${kind} ${name} key ${key} holds no PEM certificate`);
  return pem;
}

/** A Secret's or ConfigMap's keys, decoded; `role` says what the job names it for. */
async function readKeys(
  kind: "Secret" | "ConfigMap",
  name: string,
  namespace: string,
  core: CoreV1Api,
  role: string,
): Promise<Record<string, string>> {
  try {
    if (kind === "ConfigMap")
      return (await core.readNamespacedConfigMap({ name, namespace })).data ?? {};
    const data = (await core.readNamespacedSecret({ name, namespace })).data ?? {};
    return Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
    );
  } catch (error) {
    if (error instanceof ApiException && error.code === 404)
      throw new StorageUnusable(`the ${role} ${kind} ${name} does not exist in ${namespace}`);
    throw error;
  }
}

function requiredKey(
  data: Record<string, string>,
  kind: string,
  name: string,
  key: string,
): string {
  const value = data[key];
  if (!value) throw new StorageUnusable(`the ${kind} ${name} has no key ${key}`);
  return value;
}

/** Node's codes for a server certificate it could not verify. */
const UNTRUSTED_CERTIFICATE = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** The error and its causes (minio wraps a credential provider's failure). */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = error; e !== undefined && chain.length < 5; e = (e as { cause?: unknown }).cause)
    chain.push(e);
  return chain;
}

/** Where the job's credentials come from, in words (never the credentials). */
function credentialsOf(storage: SavepointStorage | undefined): string {
  if (storage?.credentialsSecret) return `the credentials of Secret ${storage.credentialsSecret}`;
  if (storage?.webIdentity) return `the credentials of role ${storage.webIdentity.roleArn}`;
  return "the credentials of the AWS default chain (no credentialsSecret is named)";
}

/**
 * What an S3 failure means for the person reading the job's status: which of the spec's
 * settings to check. The message never carries the credentials themselves.
 */
export function describeStorageError(error: unknown, job: StreamJob): string {
  const storage = job.spec.savepoints?.storage;
  const all = causes(error);
  const unusable = all.find((e) => e instanceof StorageUnusable);
  if (unusable) return (unusable as StorageUnusable).message;
  const codes = all.map((e) => (e as { code?: string }).code);
  const tls = codes.find((c) => c !== undefined && UNTRUSTED_CERTIFICATE.has(c));
  if (tls) {
    const reason = all.find((e) => (e as { code?: string }).code === tls) as Error;
    return `the storage at ${storage?.endpoint} presented a TLS certificate that is not trusted (${tls}: ${reason.message}): ${storage?.caBundle ? "spec.savepoints.storage.caBundle does not hold the CA that signed it" : "set spec.savepoints.storage.caBundle to the CA that signed it"}`;
  }
  const code = codes.find((c) => c !== undefined);
  switch (code) {
    case "NoSuchBucket":
      return `the bucket ${storage?.bucket} does not exist at ${storage?.endpoint}`;
    case "InvalidAccessKeyId":
    case "SignatureDoesNotMatch":
    case "AccessDenied":
    case "InvalidTokenId":
    case "ExpiredToken":
      return `the storage at ${storage?.endpoint} refused ${credentialsOf(storage)} (${code})`;
    case "WebIdentityRefused":
      return `${(all.find((e) => (e as { code?: string }).code === code) as Error).message} (spec.savepoints.storage.webIdentity)`;
    default: {
      const last = all.at(-1);
      return `the storage at ${storage?.endpoint} failed: ${last instanceof Error ? last.message.split("\n")[0] : String(last)}`;
    }
  }
}
