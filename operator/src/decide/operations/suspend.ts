// Suspended (`spec.state: suspended`): no pod runs. The suspend operation stays in status at
// step `suspended`, keeping where the next run starts from (its savepoint); resuming starts
// that run (start.ts, as an operation of kind `resume`).
import { type Draft, deletePods, emit, livePods } from "../draft.ts";

/** Stops every pod; once none is left the job is Suspended. */
export function rest(draft: Draft): void {
  deletePods(draft, livePods(draft), "the job is suspended");
  if (draft.observed.pods.length > 0) {
    draft.state = "Upgrading";
    return;
  }
  if (draft.state !== "Suspended") emit(draft, "Normal", "Suspended", "all pods stopped");
  draft.state = "Suspended";
  const op = draft.operation;
  if (op?.kind === "suspend" || op?.step === "suspended")
    draft.operation = { ...op, step: "suspended" };
}
