// A worker thread of the runtime process (task-threads.ts): runs its share of the pod's tasks
// as a TaskGroup built from workerData (a TaskGroupBase: configuration, not live objects) and
// the main thread's restore decision ("start"), and answers its requests: figures, savepoint
// parts, stop.
import { parentPort, workerData } from "node:worker_threads";
import {
  describeError,
  jobResources,
  type RestoreDecision,
  type TaskFailure,
  TaskGroup,
  type TaskGroupBase,
} from "./task-group.ts";
import type { FromWorker, ToWorker } from "./task-threads.ts";

/** How often the worker posts its tasks' figures unasked (what /v1/status reads). */
const FIGURES_EVERY_MS = 500;

const port = parentPort;
if (!port) throw new Error("task-worker.ts runs as a worker thread (see task-threads.ts)");
const base = workerData as TaskGroupBase;
// At once, while the main thread prepares: the job module, and its clients' settings.
const resources = jobResources(base);
// Rejected only by the start that awaits it.
resources.catch(() => {});
const post = (message: FromWorker) => port.postMessage(message);

// A failed task ends the process (nothing more of it commits): the main thread does, once
// it has the failure and this thread has ended at its word ("exit"). Not here right after
// posting: a message posted just before the thread exits may never arrive.
const failed = (failure: TaskFailure) => post({ type: "failed", failure });

let group: TaskGroup | undefined;

// Listening from the start: the port then keeps this thread alive whatever its tasks do.
port.on("message", (message: ToWorker & { id: number }) => {
  if (message.type === "exit") process.exit(message.status);
  if (message.type === "start") return void start(message);
  const { id } = message;
  const refused = (error: unknown) =>
    post({ type: "refused", id, error: error instanceof Error ? error.message : String(error) });
  if (!group) return refused(new Error("this worker's tasks are not built yet"));
  switch (message.type) {
    case "figures":
      post({ type: "figures", id, figures: group.data(true) });
      return;
    case "savepoint":
      group
        .savepoint(message.savepoint, message.stop)
        .then((parts) => post({ type: "savepoint", id, parts }), refused);
      return;
    case "stop":
      group.stop().then(() => {
        post({ type: "stopped", id });
        // Nothing is left to do here: the port no longer keeps the thread alive.
        port.unref();
      }, refused);
      return;
  }
});

/** Builds the tasks with the main thread's restore decision and starts them. */
async function start({ restoreFrom, dropOperators }: RestoreDecision): Promise<void> {
  try {
    const tasks = new TaskGroup({ ...base, restoreFrom, dropOperators }, await resources);
    group = tasks;
    post({ type: "started", tasks: await tasks.start(failed), figures: tasks.data(false) });
    setInterval(
      () => post({ type: "figures", figures: tasks.data(false) }),
      FIGURES_EVERY_MS,
    ).unref();
  } catch (error) {
    // The main thread ends the process with it (see TaskThreads.start).
    post({ type: "start-failed", error: describeError(error, base.config.kafka) });
  }
}
