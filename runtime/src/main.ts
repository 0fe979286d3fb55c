// The runtime process: runs this pod's share of a job (docs: DESIGN.md, "Runtime and its
// contract with the operator").
//
//   node runtime/src/main.ts <job module>
//
// Environment (the operator sets it; `npm run job` sets it for a local run):
//   WEIR_JOB            <namespace>/<name>
//   WEIR_SUBTASK        index of this pod, 0-based        WEIR_PARALLELISM  number of pods
//   WEIR_RUN            the run this pod belongs to (names its checkpoints)
//   WEIR_RESTORE_FROM   a savepoint path to start from, `none` for empty state, or empty
//   WEIR_STANDBY        `true`: a warm standby of the next run — everything up to the restore
//                       done (job loaded, topics, storage client, workers), then it waits for
//                       POST /v1/start with its restore source (WEIR_RESTORE_FROM unused)
//   WEIR_CONFIG         path of the job configuration (JSON): kafka.* (bootstrap, tls, sasl:
//                       file paths of mounted Secrets, never a secret itself), storage.*,
//                       checkpointIntervalMs, allowNonRestoredState, failures, job.config
//   S3_ACCESS_KEY, S3_SECRET_KEY   storage credentials (from the job's Secret); without a
//                       Secret (storage.credentials "chain") the AWS default chain's variables
//   POD_IP              where the control API listens (port 9249)
//   WEIR_CPU_LIMIT_MILLICORES  the container's CPU limit (downward API): with the cgroup's
//                       quota it decides how many worker threads run the tasks
//                       (engine/task-threads.ts; 1 CPU or 1 task: all on the main thread)
//
// Exit status: 0 after SIGTERM (checkpointed and committed), 3 when a record failed under the
// "fail" policy (the JSON error on stderr names task, offset and operator), 1 otherwise.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  Admin,
  ConfigResourceTypes,
  IncrementalAlterConfigOperationTypes,
} from "@platformatic/kafka";
import { type KafkaConnection, kafkaConnection } from "./connectors/kafka/connection.ts";
import {
  CONTROL_PORT,
  type ControlOptions,
  ControlServer,
  type StartPhase,
} from "./control/server.ts";
import { partitionsOf } from "./engine/assignment.ts";
import { type FailurePolicy, resolveFailurePolicy } from "./engine/failures.ts";
import type { CompiledJob } from "./engine/pipeline.ts";
import { EMPTY_STATE } from "./engine/restore.ts";
import {
  describeError,
  loadJob,
  type RestoreDecision,
  snapshotStoreOf,
  type TaskFailure,
  type TaskGroupBase,
  type TaskSpec,
} from "./engine/task-group.ts";
import {
  cpuLimit,
  InThreadTasks,
  type TaskHost,
  TaskThreads,
  usableCpus,
  workerCount,
} from "./engine/task-threads.ts";
import { runtimeMetrics, taskStatus } from "./metrics.ts";
import { placement, type RuntimeConfig, required } from "./placement.ts";
import { checkCompatibility } from "./state/metadata.ts";

/** The job's Kafka settings, once read: they explain a failure to connect (see describe). */
let kafkaConfig: RuntimeConfig["kafka"] | undefined;

/** The control API's token, when the configuration names its file: unreadable fails the start. */
function controlOptions(config: RuntimeConfig): ControlOptions {
  const file = config.control?.tokenFile;
  if (!file) return {};
  const token = readFileSync(file, "utf8").trim();
  if (!token) throw new Error(`the control token file ${file} is empty`);
  return {
    token,
    log: (line) => process.stdout.write(`${JSON.stringify({ ...line, time: Date.now() })}\n`),
  };
}

/**
 * Creates the job's internal topics that are missing and returns the partition count of its
 * source: internal topics get the same, so every stage has as many tasks as the first.
 */
