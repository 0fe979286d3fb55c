import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";
import { backoffDelay } from "./backoff.ts";
import { type WorkOutcome, WorkQueue, type WorkResult } from "./work-queue.ts";

/** Lets every pending promise callback run (timers are mocked; setImmediate is not). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A worker the test drives by hand: each call waits until the test ends it with `finish`
 * (or `fail`), and the worker records which keys ran and how many ran at once per key.
 */
function handWorker() {
  const calls: string[] = [];
  const running = new Map<string, (result: WorkResult | Error) => void>();
  let overlaps = 0;
  const worker = (key: string) => {
    calls.push(key);
    if (running.has(key)) overlaps++;
    return new Promise<WorkResult>((resolve, reject) => {
      running.set(key, (result) => {
        running.delete(key);
        if (result instanceof Error) reject(result);
        else resolve(result);
      });
    });
  };
  const end = async (key: string, result: WorkResult | Error) => {
    const finish = running.get(key);
    assert.ok(finish, `${key} is not running`);
    finish(result);
    await settle();
  };
  return {
    worker,
    calls,
    running: () => [...running.keys()].sort(),
    overlaps: () => overlaps,
    finish: (key: string, result?: WorkResult) => end(key, result),
    fail: (key: string) => end(key, new Error(`${key} failed`)),
  };
}

