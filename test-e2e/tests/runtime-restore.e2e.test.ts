// Restoring a savepoint into a new version of a job, through the runtime process: a version
// without one of the savepoint's stateful steps is refused with a clear error (exit 1, the
// step named), and accepted with allowNonRestoredState, continuing the steps it still has.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { SnapshotStore } from "../../runtime/src/state/snapshot-store.ts";
import { clusterEnv, s3Client } from "../support/cluster.ts";
import { readRecords, readTopicSettled } from "../support/kafka.ts";
import { exitOf, produceWords, RuntimeTestbed, runtimeReady } from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";

const env = clusterEnv();
const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "runtime-count-job.ts");

after(() => bed.tearDown());

test("a savepoint with state of a removed step is refused, and restored with allowNonRestoredState", async () => {
  const { name, input, output } = await bed.job("restore");
  const start = (
    totals: boolean,
    options: { config?: Record<string, unknown>; env?: Record<string, string> } = {},
  ) =>
    bed.start({
      module: fixture,
      job: name,
      stderr: "pipe",
      ...(options.env ? { env: options.env } : {}),
      config: { job: { config: { name, input, output, totals } }, ...options.config },
    });

  // Version 1 counts words, then totals them: two stateful steps.
  const v1 = start(true);
  const v1Exit = exitOf(v1);
  await runtimeReady(v1);
  await produceWords(input, ["a", "b", "a"]);
  await readRecords(output, (read) => read.length >= 3);
  const res = await fetch(`${v1.url}/v1/savepoints`, {
    method: "POST",
    body: JSON.stringify({ id: "sp-1", stop: true }),
  });
  assert.equal(res.status, 202);
  await eventually("the savepoint", async () => {
    const state = (await (await fetch(`${v1.url}/v1/savepoints/sp-1`)).json()) as {
      state: string;
      reason?: string;
    };
    if (state.state === "failed") throw new Error(state.reason);
    return state.state === "completed" ? true : undefined;
  });
  v1.process.kill("SIGTERM");
  assert.equal((await v1Exit).code, 0);
  const store = new SnapshotStore({
    client: s3Client(),
    bucket: env.s3Bucket,
    prefix: "runtime-tests",
    job: { namespace: "tests", name },
  });
  assert.ok(await store.completeSavepoint("sp-1", ["counts", "totals"], 1));
  const restoreFrom = { WEIR_RESTORE_FROM: store.path("savepoint", "sp-1") };

  // Version 2 has no "totals": refused, naming the step and the way out.
  const { code, stderr, logs } = await exitOf(start(false, { env: restoreFrom }));
  assert.equal(code, 1);
  assert.match(
    String(logs.find((line) => line.msg === "failed")?.error ?? stderr),
    /savepoint sp-1 holds state of operators the job no longer has: "totals" \(1 of 1 tasks\); set allowNonRestoredState/,
  );

  // Accepted with allowNonRestoredState: the counts go on from the savepoint's state.
  const accepted = start(false, { env: restoreFrom, config: { allowNonRestoredState: true } });
  void exitOf(accepted); // drains its stderr
  await runtimeReady(accepted);
  await produceWords(input, ["a", "b"]);
  const values = (await readTopicSettled(output, 5)).records.map((r) => JSON.parse(r.value ?? ""));
  assert.deepEqual(values.slice(3), [
    { key: "a", value: 3 },
    { key: "b", value: 2 },
  ]);
  accepted.process.kill("SIGTERM");
});