async function prepareTopics(
  job: CompiledJob,
  failures: FailurePolicy,
  kafka: KafkaConnection,
  config: RuntimeConfig,
  clientId: string,
): Promise<number> {
  const admin = new Admin({ ...kafka, clientId });
  const first = job.stages[0];
  if (!first) throw new Error(`job ${job.name} has no stages`);
  const sourceMetadata = await admin.metadata({ topics: [first.sourceTopic] });
  const partitionCount = sourceMetadata.topics.get(first.sourceTopic)?.partitionsCount ?? 0;
  // The dead-letter topic too, so that the first poison record does not fail the task.
  const internal = [
    ...job.describe().internalTopics,
    ...(failures.action === "dead-letter" ? [failures.topic] : []),
  ];
  // A repartition topic's records carry event time, which the broker's time-based retention
  // goes by: replaying last month's input, the upstream task's records would be deleted before
  // the downstream task read them. Its one reader deletes what it committed instead (as Kafka
  // Streams keeps its repartition topics), so time never deletes anything from it.
  const repartition = new Set(
    job.stages.filter((s) => s.source.internal).map((s) => s.sourceTopic),
  );
  const existing = new Set(await admin.listTopics());
  const missing = internal.filter((topic) => !existing.has(topic));
  const create = async (topics: string[], configs: { name: string; value: string }[]) => {
    if (topics.length === 0) return;
    await admin
      .createTopics({
        topics,
        partitions: partitionCount,
        // -1: the broker's default.replication.factor, as a production cluster sets it.
        replicas: config.kafka.internalTopicReplicationFactor ?? -1,
        configs,
      })
      .catch((error: unknown) => {
        // Another subtask may have created them first.
        if (!/already exists/i.test(String(error))) throw error;
      });
  };
  await create(
    missing.filter((topic) => repartition.has(topic)),
    [{ name: "retention.ms", value: "-1" }],
  );
  await create(
    missing.filter((topic) => !repartition.has(topic)),
    [],
  );
  // Repartition topics created by a runtime from before, with the broker's retention. Best
  // effort: a principal allowed to create topics but not to alter their configuration still
  // runs, told so.
  const older = [...repartition].filter((topic) => existing.has(topic));
  if (older.length > 0) {
    const altered = admin.incrementalAlterConfigs({
      resources: older.map((topic) => ({
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: topic,
        configs: [
          {
            name: "retention.ms",
            configOperation: IncrementalAlterConfigOperationTypes.SET,
            value: "-1",
          },
        ],
      })),
    });
    await altered.catch((error: unknown) => {
      process.stderr.write(
        `${JSON.stringify({ msg: "could not turn off time-based retention of repartition topics", topics: older, error: String(error) })}\n`,
      );
    });
  }
  await admin.close();
  return partitionCount;
}

