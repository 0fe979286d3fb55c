import assert from "node:assert/strict";
import { test } from "node:test";
import { area, summarize } from "./profile.ts";

test("areas: packages, the runtime's own files, node internals, V8's pseudo-functions", () => {
  assert.equal(
    area("send", "file:///repo/node_modules/@platformatic/kafka/dist/producer.js"),
    "@platformatic/kafka",
  );
  assert.equal(area("x", "file:///repo/node_modules/minio/dist/main.js"), "minio");
  assert.equal(
    area("process", "file:///repo/runtime/src/engine/pipeline.ts"),
    "runtime/src/engine/pipeline.ts",
  );
  assert.equal(area("parse", "node:internal/streams/readable"), "node:internal/streams/readable");
  assert.equal(area("(garbage collector)", ""), "(garbage collector)");
  assert.equal(area("JSONParse", ""), "(native)");
});

test("self time in percent of busy samples, idle left out", () => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
  const summary = summarize([
    {
      startTime: 0,
      endTime: 1,
      nodes: [
        { id: 1, callFrame: frame("(idle)", ""), hitCount: 50 },
        {
          id: 2,
          callFrame: frame("decode", "file:///r/runtime/src/engine/pipeline.ts"),
          hitCount: 30,
        },
        {
          id: 3,
          callFrame: frame("run", "file:///r/runtime/src/engine/pipeline.ts"),
          hitCount: 10,
        },
        { id: 4, callFrame: frame("(garbage collector)", ""), hitCount: 10 },
      ],
    },
  ]);
  assert.equal(summary.busyPercent, 50);
  assert.deepEqual(summary.areas, [
    { name: "runtime/src/engine/pipeline.ts", percent: 80 },
    { name: "(garbage collector)", percent: 20 },
  ]);
  assert.deepEqual(summary.functions[0], {
    name: "decode runtime/src/engine/pipeline.ts:10",
    percent: 60,
  });
});
