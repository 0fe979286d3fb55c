// What the demo does, as data and pure functions: its names, the StreamJob it applies (the
// word-count sample with autoscaling), the load phases and when each has made its point, and
// the words of the summary.
import { parseAllDocuments } from "yaml";
import type { StreamJobStatus } from "../../operator/src/api/types.generated.ts";
import { clock } from "./plot.ts";

export const DEMO = {
  release: "weir-demo",
  /** The operator and the job share it; the operator watches only it. */
  namespace: "weir-demo",
  job: "word-count",
  /** Prefix of the demo's topics (a run's own names end in its id). */
  topicPrefix: "weir-demo",
  /** Also the highest parallelism: one pod per partition at most. */
  partitions: 3,
  image: "weir/runtime:0.1.0",
  /** The upgrade changes the tag (the local node runs this checkout for every tag). */
  upgradeImage: "weir/runtime:0.2.0",
  /** Each line waits this long in the job (scripts/demo/job.ts): ~450 lines/s per pod. */
  workMs: 2,
  /** Seconds between two observations (a progress line every second one). */
  sampleSeconds: 2.5,
} as const;

/** What ends a phase: the point it is there to make. */
export type Goal = "running" | "upgraded" | "scaled-up" | "scaled-down";

export interface Phase {
  name: string;
  /** Lines per second the load generator produces. */
  rate: number;
  /** Change the image at the start of the phase. */
  upgrade?: boolean;
  goal: Goal;
  /** Shown at least this long. */
  minSeconds: number;
  /** Kept this long after the goal is reached, to show the steady state after it. */
  holdSeconds: number;
  /** The goal's deadline: when it passes, the demo says so and moves on. */
  maxSeconds: number;
}

const LOW = 100;
const HIGH = 800;

/**
 * Low load while the job starts and is upgraded, high load (more than one pod can carry) until the
 * autoscaler has scaled up and the backlog is drained, low load until it has scaled down.
 * The deadlines cover a deploy on a busy machine and the autoscaler's window (20 s), a rescale,
 * and its scale-down delay (30 s).
 */
export const PHASES: readonly Phase[] = [
  { name: "low load", rate: LOW, goal: "running", minSeconds: 15, holdSeconds: 0, maxSeconds: 120 },
  {
    name: "upgrade",
    rate: LOW,
    upgrade: true,
    goal: "upgraded",
    minSeconds: 0,
    holdSeconds: 5,
    maxSeconds: 120,
  },
  {
    name: "high load",
    rate: HIGH,
    goal: "scaled-up",
    minSeconds: 15,
    holdSeconds: 5,
    maxSeconds: 150,
  },
  {
    name: "low load again",
    rate: LOW,
    goal: "scaled-down",
    minSeconds: 10,
    holdSeconds: 10,
    maxSeconds: 150,
  },
];

/** One look at the job and its topics. */
export interface Observation {
  /** Seconds since the load started. */
  t: number;
  /** status.state, and whether the Ready condition is True for the current generation. */
  state: string;
  ready: boolean;
  /** The current run's image and its pods; what the autoscaler recommends and why. */
  image?: string;
  parallelism: number;
  recommended?: number;
  autoscalerReason?: string;
  /** The Progressing condition's reason while an operation is in flight (e.g. UpgradeSavepoint). */
  operation?: string;
  /** Lines produced, lines committed by the job, and the difference. */
  produced: number;
  processed: number;
  backlog: number;
  /** Lines per second over the last few seconds. */
  inputRate: number;
  processedRate: number;
}

/**
 * Where a phase stands `elapsed` seconds in: go on, done (its goal reached and held), missed
 * (past its deadline), or skipped (nothing to show: no scale-down without a scale-up).
 * `reachedAt`: when its goal was first reached (seconds into the phase); `peak`: the highest
 * parallelism seen so far.
 */
export function phaseProgress(
  phase: Phase,
  elapsed: number,
  reachedAt: number | undefined,
  peak: number,
): PhaseResult | "continue" {
  if (elapsed < phase.minSeconds) return "continue";
  if (phase.goal === "scaled-down" && peak <= 1) return "skipped";
  if (reachedAt !== undefined)
    return elapsed >= reachedAt + phase.holdSeconds ? "done" : "continue";
  return elapsed >= phase.maxSeconds ? "missed" : "continue";
}

