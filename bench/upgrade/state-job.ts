// The upgrade benchmark's job (`bench/upgrade.ts`): keyed state of a chosen size, built from
// little input. Each record `{ k, pad?, t }` counts one more for its key; with `pad`, the key
// also keeps a value of that many bytes, so a few thousand records make megabytes or a
// gigabyte of state without moving it through Kafka. Every output `{ k, n, t, run }` names the
// run that made it (WEIR_RUN), which is how the benchmark tells the old run's last output from
// the new run's first, and carries the input's produce time `t`.
import {
  configString,
  type Job,
  type JobConfig,
  job,
  kafkaSink,
  kafkaSource,
} from "../../runtime/src/api/job.ts";

export interface StateInput {
  k: string;
  pad?: number;
  t: number;
}

export interface StateOutput {
  k: string;
  n: number;
  t: number;
  run: string;
}

export function stateJob(config: JobConfig = {}): Job {
  const run = process.env.WEIR_RUN ?? "";
  return (
    job(configString(config, "name", "bench-state"))
      .source(
        kafkaSource<StateInput>({
          topic: configString(config, "input", "bench-in"),
          value: "json",
        }),
      )
      // The benchmark sends each key to one partition: no repartition topic needed.
      .keyBy((record) => record.k, { repartition: false })
      .process<StateOutput>("state", (record, ctx) => {
        const count = ctx.state.value<number>("count");
        const n = (count.get(ctx.key, ctx.now) ?? 0) + 1;
        count.set(ctx.key, n, ctx.now);
        if (record.pad)
          ctx.state.value<string>("pad").set(ctx.key, "x".repeat(record.pad), ctx.now);
        ctx.emit({ k: ctx.key, n, t: record.t, run });
      })
      .sink(kafkaSink({ topic: configString(config, "output", "bench-out"), key: (out) => out.k }))
  );
}

export default stateJob;
