// The runtime process as a pod runs it: two subtasks of a two-stage job (word count, re-keyed
// through a repartition topic) against the real broker and MinIO, stopped with SIGTERM.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { httpGet } from "../cluster/probe.ts";
import { clusterEnv, uniqueName } from "../support/cluster.ts";
import { inputProducer, readTopic } from "../support/kafka.ts";

const env = clusterEnv();
const bootstrapBrokers = [env.kafkaBootstrap];
const admin = new Admin({ clientId: "weir-test-admin", bootstrapBrokers });
const jobName = uniqueName("wc");
const input = `${jobName}-lines`;
const output = `${jobName}-counts`;
const work = mkdtempSync(join(tmpdir(), "weir-runtime-"));
const pods: ChildProcess[] = [];

after(async () => {
  for (const pod of pods) pod.kill("SIGKILL");
  const topics = [input, output, `${jobName}-counts-repartition`];
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.close();
  rmSync(work, { recursive: true, force: true });
});

function startPod(subtask: number, ip: string): ChildProcess {
  const config = join(work, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      kafka: { bootstrap: bootstrapBrokers },
      storage: {
        endpoint: env.s3Endpoint,
        bucket: env.s3Bucket,
        prefix: "runtime-tests",
        region: env.s3Region,
      },
      checkpointIntervalMs: 500,
    }),
  );
  const pod = spawn(
    process.execPath,
    [
      join(import.meta.dirname, "..", "..", "runtime", "src", "main.ts"),
      join(import.meta.dirname, "..", "fixtures", "word-count-job.ts"),
    ],
    {
      stdio: ["ignore", "ignore", "inherit"],
      env: {
        ...process.env,
        TEST_JOB: jobName,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        WEIR_JOB: `tests/${jobName}`,
        WEIR_SUBTASK: String(subtask),
        WEIR_PARALLELISM: "2",
        WEIR_CONFIG: config,
        S3_ACCESS_KEY: env.s3AccessKey,
        S3_SECRET_KEY: env.s3SecretKey,
        POD_IP: ip,
      },
    },
  );
  pods.push(pod);
  return pod;
}

async function ready(ip: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const answer = await httpGet(`http://${ip}:9249/readyz`).catch(() => undefined);
    if (answer?.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`runtime on ${ip} never became ready`);
}

test("two subtasks of a re-keyed word count emit every running count exactly once", async () => {
  await admin.createTopics({ topics: [input, output], partitions: 4, replicas: 1 });
  const ips = ["127.2.0.1", "127.2.0.2"];
  const running = ips.map((ip, subtask) => startPod(subtask, ip));
  await Promise.all(ips.map(ready));

  const lines = ["the quick brown fox", "jumps over the lazy dog", "The dog barks", "the end"];
  const producer = inputProducer();
  const rounds = 25;
  for (let round = 0; round < rounds; round++) {
    await producer.send({
      messages: lines.map((line, i) => ({ topic: input, partition: (round + i) % 4, value: line })),
    });
  }
  // A record without a value (a tombstone) cannot be decoded: it is counted, not lost silently.
  await producer.send({ messages: [{ topic: input, partition: 0, key: "poison" }] });
  await producer.close();

  const expected = new Map<string, number>();
  for (const line of lines) {
    for (const word of line.toLowerCase().split(" "))
      expected.set(word, (expected.get(word) ?? 0) + rounds);
  }
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  const values = await readTopic(output, (read) => read.length >= total);

  const counts = new Map<string, number[]>();
  for (const value of values) {
    const { key, value: count } = JSON.parse(value) as { key: string; value: number };
    counts.set(key, [...(counts.get(key) ?? []), count]);
  }
  process.stderr.write(
    `DEBUG ${JSON.stringify([...counts].map(([w, c]) => [w, c.length, c.slice(0, 5)]))}\n`,
  );
  for (const [word, n] of expected) {
    assert.deepEqual(
      counts.get(word),
      Array.from({ length: n }, (_, i) => i + 1),
      `${word}: 1..${n} exactly once`,
    );
  }

  const status = JSON.parse((await httpGet(`http://${ips[0]}:9249/v1/status`)).body);
  assert.equal(
    status.tasks.length,
    4,
    "subtask 0 of 2 owns 2 source tasks and 2 repartition tasks",
  );
  const failures = await Promise.all(
    ips.map(async (ip) => {
      const text = (await httpGet(`http://${ip}:9249/metrics`)).body;
      assert.match(text, /^weir_records_in_total \d+/m);
      return Number(/^weir_record_failures_total (\d+)/m.exec(text)?.[1]);
    }),
  );
  assert.equal(
    failures.reduce((a, b) => a + b, 0),
    1,
    "the tombstone is counted once, by the task that read it",
  );

  for (const pod of running) pod.kill("SIGTERM");
  const exits = await Promise.all(running.map((pod) => once(pod, "exit")));
  assert.deepEqual(
    exits.map(([code]) => code),
    [0, 0],
    "SIGTERM: checkpoint, commit, exit 0",
  );
});
