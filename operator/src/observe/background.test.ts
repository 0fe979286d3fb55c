import assert from "node:assert/strict";
import { test } from "node:test";
import { BackgroundObservations } from "./background.ts";

/** A promise and the function that settles it. */
function later<T>() {
  let resolve: (value: T) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

test("a reconcile reads the latest at once; a stale one starts one fresh observation, and its landing queues the job", async () => {
  let now = 1_000;
  const landed: string[] = [];
  const observations = new BackgroundObservations((owner) => landed.push(owner), {
    now: () => now,
  });
  let started = 0;
  let pending = later<number>();
  const observe = () => {
    started++;
    return pending.promise;
  };
  assert.equal(observations.latest("ns/a", "metrics", 100, observe), undefined, "none yet");
  assert.equal(observations.latest("ns/a", "metrics", 100, observe), undefined);
  assert.equal(started, 1, "one observation under way at a time");
  pending.resolve(7);
  await pending.promise;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(landed, ["ns/a"]);
  assert.deepEqual(observations.latest("ns/a", "metrics", 100, observe), {
    value: 7,
    startedAt: 1_000,
  });
  assert.equal(started, 1, "fresh enough: nothing started");

  now = 1_200;
  pending = later<number>();
  assert.equal(
    observations.latest("ns/a", "metrics", 100, observe)?.value,
    7,
    "the old one meanwhile",
  );
  assert.equal(started, 2);
  pending.reject(new Error("hung up"));
  await pending.promise.catch(() => {});
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(
    observations.latest("ns/a", "metrics", 100, observe)?.value,
    7,
    "a failure keeps it",
  );
});

test("at most maxInFlight at once; forget drops an owner's", async () => {
  const observations = new BackgroundObservations(() => {}, { maxInFlight: 2 });
  const never = () => new Promise<number>(() => {});
  let started = 0;
  const counting = () => {
    started++;
    return never();
  };
  for (const key of ["a", "b", "c"]) observations.latest("ns/x", key, 0, counting);
  assert.equal(started, 2);
  const done = () => Promise.resolve(1);
  observations.latest("ns/y", "d", 0, done);
  observations.forget("ns/y");
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(observations.latest("ns/y", "d", 1_000_000, never), undefined);
});
