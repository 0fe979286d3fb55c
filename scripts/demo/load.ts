// The demo's load generator: lines of text into the input topic at a rate the demo changes as
// it goes, spread over the partitions, through the e2e tests' idempotent producer.
import { setTimeout as sleep } from "node:timers/promises";
import { inputProducer } from "../../test-e2e/support/kafka.ts";

const LINES = [
  "the quick brown fox",
  "jumps over the lazy dog",
  "the dog barks",
  "streams never end",
  "savepoints keep state",
  "pods come and go",
];

/** The `index`th line produced. */
export function lineAt(index: number): string {
  return LINES[index % LINES.length] as string;
}

const TICK_MS = 100;

export interface LoadGenerator {
  /** Lines per second from now on. */
  setRate(rate: number): void;
  /** Lines produced so far. */
  readonly produced: number;
  /** Stops producing; rejects if producing failed. */
  stop(): Promise<void>;
}

export function startLoad(topic: string, partitions: number): LoadGenerator {
  const producer = inputProducer();
  let rate = 0;
  let produced = 0;
  let stopping = false;
  const loop = (async () => {
    let due = 0;
    let last = performance.now();
    try {
      while (!stopping) {
        const now = performance.now();
        // A send slower than a tick catches up, by at most a second's worth.
        due = Math.min(due + (rate * (now - last)) / 1000, Math.max(rate, 1));
        last = now;
        const count = Math.floor(due);
        if (count > 0) {
          await producer.send({
            messages: Array.from({ length: count }, (_, i) => ({
              topic,
              partition: (produced + i) % partitions,
              value: lineAt(produced + i),
            })),
          });
          produced += count;
          due -= count;
        }
        await sleep(TICK_MS);
      }
    } finally {
      await producer.close();
    }
  })();
  // Seen by stop(); until then a failure must not end the process as unhandled.
  loop.catch(() => {});
  return {
    setRate(value: number) {
      rate = value;
    },
    get produced() {
      return produced;
    },
    async stop() {
      stopping = true;
      await loop;
    },
  };
}
