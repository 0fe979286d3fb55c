// Stateless: drops malformed or bot events and adds a `domain` field taken from the URL.
import { job, kafkaSink, kafkaSource } from "../src/api/job.ts";

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

export default job("filter-enrich")
  .source(kafkaSource<unknown>({ topic: "page-views", value: "json" }))
  .filter(isValid)
  .filter((event) => !/bot|crawler|spider/i.test(event.agent ?? ""))
  .map((event): EnrichedPageView => ({ ...event, domain: new URL(event.url).hostname }))
  .sink(kafkaSink({ topic: "page-views-enriched", key: (out) => out.user }));
