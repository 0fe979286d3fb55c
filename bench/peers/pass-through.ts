// The runtime benchmark's pass-through baseline: the runtime's own Kafka I/O (TaskReader and
// TaskWriter of runtime/src/connectors/kafka/task-io.ts, on @platformatic/kafka) reading one
// partition and writing every record's value unchanged, exactly-once: one transaction per
// second that carries the outputs and the task's committed offset, as the runtime's
// checkpoints do, without state, decoding or a pipeline. What Weir's design could reach if
// its processing cost nothing.
//
//   node bench/peers/pass-through.ts <bootstrap> <job name> <input topic> <output topic>
//
// Its task group is taskGroupId({namespace: "tests", name: <job name>}, {topic, partition: 0}).
// Prints "ready" on stdout once it is about to read, and runs until SIGTERM.
import type { MessageToProduce } from "@platformatic/kafka";
import { TaskReader, TaskWriter } from "../../runtime/src/connectors/kafka/task-io.ts";

const COMMIT_INTERVAL_MS = 1_000;
/** Records handed to the writer at once (the runtime's sinks send per batch too). */
const SEND_BATCH = 1_000;

const [bootstrap, name, input, output] = process.argv.slice(2);
if (!bootstrap || !name || !input || !output) {
  process.stderr.write("usage: pass-through.ts <bootstrap> <job name> <input> <output>\n");
  process.exit(2);
}

const kafka = { bootstrapBrokers: [bootstrap] };
const job = { namespace: "tests", name };
const task = { topic: input, partition: 0 };
const reader = new TaskReader({ kafka, job, task });
const writer = new TaskWriter({ kafka, job, task });
await writer.fence();
const from = (await reader.committed())?.offset ?? 0n;

type Out = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;
let buffered: Out[] = [];
/** The offset after the last record read (buffered or sent). */
let position = from;
let committedPosition = from;
let checkpoint = 1n;
/** The writer's operations, one after the other: sends, and each interval's commit. */
let lane: Promise<void> = Promise.resolve();
const enqueue = (operation: () => Promise<void>) => {
  lane = lane.then(operation);
  return lane;
};
let failed = false;
const fail = (error: unknown) => {
  if (failed) return;
  failed = true;
  process.stderr.write(`pass-through: ${(error as Error).stack ?? error}\n`);
  process.exit(1);
};

const commits = setInterval(() => {
  enqueue(async () => {
    // What was read up to now: sent with this transaction, committed with its offset.
    const batch = buffered;
    buffered = [];
    const upTo = position;
    await writer.send(batch);
    if (upTo === committedPosition) return;
    await writer.commit(await reader.offsetsAt(upTo, checkpoint++));
    committedPosition = upTo;
  }).catch(fail);
}, COMMIT_INTERVAL_MS);

const stop = async () => {
  clearInterval(commits);
  await reader.close().catch(() => {});
  await writer.close().catch(() => {});
  process.exit(0);
};
process.once("SIGTERM", () => void stop());

process.stdout.write("ready\n");
try {
  for await (const records of reader.start(from)) {
    for (const record of records)
      buffered.push({ topic: output, partition: 0, value: record.value ?? undefined });
    position = (records.at(-1)?.offset ?? position - 1n) + 1n;
    if (buffered.length >= SEND_BATCH) {
      // Taken when its turn comes, as a commit takes what is left: a commit queued before
      // this send must not count records that only a later transaction carries.
      await enqueue(async () => {
        const batch = buffered;
        buffered = [];
        await writer.send(batch);
      });
    }
  }
} catch (error) {
  fail(error);
}
