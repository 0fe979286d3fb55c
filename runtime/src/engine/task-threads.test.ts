import assert from "node:assert/strict";
import { test } from "node:test";
import {
  figuresData,
  figuresOf,
  type MetricsSource,
  runtimeMetrics,
  type TaskFigures,
  taskStatus,
} from "../metrics.ts";
import type { TaskSpec } from "./task-group.ts";
import {
  CPU_LIMIT_ENV,
  cgroupV1Cpus,
  cgroupV2Cpus,
  cpuLimit,
  envCpus,
  spreadTasks,
  usableCpus,
  workerCount,
  workerHeapMb,
} from "./task-threads.ts";

test("cgroup v2 cpu.max: quota over period; max is no limit", () => {
  assert.equal(cgroupV2Cpus("200000 100000\n"), 2);
  assert.equal(cgroupV2Cpus("150000 100000"), 1.5);
  assert.equal(cgroupV2Cpus("50000 100000"), 0.5);
  assert.equal(cgroupV2Cpus("max 100000\n"), undefined);
  assert.equal(cgroupV2Cpus("max"), undefined);
  assert.equal(cgroupV2Cpus(""), undefined);
});

test("cgroup v1 cfs quota and period; -1 is no limit", () => {
  assert.equal(cgroupV1Cpus("300000\n", "100000\n"), 3);
  assert.equal(cgroupV1Cpus("25000", "100000"), 0.25);
  assert.equal(cgroupV1Cpus("-1\n", "100000\n"), undefined);
  assert.equal(cgroupV1Cpus("x", "100000"), undefined);
});

test("the operator's variable is in millicores; empty or not a number is no limit", () => {
  assert.equal(envCpus("2000"), 2);
  assert.equal(envCpus("1500"), 1.5);
  assert.equal(envCpus(""), undefined);
  assert.equal(envCpus(undefined), undefined);
  assert.equal(envCpus("two"), undefined);
  assert.equal(envCpus("0"), undefined);
});

test("the CPU limit is the smallest of the cgroup's quota and the operator's variable", () => {
  const files =
    (contents: Record<string, string>) =>
    (file: string): string | undefined =>
      contents[file];
  assert.equal(cpuLimit({}, files({})), undefined, "no cgroup files, no variable: no limit");
  assert.equal(cpuLimit({}, files({ "/sys/fs/cgroup/cpu.max": "max 100000" })), undefined);
  assert.equal(cpuLimit({}, files({ "/sys/fs/cgroup/cpu.max": "250000 100000" })), 2.5);
  assert.equal(
    cpuLimit(
      {},
      files({
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
      }),
    ),
    1,
  );
  assert.equal(
    cpuLimit(
      {},
      files({
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
      }),
    ),
    undefined,
  );
  assert.equal(cpuLimit({ [CPU_LIMIT_ENV]: "3000" }, files({})), 3);
  assert.equal(
    cpuLimit({ [CPU_LIMIT_ENV]: "3000" }, files({ "/sys/fs/cgroup/cpu.max": "200000 100000" })),
    2,
  );
  assert.equal(
    cpuLimit({ [CPU_LIMIT_ENV]: "1500" }, files({ "/sys/fs/cgroup/cpu.max": "max 100000" })),
    1.5,
  );
});

test("usable CPUs: the limit, at most the CPUs available; no limit: one", () => {
  assert.equal(usableCpus(undefined, 8), 1, "no limit: the node's CPUs are not the pod's");
  assert.equal(usableCpus(2.5, 8), 2.5);
  assert.equal(usableCpus(16, 4), 4);
});

test("workers: one per whole CPU, at most one per task, at least one (the main thread)", () => {
  assert.equal(workerCount(8, 2), 2);
  assert.equal(workerCount(8, 2.9), 2);
  assert.equal(workerCount(8, 1.5), 1);
  assert.equal(workerCount(8, 0.25), 1);
  assert.equal(workerCount(3, 16), 3);
  assert.equal(workerCount(1, 16), 1);
  assert.equal(workerCount(0, 4), 1);
});

/** The tasks of `stages` stages with `partitions` partitions each, stage by stage. */
const tasksOf = (stages: number, partitions: number[]): TaskSpec[] =>
  Array.from({ length: stages }, (_, stage) =>
    partitions.map((partition) => ({ stage, partition })),
  ).flat();