async function main(): Promise<void> {
  // Node's own start and loading the runtime's modules: the first part of a pod's start-up.
  const modulesSeconds = process.uptime();
  const entry = process.argv[2];
  if (!entry) throw new Error("usage: main.ts <job module>");
  const config = JSON.parse(readFileSync(required("WEIR_CONFIG"), "utf8")) as RuntimeConfig;
  // Before anything connects: a pod without its token has nothing to offer the operator.
  const controlAuth = controlOptions(config);
  kafkaConfig = config.kafka;
  const place = placement(process.env);
  const job = await loadJob(resolve(entry), config);
  const failures = resolveFailurePolicy(job.failures, config.failures);
  const jobRef = { namespace: place.namespace, name: place.name };
  const kafka = kafkaConnection(config.kafka);
  const partitionCount = await prepareTopics(job, failures, kafka, config, `weir-${place.name}`);
  const store = snapshotStoreOf(config, jobRef);

  const tasks: TaskSpec[] = job.stages.flatMap((_, stage) =>
    partitionsOf(partitionCount, place.parallelism, place.subtask).map((partition) => ({
      stage,
      partition,
    })),
  );
  const spec: Omit<TaskGroupBase, "tasks"> = {
    entry: resolve(entry),
    config,
    job: jobRef,
    run: process.env.WEIR_RUN ?? "",
    partitionCount,
    clientId: `weir-${place.name}-offsets`,
  };
  // A task that fails ends the process: under "fail" a poison record stops it, named, with
  // nothing of its batch committed; the pod's restart policy decides what happens next.
  const failed = ({ line, status }: TaskFailure) => {
    process.stderr.write(`${JSON.stringify(line)}\n`);
    process.exit(status);
  };
  // One thread per CPU the container may use, at most one per task (see task-threads.ts).
  // Workers start now: they load their modules while this thread goes on preparing.
  const cpus = usableCpus(cpuLimit(process.env));
  const threads = workerCount(tasks.length, cpus);
  const host: TaskHost =
    threads > 1
      ? new TaskThreads(spec, tasks, threads, failed)
      : new InThreadTasks({ ...spec, tasks }, { job, failures, kafka, store }, failed);

  // A restore source: a completed savepoint (any earlier parallelism), `none` for empty state
  // from the committed offsets on (a stateless upgrade), or "" for each task's checkpoint at
  // its committed offset. State of stateful steps the job no longer has is refused unless
  // allowNonRestoredState says to drop it.
  const restoreDecision = async (source: string): Promise<RestoreDecision> => {
    if (source === "none") return { restoreFrom: EMPTY_STATE, dropOperators: [] };
    if (!source) return { restoreFrom: undefined, dropOperators: [] };
    const restoreFrom = await store.readAt(source);
    if (!restoreFrom) throw new Error(`no completed savepoint at ${source}`);
    const dropOperators = checkCompatibility(
      restoreFrom,
      job.operatorNames,
      config.allowNonRestoredState ?? false,
    );
    return { restoreFrom, dropOperators };
  };

  const metrics = runtimeMetrics(host.source);

  // A standby waits warm for its restore source; any other pod has it in its environment.
  const standby = process.env.WEIR_STANDBY === "true";
  let phase: StartPhase = standby ? "standby" : "starting";
  let startWith: (source: string) => void = () => {};
  const restoreSource = standby
    ? new Promise<string>((resolve) => {
        startWith = resolve;
      })
    : Promise.resolve(process.env.WEIR_RESTORE_FROM ?? "");
  // Ready means processing: every task restored and committed once (or caught up with nothing
  // to commit), so a Service and the operator see a pod as Ready only when its output flows.
  const processing = () =>
    phase === "running" && host.source.runners.every((r) => r.processingSince !== undefined);
  const control = new ControlServer(
    {
      healthy: () => host.healthy(),
      ready: processing,
      phase: () => phase,
      start: ({ restoreFrom }) => {
        phase = "starting";
        startWith(restoreFrom);
      },
      status: () => ({
        job: jobRef,
        subtask: place.subtask,
        parallelism: place.parallelism,
        workers: host.workers,
        failures,
        phase,
        processing: processing(),
        // When the last of its tasks began processing (epoch ms): the end of an upgrade's
        // downtime, as this pod saw it.
        processingSince: processing()
          ? Math.max(...host.source.runners.map((r) => r.processingSince ?? 0))
          : undefined,
        tasks: taskStatus(host.source),
      }),
      metrics,
      // This pod's part of the savepoint: every task's state at a batch boundary, committed with
      // its offset; the savepoint exists once all pods' parts are in and its metadata is written
      // (`SnapshotStore.completeSavepoint`, the operator's step).
      savepoint: async ({ id, stop }) => {
        const parts = await host.savepoint(id, stop);
        const entries = parts.map((part) => part.entry);
        await store.writeSavepointPart(id, place.subtask, entries);
        // Where the time of a stop-with-savepoint goes, per task (upgrade downtime starts here).
        process.stdout.write(
          `${JSON.stringify({
            msg: "savepoint part taken",
            time: Date.now(),
            id,
            stop,
            tasks: parts.map((part) => ({
              task: `${part.task.topic}-${part.task.partition}`,
              ...part.timings,
            })),
          })}\n`,
        );
        return {
          state: "completed",
          path: store.path("savepoint", id),
          files: entries.map((entry) => entry.key),
          bytes: entries.reduce((sum, entry) => sum + entry.bytes, 0),
          operators: job.operatorNames,
        };
      },
    },
    controlAuth,
  );
  await control.listen(process.env.POD_IP || "127.0.0.1", CONTROL_PORT);
  if (standby) {
    process.stdout.write(
      `${JSON.stringify({ msg: "standby: waiting for the restore source", time: Date.now(), job: jobRef, standbySeconds: process.uptime() })}\n`,
    );
  }

  const starts = await host.start(await restoreDecision(await restoreSource));
  phase = "running";
  process.stdout.write(
    `${JSON.stringify({
      msg: "running",
      time: Date.now(),
      job: jobRef,
      // From the process's start (node's own start-up and module loading included) to here.
      startupSeconds: process.uptime(),
      modulesSeconds,
      tasks: starts.map(({ task }) => `${task.topic}-${task.partition}`),
      // Worker threads running the tasks (0: the main thread runs them), from the CPUs usable.
      workers: host.workers,
      cpus,
      // Where each task's start went: restore (state read and deserialized), and all of it.
      starts: starts.map((s) => s.started),
    })}\n`,
  );

  process.once("SIGTERM", () => {
    // Finish the records in hand, checkpoint, commit, and leave within the grace period.
    host
      .stop()
      .then(() => control.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          process.stderr.write(`${JSON.stringify({ msg: "stop failed", error: String(error) })}\n`);
          process.exit(1);
        },
      );
  });
}

/**
 * An error as the process's last line says it (the operator shows it in the job's Degraded
 * condition): a Kafka connection failure in words a person can act on, else the message.
 */
function describe(error: unknown): string {
  return describeError(error, kafkaConfig);
}

main().catch((error: unknown) => {
  process.stderr.write(`${JSON.stringify({ msg: "failed", error: describe(error) })}\n`);
  process.exit(1);
});
