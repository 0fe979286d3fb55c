// Objects of a run that the API server refuses for what they are (invalid labels or quantities,
// PodSecurity, quota): the refusal is kept on the run in the API server's own words, with the
// StreamJob field it came from, and nothing of that run is created again before its back-off
// is over (a quota may be raised). A new run that is refused rolls back (rollback.ts).
import { jobFieldOf } from "../../build/run-objects.ts";
import {
  type Draft,
  lookAgainWithin,
  retryDelayMs,
  runRef,
  runTargetOf,
  truncate,
} from "../draft.ts";
import type { Refusal, Run } from "../types.ts";

/** What act saw refused in the last actions, kept on the run it belongs to. */
export function recordRefusal(draft: Draft): void {
  const { run } = draft;
  const refusal = draft.observed.refusal;
  if (!refusal || !run || refusal.run !== run.id) return;
  const attempt = (run.refused?.attempt ?? 0) + 1;
  const ref = runRef(draft.job, run, runTargetOf(run));
  const field = refusal.field ? jobFieldOf(ref, refusal.kind, refusal.field) : undefined;
  draft.run = {
    ...run,
    refused: {
      object: `${refusal.kind} ${refusal.name}`,
      code: refusal.code,
      ...(field ? { field } : {}),
      message: truncate(refusal.message, 600),
      time: draft.now.toISOString(),
      attempt,
      retryTime: new Date(draft.now.getTime() + retryDelayMs(attempt)).toISOString(),
    },
  };
}

/** Whether `run`'s objects were refused and it is not yet time to ask again. */
export function waitingOnRefusal(draft: Draft, run: Run): boolean {
  const retry = Date.parse(run.refused?.retryTime ?? "");
  if (!(retry > draft.now.getTime())) return false;
  lookAgainWithin(draft, retry - draft.now.getTime());
  return true;
}

/** Every object of the run exists now: the refusal is over. */
export function withoutRefusal(run: Run): Run {
  const { refused: _, ...rest } = run;
  return rest;
}

/** A refusal as a person reads it: the field, the object and the API server's words. */
export function refusalText(refused: Refusal): string {
  const field = refused.field ? `${refused.field}: ` : "";
  return `${field}the API server refused ${refused.object} (${refused.code}): ${refused.message}`;
}