export type PhaseResult = "done" | "missed" | "skipped" | "stopped";

/** Whether `now` shows what the phase that began at `start` set out to show. */
export function goalReached(goal: Goal, now: Observation, start: Observation): boolean {
  if (!now.ready) return false;
  switch (goal) {
    case "running":
      return now.processed > start.processed;
    case "upgraded":
      return now.image === DEMO.upgradeImage;
    case "scaled-up":
      // More pods than at the start and the backlog drained (a few seconds of input left).
      return now.parallelism > start.parallelism && now.backlog <= Math.max(100, now.inputRate * 5);
    case "scaled-down":
      return now.parallelism === 1;
  }
}

/** What the job's status says about a goal not reached: the autoscaler's last word, or its conditions. */
export function whyNot(goal: Goal, status: StreamJobStatus): string {
  if (goal === "scaled-up" || goal === "scaled-down") {
    const autoscaler = status.autoscaler;
    return autoscaler?.reason
      ? `the autoscaler says ${autoscaler.reason}, recommends ${autoscaler.recommendedParallelism}`
      : "the operator wrote no autoscaler decision";
  }
  const condition = (type: string) =>
    status.conditions?.find((c) => c.type === type && c.status === "True");
  const said = condition("Degraded") ?? condition("Progressing");
  return `state ${status.state ?? "unknown"}${said ? `, ${said.type} ${said.reason}: ${said.message}` : ""}`;
}

/** Names of one demo run's topics (fresh each run, so counts and task groups start empty). */
export function topicsOf(run: string) {
  const base = `${DEMO.topicPrefix}-${run}`;
  return { name: base, input: `${base}-lines`, output: `${base}-counts` };
}

/** The PEM certificates the secure listeners' CAs are (the cluster makes them at every `up`). */
export interface DemoCas {
  /** KAFKA_CA_FILE: the SASL_SSL listener's own CA. */
  kafka: string;
  /** S3_CA_FILE: the cluster's CA, which signed the TLS MinIO's certificate. */
  storage: string;
}

/**
 * The demo's objects: config/samples/word-count-sasl.yaml (Kafka through SASL_SSL with
 * SCRAM-SHA-512, storage on the TLS MinIO) in the demo's namespace, its Secrets, the ConfigMaps of
 * the two CAs it names, and the StreamJob on the run's topics, running the demo job
 * (scripts/demo/job.ts) with autoscaling between 1 and 3 pods on short windows so that it acts
 * within a minute.
 */
export function demoManifests(
  sampleYaml: string,
  run: string,
  cas: DemoCas,
): Record<string, unknown>[] {
  const docs = parseAllDocuments(sampleYaml).map((doc) => doc.toJS());
  const secrets = docs.filter((doc) => doc?.kind === "Secret");
  const job = docs.find((doc) => doc?.kind === "StreamJob");
  const kafkaCa = job?.spec?.kafka?.tls?.ca?.configMapKeyRef;
  const storageCa = job?.spec?.savepoints?.storage?.caBundle?.configMapKeyRef;
  if (secrets.length === 0 || !job || !kafkaCa || !storageCa) {
    throw new Error("the sample has no Secret, or no StreamJob taking both CAs from ConfigMaps");
  }
  const topics = topicsOf(run);
  const inDemo = (metadata: Record<string, unknown>) => ({
    ...metadata,
    namespace: DEMO.namespace,
  });
  const configMap = (ref: { name: string; key: string }, pem: string) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: inDemo({ name: ref.name }),
    data: { [ref.key]: pem },
  });
  job.metadata = inDemo({ name: DEMO.job });
  job.spec = {
    ...job.spec,
    image: DEMO.image,
    job: {
      entry: "/app/scripts/demo/job.ts",
      config: { ...topics, workMs: DEMO.workMs },
    },
    parallelism: 1,
    checkpoints: { interval: "1s" },
    autoscaler: {
      enabled: true,
      minParallelism: 1,
      maxParallelism: DEMO.partitions,
      metricsInterval: "2s",
      metricsWindow: "20s",
      scaleDownDelay: "30s",
      catchUpDuration: "1m",
    },
  };
  return [
    ...secrets.map((secret) => ({ ...secret, metadata: inDemo(secret.metadata) })),
    configMap(kafkaCa, cas.kafka),
    configMap(storageCa, cas.storage),
    job,
  ];
}

