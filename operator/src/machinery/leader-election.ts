// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.
//
//   const elector = new LeaderElector({
//     kubeConfig, namespace: "weir-system", name: "weir-operator", identity: podName,
//     onStartedLeading: () => controller.run(),
//     onStoppedLeading: (why) => ...,   // "lost": stop acting at once; "released": graceful stop
//   });
//   elector.run();
//   ...
//   await elector.stop();               // releases the lease: a stand-by takes over at once
//
// The rules:
// - the Lease records holderIdentity, leaseDurationSeconds, acquireTime, renewTime and
//   leaseTransitions. A candidate takes it when it is free (no holder: released) or expired:
//   the record has not changed for leaseDuration, measured on the candidate's own monotonic
//   clock from when it first saw that record (never by comparing clocks across machines).
// - every write carries the resourceVersion it was computed from, so of two candidates racing
//   for the same record the API server lets exactly one win (the other gets 409).
// - the leader renews every retryPeriod, with one request: the Lease as it last wrote it (as
//   client-go's fast path does; a 409 — someone else wrote — falls back to reading it first),
//   so a slow API server costs one round trip per renewal, not two. A renewal counts from the
//   moment it was *sent*; when
//   none has succeeded for renewDeadline (< leaseDuration) the leader steps down, before any
//   other candidate can see the lease as expired. `isLeader()` is computed from the clock, so it
//   is already false when a frozen process wakes up, before any timer has run.
// - after losing the lease the elector stays a candidate and may lead again later.
import {
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
  type V1LeaseSpec,
  V1MicroTime,
} from "@kubernetes/client-node";
import { statusCodeOf } from "./api.ts";
import { Pause } from "./backoff.ts";
import { type Logger, silentLogger } from "./logger.ts";

export type StoppedLeading = "lost" | "released";

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  /** The Lease's namespace and name. */
  namespace: string;
  name: string;
  /** Unique per candidate (the pod name): two candidates with one identity would both lead. */
  identity: string;
  /** How long a lease stays valid without renewal. Default 15 s. */
  leaseDurationMs?: number;
  /** The leader steps down when it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew. Default 2 s. */
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  /** Called once per term: "lost" (renewal failed past the deadline) or "released" (stop()). */
  onStoppedLeading: (why: StoppedLeading) => void | Promise<void>;
  /** The holder this candidate observed changed (including to itself). */
  onNewLeader?: (identity: string) => void;
  logger?: Logger;
}

export class LeaderElector {
  readonly #options: LeaderElectorOptions;
  readonly #api: CoordinationV1Api;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #log: Logger;

  #leading = false;
  /** When the last successful acquire/renew was sent (monotonic ms). */
  #renewedAt = 0;
  #deadline: NodeJS.Timeout | undefined;
  /** The lease record as last seen, and when it was first seen (monotonic ms). */
  #observed = "";
  #observedAt = 0;
  #holder: string | undefined;
  /** The Lease as this leader last wrote it: the next renewal's starting point. */
  #written: V1Lease | undefined;

  #running: Promise<void> | undefined;
  #stopped = false;
  readonly #pause = new Pause();

