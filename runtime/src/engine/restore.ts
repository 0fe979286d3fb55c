// Where a task starts: a pure decision from what storage and Kafka say (docs: DESIGN.md,
// "Exactly-once to Kafka"). The committed offset of the task's group is the truth about what
// was emitted; a snapshot is usable only when it was taken at exactly that offset.
import {
  type SnapshotMetadata,
  type TaskEntry,
  type TaskRef,
  topicPartition,
} from "../state/metadata.ts";

export type RestorePlan =
  /** Nothing committed and nothing to restore: start empty at the source's start position. */
  | { kind: "fresh" }
  /** Start from `offset` with the state in `entry` (absent when the task had no state). */
  | { kind: "snapshot"; snapshot: SnapshotMetadata; entry: TaskEntry | undefined; offset: number }
  /** Committed output exists but no state matches it: only a stateless task may go on. */
  | { kind: "offset-only"; offset: number };

export class RestoreRefused extends Error {}

/** What `WEIR_RESTORE_FROM=none` asks for: empty state, from the committed offsets on. */
export const EMPTY_STATE = "empty";

/**
 * A task's checkpoint is named by its position, the run that took it and its number: a run
 * can tell its own checkpoints from those of the runs before, and the number (committed with
 * the transaction, see TaskReader.offsetsAt) tells apart two checkpoints at one position, the
 * second taken after a timer or window emitted without new input.
 */
export function checkpointId(
  task: TaskRef,
  offset: bigint | number,
  run = "",
  checkpoint?: bigint | number,
): string {
  const number = checkpoint === undefined ? "" : `.${checkpoint}`;
  return `${checkpointIdPrefix(task)}${offset}${run ? `-${run}` : ""}${number}`;
}

/** The number in a checkpoint's id (see checkpointId); undefined for ids without one. */
function checkpointNumberOf(id: string): number | undefined {
  const match = /\.(\d+)$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

/** Narrows listings to (about) one task's checkpoints; the metadata's task decides exactly. */
export function checkpointIdPrefix(task: TaskRef): string {
  return `${task.topic}-${task.partition}-`;
}

function entryOf(snapshot: SnapshotMetadata, task: TaskRef): TaskEntry | undefined {
  return snapshot.tasks.find(
    (t) => t.task.topic === task.topic && t.task.partition === task.partition,
  );
}

function offsetIn(snapshot: SnapshotMetadata, task: TaskRef): number | undefined {
  const entry = entryOf(snapshot, task);
  return entry?.offsets[topicPartition(task.topic, task.partition)];
}

/**
 * @param requested a savepoint the operator asked to start from (`WEIR_RESTORE_FROM`), or
 *   EMPTY_STATE (start without state at the committed offsets), if any
 * @param committed the next offset committed by the task's last transaction, if any
 * @param checkpoints the job's complete checkpoints, oldest first
 * @param stateful whether the job keeps state (a stateless job may resume from the offset alone)
 * @param run the run this task belongs to (`WEIR_RUN`): a task restarted within its run
 *   continues from its own checkpoint, whatever the run started from
 * @param committedCheckpoint the number of the checkpoint the last transaction committed with
 *   (absent for transactions of versions before checkpoint numbers: the offset alone decides)
 */
export function planRestore(
  task: TaskRef,
  requested: SnapshotMetadata | typeof EMPTY_STATE | undefined,
  committed: number | undefined,
  checkpoints: readonly SnapshotMetadata[],
  stateful: boolean,
  run = "",
  committedCheckpoint?: number,
): RestorePlan {
  // The state of the committed transaction: at its offset, and with its number when it has one.
  const isCommitted = (c: SnapshotMetadata) =>
    offsetIn(c, task) === committed &&
    (committedCheckpoint === undefined || checkpointNumberOf(c.id) === committedCheckpoint);
  const own =
    run && committed !== undefined
      ? [...checkpoints]
          .reverse()
          .find(
            (c) =>
              c.id === checkpointId(task, committed, run, committedCheckpoint) && isCommitted(c),
          )
      : undefined;
  const fromOwn = (checkpoint: SnapshotMetadata): RestorePlan => ({
    kind: "snapshot",
    snapshot: checkpoint,
    entry: entryOf(checkpoint, task),
    offset: committed ?? 0,
  });
  if (requested === EMPTY_STATE) {
    if (own) return fromOwn(own);
    return committed === undefined ? { kind: "fresh" } : { kind: "offset-only", offset: committed };
  }
  if (requested) {
    // This run started from the savepoint and has committed past it since: a restart goes on
    // from the run's own checkpoint (the savepoint is where the run began, not where it is).
    if (own && offsetIn(requested, task) !== committed) return fromOwn(own);
    // A savepoint is taken by stopping the job: its offsets are where the output stopped,
    // unless the task never consumed anything (then it starts where the savepoint says, or fresh).
    const offset = offsetIn(requested, task);
    if (offset === undefined) {
      return committed === undefined
        ? { kind: "fresh" }
        : { kind: "offset-only", offset: committed };
    }
    if (committed !== undefined && committed !== offset) {
      throw new RestoreRefused(
        `savepoint ${requested.id} has ${task.topic}-${task.partition} at offset ${offset}, but output up to offset ${committed} was already committed after it: restoring it would duplicate or lose records`,
      );
    }
    return { kind: "snapshot", snapshot: requested, entry: entryOf(requested, task), offset };
  }
  if (committed === undefined) return { kind: "fresh" };
  for (const checkpoint of [...checkpoints].reverse()) {
    if (isCommitted(checkpoint)) {
      return {
        kind: "snapshot",
        snapshot: checkpoint,
        entry: entryOf(checkpoint, task),
        offset: committed,
      };
    }
  }
  if (!stateful) return { kind: "offset-only", offset: committed };
  throw new RestoreRefused(
    `no checkpoint of ${task.topic}-${task.partition} matches its committed offset ${committed}: the state for the records already emitted is gone`,
  );
}
