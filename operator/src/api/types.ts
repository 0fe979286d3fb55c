// The weir.dev/v1alpha1 objects as the operator handles them. The spec and status types are
// generated from schema.ts (types.generated.ts); fields with a default are not optional,
// because the API server fills them in (and validateStreamJob does for objects from a file).
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { streamJobResource, streamSavepointResource } from "./schema.ts";
import type {
  StreamJobSpec,
  StreamJobStatus,
  StreamSavepointSpec,
  StreamSavepointStatus,
} from "./types.generated.ts";

export { API_VERSION, GROUP, VERSION } from "./schema.ts";
export type * from "./types.generated.ts";

export const STREAMJOB_KIND = streamJobResource.kind;
export const STREAMJOB_PLURAL = streamJobResource.plural;
export const STREAMSAVEPOINT_KIND = streamSavepointResource.kind;
export const STREAMSAVEPOINT_PLURAL = streamSavepointResource.plural;

export interface StreamJob {
  apiVersion: "weir.dev/v1alpha1";
  kind: "StreamJob";
  metadata: V1ObjectMeta;
  spec: StreamJobSpec;
  status?: StreamJobStatus;
}

export interface StreamSavepoint {
  apiVersion: "weir.dev/v1alpha1";
  kind: "StreamSavepoint";
  metadata: V1ObjectMeta;
  spec: StreamSavepointSpec;
  status?: StreamSavepointStatus;
}

/** Lifecycle state of a StreamJob as the operator reports it. */
export type StreamJobState = NonNullable<StreamJobStatus["state"]>;
/** Why a savepoint was taken. */
export type SavepointTrigger = StreamSavepointSpec["trigger"];
/** Progress of a StreamSavepoint. */
export type SavepointState = NonNullable<StreamSavepointStatus["state"]>;
/** Kind of the multi-step operation in flight. */
export type OperationKind = NonNullable<NonNullable<StreamJobStatus["upgrade"]>["kind"]>;
