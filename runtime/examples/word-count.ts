// Running count of words from lines of text: `{ key: word, value: count }` per word seen.
// Its config (StreamJob spec.job.config) may rename the job and its topics.
import {
  configString,
  type Job,
  type JobConfig,
  job,
  kafkaSink,
  kafkaSource,
} from "../src/api/job.ts";

export function wordCount(config: JobConfig = {}): Job {
  return (
    job(configString(config, "name", "word-count"))
      .source(kafkaSource({ topic: configString(config, "input", "lines"), value: "string" }))
      .flatMap((line) => line.toLowerCase().split(/[^\p{L}\p{N}']+/u))
      .filter((word) => word.length > 0)
      // Words of one line spread over all tasks: keyBy repartitions, so each word has one owner.
      .keyBy((word) => word)
      .aggregate("counts", { init: () => 0, add: (count: number) => count + 1 })
      .sink(
        kafkaSink({ topic: configString(config, "output", "word-counts"), key: (out) => out.key }),
      )
  );
}

export default wordCount;
