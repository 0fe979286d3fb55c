// The demo's job: the word count of config/samples/ where each line also waits `workMs` (as a
// call to a slow service would). The wait blocks the pod's thread without using a CPU, so a
// few hundred lines a second are more than one pod can carry and the autoscaler has something
// to do, while the machine stays free for Kafka and the operator (the real word count would need
// tens of thousands of lines a second, more than a laptop can produce and process at once).
import {
  configString,
  type Job,
  type JobConfig,
  job,
  kafkaSink,
  kafkaSource,
} from "../../runtime/src/api/job.ts";

const blocker = new Int32Array(new SharedArrayBuffer(4));

function work(ms: number): void {
  if (ms > 0) Atomics.wait(blocker, 0, 0, ms);
}

/** The words of a line, as the job counts them. */
export function wordsOf(line: string): string[] {
  return line
    .toLowerCase()
    .split(/[^\p{L}\p{N}']+/u)
    .filter((word) => word.length > 0);
}

export function demoWordCount(config: JobConfig = {}): Job {
  const workMs = config.workMs ?? 0;
  if (typeof workMs !== "number" || !(workMs >= 0)) {
    throw new Error(`job config workMs must be a number >= 0, got ${JSON.stringify(workMs)}`);
  }
  return job(configString(config, "name", "demo-word-count"))
    .source(kafkaSource({ topic: configString(config, "input", "lines"), value: "string" }))
    .flatMap((line) => {
      work(workMs);
      return wordsOf(line);
    })
    .keyBy((word) => word)
    .aggregate("counts", { init: () => 0, add: (count: number) => count + 1 })
    .sink(
      kafkaSink({ topic: configString(config, "output", "word-counts"), key: (out) => out.key }),
    );
}

export default demoWordCount;
