import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { alignParallelism, ownerOf, partitionsOf } from "./assignment.ts";

describe("partitionsOf", () => {
  test("contiguous ranges, the first N mod P subtasks own one more", () => {
    assert.deepEqual(partitionsOf(10, 3, 0), [0, 1, 2, 3]);
    assert.deepEqual(partitionsOf(10, 3, 1), [4, 5, 6]);
    assert.deepEqual(partitionsOf(10, 3, 2), [7, 8, 9]);
    assert.deepEqual(partitionsOf(12, 4, 3), [9, 10, 11]);
  });

  test("boundaries: one subtask owns all, one partition per subtask", () => {
    assert.deepEqual(partitionsOf(5, 1, 0), [0, 1, 2, 3, 4]);
    assert.deepEqual(partitionsOf(1, 1, 0), [0]);
    for (let i = 0; i < 7; i++) assert.deepEqual(partitionsOf(7, 7, i), [i]);
  });

  test("every partition owned by exactly one subtask, balanced within one, ownerOf agrees", () => {
    for (let n = 1; n <= 40; n++) {
      for (let p = 1; p <= n; p++) {
        const seen: number[] = [];
        const sizes: number[] = [];
        for (let i = 0; i < p; i++) {
          const owned = partitionsOf(n, p, i);
          sizes.push(owned.length);
          for (const partition of owned) {
            assert.equal(ownerOf(n, p, partition), i, `n=${n} p=${p} partition=${partition}`);
          }
          seen.push(...owned);
        }
        // In order and without gaps or repeats, so the concatenation is exactly 0..n-1.
        assert.deepEqual(
          seen,
          Array.from({ length: n }, (_, k) => k),
          `n=${n} p=${p}`,
        );
        assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `n=${n} p=${p} sizes=${sizes}`);
        assert.ok(Math.min(...sizes) >= 1);
      }
    }
  });

  test("deterministic", () => {
    assert.deepEqual(partitionsOf(64, 9, 4), partitionsOf(64, 9, 4));
  });

  test("rejects bad inputs with clear errors", () => {
    assert.throws(() => partitionsOf(4, 0, 0), /parallelism must be an integer >= 1, got 0/);
    assert.throws(() => partitionsOf(4, 5, 0), /parallelism 5 exceeds the partition count 4/);
    assert.throws(() => partitionsOf(4, 2, 2), /subtask 2 is out of range for parallelism 2/);
    assert.throws(() => partitionsOf(4, 2, -1), /subtask must be an integer >= 0, got -1/);
    assert.throws(() => partitionsOf(4, 1.5, 0), /parallelism must be an integer/);
    assert.throws(() => partitionsOf(0, 1, 0), /partitionCount must be an integer >= 1, got 0/);
    assert.throws(() => partitionsOf(Number.NaN, 1, 0), /partitionCount must be an integer/);
  });

  test("ownerOf rejects a partition out of range", () => {
    assert.throws(() => ownerOf(4, 2, 4), /partition 4 is out of range for 4 partitions/);
    assert.throws(() => ownerOf(4, 2, -1), /partition must be an integer >= 0/);
    assert.throws(() => ownerOf(4, 8, 0), /exceeds the partition count/);
  });
});

describe("alignParallelism", () => {
  test("a parallelism whose every pod lightens the busiest subtask is kept", () => {
    assert.equal(alignParallelism(12, 4, 1, 12), 4);
    assert.equal(alignParallelism(12, 6, 1, 12), 6);
    assert.equal(alignParallelism(12, 12, 1, 12), 12);
    assert.equal(alignParallelism(12, 1, 1, 12), 1);
    // 60 partitions on 7 pods: 9 or 8 each, more capacity than 6 pods and less than 8.
    assert.equal(alignParallelism(60, 7, 1, 60), 7);
    assert.equal(alignParallelism(60, 8, 1, 60), 8);
  });

  test("goes down when fewer pods keep the busiest subtask's load", () => {
    // ceil(12/5) = 3 = 12/4: the busiest subtask owns 3 partitions either way.
    assert.equal(alignParallelism(12, 5, 1, 12), 4);
    assert.equal(alignParallelism(12, 7, 1, 12), 6);
    assert.equal(alignParallelism(12, 11, 1, 12), 6);
    // Not up to a divisor: 10 partitions on 3 pods (4, 3, 3) have more capacity than 2.
    assert.equal(alignParallelism(10, 3, 1, 10), 3);
    assert.equal(alignParallelism(60, 11, 1, 60), 10);
  });

  test("fractional desired rounds up", () => {
    assert.equal(alignParallelism(12, 2.1, 1, 12), 3);
    assert.equal(alignParallelism(12, 0.2, 1, 12), 1);
  });

  test("clamped to [min, max] and the partition count", () => {
    assert.equal(alignParallelism(12, 100, 1, 12), 12);
    assert.equal(alignParallelism(12, 100, 1, 50), 12);
    assert.equal(alignParallelism(12, 0, 2, 12), 2);
    assert.equal(alignParallelism(12, -3, 1, 12), 1);
    // 4 would do, but min is 5.
    assert.equal(alignParallelism(12, 5, 5, 12), 5);
    assert.equal(alignParallelism(12, 5, 1, 5), 4);
    // min above the partition count: the cap wins.
    assert.equal(alignParallelism(4, 6, 6, 10), 4);
    assert.equal(alignParallelism(13, 8, 8, 12), 8);
  });

  test("in range, never less capacity than desired, and no pod that adds none", () => {
    for (let n = 1; n <= 48; n++) {
      for (let min = 1; min <= n; min += 3) {
        for (let max = min; max <= n + 2; max += 2) {
          for (let desired = 0; desired <= n + 2; desired++) {
            const p = alignParallelism(n, desired, min, max);
            const hi = Math.min(max, n);
            const lo = Math.min(min, hi);
            const wanted = Math.min(hi, Math.max(min, desired));
            const label = `n=${n} desired=${desired} min=${min} max=${max} → ${p}`;
            assert.ok(p >= lo && p <= hi, label);
            assert.ok(Math.ceil(n / p) <= Math.ceil(n / wanted), label);
            // One pod fewer would load the busiest subtask more (unless min holds it up).
            if (p > lo) assert.ok(Math.ceil(n / (p - 1)) > Math.ceil(n / wanted), label);
          }
        }
      }
    }
  });

  test("rejects bad limits", () => {
    assert.throws(
      () => alignParallelism(12, 4, 5, 3),
      /min parallelism 5 exceeds max parallelism 3/,
    );
    assert.throws(() => alignParallelism(12, 4, 0, 3), /min must be an integer >= 1, got 0/);
    assert.throws(() => alignParallelism(0, 4, 1, 3), /partitionCount must be an integer >= 1/);
    assert.throws(
      () => alignParallelism(12, Number.NaN, 1, 3),
      /desired parallelism must be a finite number/,
    );
    assert.throws(
      () => alignParallelism(12, Infinity, 1, 3),
      /desired parallelism must be a finite number/,
    );
  });
});