/** An operation the RunReady Event reports: "rescale completed in 14 s (downtime 9 s): run r3 has all 3 pods ready". */
export interface CompletedOperation {
  kind: string;
  seconds: number;
  downtimeSeconds: number;
  pods: number;
}

export function parseRunReady(message: string): CompletedOperation | undefined {
  const match =
    /^(\w+) completed in ([\d.]+) s \(downtime ([\d.]+) s\): run \S+ has all (\d+) pods ready/.exec(
      message,
    );
  if (!match) return undefined;
  return {
    kind: match[1] as string,
    seconds: Number(match[2]),
    downtimeSeconds: Number(match[3]),
    pods: Number(match[4]),
  };
}

export interface PhaseOutcome {
  phase: Phase;
  result: PhaseResult;
  /** Seconds since the load started. */
  start: number;
  end: number;
  /** Seconds into the phase its goal was reached. */
  reachedAfter?: number;
}

export interface SummaryFacts {
  seconds: number;
  produced: number;
  processed: number;
  /** What reading the output back showed. */
  exactlyOnce: string;
  /** Completed savepoints by trigger. */
  savepoints: Record<string, number>;
  /** Completed operations, with when (seconds since the load started) and parallelism before. */
  operations: (CompletedOperation & { t: number; from: number })[];
  outcomes: PhaseOutcome[];
  /** The autoscaler's last word (status.autoscaler), if it said anything. */
  autoscaler?: { reason?: string; recommendedParallelism?: number };
  plot: string;
}

const GOAL_WORDS: Record<Goal, string> = {
  running: "job running",
  upgraded: "upgrade through a savepoint",
  "scaled-up": "scale-up under high load",
  "scaled-down": "scale-down under low load",
};

export function summaryLines(facts: SummaryFacts): string[] {
  const count = (n: number) => n.toLocaleString("en-US");
  const savepoints = Object.entries(facts.savepoints);
  const total = savepoints.reduce((sum, [, n]) => sum + n, 0);
  const lines = [
    `Summary after ${clock(facts.seconds)} of load`,
    `  lines produced      ${count(facts.produced)}`,
    `  lines processed     ${count(facts.processed)} (committed by the job)`,
    `  exactly once        ${facts.exactlyOnce}`,
    `  savepoints          ${total}${total > 0 ? ` (${savepoints.map(([trigger, n]) => `${trigger} ${n}`).join(", ")})` : ""}`,
  ];
  const upgrades = facts.operations.filter((op) => op.kind === "upgrade");
  for (const op of upgrades) {
    lines.push(
      `  upgrade             at ${clock(op.t)}: ${op.seconds} s in all, downtime ${op.downtimeSeconds} s`,
    );
  }
  const rescales = facts.operations.filter((op) => op.kind === "rescale");
  lines.push(`  rescales            ${rescales.length}`);
  for (const op of rescales) {
    lines.push(
      `    ${op.from} → ${op.pods} pods at ${clock(op.t)}: ${op.seconds} s in all, downtime ${op.downtimeSeconds} s`,
    );
  }
  for (const outcome of facts.outcomes) {
    const words = GOAL_WORDS[outcome.phase.goal];
    const result =
      outcome.result === "done"
        ? `yes, ${clock(outcome.reachedAfter ?? 0)} into "${outcome.phase.name}"`
        : outcome.result === "stopped"
          ? "not seen (the demo was stopped)"
          : outcome.result === "skipped"
            ? "not seen (there was no scale-up)"
            : `NO: not within ${outcome.phase.maxSeconds} s`;
    lines.push(`  ${words.padEnd(30)}${result}`);
  }
  if (facts.outcomes.some((o) => o.result === "missed") && facts.autoscaler) {
    const { reason, recommendedParallelism } = facts.autoscaler;
    lines.push(
      `  the autoscaler's last decision: ${reason ?? "none"}${recommendedParallelism === undefined ? "" : ` (recommended parallelism ${recommendedParallelism})`}`,
    );
  }
  lines.push(`  plot                ${facts.plot}`);
  return lines;
}
