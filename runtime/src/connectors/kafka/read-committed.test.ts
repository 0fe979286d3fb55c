import assert from "node:assert/strict";
import { test } from "node:test";
import type { RecordsBatch } from "@platformatic/kafka";
import { withoutAbortedBatches } from "./read-committed.ts";

const TRANSACTIONAL = 1 << 4;
const CONTROL = 1 << 5;

function data(producerId: bigint, firstOffset: bigint, count = 1, transactional = true) {
  return {
    firstOffset,
    lastOffsetDelta: count - 1,
    producerId,
    attributes: transactional ? TRANSACTIONAL : 0,
    records: Array.from({ length: count }, () => ({ key: null })),
  } as unknown as RecordsBatch;
}

function marker(producerId: bigint, offset: bigint, type: "abort" | "commit") {
  const key = Buffer.alloc(4);
  key.writeInt16BE(type === "abort" ? 0 : 1, 2);
  return {
    firstOffset: offset,
    lastOffsetDelta: 0,
    producerId,
    attributes: TRANSACTIONAL | CONTROL,
    records: [{ key }],
  } as unknown as RecordsBatch;
}

function offsetsLeft(
  records: RecordsBatch[],
  abortedTransactions: { producerId: bigint; firstOffset: bigint }[],
): string[] {
  const partition = { records, abortedTransactions } as Parameters<typeof withoutAbortedBatches>[0];
  return withoutAbortedBatches(partition).map((b) => `${b.producerId}@${b.firstOffset}`);
}

test("an aborted transaction whose marker lies beyond the response is dropped", () => {
  // Producer 7's transaction began at 10 and was aborted later than this response reaches: the
  // fetch was cut at its byte limit after other producers' records.
  const records = [data(7n, 10n, 3), data(8n, 13n, 2), marker(8n, 15n, "commit"), data(7n, 16n)];
  assert.deepEqual(offsetsLeft(records, [{ producerId: 7n, firstOffset: 10n }]), ["8@13", "8@15"]);
});

test("two aborted transactions of one producer in one response are both dropped", () => {
  const records = [
    data(7n, 0n, 2),
    marker(7n, 2n, "abort"),
    data(7n, 3n, 2),
    marker(7n, 5n, "commit"),
    data(7n, 6n, 2),
    marker(7n, 8n, "abort"),
    data(9n, 9n),
  ];
  const aborted = [
    { producerId: 7n, firstOffset: 6n },
    { producerId: 7n, firstOffset: 0n },
  ];
  assert.deepEqual(offsetsLeft(records, aborted), ["7@2", "7@3", "7@5", "7@8", "9@9"]);
});

test("a fetch that starts inside an aborted transaction drops the rest of it", () => {
  // The broker lists a transaction whose first offset is before the fetch offset.
  const records = [data(7n, 20n), data(8n, 21n), marker(7n, 22n, "abort"), data(7n, 23n)];
  assert.deepEqual(offsetsLeft(records, [{ producerId: 7n, firstOffset: 12n }]), [
    "8@21",
    "7@22",
    "7@23",
  ]);
});

test("committed, non-transactional and unlisted records are all kept", () => {
  const records = [data(1n, 0n, 1, false), data(2n, 1n), marker(2n, 2n, "commit")];
  assert.deepEqual(offsetsLeft(records, []), ["1@0", "2@1", "2@2"]);
  assert.deepEqual(offsetsLeft(records, [{ producerId: 3n, firstOffset: 0n }]), [
    "1@0",
    "2@1",
    "2@2",
  ]);
});
