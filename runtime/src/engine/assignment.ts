// Which source partitions (= tasks) a subtask owns, and which parallelisms spread them evenly.
//
// Assignment rule: contiguous ranges, as Kafka's RangeAssignor does. With N partitions and P
// subtasks, each subtask owns floor(N/P) partitions and the first N mod P subtasks own one
// more, in partition order. Why ranges rather than round-robin: both are deterministic and
// balanced to within one partition, but ranges keep more partitions with the same subtask
// index across a rescale (N=12, 3→4: 6 of 12 stay put versus 3 of 12 round-robin), and a
// subtask's tasks read as one range ("4-7") in status, logs and metrics.
//
// Parallelism never exceeds the partition count: a subtask without a partition would own no
// state and do no work, so it is rejected rather than silently idle.

function requireInteger(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

function validate(partitionCount: number, parallelism: number): void {
  requireInteger("partitionCount", partitionCount, 1);
  requireInteger("parallelism", parallelism, 1);
  if (parallelism > partitionCount) {
    throw new Error(
      `parallelism ${parallelism} exceeds the partition count ${partitionCount}: ` +
        "every subtask must own at least one partition",
    );
  }
}

/** The first partition of `subtask` and how many it owns. */
function range(
  partitionCount: number,
  parallelism: number,
  subtask: number,
): { first: number; count: number } {
  const base = Math.floor(partitionCount / parallelism);
  const extra = partitionCount % parallelism;
  return {
    first: subtask * base + Math.min(subtask, extra),
    count: base + (subtask < extra ? 1 : 0),
  };
}

/** The partitions owned by subtask `subtask` (0-based) of `parallelism`, ascending. */
export function partitionsOf(
  partitionCount: number,
  parallelism: number,
  subtask: number,
): number[] {
  validate(partitionCount, parallelism);
  requireInteger("subtask", subtask, 0);
  if (subtask >= parallelism) {
    throw new Error(
      `subtask ${subtask} is out of range for parallelism ${parallelism} (0..${parallelism - 1})`,
    );
  }
  const { first, count } = range(partitionCount, parallelism, subtask);
  return Array.from({ length: count }, (_, i) => first + i);
}

/** The subtask that owns `partition`: the inverse of `partitionsOf`. */
export function ownerOf(partitionCount: number, parallelism: number, partition: number): number {
  validate(partitionCount, parallelism);
  requireInteger("partition", partition, 0);
  if (partition >= partitionCount) {
    throw new Error(
      `partition ${partition} is out of range for ${partitionCount} partitions (0..${partitionCount - 1})`,
    );
  }
  const base = Math.floor(partitionCount / parallelism);
  const extra = partitionCount % parallelism;
  // The first `extra` subtasks own base+1 partitions each, the rest own base.
  const inLarger = extra * (base + 1);
  return partition < inLarger
    ? Math.floor(partition / (base + 1))
    : extra + Math.floor((partition - inLarger) / base);
}

/**
 * The parallelism to run instead of `desired`: the fewest subtasks that give the busiest one no
 * more partitions than `desired` would, within [min, max] and never above `partitionCount`.
 *
 * A job's throughput is bounded by its busiest subtask, which owns ceil(N/P) partitions (the
 * spread differs by at most one partition between subtasks): so P=5 of 12 partitions has no
 * more capacity than P=4 (3 partitions on the busiest subtask), and P=11 none more than P=6.
 * `desired` is rounded up and clamped into [max(min, 1), min(max, N)]; with k = ceil(N/desired)
 * partitions on its busiest subtask, the answer is max(lo, ceil(N/k)). Every pod of it lightens
 * the busiest subtask. Unlike rounding to a divisor of N (an even spread, Flink's default), no
 * pod is added that adds no capacity: 60 partitions and desired 7 run on 7 pods (9 or 8
 * partitions each), not 10. When `min` exceeds the partition count, the partition count
 * wins (the hard cap).
 */
export function alignParallelism(
  partitionCount: number,
  desired: number,
  min: number,
  max: number,
): number {
  requireInteger("partitionCount", partitionCount, 1);
  requireInteger("min", min, 1);
  requireInteger("max", max, 1);
  if (min > max) throw new Error(`min parallelism ${min} exceeds max parallelism ${max}`);
  if (!Number.isFinite(desired))
    throw new Error(`desired parallelism must be a finite number, got ${String(desired)}`);
  const hi = Math.min(max, partitionCount);
  const lo = Math.min(min, hi);
  const wanted = Math.min(hi, Math.max(lo, Math.ceil(desired)));
  const busiest = Math.ceil(partitionCount / wanted);
  return Math.max(lo, Math.ceil(partitionCount / busiest));
}
