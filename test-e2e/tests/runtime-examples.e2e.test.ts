// The three examples of runtime/examples/ run by the runtime process against the real broker
// and MinIO: their golden outputs (the ones the in-memory unit tests check) read back with
// read_committed. The clicks example also shows late and out-of-order events landing in the
// right event-time windows through Kafka: a late click within the allowed lateness updates its
// fired window, a later one goes to the side output, out-of-order ones count where they belong.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  clicksPerUserGolden,
  filterEnrichGolden,
  type Golden,
  wordCountGolden,
} from "../../runtime/examples/golden.ts";
import { inputProducer, readTopicSettled } from "../support/kafka.ts";
import {
  NO_TIME_RETENTION,
  RuntimeTestbed,
  runtimeReady,
  runtimeStatus,
  scrape,
} from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";

const bed = new RuntimeTestbed();
const fixture = join(import.meta.dirname, "..", "fixtures", "runtime-example.ts");

after(() => bed.tearDown());

interface ExampleRun {
  example: string;
  golden: Golden;
  /** The example's default output topics → the suffix its renamed topic has after the job name. */
  outputs: Record<string, string>;
  /**
   * Inputs one batch at a time: each is produced once the last stage processed the previous
   * one, as the in-memory run feeds them (event-time results depend on batch boundaries).
   */
  paced?: boolean;
  /** Appended input that ends the run: moves the watermark past every golden window. */
  end?: string[];
  /** What the pod's metrics say once the golden output is in (`name`: the job's). */
  metrics?: (metrics: Map<string, number>, name: string) => void;
}

async function runExample(run: ExampleRun): Promise<void> {
  // One partition each, so that the order of the golden output is the order read back. The
  // internal topics (repartition, late side output) are the runtime's to create.
  const { name, input, output } = await bed.job(run.example);
  const renamed = (topic: string) => `${name}${run.outputs[topic]}`;
  // The runtime's own output topics (a late side output) made first, kept from time retention.
  const others = Object.keys(run.outputs)
    .map(renamed)
    .filter((topic) => topic !== output);
  if (others.length > 0) {
    await bed.admin.createTopics({
      topics: others,
      partitions: 1,
      replicas: 1,
      configs: [NO_TIME_RETENTION],
    });
  }

  const pod = bed.start({
    module: fixture,
    job: name,
    config: {
      job: { config: { example: run.example, name, input, output } },
    },
  });
  await runtimeReady(pod);

  const producer = inputProducer();
  const inputs = [
    ...run.golden.inputs,
    ...(run.end ?? []).map((value) => ({ value, timestamp: 0 })),
  ];
  const tasks = async () => (await runtimeStatus(pod)).tasks;
  for (const [i, record] of inputs.entries()) {
    await producer.send({
      messages: [
        {
          topic: input,
          partition: 0,
          value: record.value,
          timestamp: BigInt(record.timestamp ?? 0),
        },
      ],
    });
    if (run.paced) {
      // Input i is committed by the first stage; the last stage has read everything the first
      // wrote by then (its elements and its watermark-only records alike).
      const written = await eventually(`input ${i} committed by the first stage`, async () => {
        const first = (await tasks())[0];
        return first && BigInt(first.lastCheckpoint?.offset ?? 0) > i
          ? first.recordsOut
          : undefined;
      });
      await eventually(`input ${i} processed by the last stage`, async () =>
        ((await tasks()).at(-1)?.recordsIn ?? 0) >= written ? true : undefined,
      );
      // And its event time with it: the golden output is that of one input at a time, each
      // one's watermark reaching the last stage (a watermark-only record may follow the
      // input's own records in a later transaction) before the next input is read.
      await eventually(`input ${i}'s watermark at the last stage`, async () => {
        const all = await tasks();
        const first = all[0]?.watermark;
        const last = all.at(-1)?.watermark;
        return first === undefined || (last !== undefined && last >= first) ? true : undefined;
      });
    }
  }
  await producer.close();

  for (const topic of new Set(run.golden.outputs.map((o) => renamed(o.topic)))) {
    const expected = run.golden.outputs
      .filter((o) => renamed(o.topic) === topic)
      .map((o) => ({ key: o.key, value: o.value, timestamp: BigInt(o.timestamp) }));
    const { records } = await readTopicSettled(topic, expected.length);
    assert.deepEqual(
      records.map((r) => ({
        key: r.key,
        value: JSON.parse(r.value ?? "null"),
        timestamp: r.timestamp,
      })),
      expected,
      `${run.example}: ${topic} holds the golden output, in order, exactly once`,
    );
  }
  run.metrics?.(await scrape(pod), name);
  pod.process.kill("SIGTERM");
}

test("word-count through Kafka: the golden running counts", () =>
  runExample({
    example: "word-count",
    golden: wordCountGolden,
    outputs: { "word-counts": "-out" },
  }));

test("filter-enrich through Kafka: the golden enriched events", () =>
  runExample({
    example: "filter-enrich",
    golden: filterEnrichGolden,
    outputs: { "page-views-enriched": "-out" },
  }));

test("clicks-per-user through Kafka: late and out-of-order clicks land in the golden windows", () =>
  runExample({
    example: "clicks-per-user",
    golden: clicksPerUserGolden,
    outputs: {
      "clicks-per-user": "-out",
      "clicks-per-user-clicks-per-minute-late": "-clicks-per-minute-late",
    },
    paced: true,
    // Far in event time: completes the last golden windows, never fires its own.
    end: [JSON.stringify({ user: "zz", url: "/", ts: 1e12 })],
    metrics: (metrics, name) => {
      const windows = `{topic="${name}-clicks-per-minute-repartition",partition="0"}`;
      assert.equal(metrics.get("weir_late_records_total"), 1, "the click too late for lateness");
      assert.equal(metrics.get('weir_dropped_records_total{reason="late"}'), 0, "side output");
      // Event time ends at 1e12 ms (2001) less the 5 s bound: decades behind the clock.
      const lag = metrics.get(`weir_watermark_lag_seconds${windows}`) ?? 0;
      assert.ok(Math.abs(lag - (Date.now() - (1e12 - 5_001)) / 1000) < 60, `watermark lag ${lag}`);
    },
  }));
