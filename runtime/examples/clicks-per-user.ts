// Clicks per user in event-time tumbling windows of 60 s, from JSON events `{ user, url, ts }`.
// Its config (StreamJob spec.job.config) may rename the job and its topics.
import {
  configString,
  type Job,
  type JobConfig,
  job,
  kafkaSink,
  kafkaSource,
} from "../src/api/job.ts";
import { tumbling } from "../src/engine/time.ts";

export interface Click {
  user: string;
  url: string;
  /** Event time, epoch milliseconds. */
  ts: number;
}

export function clicksPerUser(config: JobConfig = {}): Job {
  return job(configString(config, "name", "clicks-per-user"))
    .source(
      kafkaSource<Click>({
        topic: configString(config, "input", "clicks"),
        value: "json",
        timestamp: (r) => r.value.ts,
      }).withWatermarks({ maxOutOfOrdernessMs: 5_000, idleTimeoutMs: 30_000 }),
    )
    .keyBy((click) => click.user)
    .window("clicks-per-minute", tumbling(60_000), {
      aggregate: { init: () => 0, add: (n: number) => n + 1 },
      allowedLatenessMs: 10_000,
      lateRecords: "side-output",
    })
    .map((w) => ({ user: w.key, start: w.window.start, end: w.window.end, clicks: w.value }))
    .sink(
      kafkaSink({
        topic: configString(config, "output", "clicks-per-user"),
        key: (out) => out.user,
      }),
    );
}

export default clicksPerUser;
