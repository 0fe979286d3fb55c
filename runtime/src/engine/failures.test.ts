import assert from "node:assert/strict";
import { test } from "node:test";
import { job, kafkaSink, kafkaSource } from "../api/job.ts";
import { DEAD_LETTER_HEADERS, deadLetter, RecordFailed, resolveFailurePolicy } from "./failures.ts";
import type { Failure } from "./pipeline.ts";

const task = { topic: "in", partition: 2 };
const failure = (operator: string, record = true): Failure => ({
  record: record
    ? {
        key: Buffer.from("k"),
        value: Buffer.from([0xff, 0xfe]),
        timestamp: 1234,
        partition: 2,
        offset: 41n,
      }
    : null,
  error: new Error("boom"),
  stage: 0,
  operator,
});

test("default: dead-letter when a topic is configured, else skip and count", () => {
  assert.deepEqual(resolveFailurePolicy(), { action: "skip" });
  assert.deepEqual(resolveFailurePolicy({ deadLetterTopic: "dlq" }), {
    action: "dead-letter",
    topic: "dlq",
  });
});

test("the runtime configuration overrides the job field by field", () => {
  assert.deepEqual(resolveFailurePolicy({ deadLetterTopic: "dlq" }, { action: "fail" }), {
    action: "fail",
  });
  assert.deepEqual(resolveFailurePolicy({ action: "fail" }, { deadLetterTopic: "ops-dlq" }), {
    action: "fail",
  });
  assert.deepEqual(
    resolveFailurePolicy({ action: "skip" }, { action: "dead-letter", deadLetterTopic: "x" }),
    {
      action: "dead-letter",
      topic: "x",
    },
  );
  assert.deepEqual(resolveFailurePolicy({ deadLetterTopic: "a" }, { deadLetterTopic: "b" }), {
    action: "dead-letter",
    topic: "b",
  });
});

test("settings that make no policy are refused with a clear error", () => {
  assert.throws(() => resolveFailurePolicy({ action: "dead-letter" }), /needs a deadLetterTopic/);
  assert.throws(
    () => resolveFailurePolicy({}, { action: "retry" as never }),
    /action must be "dead-letter", "skip" or "fail", got "retry"/,
  );
});

test("onFailure() records the job's setting and validates it", () => {
  const built = job("j")
    .onFailure({ action: "fail" })
    .source(kafkaSource({ topic: "in", value: "string" }))
    .sink(kafkaSink({ topic: "out" }));
  assert.deepEqual(built.failures, { action: "fail" });
  assert.throws(() => job("j").onFailure({ action: "dead-letter" }), /needs a deadLetterTopic/);
  assert.throws(() => job("j").onFailure({ deadLetterTopic: "bad topic" }), /invalid topic/);
});

test("a dead letter holds the original bytes, and the error and source offset in headers", () => {
  const message = deadLetter(failure("source"), task, "dlq", 99);
  assert.equal(message.topic, "dlq");
  assert.deepEqual(message.key, Buffer.from("k"));
  assert.deepEqual(message.value, Buffer.from([0xff, 0xfe]));
  assert.equal(message.timestamp, 1234n);
  const headers = Object.fromEntries(
    [...(message.headers as Map<Buffer, Buffer>)].map(([k, v]) => [k.toString(), v.toString()]),
  );
  assert.deepEqual(headers, {
    [DEAD_LETTER_HEADERS.error]: "boom",
    [DEAD_LETTER_HEADERS.kind]: "decode",
    [DEAD_LETTER_HEADERS.operator]: "source",
    [DEAD_LETTER_HEADERS.stage]: "0",
    [DEAD_LETTER_HEADERS.topic]: "in",
    [DEAD_LETTER_HEADERS.partition]: "2",
    [DEAD_LETTER_HEADERS.offset]: "41",
  });
});

test("a failed timer's dead letter has no record and no offset", () => {
  const message = deadLetter(failure("counts", false), task, "dlq", 99);
  assert.equal(message.key, undefined);
  assert.equal(message.value, undefined);
  assert.equal(message.timestamp, 99n);
  const names = [...(message.headers as Map<Buffer, Buffer>).keys()].map(String);
  assert.ok(!names.includes(DEAD_LETTER_HEADERS.offset));
  assert.ok(names.includes(DEAD_LETTER_HEADERS.operator));
});

test("RecordFailed names the task, the offset, the operator and the error", () => {
  const error = new RecordFailed(failure("enrich"), task);
  assert.equal(error.message, "in-2: offset 41 failed in enrich: boom");
  assert.deepEqual(error.details, {
    task: "in-2",
    offset: "41",
    operator: "enrich",
    kind: "user",
    error: "boom",
  });
});
