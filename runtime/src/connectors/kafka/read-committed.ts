// What a read_committed consumer must not see: the records of aborted transactions.
//
// The broker answers a read_committed fetch with data up to the last stable offset and, per
// partition, the aborted transactions overlapping it (producer id, first offset). Every
// transaction listed there is aborted for good; its abort marker may lie beyond the end of this
// response (a fetch is cut at its byte limit, and a long transaction interleaves with other
// producers' records). The client we use (@platformatic/kafka 2.12) drops an aborted
// transaction's batches only when its marker is in the same response, so a downstream task
// applied the records of an upstream task's aborted transaction (a pod killed mid-checkpoint):
// the over-counting of issue 13. This is the Java client's rule instead, applied in order:
// from a listed transaction's first offset on, that producer's transactional batches are
// skipped until its abort marker.
import type { fetchV17, RecordsBatch } from "@platformatic/kafka";

type FetchResponsePartition = fetchV17.FetchResponsePartition;

/** Record batch attribute bits (Kafka's message format v2). */
const TRANSACTIONAL = 1 << 4;
export const CONTROL = 1 << 5;
/** A control record's key: version (int16), type (int16): 0 = abort, 1 = commit. */
const ABORT_MARKER = 0;

function isAbortMarker(batch: RecordsBatch): boolean {
  return (
    (batch.attributes & CONTROL) !== 0 && batch.records[0]?.key?.readInt16BE(2) === ABORT_MARKER
  );
}

/**
 * The partition's batches without those of aborted transactions. Control batches stay (the
 * consumer advances its position past them); data batches of other producers, committed
 * transactions and non-transactional producers stay in order.
 */
export function withoutAbortedBatches(partition: FetchResponsePartition): RecordsBatch[] {
  const batches = partition.records ?? [];
  const aborted = [...(partition.abortedTransactions ?? [])].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
  );
  if (aborted.length === 0) return batches;
  const abortedProducers = new Set<bigint>();
  let next = 0;
  const kept: RecordsBatch[] = [];
  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    // Transactions that began at or before this batch's end are aborted from here on.
    while (next < aborted.length && (aborted[next]?.firstOffset ?? 0n) <= lastOffset) {
      abortedProducers.add(aborted[next]?.producerId ?? -1n);
      next++;
    }
    if (isAbortMarker(batch)) {
      abortedProducers.delete(batch.producerId);
      kept.push(batch);
      continue;
    }
    const transactional = (batch.attributes & TRANSACTIONAL) !== 0;
    const control = (batch.attributes & CONTROL) !== 0;
    if (transactional && !control && abortedProducers.has(batch.producerId)) continue;
    kept.push(batch);
  }
  return kept;
}
