// What a run is made of, and how a change of the StreamJob's spec relates to the run in place.
// A run's pods are built from its RunSpec alone, so a run keeps going unchanged (and can be
// rebuilt: a deleted pod comes back as it was) whatever later happens to the spec.
import { createHash } from "node:crypto";
import type { StreamJob, StreamJobSpec } from "../api/types.ts";

/** The spec fields that shape the pods of a run; anything else changes no pod. */
export interface RunSpec {
  image: StreamJobSpec["image"];
  imagePullPolicy?: StreamJobSpec["imagePullPolicy"];
  job: StreamJobSpec["job"];
  kafka: StreamJobSpec["kafka"];
  parallelism: number;
  checkpoints?: StreamJobSpec["checkpoints"];
  storage?: NonNullable<StreamJobSpec["savepoints"]>["storage"];
  allowNonRestoredState?: boolean;
  failures?: StreamJobSpec["failures"];
  deadLetterTopic?: string;
  resources?: StreamJobSpec["resources"];
  podTemplate?: StreamJobSpec["podTemplate"];
  restartNonce?: number;
}

/**
 * The parallelism the job should run at: while the autoscaler owns parallelism (enabled and not
 * a dry run) its recommendation — before the first, spec.parallelism — within its limits;
 * otherwise `spec.parallelism` (which the scale subresource writes). One owner at a time.
 */
export function desiredParallelism(job: StreamJob): number {
  const spec = job.spec;
  const autoscaler = spec.autoscaler;
  if (autoscaler?.enabled && !autoscaler.dryRun) {
    const wanted = job.status?.autoscaler?.recommendedParallelism ?? spec.parallelism ?? 1;
    const min = autoscaler.minParallelism ?? 1;
    const max = autoscaler.maxParallelism ?? Number.POSITIVE_INFINITY;
    return Math.min(max, Math.max(min, wanted));
  }
  return spec.parallelism ?? 1;
}

export function runSpecOf(job: StreamJob): RunSpec {
  const spec = job.spec;
  return dropUndefined({
    image: spec.image,
    imagePullPolicy: spec.imagePullPolicy,
    job: spec.job,
    kafka: spec.kafka,
    parallelism: desiredParallelism(job),
    checkpoints: spec.checkpoints,
    storage: spec.savepoints?.storage,
    allowNonRestoredState: spec.allowNonRestoredState,
    failures: spec.failures,
    deadLetterTopic: spec.deadLetterTopic,
    resources: spec.resources,
    podTemplate: spec.podTemplate,
    restartNonce: spec.restartNonce,
  });
}

/** A short, stable hash of a run spec: key order and absent fields do not change it. */
export function specHash(spec: RunSpec): string {
  return createHash("sha256").update(canonicalJson(spec)).digest("hex").slice(0, 10);
}

/** The hash of everything but the parallelism: what an upgrade changes and a rescale does not. */
export function upgradeHash(spec: RunSpec): string {
  const { parallelism: _, ...rest } = spec;
  return specHash(rest as RunSpec);
}

/**
 * How a new run spec differs from the running one (recorded in the Event):
 * - `rescale`: only the parallelism changed;
 * - `restart`: only `restartNonce` changed;
 * - `upgrade`: anything else a pod is built from (image, job, configuration, resources, …);
 * - `none`: nothing that a pod carries.
 */
export type ChangeKind = "none" | "rescale" | "restart" | "upgrade";

export function classifyChange(from: RunSpec, to: RunSpec): ChangeKind {
  const { parallelism: fromP, restartNonce: fromNonce, ...fromRest } = from;
  const { parallelism: toP, restartNonce: toNonce, ...toRest } = to;
  if (canonicalJson(fromRest) !== canonicalJson(toRest)) return "upgrade";
  if (fromNonce !== toNonce) return "restart";
  if (fromP !== toP) return "rescale";
  return "none";
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
