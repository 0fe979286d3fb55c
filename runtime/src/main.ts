// The runtime process: runs this pod's share of a job (docs: DESIGN.md, "Runtime and its
// contract with the operator").
//
//   node runtime/src/main.ts <job module>
//
// Environment (the operator sets it; `npm run job` sets it for a local run):
//   WEIR_JOB            <namespace>/<name>
//   WEIR_SUBTASK        index of this pod, 0-based        WEIR_PARALLELISM  number of pods
//   WEIR_CONFIG         path of the job configuration (JSON): kafka.bootstrap, storage.*,
//                       checkpointIntervalMs
//   S3_ACCESS_KEY, S3_SECRET_KEY   storage credentials (from the job's Secret)
//   POD_IP              where the control API listens (port 9249)
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Admin } from "@platformatic/kafka";
import { Client } from "minio";
import { Counter, Gauge, Registry } from "prom-client";
import type { Job } from "./api/job.ts";
import { CONTROL_PORT, ControlServer } from "./control/server.ts";
import { partitionsOf } from "./engine/assignment.ts";
import { compile, createTask } from "./engine/pipeline.ts";
import { TaskRunner } from "./engine/task-runner.ts";
import { placement, type RuntimeConfig, required } from "./placement.ts";
import { checkCompatibility, type SnapshotMetadata } from "./state/metadata.ts";
import { SnapshotStore } from "./state/snapshot-store.ts";

async function main(): Promise<void> {
  const entry = process.argv[2];
  if (!entry) throw new Error("usage: main.ts <job module>");
  const config = JSON.parse(readFileSync(required("WEIR_CONFIG"), "utf8")) as RuntimeConfig;
  const place = placement(process.env);
  const job = compile(
    ((await import(pathToFileURL(resolve(entry)).href)) as { default: Job }).default,
  );
  const jobRef = { namespace: place.namespace, name: place.name };
  const bootstrapBrokers = config.kafka.bootstrap;

  // Internal topics get the partition count of the job's source, so every stage has as many
  // tasks as the first.
  const admin = new Admin({ clientId: `weir-${place.name}`, bootstrapBrokers });
  const first = job.stages[0];
  if (!first) throw new Error(`job ${job.name} has no stages`);
  const sourceMetadata = await admin.metadata({ topics: [first.sourceTopic] });
  const partitionCount = sourceMetadata.topics.get(first.sourceTopic)?.partitionsCount ?? 0;
  const internal = job.describe().internalTopics;
  const existing = new Set((await admin.metadata({ topics: [] })).topics.keys());
  const missing = internal.filter((topic) => !existing.has(topic));
  if (missing.length > 0) {
    await admin
      .createTopics({ topics: missing, partitions: partitionCount, replicas: 1 })
      .catch((error: unknown) => {
        // Another subtask may have created them first.
        if (!/already exists/i.test(String(error))) throw error;
      });
  }
  await admin.close();

  const endpoint = new URL(config.storage.endpoint);
  const store = new SnapshotStore({
    client: new Client({
      endPoint: endpoint.hostname,
      port: Number(endpoint.port || (endpoint.protocol === "https:" ? 443 : 80)),
      useSSL: endpoint.protocol === "https:",
      accessKey: required("S3_ACCESS_KEY"),
      secretKey: required("S3_SECRET_KEY"),
      region: config.storage.region ?? "us-east-1",
    }),
    bucket: config.storage.bucket,
    prefix: config.storage.prefix ?? "weir",
    job: jobRef,
  });

  // WEIR_RESTORE_FROM: a completed savepoint (any earlier parallelism). State of stateful steps
  // the job no longer has is refused unless allowNonRestoredState says to drop it.
  let restoreFrom: SnapshotMetadata | undefined;
  let dropOperators: string[] = [];
  if (process.env.WEIR_RESTORE_FROM) {
    restoreFrom = await store.readAt(process.env.WEIR_RESTORE_FROM);
    if (!restoreFrom) throw new Error(`no completed savepoint at ${process.env.WEIR_RESTORE_FROM}`);
    dropOperators = checkCompatibility(
      restoreFrom,
      job.operatorNames,
      config.allowNonRestoredState ?? false,
    );
  }

  const runners = job.stages.flatMap((stage) =>
    partitionsOf(partitionCount, place.parallelism, place.subtask).map((partition) => {
      const task = { topic: stage.sourceTopic, partition };
      return new TaskRunner({
        job: jobRef,
        task,
        bootstrapBrokers,
        store,
        jobOperators: job.operatorNames,
        stateful: job.operatorNames.length > 0,
        checkpointIntervalMs: config.checkpointIntervalMs ?? 5_000,
        retainCheckpoints: 3,
        restoreFrom,
        dropOperators,
        createProcessor: (state) =>
          createTask(stage, state, { partitions: [partition], now: Date.now() }),
      });
    }),
  );

  const metrics = new Registry();
  // Counters summed over this pod's tasks when Prometheus scrapes.
  const taskTotal = (name: string, help: string, of: (runner: TaskRunner) => number) =>
    new Counter({
      name,
      help,
      registers: [metrics],
      collect() {
        this.reset();
        this.inc(runners.reduce((sum, runner) => sum + of(runner), 0));
      },
    });
  taskTotal("weir_records_in_total", "Records read by this pod's tasks", (r) => r.recordsIn);
  taskTotal("weir_records_out_total", "Records emitted by this pod's tasks", (r) => r.recordsOut);
  taskTotal(
    "weir_record_failures_total",
    "Records that failed to decode or threw in user code",
    (r) => r.failures,
  );
  new Gauge({ name: "weir_tasks", help: "Tasks this pod runs", registers: [metrics] }).set(
    runners.length,
  );

  let started = false;
  const control = new ControlServer({
    healthy: () => true,
    ready: () => started,
    status: () => ({
      job: jobRef,
      subtask: place.subtask,
      parallelism: place.parallelism,
      tasks: runners.map((r) => ({
        ...r.task,
        recordsIn: r.recordsIn,
        recordsOut: r.recordsOut,
        restoredFrom: r.plan?.kind,
      })),
    }),
    metrics,
    // This pod's part of the savepoint: every task's state at a batch boundary, committed with
    // its offset; the savepoint exists once all pods' parts are in and its metadata is written
    // (`SnapshotStore.completeSavepoint`, the operator's step).
    savepoint: async ({ id, stop }) => {
      const entries = await Promise.all(runners.map((runner) => runner.savepoint(id, stop)));
      await store.writeSavepointPart(id, place.subtask, entries);
      return {
        state: "completed",
        path: store.path("savepoint", id),
        files: entries.map((entry) => entry.key),
        bytes: entries.reduce((sum, entry) => sum + entry.bytes, 0),
      };
    },
  });
  await control.listen(process.env.POD_IP ?? "127.0.0.1", CONTROL_PORT);

  await Promise.all(runners.map((r) => r.start()));
  started = true;
  process.stdout.write(
    `${JSON.stringify({ msg: "running", job: jobRef, tasks: runners.map((r) => `${r.task.topic}-${r.task.partition}`) })}\n`,
  );

  process.once("SIGTERM", () => {
    // Finish the records in hand, checkpoint, commit, and leave within the grace period.
    Promise.all(runners.map((r) => r.stop()))
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

main().catch((error: unknown) => {
  process.stderr.write(
    `${JSON.stringify({ msg: "failed", error: error instanceof Error ? error.message : String(error) })}\n`,
  );
  process.exit(1);
});
