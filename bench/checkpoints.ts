// `npm run bench -- checkpoints`: incremental checkpoints of one task's state in the local
// cluster's MinIO, for a ~10 MB, a ~150 MB (1M keys) and a ~1 GB state: a full checkpoint, a
// delta with 1% of the keys changed, a restore of base + delta, a savepoint (always full), and
// for the two smaller ones the whole-state checkpoint as it was before deltas
// (`TaskState.snapshot` + `SnapshotStore.write`). For each, the longest the event loop was
// held (perf_hooks.monitorEventLoopDelay, 10 ms resolution). Printed, never asserted.
//
// The work runs in a child process with a larger heap (a 1 GB state is held twice while it is
// restored): `node bench/checkpoints.ts --child <mb>...`.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { TaskCheckpoints } from "../runtime/src/engine/task-checkpoints.ts";
import { TaskState } from "../runtime/src/state/keyed-state.ts";
import type { TaskEntry } from "../runtime/src/state/metadata.ts";
import { SnapshotStore } from "../runtime/src/state/snapshot-store.ts";
import { storageClient } from "../runtime/src/state/storage-client.ts";
import { clusterEnv, uniqueName } from "../test-e2e/support/cluster.ts";
import { table } from "./measure.ts";

interface Size {
  label: string;
  keys: number;
  valueBytes: number;
  /** Also the whole-state checkpoint of before (skipped for 1 GB: minutes, ~3 GB of buffers). */
  before: boolean;
}

const SIZES: Size[] = [
  { label: "10 MB", keys: 65_000, valueBytes: 120, before: true },
  { label: "1M keys", keys: 1_000_000, valueBytes: 120, before: true },
  { label: "1 GB", keys: 1_000_000, valueBytes: 1_000, before: false },
];

interface Figure {
  step: string;
  seconds: number;
  bytes: number;
  maxDelayMs: number;
  /** The longest garbage-collection pause meanwhile (part of the delay, not the code's own). */
  maxGcMs: number;
}

const gcPauses: number[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push(entry.duration);
}).observe({ entryTypes: ["gc"] });

/** Runs `work` and measures its time and the longest event-loop delay meanwhile. */
async function measure(step: string, work: () => Promise<number>): Promise<Figure> {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  gcPauses.length = 0;
  delay.enable();
  const started = performance.now();
  const bytes = await work();
  const seconds = (performance.now() - started) / 1000;
  delay.disable();
  return { step, seconds, bytes, maxDelayMs: delay.max / 1e6, maxGcMs: Math.max(0, ...gcPauses) };
}

async function child(labels: string[]): Promise<void> {
  const env = clusterEnv();
  const client = storageClient({
    endpoint: env.s3Endpoint,
    region: env.s3Region,
    credentials: { kind: "static", accessKey: env.s3AccessKey, secretKey: env.s3SecretKey },
  });
  const prefix = uniqueName("bench-checkpoints");
  const task = { topic: "bench", partition: 0 };
  const tp = "bench-0";
  try {
    for (const size of SIZES.filter((s) => labels.includes(s.label))) {
      const job = { namespace: "bench", name: `s${size.keys}-${size.valueBytes}` };
      const store = new SnapshotStore({ client, bucket: env.s3Bucket, prefix, job });
      const state = new TaskState();
      const values = state.operator("count").value<{ n: number; s: string }>("v");
      for (let i = 0; i < size.keys; i++)
        values.set(`key-${i}`, { n: i, s: String(i).padEnd(size.valueBytes, "x") }, 0);
      state.markClean();
      const figures: Figure[] = [
        // The same heap with nothing to do: the delays the heap alone causes (GC).
        await measure("idle, 2 s (baseline)", async () => {
          await new Promise((resolve) => setTimeout(resolve, 2_000));
          return 0;
        }),
      ];
      if (size.before) {
        figures.push(
          await measure("whole state, before (snapshot + write)", async () => {
            const bytes = state.snapshot(0);
            await store.write(
              "checkpoint",
              `${tp}-0-before.0`,
              ["count"],
              [{ task, offsets: { [tp]: 0 }, state: bytes, operators: ["count"] }],
            );
            return bytes.length;
          }),
        );
      }
      const checkpoints = new TaskCheckpoints({ store, task, jobOperators: ["count"] });
      let entry: TaskEntry | undefined;
      const checkpoint = async (id: string) => {
        const stored = await checkpoints.write(state, id, { [tp]: 1 }, 1);
        checkpoints.committed(state, stored);
        entry = (await store.read("checkpoint", id))?.tasks[0];
        return stored.bytes;
      };
      figures.push(await measure("full checkpoint", () => checkpoint(`${tp}-1-r.1`)));
      // 1% of the keys changed (spread over the key space).
      const step = 100;
      for (let i = 0; i < size.keys; i += step)
        values.set(`key-${i}`, { n: -i, s: String(-i).padEnd(size.valueBytes, "y") }, 2);
      figures.push(await measure("delta checkpoint, 1% changed", () => checkpoint(`${tp}-2-r.2`)));
      figures.push(
        await measure("savepoint (full)", async () => {
          const part = await checkpoints.writeSavepoint(state, "sp", { [tp]: 2 }, 2);
          return part.bytes;
        }),
      );
      const restoring = entry;
      if (restoring === undefined) throw new Error("the delta checkpoint was not stored");
      figures.push(
        await measure("restore (base + delta)", async () => {
          const restored = await new TaskCheckpoints({ store, task, jobOperators: [] }).restore(
            restoring,
            "checkpoint",
          );
          return restored.bytes;
        }),
      );
      process.stdout.write(
        `\n${size.label}: ${size.keys.toLocaleString("en-US")} keys × ${size.valueBytes} B values\n\n`,
      );
      process.stdout.write(
        table([
          ["step", "seconds", "MB", "max event-loop delay ms", "longest GC pause ms"],
          ...figures.map((f) => [
            f.step,
            f.seconds.toFixed(2),
            (f.bytes / 2 ** 20).toFixed(1),
            f.maxDelayMs.toFixed(0),
            f.maxGcMs.toFixed(0),
          ]),
        ]),
      );
    }
  } finally {
    const keys: string[] = [];
    for await (const item of client.listObjectsV2(env.s3Bucket, `${prefix}/`, true))
      if (item.name) keys.push(item.name);
    if (keys.length > 0) await client.removeObjects(env.s3Bucket, keys);
  }
}

/** Each size in a child process of its own (the heap starts empty for every size). */
export async function checkpointsBenchmark(): Promise<void> {
  for (const size of SIZES) {
    const run = spawn(
      process.execPath,
      ["--max-old-space-size=12000", import.meta.filename, "--child", size.label],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
    const [code] = await once(run, "exit");
    if (code !== 0) throw new Error(`checkpoints benchmark for ${size.label} exited ${code}`);
  }
}

if (process.argv[2] === "--child") await child(process.argv.slice(3));
