// What the demo watches: the StreamJob's status, its Events, and the input topic as the broker
// sees it (end offsets against the job's committed offsets: the backlog and the lines
// processed, exactly once, whatever the operator reports).
import { CoreV1Api, type CoreV1Event } from "@kubernetes/client-node";
import { type Admin, FetchIsolationLevels, ListOffsetTimestamps } from "@platformatic/kafka";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { taskGroupId } from "../../runtime/src/connectors/kafka/task-io.ts";
import { adminKubeConfig, cli } from "../../test-e2e/support/cluster.ts";
import { readJob } from "../../test-e2e/support/operator.ts";
import { DEMO, type Observation } from "./plan.ts";

/** Observations a rate spans: two intervals (5 s). */
const RATE_SPAN = 2;

export interface JobEvent {
  type: string;
  reason: string;
  message: string;
}

export class Observer {
  readonly #admin: Admin;
  readonly #input: string;
  readonly #core = adminKubeConfig().makeApiClient(CoreV1Api);
  readonly #seenEvents = new Set<string>();
  /** The last observations: rates are taken over RATE_SPAN of them (commits come in bursts). */
  #recent: Observation[] = [];
  /** The last StreamJob read (its status has the autoscaler's last word). */
  job: StreamJob | undefined;

  constructor(admin: Admin, input: string) {
    this.#admin = admin;
    this.#input = input;
  }

  async observe(t: number, produced: number): Promise<Observation> {
    const [job, { end, committed }] = await Promise.all([
      readJob(DEMO.namespace, DEMO.job),
      this.#offsets(),
    ]);
    this.job = job;
    const status = job.status ?? {};
    const condition = (type: string) => status.conditions?.find((c) => c.type === type);
    const ready = condition("Ready");
    const progressing = condition("Progressing");
    const before = this.#recent[0];
    const dt = before ? t - before.t : 0;
    const rate = (now: number, then: number | undefined) =>
      dt > 0 && then !== undefined ? Math.max(0, (now - then) / dt) : 0;
    const observation: Observation = {
      t,
      state: status.state ?? "Pending",
      ready: ready?.status === "True" && status.observedGeneration === job.metadata.generation,
      image: status.run?.image,
      parallelism: status.parallelism ?? 0,
      recommended: status.autoscaler?.recommendedParallelism,
      autoscalerReason: status.autoscaler?.reason,
      operation: progressing?.status === "True" ? progressing.reason : undefined,
      produced,
      processed: committed,
      backlog: Math.max(0, end - committed),
      inputRate: rate(produced, before?.produced),
      processedRate: rate(committed, before?.processed),
    };
    this.#recent = [...this.#recent, observation].slice(-RATE_SPAN);
    return observation;
  }

  /** Events of the current StreamJob not returned before, oldest first; pods' comings and goings left out. */
  async newEvents(): Promise<JobEvent[]> {
    const uid = this.job?.metadata.uid;
    if (!uid) return [];
    const list = await this.#core.listNamespacedEvent({
      namespace: DEMO.namespace,
      fieldSelector: `involvedObject.uid=${uid}`,
    });
    const fresh: CoreV1Event[] = [];
    for (const event of list.items) {
      const key = `${event.metadata.uid}/${event.series?.count ?? event.count ?? 1}`;
      if (this.#seenEvents.has(key)) continue;
      this.#seenEvents.add(key);
      if (event.reason !== "CreatedPod" && event.reason !== "DeletedPod") fresh.push(event);
    }
    const when = (e: CoreV1Event) =>
      new Date(
        e.series?.lastObservedTime ??
          e.lastTimestamp ??
          e.eventTime ??
          e.metadata.creationTimestamp ??
          0,
      ).getTime();
    return fresh
      .sort((a, b) => when(a) - when(b))
      .map((e) => ({ type: e.type ?? "Normal", reason: e.reason ?? "", message: e.message ?? "" }));
  }

  /** Completed StreamSavepoints of the job, counted by trigger. */
  async savepoints(): Promise<Record<string, number>> {
    const list = JSON.parse(
      await cli("kubectl", ["get", "ssp", "-n", DEMO.namespace, "-o", "json"]),
    ) as {
      items: { spec?: { jobName?: string; trigger?: string }; status?: { state?: string } }[];
    };
    const counts: Record<string, number> = {};
    for (const ssp of list.items) {
      if (ssp.spec?.jobName !== DEMO.job || ssp.status?.state !== "Completed") continue;
      const trigger = ssp.spec.trigger ?? "manual";
      counts[trigger] = (counts[trigger] ?? 0) + 1;
    }
    return counts;
  }

  /** Sum of the input's end offsets and of the job's committed offsets on it. */
  async #offsets(): Promise<{ end: number; committed: number }> {
    const partitions = Array.from({ length: DEMO.partitions }, (_, partition) => partition);
    const [listed, groups] = await Promise.all([
      this.#admin.listOffsets({
        topics: [
          {
            name: this.#input,
            partitions: partitions.map((partitionIndex) => ({
              partitionIndex,
              timestamp: ListOffsetTimestamps.LATEST,
            })),
          },
        ],
        isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
      }),
      this.#admin.listConsumerGroupOffsets({
        groups: partitions.map((partition) =>
          taskGroupId(
            { namespace: DEMO.namespace, name: DEMO.job },
            { topic: this.#input, partition },
          ),
        ),
      }),
    ]);
    const end = listed
      .flatMap((topic) => topic.partitions)
      .reduce((sum, p) => sum + Number(p.offset), 0);
    const committed = groups
      .flatMap((group) => group.topics.filter((topic) => topic.name === this.#input))
      .flatMap((topic) => topic.partitions)
      .reduce((sum, p) => sum + Math.max(0, Number(p.committedOffset)), 0);
    return { end, committed };
  }
}