describe("WorkQueue", () => {
  beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"] }));
  afterEach(() => mock.timers.reset());

  test("a key added several times while waiting is processed once", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker, { concurrency: 1 });
    queue.add("a");
    queue.add("b");
    queue.add("c");
    queue.add("b");
    queue.add("c");
    assert.equal(queue.depth, 2);
    await w.finish("a");
    await w.finish("b");
    await w.finish("c");
    assert.deepEqual(w.calls, ["a", "b", "c"]);
    assert.equal(queue.depth, 0);
  });

  test("concurrency bounds the keys in progress; different keys run side by side", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker, { concurrency: 2 });
    for (const key of ["a", "b", "c"]) queue.add(key);
    assert.deepEqual(w.running(), ["a", "b"]);
    assert.equal(queue.depth, 1);
    await w.finish("b");
    assert.deepEqual(w.running(), ["a", "c"]);
  });

  test("a key added while it is processed is not run concurrently but once more after", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker, { concurrency: 4 });
    queue.add("a");
    queue.add("a");
    queue.add("a");
    await settle();
    assert.deepEqual(w.calls, ["a"], "the second add waits for the first run");
    await w.finish("a");
    assert.deepEqual(w.calls, ["a", "a"], "the dirty key runs again right after");
    await w.finish("a");
    assert.deepEqual(w.calls, ["a", "a"], "and only once for both adds");
    assert.equal(w.overlaps(), 0);
  });

  test("a failing key backs off exponentially up to the cap, and success resets it", async () => {
    const w = handWorker();
    const delays: number[] = [];
    const queue = new WorkQueue(w.worker, {
      backoff: { baseMs: 100, capMs: 350, jitter: 0 },
      hooks: [{ onRetry: (_key, _error, _attempt, delayMs) => delays.push(delayMs) }],
    });
    queue.add("a");
    for (const expected of [100, 200, 350, 350]) {
      await w.fail("a");
      assert.equal(delays.at(-1), expected);
      mock.timers.tick(expected - 1);
      await settle();
      assert.deepEqual(w.running(), [], `not retried before ${expected} ms`);
      mock.timers.tick(1);
      await settle();
      assert.deepEqual(w.running(), ["a"], `retried after ${expected} ms`);
    }
    assert.equal(queue.failures("a"), 4);
    await w.finish("a");
    assert.equal(queue.failures("a"), 0);
    queue.add("a");
    await w.fail("a");
    assert.equal(delays.at(-1), 100, "the back-off starts again from the base");
  });

  test("back-offs are per key", async () => {
    const w = handWorker();
    const delays = new Map<string, number>();
    const queue = new WorkQueue(w.worker, {
      backoff: { baseMs: 100, capMs: 10_000, jitter: 0 },
      hooks: [{ onRetry: (key, _error, _attempt, delayMs) => delays.set(key, delayMs) }],
    });
    queue.add("a");
    await w.fail("a");
    mock.timers.tick(100);
    await settle();
    await w.fail("a");
    queue.add("b");
    await w.fail("b");
    assert.deepEqual(Object.fromEntries(delays), { a: 200, b: 100 });
  });

  test("an add during a failing run does not skip the back-off", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker, { backoff: { baseMs: 100, capMs: 100, jitter: 0 } });
    queue.add("a");
    queue.add("a");
    await w.fail("a");
    assert.deepEqual(w.running(), []);
    mock.timers.tick(100);
    await settle();
    assert.deepEqual(w.running(), ["a"]);
  });

  test("requeueAfter runs the key again after the delay; an add in between runs it at once instead", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker);
    queue.add("a");
    await w.finish("a", { requeueAfter: 1_000 });
    mock.timers.tick(999);
    await settle();
    assert.equal(w.calls.length, 1);
    mock.timers.tick(1);
    await settle();
    assert.equal(w.calls.length, 2, "requeued after 1 s");

    await w.finish("a", { requeueAfter: 1_000 });
    queue.add("a");
    assert.equal(w.calls.length, 3, "an add does not wait for the scheduled run");
    await w.finish("a");
    mock.timers.tick(5_000);
    await settle();
    assert.equal(w.calls.length, 3, "the scheduled run was replaced by the add");
  });

  test("addAfter keeps the earliest of two scheduled runs", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker);
    queue.addAfter("a", 500);
    queue.addAfter("a", 2_000);
    mock.timers.tick(500);
    await settle();
    assert.deepEqual(w.calls, ["a"]);
    await w.finish("a");
    mock.timers.tick(2_000);
    await settle();
    assert.deepEqual(w.calls, ["a"]);
  });

  test("shutdown drops waiting work, ignores adds and waits for runs in progress", async () => {
    const w = handWorker();
    const queue = new WorkQueue(w.worker, { concurrency: 1 });
    queue.add("a");
    queue.add("b");
    queue.addAfter("c", 100);
    let done = false;
    const shutdown = queue.shutdown().then(() => {
      done = true;
    });
    queue.add("d");
    await settle();
    assert.equal(done, false, "shutdown waits for the run of a");
    await w.finish("a");
    await shutdown;
    assert.equal(done, true);
    mock.timers.tick(1_000);
    await settle();
    assert.deepEqual(w.calls, ["a"], "b, c and d never ran");
  });

  test("hooks see adds, depth and each run's outcome", async () => {
    const w = handWorker();
    const outcomes: WorkOutcome[] = [];
    const depths: number[] = [];
    let adds = 0;
    const queue = new WorkQueue(w.worker, {
      concurrency: 1,
      backoff: { baseMs: 10, capMs: 10, jitter: 0 },
      hooks: [
        {
          onAdd: () => adds++,
          onDepth: (depth) => depths.push(depth),
          onProcessed: (_key, outcome, seconds) => {
            assert.ok(seconds >= 0);
            outcomes.push(outcome);
          },
        },
      ],
    });
    queue.add("a");
    queue.add("b");
    await w.fail("a");
    await w.finish("b", { requeueAfter: 10 });
    mock.timers.tick(10);
    await settle();
    await w.finish("a");
    assert.deepEqual(outcomes, ["error", "requeue", "success"]);
    assert.equal(adds, 4, "two adds, one retry, one requeue");
    assert.equal(Math.max(...depths), 1, "b waited while a ran");
    assert.equal(depths.at(-1), 0);
  });
});

describe("backoffDelay", () => {
  const backoff = { baseMs: 1_000, capMs: 60_000, jitter: 0.5 };

  test("doubles from the base up to the cap", () => {
    const noJitter = () => 0;
    const delays = [1, 2, 3, 4, 6, 7, 30].map((n) => backoffDelay(n, backoff, noJitter));
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 32_000, 60_000, 60_000]);
  });

  test("jitter only shortens, by at most its fraction", () => {
    assert.equal(
      backoffDelay(3, backoff, () => 1),
      2_000,
    );
    assert.equal(
      backoffDelay(30, backoff, () => 0.999_999),
      30_000,
    );
  });
});

test("a delay beyond what a timer holds waits (Node would run it after 1 ms: a hot loop)", async () => {
  const calls: string[] = [];
  const queue = new WorkQueue(async (key) => {
    calls.push(key);
    return undefined;
  });
  queue.addAfter("a", 40 * 24 * 3_600_000);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(calls, []);
  await queue.shutdown();
});
