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
  test("a divisor is kept", () => {
    assert.equal(alignParallelism(12, 4, 1, 12), 4);
    assert.equal(alignParallelism(12, 6, 1, 12), 6);
    assert.equal(alignParallelism(12, 12, 1, 12), 12);
    assert.equal(alignParallelism(12, 1, 1, 12), 1);
  });

  test("goes down to a divisor when that loses no capacity", () => {
    // ceil(12/5) = 3 = 12/4: the busiest subtask owns 3 partitions either way.
    assert.equal(alignParallelism(12, 5, 1, 12), 4);
    assert.equal(alignParallelism(12, 7, 1, 12), 6);
    assert.equal(alignParallelism(12, 11, 1, 12), 6);
  });

  test("goes up to a divisor when going down would lose capacity", () => {
    // 10 partitions: 3 subtasks → busiest owns 4; 2 would mean 5, so the next divisor is 5.
    assert.equal(alignParallelism(10, 3, 1, 10), 5);
    assert.equal(alignParallelism(16, 3, 1, 16), 4);
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
    // 4 would do, but min is 5: the nearest divisor above.
    assert.equal(alignParallelism(12, 5, 5, 12), 6);
    assert.equal(alignParallelism(12, 5, 1, 5), 4);
    // min above the partition count: the cap wins.
    assert.equal(alignParallelism(4, 6, 6, 10), 4);
  });

  test("no divisor in range: the cheapest parallelism with the same busiest load", () => {
    // 10 partitions, at most 4: 4 gives 3,3,2,2 and nothing cheaper keeps 3 per subtask.
    assert.equal(alignParallelism(10, 4, 1, 4), 4);
    // 13 partitions (prime), at most 12: 8 → 2 on the busiest; 7 does the same with one fewer.
    assert.equal(alignParallelism(13, 8, 1, 12), 7);
    // ...but 13 is a divisor within range when the max allows it.
    assert.equal(alignParallelism(13, 8, 1, 13), 13);
    // min bounds the fallback.
    assert.equal(alignParallelism(13, 8, 8, 12), 8);
  });

  test("result always in range and never below the desired capacity", () => {
    for (let n = 1; n <= 48; n++) {
      for (let min = 1; min <= n; min += 3) {
        for (let max = min; max <= n + 2; max += 2) {
          for (let desired = 0; desired <= n + 2; desired++) {
            const p = alignParallelism(n, desired, min, max);
            const hi = Math.min(max, n);
            const wanted = Math.min(hi, Math.max(min, desired));
            const label = `n=${n} desired=${desired} min=${min} max=${max} → ${p}`;
            assert.ok(p >= Math.min(min, hi) && p <= hi, label);
            assert.ok(Math.ceil(n / p) <= Math.ceil(n / wanted), label);
            // Evenness: a divisor whenever one in range keeps the capacity, and the smallest.
            const divisors: number[] = [];
            for (let d = Math.min(min, hi); d <= hi; d++) {
              if (n % d === 0 && n / d <= Math.ceil(n / wanted)) divisors.push(d);
            }
            if (divisors.length > 0) assert.equal(p, divisors[0], label);
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
