import assert from "node:assert/strict";
import { test } from "node:test";
import { measuredRescales } from "./calibrate.ts";

const line = (time: string, reason: string, msg: string) =>
  JSON.stringify({ time, namespace: "ns", job: "slow", reason, msg });

test("rescales are read from the operator's Events, marked when they went through a warm standby", () => {
  const lines = [
    line("2026-12-02T10:00:00Z", "RunReady", "run r1 has all 1 pods ready"),
    line("2026-12-02T10:01:00Z", "OperationStarted", "rescale of run r1 (mode savepoint)"),
    line(
      "2026-12-02T10:01:09Z",
      "RunReady",
      "rescale completed in 9 s (downtime 6 s): run r2 has all 3 pods ready",
    ),
    line(
      "2026-12-02T10:02:00Z",
      "OperationStarted",
      "rescale of run r2 (mode savepoint): the next run starts warm first",
    ),
    line(
      "2026-12-02T10:02:04Z",
      "RunReady",
      "rescale completed in 4 s (downtime 0.8 s): run r3 has all 1 pods ready",
    ),
    "not JSON",
  ];
  assert.deepEqual(
    measuredRescales(lines).map((r) => [r.from, r.to, r.downtimeSeconds, r.standby ?? false]),
    [
      [1, 3, 6, false],
      [3, 1, 0.8, true],
    ],
  );
});
