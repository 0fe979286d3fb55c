// Stateless: drops malformed or bot events and adds a `domain` field taken from the URL.
// Its config (StreamJob spec.job.config) may rename the job and its topics.
import {
  configString,
  type Job,
  type JobConfig,
  job,
  kafkaSink,
  kafkaSource,
} from "../src/api/job.ts";

export interface PageView {
  user: string;
  url: string;
  agent?: string;
}

export interface EnrichedPageView extends PageView {
  domain: string;
}

function isValid(event: unknown): event is PageView {
  if (typeof event !== "object" || event === null) return false;
  const e = event as Record<string, unknown>;
  return (
    typeof e.user === "string" && e.user !== "" && typeof e.url === "string" && URL.canParse(e.url)
  );
}

export function filterEnrich(config: JobConfig = {}): Job {
  return job(configString(config, "name", "filter-enrich"))
    .source(
      kafkaSource<unknown>({ topic: configString(config, "input", "page-views"), value: "json" }),
    )
    .filter(isValid)
    .filter((event) => !/bot|crawler|spider/i.test(event.agent ?? ""))
    .map((event): EnrichedPageView => ({ ...event, domain: new URL(event.url).hostname }))
    .sink(
      kafkaSink({
        topic: configString(config, "output", "page-views-enriched"),
        key: (out) => out.user,
      }),
    );
}

export default filterEnrich;