  constructor(options: LeaderElectorOptions) {
    this.#options = options;
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.#renewDeadlineMs < this.#leaseDurationMs))
      throw new Error("renewDeadline must be shorter than leaseDuration");
    if (!(this.#retryPeriodMs < this.#renewDeadlineMs))
      throw new Error("retryPeriod must be shorter than renewDeadline");
    this.#log = options.logger ?? silentLogger;
  }

  /** True while this candidate holds a lease it renewed within the renew deadline. */
  isLeader(): boolean {
    return this.#leading && performance.now() - this.#renewedAt < this.#renewDeadlineMs;
  }

  /** The holder last observed (undefined: none yet, or released). */
  get leader(): string | undefined {
    return this.#holder;
  }

  /** Starts campaigning (and, once leading, renewing) until stop(). */
  run(): void {
    if (this.#running || this.#stopped) return;
    this.#running = this.#loop();
  }

  /** Stops campaigning; a leader steps down ("released") and then frees the lease. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#pause.wake();
    await this.#running;
    if (!this.#leading) return;
    await this.#stepDown("released");
    await this.#release();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      if (this.#leading && !this.isLeader()) await this.#stepDown("lost");
      const sentAt = performance.now();
      const acquired = await this.#tryAcquireOrRenew(sentAt);
      if (this.#stopped) break;
      // A success that took longer than the deadline proves nothing about the present.
      if (acquired && performance.now() - sentAt < this.#renewDeadlineMs) {
        this.#renewedAt = sentAt;
        this.#armDeadline();
        if (!this.#leading) {
          this.#leading = true;
          this.#log.info({ lease: this.#leaseName(), identity: this.#options.identity }, "leading");
          this.#options.onStartedLeading();
        }
      }
      // Candidates spread their attempts out; the leader renews on a steady beat.
      const jitter = this.#leading ? 1 : 1 + Math.random() * 1.2;
      await this.#pause.wait(this.#retryPeriodMs * jitter);
    }
    clearTimeout(this.#deadline);
  }

  /** Steps down the moment the renew deadline passes, even while a request hangs. */
  #armDeadline(): void {
    clearTimeout(this.#deadline);
    // Re-armed by every renewal, so when it fires none came in time. (Not `!isLeader()`: a timer
    // may fire a fraction of a millisecond before performance.now() says the deadline passed.)
    const remaining = this.#renewedAt + this.#renewDeadlineMs - performance.now();
    this.#deadline = setTimeout(() => void this.#stepDown("lost"), Math.max(0, remaining));
  }

  async #stepDown(why: StoppedLeading): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    clearTimeout(this.#deadline);
    const fields = { lease: this.#leaseName(), identity: this.#options.identity, why };
    if (why === "lost") this.#log.error(fields, "lost the lease: stopped leading");
    else this.#log.info(fields, "stopped leading");
    try {
      await this.#options.onStoppedLeading(why);
    } catch (error) {
      this.#log.error({ ...fields, err: error }, "onStoppedLeading threw");
    }
  }

  /** One attempt; false when someone else holds a valid lease or the API said no. */
  async #tryAcquireOrRenew(now: number): Promise<boolean> {
    const { namespace, name, identity } = this.#options;
    const timeout = new Promise<"timeout">((resolve) =>
      setTimeout(() => resolve("timeout"), this.#renewDeadlineMs).unref(),
    );
    const renew = async (lease: V1Lease): Promise<boolean> => {
      const spec = lease.spec ?? {};
      const renewed = await this.#api.replaceNamespacedLease({
        namespace,
        name,
        // resourceVersion stays as read: a concurrent change makes this a 409.
        body: { ...lease, spec: { ...spec, ...this.#record(spec) } },
      });
      this.#written = renewed;
      const record = renewed.spec ?? {};
      this.#observe(identity, `${identity}|${JSON.stringify(record.renewTime)}`, now);
      return true;
    };
    const attempt = async (): Promise<boolean> => {
      if (this.#leading && this.#written) {
        try {
          return await renew(this.#written);
        } catch (error) {
          this.#written = undefined;
          if (statusCodeOf(error) !== 409) throw error;
        }
      }
      let lease: V1Lease;
      try {
        lease = await this.#api.readNamespacedLease({ namespace, name });
      } catch (error) {
        if (statusCodeOf(error) !== 404) throw error;
        this.#written = await this.#api.createNamespacedLease({
          namespace,
          body: { metadata: { namespace, name }, spec: this.#record(undefined) },
        });
        this.#observe(identity, "created", now);
        return true;
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? "";
      // (client-node leaves MicroTime fields as the strings the API server sent.)
      this.#observe(holder, `${holder}|${JSON.stringify(spec.renewTime)}`, now);
      const durationMs = (spec.leaseDurationSeconds ?? 0) * 1000;
      if (holder !== "" && holder !== identity && now < this.#observedAt + durationMs) return false;
      return renew(lease);
    };
    try {
      return (await Promise.race([attempt(), timeout])) === true;
    } catch (error) {
      const code = statusCodeOf(error);
      // 409: another candidate wrote first, the normal outcome of a race.
      if (code !== 409)
        this.#log.warn({ lease: this.#leaseName(), err: error }, "lease request failed");
      return false;
    }
  }

  /** The record this candidate writes, taking over from `previous` or renewing its own. */
  #record(previous: V1LeaseSpec | undefined): V1LeaseSpec {
    const now = new V1MicroTime();
    const renewing = previous?.holderIdentity === this.#options.identity;
    const transitions = previous?.leaseTransitions ?? 0;
    return {
      holderIdentity: this.#options.identity,
      leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
      acquireTime: renewing && previous?.acquireTime ? new V1MicroTime(previous.acquireTime) : now,
      renewTime: now,
      leaseTransitions: previous === undefined ? 0 : renewing ? transitions : transitions + 1,
    };
  }

  #observe(holder: string, record: string, now: number): void {
    if (record === this.#observed) return;
    this.#observed = record;
    this.#observedAt = now;
    const current = holder === "" ? undefined : holder;
    if (current !== this.#holder) {
      this.#holder = current;
      if (current) this.#options.onNewLeader?.(current);
    }
  }

  /** Frees the lease (holder cleared, 1 s duration) so a stand-by need not wait for it to expire. */
  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#options;
    try {
      const lease = await this.#api.readNamespacedLease({ namespace, name });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = new V1MicroTime();
      await this.#api.replaceNamespacedLease({
        namespace,
        name,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: undefined,
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
          },
        },
      });
    } catch (error) {
      // The lease then expires on its own after leaseDuration.
      this.#log.warn({ lease: this.#leaseName(), err: error }, "could not release the lease");
    }
  }

  #leaseName(): string {
    return `${this.#options.namespace}/${this.#options.name}`;
  }
}
