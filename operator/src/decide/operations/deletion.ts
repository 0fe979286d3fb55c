// Deletion. The finalizer (`weir.dev/cleanup`) is added before anything is created, so a
// deleted StreamJob waits for its pods (after a savepoint when `savepoints.onDelete`, see
// replace.ts): the pods go first, then the run ConfigMaps, then the finalizer.
import { FINALIZER } from "../../build/names.ts";
import { type Draft, deletePods, livePods } from "../draft.ts";

export function ensureFinalizer(draft: Draft): void {
  const { metadata } = draft.job;
  if (!metadata.deletionTimestamp && !metadata.finalizers?.includes(FINALIZER))
    draft.actions.push({ kind: "addFinalizer" });
}

/** No run is left to save: the pods go, and once none is left the rest. */
export function finishDeletion(draft: Draft): void {
  deletePods(draft, livePods(draft), "the StreamJob is being deleted");
  draft.state = "Deleting";
  if (draft.observed.pods.length === 0)
    draft.actions.push({ kind: "deleteConfigMaps" }, { kind: "removeFinalizer" });
}
