// Clicks per user in event-time tumbling windows of 60 s, from JSON events `{ user, url, ts }`.

import { job, kafkaSink, kafkaSource } from "../src/api/job.ts";
import { tumbling } from "../src/engine/time.ts";

export interface Click {
  user: string;
  url: string;
  /** Event time, epoch milliseconds. */
  ts: number;
}

export default job("clicks-per-user")
  .source(
    kafkaSource<Click>({
      topic: "clicks",
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
  .sink(kafkaSink({ topic: "clicks-per-user", key: (out) => out.user }));
