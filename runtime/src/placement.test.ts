import assert from "node:assert/strict";
import { test } from "node:test";
import { placement } from "./placement.ts";

test("a pod's place comes from WEIR_JOB, WEIR_SUBTASK and WEIR_PARALLELISM", () => {
  assert.deepEqual(
    placement({ WEIR_JOB: "team-a/clicks", WEIR_SUBTASK: "2", WEIR_PARALLELISM: "3" }),
    {
      namespace: "team-a",
      name: "clicks",
      subtask: 2,
      parallelism: 3,
    },
  );
  assert.deepEqual(placement({ WEIR_JOB: "ns/j" }), {
    namespace: "ns",
    name: "j",
    subtask: 0,
    parallelism: 1,
  });
});

test("a malformed place is refused with the variable named", () => {
  assert.throws(() => placement({ WEIR_JOB: "no-namespace" }), /WEIR_JOB/);
  assert.throws(() => placement({ WEIR_JOB: "ns/j", WEIR_PARALLELISM: "0" }), /WEIR_PARALLELISM/);
  assert.throws(
    () => placement({ WEIR_JOB: "ns/j", WEIR_SUBTASK: "3", WEIR_PARALLELISM: "3" }),
    /WEIR_SUBTASK/,
  );
});
