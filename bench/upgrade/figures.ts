// The upgrade benchmark's figures from what it recorded (pure): the outage a reader of the
// output sees, the exactly-once check of that output, and where the time of the upgrade went.
import type { StateOutput } from "./state-job.ts";

/** An output record as the benchmark's read_committed reader saw it, when it saw it (epoch ms). */
export interface SeenOutput {
  out: StateOutput;
  seenAt: number;
}

/**
 * What a user of the output sees of the upgrade, per task (the tasks resume one by one): the
 * gap from the task's last output record of the old run to its first of the new one at a
 * read_committed reader; and the longest any input record produced during the upgrade (from
 * `since`) waited until its output was seen.
 */
export function outage(
  seen: readonly SeenOutput[],
  taskOf: (out: StateOutput) => string,
  runs: { old: string; new: string },
  since: number,
) {
  const tasks = new Map<string, { lastOld?: number; firstNew?: number }>();
  let longest: { task: string; producedAt: number; seenAt: number } | undefined;
  for (const s of seen) {
    const task = tasks.get(taskOf(s.out)) ?? {};
    tasks.set(taskOf(s.out), task);
    if (s.out.run === runs.old) task.lastOld = Math.max(task.lastOld ?? 0, s.seenAt);
    if (s.out.run === runs.new) task.firstNew = Math.min(task.firstNew ?? Infinity, s.seenAt);
    if (s.out.t >= since && (!longest || s.seenAt - s.out.t > longest.seenAt - longest.producedAt))
      longest = { task: taskOf(s.out), producedAt: s.out.t, seenAt: s.seenAt };
  }
  const gaps = [...tasks].map(([task, { lastOld, firstNew }]) => {
    if (lastOld === undefined || firstNew === undefined)
      throw new Error(`task ${task}: no output of the ${lastOld ? "new" : "old"} run`);
    return { task, lastOld, firstNew, gapMs: firstNew - lastOld };
  });
  const worst = gaps.reduce((a, b) => (b.gapMs > a.gapMs ? b : a));
  if (!longest) throw new Error("no output of input produced during the upgrade");
  return { ...worst, gaps, longest, maxLatencyMs: longest.seenAt - longest.producedAt };
}

/**
 * Problems with the output, if any: every key's running counts must come out as 1..n, each
 * exactly once, across both runs (a lost record leaves a gap, a replayed one a repeat).
 */
export function countProblems(outputs: readonly StateOutput[]): string[] {
  const counts = new Map<string, number[]>();
  for (const out of outputs) {
    const list = counts.get(out.k) ?? [];
    list.push(out.n);
    counts.set(out.k, list);
  }
  const problems: string[] = [];
  for (const [key, list] of counts) {
    list.sort((a, b) => a - b);
    if (list.some((n, i) => n !== i + 1))
      problems.push(`${key}: counts ${list.slice(0, 10).join(",")}${list.length > 10 ? ",…" : ""}`);
  }
  return problems;
}

/** Moments of one upgrade (epoch ms); undefined where it was not seen. */
export interface Marks {
  /** The spec change was applied (kubectl patch returned). */
  changed: number;
  /** The operator asked for the savepoint (the StreamSavepoint's startTime). */
  operationStarted?: number;
  /** The last pod of the old run had taken its part of the savepoint (its log). */
  partsTaken?: number;
  /** The operator completed the savepoint (the StreamSavepoint's completionTime). */
  savepointCompleted?: number;
  /** The last pod of the old run was gone. */
  oldPodsGone?: number;
  /** The first pod of the new run was created. */
  newPodsCreated?: number;
  /** With a warm standby: the last pod of the new run waited warm (its log). */
  standbyWaiting?: number;
  /** The last process of the new run started (its log: time − startupSeconds). */
  processesStarted?: number;
  /** The last process of the new run was running (restored and reading). */
  processesRunning?: number;
  /** The last pod of the new run was Ready. */
  podsReady?: number;
  /** The StreamJob was Ready again. */
  jobReady?: number;
  /** Every task's output resumed: the last task's first record of the new run, at the reader. */
  outputResumed?: number;
}

/**
 * Consecutive steps of the upgrade, in seconds (undefined where a mark is missing). With a warm
 * standby the new pods start before the savepoint, and the old pods stop while the new ones
 * restore: the steps in the order they happened.
 */
export function phases(m: Marks): { what: string; seconds: number | undefined }[] {
  const span = (from: number | undefined, to: number | undefined) =>
    from === undefined || to === undefined ? undefined : (to - from) / 1000;
  const step = (what: string, from: number | undefined, to: number | undefined) => ({
    what,
    seconds: span(from, to),
  });
  const savepoint = (mark: string) => [
    step(
      `pods take the savepoint (asked → last part taken)${mark}`,
      m.operationStarted,
      m.partsTaken,
    ),
    step(
      "operator completes it (last part → savepoint completed)",
      m.partsTaken,
      m.savepointCompleted,
    ),
  ];
  const running = [
    step(
      "first commit (running → every task's first new output seen)",
      m.processesRunning,
      m.outputResumed,
    ),
    step("readiness (running → last pod Ready)", m.processesRunning, m.podsReady),
    step("operator sees it (last pod Ready → StreamJob Ready)", m.podsReady, m.jobReady),
  ];
  const started = step(
    "kubelet starts them (new pod → last process started)",
    m.newPodsCreated,
    m.processesStarted,
  );
  if (m.standbyWaiting !== undefined)
    return [
      step("operator reacts (change applied → first standby pod)", m.changed, m.newPodsCreated),
      started,
      step(
        "standby comes up (started → last one waiting warm)",
        m.processesStarted,
        m.standbyWaiting,
      ),
      step(
        "operator sees it (last one waiting → savepoint asked)",
        m.standbyWaiting,
        m.operationStarted,
      ),
      ...savepoint("  [downtime from here]"),
      step(
        "standby told, restores (savepoint completed → last process running)",
        m.savepointCompleted,
        m.processesRunning,
      ),
      ...running,
      step(
        "meanwhile: old pods stop (savepoint completed → last old pod gone)",
        m.savepointCompleted,
        m.oldPodsGone,
      ),
    ];
  return [
    step("operator reacts (change applied → operation started)", m.changed, m.operationStarted),
    ...savepoint(""),
    step(
      "old pods stop (savepoint completed → last old pod gone)",
      m.savepointCompleted,
      m.oldPodsGone,
    ),
    step("new pods created (last old pod gone → first new pod)", m.oldPodsGone, m.newPodsCreated),
    started,
    step(
      "process start-up and restore (started → running)",
      m.processesStarted,
      m.processesRunning,
    ),
    ...running,
  ];
}
