// The end offsets of a pod's source partitions: for the backlog metric (high watermark −
// position, refreshed every second so the autoscaler reads a live figure at the cost of one
// ListOffsets request per refresh for all of the pod's tasks) and for where a fresh task starts.
import { Admin, FetchIsolationLevels, ListOffsetTimestamps } from "@platformatic/kafka";
import type { TaskRef } from "../../state/metadata.ts";
import type { KafkaConnection } from "./connection.ts";

const { LATEST, EARLIEST } = ListOffsetTimestamps;
const { READ_UNCOMMITTED, READ_COMMITTED } = FetchIsolationLevels;

export interface EndOffsetsOptions {
  kafka: KafkaConnection;
  clientId: string;
  tasks: readonly TaskRef[];
  refreshMs?: number;
}

export class EndOffsets {
  readonly #admin: Admin;
  readonly #tasks: readonly TaskRef[];
  readonly #refreshMs: number;
  readonly #ends = new Map<string, bigint>();
  /** When the figures were last refreshed (0: never). */
  #refreshedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #refreshing = false;

  constructor(options: EndOffsetsOptions) {
    this.#admin = new Admin({ ...options.kafka, clientId: options.clientId });
    this.#tasks = options.tasks;
    this.#refreshMs = options.refreshMs ?? 1_000;
  }

  /**
   * Where a fresh task starts: the partition's first offset still held, or its end (the last
   * stable offset: what a read_committed reader would see next).
   */
  async startOffset(task: TaskRef, from: "earliest" | "latest"): Promise<bigint> {
    const offsets = await this.#list([task], from === "latest" ? LATEST : EARLIEST, READ_COMMITTED);
    const offset = offsets.get(key(task));
    if (offset === undefined) throw new Error(`no ${from} offset for ${key(task)}`);
    return offset;
  }

  /** The high watermark of the task's partition at the last refresh. */
  end(task: TaskRef): bigint | undefined {
    return this.#ends.get(key(task));
  }

  /** Like `end`, but undefined when the last refresh that worked is a few refreshes old. */
  freshEnd(task: TaskRef): bigint | undefined {
    return Date.now() - this.#refreshedAt <= 3 * this.#refreshMs ? this.end(task) : undefined;
  }

  /** Refreshes every `refreshMs`; a failed refresh keeps the last figures (and says so). */
  start(): Promise<void> {
    this.#timer = setInterval(() => void this.refresh(), this.#refreshMs);
    this.#timer.unref();
    return this.refresh();
  }

  async refresh(): Promise<void> {
    if (this.#refreshing || this.#tasks.length === 0) return;
    this.#refreshing = true;
    try {
      for (const [task, end] of await this.#list(this.#tasks, LATEST, READ_UNCOMMITTED))
        this.#ends.set(task, end);
      this.#refreshedAt = Date.now();
    } catch (error) {
      process.stderr.write(
        `${JSON.stringify({ msg: "end offsets not refreshed", error: String(error) })}\n`,
      );
    } finally {
      this.#refreshing = false;
    }
  }

  async #list(
    tasks: readonly TaskRef[],
    timestamp: bigint,
    isolationLevel: 0 | 1,
  ): Promise<Map<string, bigint>> {
    const byTopic = new Map<string, number[]>();
    for (const task of tasks)
      byTopic.set(task.topic, [...(byTopic.get(task.topic) ?? []), task.partition]);
    const listed = await this.#admin.listOffsets({
      topics: [...byTopic].map(([name, partitions]) => ({
        name,
        partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })),
      })),
      isolationLevel,
    });
    const offsets = new Map<string, bigint>();
    for (const topic of listed) {
      for (const p of topic.partitions)
        offsets.set(key({ topic: topic.name, partition: p.partitionIndex }), p.offset);
    }
    return offsets;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#admin.close();
  }
}

function key(task: TaskRef): string {
  return `${task.topic}-${task.partition}`;
}

/** Records of the partition not processed yet (0 once caught up; unknown before a refresh). */
export function backlog(end: bigint | undefined, position: bigint): number | undefined {
  if (end === undefined) return undefined;
  return Number(end > position ? end - position : 0n);
}
