import assert from "node:assert/strict";
import { test } from "node:test";
import { seriesValues } from "../../test-e2e/support/metrics-text.ts";
import { NO_WATERMARK } from "./engine/time.ts";
import { type MetricsSource, runtimeMetrics, type TaskFigures, taskStatus } from "./metrics.ts";

const NOW = 1_000_000;

function figures(partition: number, overrides: Partial<TaskFigures> = {}): TaskFigures {
  return {
    task: { topic: "in", partition },
    position: 10n,
    watermark: undefined,
    processorMetrics: { lateRecords: 0, lateDropped: 0 },
    stateBytes: () => 100,
    plan: undefined,
    recordsIn: 10,
    recordsOut: 20,
    failures: { decode: 1, user: 0, encode: 0 },
    deadLetters: 0,
    skipped: 1,
    checkpointFailures: 0,
    busyMs: 1500,
    lastCheckpoint: undefined,
    checkpointedAt: NOW - 3_000,
    processingSince: NOW - 5_000,
    ...overrides,
  };
}

/** The registry's series → value, as Prometheus would read them. */
async function series(source: MetricsSource): Promise<Map<string, number>> {
  return seriesValues(await runtimeMetrics(source).metrics());
}

const ends = new Map([["in-0", 25n]]);
const source = (runners: TaskFigures[]): MetricsSource => ({
  runners,
  end: (task) => ends.get(`${task.topic}-${task.partition}`),
  now: () => NOW,
});

test("backlog per partition is the high watermark minus the position, once the end is known", async () => {
  const values = await series(source([figures(0), figures(1)]));
  assert.equal(values.get('weir_source_backlog_records{topic="in",partition="0"}'), 15);
  assert.equal(
    values.get('weir_source_backlog_records{topic="in",partition="1"}'),
    undefined,
    "no figure before the first refresh rather than a wrong one",
  );
  const caughtUp = await series(source([figures(0, { position: 30n })]));
  assert.equal(caughtUp.get('weir_source_backlog_records{topic="in",partition="0"}'), 0);
});

test("pod totals sum the tasks; failures by kind, drops by reason", async () => {
  const values = await series(
    source([
      figures(0),
      figures(1, {
        failures: { decode: 0, user: 2, encode: 1 },
        processorMetrics: { lateRecords: 3, lateDropped: 2 },
      }),
    ]),
  );
  assert.equal(values.get("weir_records_in_total"), 20);
  assert.equal(values.get("weir_records_out_total"), 40);
  assert.equal(values.get("weir_busy_seconds_total"), 3);
  assert.equal(values.get('weir_record_failures_total{kind="decode"}'), 1);
  assert.equal(values.get('weir_record_failures_total{kind="user"}'), 2);
  assert.equal(values.get('weir_record_failures_total{kind="encode"}'), 1);
  assert.equal(values.get("weir_late_records_total"), 3);
  assert.equal(values.get('weir_dropped_records_total{reason="late"}'), 2);
  assert.equal(values.get('weir_dropped_records_total{reason="failure"}'), 2);
  assert.equal(values.get("weir_tasks"), 2);
});

test("watermark lag only for tasks with event time; checkpoint figures of the last one", async () => {
  const values = await series(
    source([
      figures(0, { watermark: NOW - 4_000 }),
      figures(1, { watermark: NO_WATERMARK }),
      figures(2, {
        lastCheckpoint: {
          offset: 10n,
          at: NOW - 500,
          bytes: 2048,
          durationMs: 250,
          kind: "delta",
          chainLength: 7,
        },
      }),
    ]),
  );
  assert.equal(values.get('weir_checkpoint_chain_length{topic="in",partition="2"}'), 7);
  assert.equal(values.get('weir_checkpoint_delta{topic="in",partition="2"}'), 1);
  assert.equal(values.get('weir_checkpoint_chain_length{topic="in",partition="0"}'), undefined);
  assert.equal(values.get('weir_watermark_lag_seconds{topic="in",partition="0"}'), 4);
  assert.equal(values.get('weir_watermark_lag_seconds{topic="in",partition="1"}'), undefined);
  assert.equal(values.get('weir_watermark_lag_seconds{topic="in",partition="2"}'), undefined);
  assert.equal(values.get('weir_checkpoint_size_bytes{topic="in",partition="2"}'), 2048);
  assert.equal(values.get('weir_checkpoint_duration_seconds{topic="in",partition="2"}'), 0.25);
  assert.equal(values.get('weir_checkpoint_size_bytes{topic="in",partition="0"}'), undefined);
  assert.equal(values.get('weir_checkpoint_age_seconds{topic="in",partition="0"}'), 3);
  assert.equal(values.get('weir_state_size_bytes{topic="in",partition="0"}'), 100);
});

test("status carries each task's position, end, lag and last checkpoint", () => {
  const [task] = taskStatus(
    source([
      figures(0, {
        watermark: 5,
        lastCheckpoint: {
          offset: 8n,
          at: NOW - 500,
          bytes: 2048,
          durationMs: 250,
          kind: "full",
          chainLength: 0,
        },
      }),
    ]),
  );
  assert.deepEqual(
    {
      position: task?.position,
      endOffset: task?.endOffset,
      lag: task?.lag,
      watermark: task?.watermark,
      lastCheckpoint: task?.lastCheckpoint,
      checkpointAgeSeconds: task?.checkpointAgeSeconds,
    },
    {
      position: "10",
      endOffset: "25",
      lag: 15,
      watermark: 5,
      lastCheckpoint: {
        offset: "8",
        at: new Date(NOW - 500).toISOString(),
        bytes: 2048,
        kind: "full",
        chainLength: 0,
      },
      checkpointAgeSeconds: 3,
    },
  );
});
