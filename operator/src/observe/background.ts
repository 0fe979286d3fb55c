// Observations that need I/O to a job's pods (or anything else that may answer late or never),
// made off the reconcile workers: a reconcile reads the latest result at once and, when it is
// older than it needs, starts a fresh one in the background; when that lands, the job is
// queued again. A pod that hangs costs a timer, never a worker — so no job can hold up another.
//
//   const observations = new BackgroundObservations((jobKey) => queue.add(jobKey));
//   const latest = observations.latest(jobKey, `metrics:${run}`, 15_000, () => scrape(pods));
//   if (latest) use(latest.value, latest.startedAt);

/** A settled observation and when it was started (epoch ms): what it says held then. */
export interface Observation<T> {
  value: T;
  startedAt: number;
}

interface Entry {
  owner: string;
  latest?: Observation<unknown>;
  inFlight: boolean;
  /** When a reconcile last asked for it (epoch ms): entries nobody asks for are dropped. */
  askedAt: number;
}

export interface BackgroundObservationsOptions {
  /** Observations under way at once, across all jobs; more wait for a later ask. Default 256. */
  maxInFlight?: number;
  /** Drop an entry nobody asked for within this long. Default 10 minutes. */
  idleMs?: number;
  now?: () => number;
}

export class BackgroundObservations {
  readonly #entries = new Map<string, Entry>();
  readonly #landed: (owner: string) => void;
  readonly #maxInFlight: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  #inFlight = 0;
  #sweptAt = 0;

  /** `landed(owner)` is called when an observation of `owner` (a job key) settles. */
  constructor(landed: (owner: string) => void, options: BackgroundObservationsOptions = {}) {
    this.#landed = landed;
    this.#maxInFlight = options.maxInFlight ?? 256;
    this.#idleMs = options.idleMs ?? 600_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The latest settled observation of `key` (undefined before the first), after starting
   * `observe` when that one is older than `maxAgeMs` and none is under way. `observe` should
   * report failures as values; one that rejects leaves the previous observation in place.
   */
  latest<T>(
    owner: string,
    key: string,
    maxAgeMs: number,
    observe: () => Promise<T>,
  ): Observation<T> | undefined {
    const now = this.#now();
    this.#sweep(now);
    const entry = this.#entries.get(key) ?? { owner, inFlight: false, askedAt: now };
    entry.askedAt = now;
    this.#entries.set(key, entry);
    const stale = !entry.latest || now - entry.latest.startedAt >= maxAgeMs;
    if (stale && !entry.inFlight && this.#inFlight < this.#maxInFlight) this.#start(entry, observe);
    return entry.latest as Observation<T> | undefined;
  }

  /** Forgets every observation of `owner` (its job is gone). */
  forget(owner: string): void {
    for (const [key, entry] of this.#entries) if (entry.owner === owner) this.#entries.delete(key);
  }

  #start(entry: Entry, observe: () => Promise<unknown>): void {
    entry.inFlight = true;
    this.#inFlight++;
    const startedAt = this.#now();
    observe()
      .then(
        (value) => {
          entry.latest = { value, startedAt };
        },
        () => {},
      )
      .finally(() => {
        entry.inFlight = false;
        this.#inFlight--;
        this.#landed(entry.owner);
      });
  }

  #sweep(now: number): void {
    if (now - this.#sweptAt < this.#idleMs / 10) return;
    this.#sweptAt = now;
    for (const [key, entry] of this.#entries)
      if (!entry.inFlight && now - entry.askedAt > this.#idleMs) this.#entries.delete(key);
  }
}
