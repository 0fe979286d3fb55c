// The job's snapshot storage as the operator uses it: completing savepoints (writing their
// `_metadata.json` once every pod's part is in), checking one exists, deleting old ones. The
// credentials come from the Secret the spec names; they are handed to the S3 client and never
// logged, put in status or in an Event.
import { ApiException, type CoreV1Api } from "@kubernetes/client-node";
import { SnapshotStore } from "../../../runtime/src/state/snapshot-store.ts";
import { storageClient } from "../../../runtime/src/state/storage-client.ts";
import type { StreamJob } from "../api/types.ts";

/** Storage cannot be used as the spec says; the message says why, for a person to act on. */
export class StorageUnusable extends Error {}

const TIMEOUT_MS = 10_000;

export async function openStore(job: StreamJob, core: CoreV1Api): Promise<SnapshotStore> {
  const storage = job.spec.savepoints?.storage;
  if (!storage) throw new StorageUnusable("spec.savepoints.storage is not set");
  const namespace = job.metadata.namespace ?? "";
  let data: Record<string, string> | undefined;
  try {
    data = (await core.readNamespacedSecret({ name: storage.credentialsSecret, namespace })).data;
  } catch (error) {
    if (error instanceof ApiException && error.code === 404)
      throw new StorageUnusable(
        `the credentials Secret ${storage.credentialsSecret} does not exist in ${namespace}`,
      );
    throw error;
  }
  const key = (name: string) => {
    const value = data?.[name];
    if (!value)
      throw new StorageUnusable(`the Secret ${storage.credentialsSecret} has no key ${name}`);
    return Buffer.from(value, "base64").toString("utf8");
  };
  return new SnapshotStore({
    client: storageClient({
      endpoint: storage.endpoint,
      accessKey: key("accessKey"),
      secretKey: key("secretKey"),
      region: storage.region,
      timeoutMs: TIMEOUT_MS,
    }),
    bucket: storage.bucket,
    prefix: storage.prefix,
    job: { namespace, name: job.metadata.name ?? "" },
  });
}

/**
 * What an S3 failure means for the person reading the job's status: which of the spec's
 * settings to check. The message never carries the credentials themselves.
 */
export function describeStorageError(error: unknown, job: StreamJob): string {
  const storage = job.spec.savepoints?.storage;
  const code = (error as { code?: string }).code;
  if (error instanceof StorageUnusable) return error.message;
  switch (code) {
    case "NoSuchBucket":
      return `the bucket ${storage?.bucket} does not exist at ${storage?.endpoint}`;
    case "InvalidAccessKeyId":
    case "SignatureDoesNotMatch":
    case "AccessDenied":
      return `the storage at ${storage?.endpoint} refused the credentials of Secret ${storage?.credentialsSecret} (${code})`;
    default:
      return `the storage at ${storage?.endpoint} failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`;
  }
}
