// The job's control token (the runtime's control API acts only for requests that present it):
// a random bearer token in a Secret the StreamJob owns, mounted read-only into every pod of
// the job. Only the operator reads it otherwise; it never goes into a ConfigMap, a status, an
// Event or a log line.
import { randomBytes } from "node:crypto";
import type { V1Secret } from "@kubernetes/client-node";
import type { StreamJob } from "../api/types.ts";
import { CONTROL_TOKEN_KEY, controlTokenSecretName, jobLabels } from "./names.ts";
import { ownerReference } from "./run-objects.ts";

/** 256 random bits. */
export function newControlToken(): string {
  return randomBytes(32).toString("base64url");
}

export function buildControlTokenSecret(job: StreamJob, token: string): V1Secret {
  const name = job.metadata?.name ?? "";
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: controlTokenSecretName(job.metadata ?? {}),
      namespace: job.metadata?.namespace,
      labels: { ...jobLabels(name), "app.kubernetes.io/component": "control-token" },
      // Owned: deleted with the job by the garbage collector (the operator needs no delete).
      ownerReferences: [ownerReference(job)],
    },
    type: "weir.dev/control-token",
    // Never changed once written: running pods keep the token they started with.
    immutable: true,
    data: { [CONTROL_TOKEN_KEY]: Buffer.from(token).toString("base64") },
  };
}
