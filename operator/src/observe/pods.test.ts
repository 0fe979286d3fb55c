import assert from "node:assert/strict";
import { test } from "node:test";
import type { V1Pod } from "@kubernetes/client-node";
import { observePod, wordsOf } from "./pods.ts";

test("a crashing runtime's last words: the error of its last JSON line, else its last plain line", () => {
  const runtime = [
    '{"msg":"starting","time":1}',
    '{"msg":"failed","error":"parallelism 5 exceeds the partition count 3: every subtask must own at least one partition"}',
    "",
  ].join("\n");
  assert.equal(
    wordsOf(runtime),
    "parallelism 5 exceeds the partition count 3: every subtask must own at least one partition",
  );
  const node = [
    "node:internal/modules/esm/resolve:275",
    "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/app/nope.ts'",
    "    at finalizeResolution (node:internal/modules/esm/resolve:275:11)",
    "Node.js v24.21.0",
  ].join("\n");
  assert.equal(wordsOf(node), "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/app/nope.ts'");
  assert.equal(wordsOf(""), undefined);
  assert.equal(wordsOf("x".repeat(1000))?.length, 400);
});

test("a crash-looping pod is marked for its last words; a waiting one says why", () => {
  const pod: V1Pod = {
    metadata: {
      name: "wc-r1-0",
      uid: "p-1",
      labels: { "weir.dev/run": "r1", "weir.dev/subtask": "0" },
    },
    status: {
      phase: "Running",
      containerStatuses: [
        {
          name: "runtime",
          image: "weir/runtime",
          imageID: "",
          ready: false,
          restartCount: 3,
          state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s" } },
          lastState: { terminated: { exitCode: 1, reason: "Error" } },
        },
      ],
    },
  };
  const observed = observePod(pod, "job-uid");
  assert.equal(observed.problem, "CrashLoopBackOff: back-off 40s");
  assert.deepEqual(observed.crash, { uid: "p-1", container: "runtime", restarts: 3, exitCode: 1 });
});