/** Per worker, how many tasks of each stage it has. */
const perStage = (tasks: TaskSpec[], spread: number[][], stages: number) =>
  spread.map((indices) =>
    Array.from({ length: stages }, (_, s) => indices.filter((i) => tasks[i]?.stage === s).length),
  );

test("the two tasks of a keyed job with one partition run on two threads", () => {
  const tasks = tasksOf(2, [0]);
  assert.deepEqual(spreadTasks(tasks, 2), [[0], [1]]);
});

test("every task on exactly one thread; threads even within one task, and per stage", () => {
  for (const stages of [1, 2, 3]) {
    for (const partitions of [1, 2, 3, 4, 5, 7]) {
      const owned = Array.from({ length: partitions }, (_, i) => i + 10);
      const tasks = tasksOf(stages, owned);
      for (let workers = 1; workers <= tasks.length; workers++) {
        const spread = spreadTasks(tasks, workers);
        const what = `${stages} stages × ${partitions} partitions on ${workers} threads`;
        assert.equal(spread.length, workers, what);
        assert.deepEqual(
          spread.flat().sort((a, b) => a - b),
          tasks.map((_, i) => i),
          `${what}: each task once`,
        );
        const sizes = spread.map((s) => s.length);
        assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${what}: ${sizes}`);
        for (let s = 0; s < stages; s++) {
          const counts = perStage(tasks, spread, stages).map((c) => c[s] ?? 0);
          assert.ok(
            Math.max(...counts) - Math.min(...counts) <= 1,
            `${what}, stage ${s}: ${counts}`,
          );
        }
        for (const indices of spread)
          assert.deepEqual(
            indices,
            [...indices].sort((a, b) => a - b),
            `${what}: pod order`,
          );
      }
    }
  }
});

test("a keyed job on 4 partitions over 2 threads: each runs 2 tasks of each stage", () => {
  const tasks = tasksOf(2, [0, 1, 2, 3]);
  const spread = spreadTasks(tasks, 2);
  assert.deepEqual(perStage(tasks, spread, 2), [
    [2, 2],
    [2, 2],
  ]);
  // Not stage 0 on one thread and stage 1 on the other: the stages' costs differ.
  assert.deepEqual(spread, [
    [0, 2, 4, 6],
    [1, 3, 5, 7],
  ]);
});

test("stages given out of order are dealt stage by stage all the same", () => {
  const tasks: TaskSpec[] = [
    { stage: 1, partition: 0 },
    { stage: 0, partition: 0 },
  ];
  assert.deepEqual(spreadTasks(tasks, 2), [[1], [0]]);
});

test("a task's figures through a worker's message read as the live task's, state size when asked", async () => {
  const live: TaskFigures = {
    task: { topic: "in", partition: 3 },
    position: 42n,
    watermark: 1_000,
    processorMetrics: { lateRecords: 2, lateDropped: 1 },
    stateBytes: () => 512,
    plan: { kind: "fresh" },
    recordsIn: 40,
    recordsOut: 80,
    failures: { decode: 1, user: 2, encode: 0 },
    deadLetters: 3,
    skipped: 0,
    checkpointFailures: 1,
    busyMs: 250,
    lastCheckpoint: undefined,
    checkpointedAt: 9_000,
    processingSince: 9_500,
  };
  const source = (runners: TaskFigures[]): MetricsSource => ({
    runners,
    end: () => 50n,
    now: () => 10_000,
  });
  const posted = structuredClone(figuresData(live, 50n, true));
  assert.equal(posted.end, 50n);
  const read = figuresOf(posted, undefined);
  assert.deepEqual(taskStatus(source([read])), taskStatus(source([live])));
  assert.equal(
    await runtimeMetrics(source([read])).metrics(),
    await runtimeMetrics(source([live])).metrics(),
  );
  // The frequent figures leave the state size out: the last one sent stands.
  const frequent = structuredClone(figuresData(live, 50n, false));
  assert.equal(frequent.stateBytes, undefined);
  assert.equal(figuresOf(frequent, 512).stateBytes(), 512);
});

test("workers share the process's heap limit (V8's flags would give each one all of it)", () => {
  assert.equal(workerHeapMb(2, 1024 * 2 ** 20), 512);
  assert.equal(workerHeapMb(3, 1024 * 2 ** 20), 341);
  assert.equal(workerHeapMb(16, 512 * 2 ** 20), 64, "never below 64 MiB");
});
