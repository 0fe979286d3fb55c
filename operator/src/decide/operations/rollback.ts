// A new run that cannot run goes back to the last stable spec: one whose objects the API
// server refuses, at once, or one not Ready within `readinessTimeout`. Its state comes from the
// checkpoints at the committed offsets (those of the savepoint just taken, unless the new run
// committed more). The failed spec is remembered by its hash and not tried again until the
// spec changes.
import { parseDuration } from "../../api/validate.ts";
import {
  type Draft,
  degraded,
  deletePods,
  emit,
  livePods,
  livePodsOf,
  lookAgainWithin,
  runSpecFrom,
  withHash,
} from "../draft.ts";
import { type RunSpec, upgradeHash } from "../run-spec.ts";
import type { Run, Target } from "../types.ts";
import { refusalText } from "./refusal.ts";

/** How often a starting run is looked at while its readiness timeout runs. */
const READINESS_CHECK_MS = 5_000;

/**
 * A spec that was rolled back runs as the last stable one, and says so, until it changes. When
 * it failed for what it changed besides the parallelism (an image, the job), a rescale
 * (kubectl scale, the autoscaler) does not try it again: the stable spec runs at the new
 * parallelism. When the rescale itself failed (a quota), another parallelism is tried.
 */
export function heldBackByRollback(draft: Draft, target: Target | undefined): Target | undefined {
  const rolledBack = draft.previous.rollback;
  const stable = draft.previous.lastStableSpec as RunSpec | undefined;
  if (typeof target !== "object" || !rolledBack || !stable) return target;
  // (A rollback recorded before upgradeHash existed is matched by its whole hash.)
  const upgradeFailed =
    rolledBack.upgradeHash !== undefined && rolledBack.upgradeHash !== upgradeHash(stable);
  const same = upgradeFailed
    ? upgradeHash(target.spec) === rolledBack.upgradeHash
    : target.hash === rolledBack.specHash;
  if (!same) return target;
  const change = upgradeFailed ? "anything but the parallelism" : "the spec";
  draft.problem = degraded(
    "RolledBack",
    `${rolledBack.reason}; rolled back to spec ${rolledBack.toSpecHash}. Change ${change} to try again.`,
  );
  return upgradeFailed
    ? withHash({ ...stable, parallelism: target.spec.parallelism })
    : { spec: stable, hash: rolledBack.toSpecHash ?? "" };
}

/** Rolls `active` back when it is the starting run of an operation and cannot run. */
export function rollBackIfFailed(draft: Draft, active: Run, creatingPods: boolean): void {
  const op = draft.operation;
  const stableHash = draft.previous.lastStableSpecHash;
  if (op?.step !== "starting" || op.kind === "rollback") return;
  if (!draft.previous.lastStableSpec || !stableHash || stableHash === active.specHash) return;
  const run = `run ${active.id} (spec ${active.specHash})`;
  if (active.refused) {
    rollBack(draft, active, stableHash, `${run}: ${refusalText(active.refused)}`);
    return;
  }
  const timeout = draft.job.spec.readinessTimeout ?? "2m";
  // The clock starts once the operator created the last pod it could (an operator that was
  // down meanwhile does not count against the run).
  if (creatingPods) return;
  const since = Math.max(
    Date.parse(active.startTime ?? ""),
    ...livePodsOf(draft, active).map((p) => p.createdAt ?? 0),
  );
  if (draft.now.getTime() - since <= parseDuration(timeout)) {
    lookAgainWithin(draft, READINESS_CHECK_MS);
    return;
  }
  rollBack(draft, active, stableHash, `${run} was not ready within ${timeout}`);
}

/** Replaces `active` by a run of the stable spec; `reason` is remembered with its hash. */
function rollBack(draft: Draft, active: Run, stableHash: string, reason: string): void {
  const now = draft.now.toISOString();
  draft.rollback = {
    specHash: active.specHash,
    upgradeHash: upgradeHash(runSpecFrom(active)),
    run: active.id,
    toSpecHash: stableHash,
    reason,
    time: now,
  };
  draft.operation = {
    kind: "rollback",
    mode: "last-state",
    step: "stopping",
    fromRun: active.id,
    toSpecHash: stableHash,
    startTime: now,
    attempt: 1,
  };
  draft.state = "RollingBack";
  draft.problem ??= degraded("RolledBack", `${reason}; rolling back to spec ${stableHash}`);
  emit(draft, "Warning", "RollingBack", `${reason}: rolling back to spec ${stableHash}`);
  deletePods(draft, livePods(draft), "rolling back");
}
