// Optimistic concurrency: an update carries the resourceVersion it was computed from, and the
// API server answers 409 Conflict when the object changed since. The fix is never to force the
// write but to redo the change on a fresh read (client-go's retry.RetryOnConflict).
import { setTimeout as sleep } from "node:timers/promises";
import { statusCodeOf } from "./api.ts";
import { type Backoff, backoffDelay } from "./backoff.ts";

export interface ConflictRetry {
  /** Reads plus writes tried in all. Default 5. */
  attempts?: number;
  /** Pause between attempts, so that racing writers spread out. Default 10 ms doubling to 1 s. */
  backoff?: Backoff;
}

const DEFAULT_BACKOFF: Backoff = { baseMs: 10, capMs: 1_000, jitter: 0.5 };

/**
 * Reads the current object, lets `write` apply its change to it and send it (keeping the
 * object's resourceVersion); on 409 reads again and retries, at most `attempts` times. Any other
 * failure, or the last conflict, is thrown. `write` must derive its change from the object it is
 * given, not from an earlier read.
 */
export async function retryOnConflict<T, R>(
  read: () => Promise<T>,
  write: (current: T) => Promise<R>,
  options: ConflictRetry = {},
): Promise<R> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write(await read());
    } catch (error) {
      if (statusCodeOf(error) !== 409 || attempt >= attempts) throw error;
      await sleep(backoffDelay(attempt, options.backoff ?? DEFAULT_BACKOFF));
    }
  }
}
