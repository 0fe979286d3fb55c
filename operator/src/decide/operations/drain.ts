// A node being drained (cordoned) that runs pods of the job: the run moves off it through the
// operator, as any other replacement of the run (replace.ts): a stop-with-savepoint of every
// pod, then the next run of the same spec, whose pods the scheduler keeps off cordoned nodes.
// The job's PodDisruptionBudget (build/disruption-budget.ts) refuses the drain's evictions
// meanwhile, so no subtask stops behind the operator's back; once the old run's pods are gone
// the drain finds nothing left to evict. A whole run moves, not just the pods on that node:
// a run's pods restore from one savepoint together, and moving them all costs the same
// downtime as moving one (they stop and start in parallel). With no node to move to (every
// ready node cordoned) the run stays where it is, said in a Warning: its budget holds the drain
// until a node can take the pods, instead of the job stopping for pods that could not start.
import { type Draft, emit, livePodsOf } from "../draft.ts";
import type { Run, RunTarget } from "../types.ts";
import { replace } from "./replace.ts";
import { keepRunWhole } from "./start.ts";

/**
 * Whether the run in place must make way for a drain: a drain of it under way, or pods of it on
 * a node being drained while no other operation is.
 */
export function drainsRun(draft: Draft, active: Run): boolean {
  const op = draft.operation;
  if (op) return op.kind === "drain" && op.fromRun === active.id && op.step !== "starting";
  return livePodsOf(draft, active).some((p) => p.drainingNode);
}

/** Moves the run on towards the next run of its spec, saying which pods start it. */
export function drain(draft: Draft, active: Run, target: RunTarget): void {
  if (!draft.operation) {
    const where = livePodsOf(draft, active)
      .filter((p) => p.drainingNode)
      .map((p) => `${p.name} on ${p.drainingNode}`);
    if (draft.observed.nodesToMoveTo === 0) {
      emit(
        draft,
        "Warning",
        "DrainWaits",
        `run ${active.id} stays on nodes being drained (${where.join(", ")}): no ready node takes new pods; it moves once one does, and its PodDisruptionBudget holds the drain meanwhile`,
      );
      keepRunWhole(draft, active, target);
      return;
    }
    emit(
      draft,
      "Normal",
      "NodeDraining",
      `run ${active.id} moves off nodes being drained (${where.join(", ")}) through the next run`,
    );
  }
  replace(draft, active, target, true);
}
