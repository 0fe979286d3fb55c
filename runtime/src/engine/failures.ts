// What happens to a record that fails to decode or throws in user code (a "failure" of the
// pipeline): the job's setting (`job(...).onFailure(...)`), overridden by the runtime
// configuration's `failures` key, decides. Pure: the task runner applies the decision.
import type { MessageToProduce } from "@platformatic/kafka";
import type { FailureSettings } from "../api/job.ts";
import type { TaskRef } from "../state/metadata.ts";
import type { Failure } from "./pipeline.ts";

export type FailurePolicy =
  | { action: "dead-letter"; topic: string }
  | { action: "skip" }
  | { action: "fail" };

/**
 * The operator's setting wins field by field over the job's. Without an action: dead-letter
 * when a topic is configured, else skip and count; neither default can crash-loop on a record.
 */
export function resolveFailurePolicy(
  job: FailureSettings = {},
  config: FailureSettings = {},
): FailurePolicy {
  const topic = config.deadLetterTopic ?? job.deadLetterTopic;
  const action = config.action ?? job.action ?? (topic === undefined ? "skip" : "dead-letter");
  switch (action) {
    case "dead-letter":
      if (topic === undefined)
        throw new Error('failures: action "dead-letter" needs a deadLetterTopic');
      return { action, topic };
    case "skip":
    case "fail":
      return { action };
    default:
      throw new Error(
        `failures: action must be "dead-letter", "skip" or "fail", got ${JSON.stringify(action)}`,
      );
  }
}

/** Failures grouped for metrics: bad bytes, user code, or an output the sink cannot encode. */
export function failureKind(failure: Failure): "decode" | "user" | "encode" {
  if (failure.operator === "source") return "decode";
  if (failure.operator === "sink") return "encode";
  return "user";
}

/** Header names of a dead letter (values are UTF-8 strings). */
export const DEAD_LETTER_HEADERS = {
  error: "weir.error",
  kind: "weir.error.kind",
  operator: "weir.operator",
  stage: "weir.stage",
  topic: "weir.source.topic",
  partition: "weir.source.partition",
  offset: "weir.source.offset",
} as const;

/**
 * The dead letter of a failure: the original key and value bytes untouched (so the record can
 * be replayed as it was), the error and where it came from in headers. A failed timer has no
 * record: its dead letter has no key or value, and no offset header.
 */
export function deadLetter(
  failure: Failure,
  task: TaskRef,
  topic: string,
  now: number,
): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const h = DEAD_LETTER_HEADERS;
  const headers = new Map<Buffer, Buffer>([
    [Buffer.from(h.error), Buffer.from(failure.error.message)],
    [Buffer.from(h.kind), Buffer.from(failureKind(failure))],
    [Buffer.from(h.operator), Buffer.from(failure.operator)],
    [Buffer.from(h.stage), Buffer.from(String(failure.stage))],
    [Buffer.from(h.topic), Buffer.from(task.topic)],
    [Buffer.from(h.partition), Buffer.from(String(task.partition))],
  ]);
  const record = failure.record;
  if (record !== null) headers.set(Buffer.from(h.offset), Buffer.from(String(record.offset)));
  return {
    topic,
    headers,
    timestamp: BigInt(record?.timestamp ?? now),
    ...(record?.key ? { key: record.key } : {}),
    ...(record?.value ? { value: record.value } : {}),
  };
}

/** A record failed under the "fail" policy: the task stops without committing it. */
export class RecordFailed extends Error {
  readonly details: {
    task: string;
    offset: string | undefined;
    operator: string;
    kind: string;
    error: string;
  };

  constructor(failure: Failure, task: TaskRef) {
    const where = failure.record ? `offset ${failure.record.offset}` : "a timer";
    super(
      `${task.topic}-${task.partition}: ${where} failed in ${failure.operator}: ${failure.error.message}`,
      { cause: failure.error },
    );
    this.details = {
      task: `${task.topic}-${task.partition}`,
      offset: failure.record ? String(failure.record.offset) : undefined,
      operator: failure.operator,
      kind: failureKind(failure),
      error: failure.error.message,
    };
  }
}
