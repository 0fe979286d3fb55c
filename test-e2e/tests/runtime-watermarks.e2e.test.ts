// Event time through a repartition topic, against the real broker and MinIO: the
// clicks-per-user example at parallelism 3 (three runtime processes) on a 6-partition input,
// one partition's clicks 20 s behind the others in event time. Each window task's watermark is
// the minimum over the six source tasks' (carried through the repartition topic), so no click
// of the lagging partition is late, and the windowed output read back (read_committed) is
// exactly the batch answer over the same input.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Click } from "../../runtime/examples/clicks-per-user.ts";
import { clicksPerMinute, laggingClicks } from "../../runtime/examples/golden.ts";
import { inputProducer, readTopicSettled } from "../support/kafka.ts";
import { RuntimeTestbed, runtimeReady, scrape } from "../support/runtime.ts";

const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "runtime-example.ts");

after(() => bed.tearDown());

const PARTITIONS = 6;
const PARALLELISM = 3;
const ROUNDS = 30;
/** Between rounds of input: the stream arrives over time, not as one backlog. */
const ROUND_MS = 200;

test("a partition 20 s behind in event time: no click late, windows equal the batch answer", async () => {
  const name = bed.jobName("watermarks");
  const input = `${name}-in`;
  const output = `${name}-out`;
  await bed.admin.createTopics({ topics: [input], partitions: PARTITIONS, replicas: 1 });
  await bed.admin.createTopics({ topics: [output], partitions: 1, replicas: 1 });

  const pods = Array.from({ length: PARALLELISM }, (_, subtask) =>
    bed.start({
      module: fixture,
      job: name,
      subtask,
      parallelism: PARALLELISM,
      config: { job: { config: { example: "clicks-per-user", name, input, output } } },
    }),
  );
  await Promise.all(pods.map((pod) => runtimeReady(pod)));

  // Event time starts half an hour ago, on a minute: the broker takes timestamps up to an hour
  // ahead of its clock, and the repartition records carry the clicks' event times.
  const start = Math.floor((Date.now() - 30 * 60_000) / 60_000) * 60_000;
  const clicks = laggingClicks({
    partitions: PARTITIONS,
    rounds: ROUNDS,
    clicksPerRound: 3,
    start,
    lagMs: 20_000,
    lagging: PARTITIONS - 1,
    seed: 13,
  });
  // One click per partition at a minute's start well past the others: the end of input. It
  // completes every window of the clicks and, 5 s of bound short of its own window's end,
  // fires nothing itself.
  const end = start + ROUNDS * 10_000 + 5 * 60_000;
  const ending = Array.from(
    { length: PARTITIONS },
    (): Click => ({ user: "end", url: "/", ts: end }),
  );
  const producer = inputProducer();
  const send = (batch: { partition: number; click: Click }[]) =>
    producer.send({
      messages: batch.map(({ partition, click }) => ({
        topic: input,
        partition,
        value: JSON.stringify(click),
      })),
    });
  for (let round = 0; round < ROUNDS; round++) {
    await send(
      clicks.flatMap((rounds, partition) =>
        (rounds[round] ?? []).map((click) => ({ partition, click })),
      ),
    );
    await sleep(ROUND_MS);
  }
  await send(ending.map((click, partition) => ({ partition, click })));
  await producer.close();

  const expected = clicksPerMinute([...clicks.flat(2), ...ending], end - 5_001);
  const read = await readTopicSettled(output, expected.length, { timeoutMs: 120_000 });
  const results = read.records
    .map((r) => ({ key: r.key, value: JSON.parse(r.value ?? "null"), timestamp: r.timestamp }))
    .sort((a, b) => a.value.start - b.value.start || String(a.key).localeCompare(String(b.key)));
  assert.deepEqual(
    results,
    expected.map((o) => ({ key: o.key, value: o.value, timestamp: BigInt(o.timestamp) })),
    "every window of every user once, with all of its clicks",
  );

  const late = await Promise.all(
    pods.map(async (pod) => (await scrape(pod)).get("weir_late_records_total") ?? 0),
  );
  assert.deepEqual(late, [0, 0, 0], "no click late, in any window task");
  for (const pod of pods) pod.process.kill("SIGTERM");
});
