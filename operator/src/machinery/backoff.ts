// Exponential back-off with jitter, shared by the work queue (per-key retries) and the
// informer (watch restarts).

export interface Backoff {
  /** Delay before the first retry. */
  baseMs: number;
  /** No delay is longer than this, jitter included. */
  capMs: number;
  /** Fraction of the delay taken off at random (0 = none, 1 = anywhere in [0, delay]). */
  jitter: number;
}

/**
 * The delay before retry number `attempt` (1 = the first): base·2^(attempt−1), capped, then
 * shortened by up to `jitter` of itself so that many keys (or replicas) failing together do not
 * retry in lockstep. `random` is a parameter so tests can pin it.
 */
export function backoffDelay(attempt: number, backoff: Backoff, random = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  const delay = Math.min(backoff.capMs, backoff.baseMs * 2 ** exponent);
  return Math.round(delay * (1 - backoff.jitter * random()));
}

/**
 * A wait that can be cut short: `wait(ms)` resolves after `ms`, or as soon as `wake()` is
 * called (a loop that is being stopped should not sit out its back-off).
 */
export class Pause {
  #wake: (() => void) | undefined;

  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  wake(): void {
    this.#wake?.();
  }
}
