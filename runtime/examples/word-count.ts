// Running count of words from lines of text: `{ key: word, value: count }` per word seen.
import { job, kafkaSink, kafkaSource } from "../src/api/job.ts";

export default job("word-count")
  .source(kafkaSource({ topic: "lines", value: "string" }))
  .flatMap((line) => line.toLowerCase().split(/[^\p{L}\p{N}']+/u))
  .filter((word) => word.length > 0)
  // Words of one line spread over all tasks: keyBy repartitions, so each word has one owner.
  .keyBy((word) => word)
  .aggregate("counts", { init: () => 0, add: (count: number) => count + 1 })
  .sink(kafkaSink({ topic: "word-counts", key: (out) => out.key }));
