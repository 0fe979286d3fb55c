// The operator's copy of each job's control token: created with the job's first pods, read back
// when the operator calls the pods. Read by name (never listed or watched: the operator's RBAC
// lets it get Secrets, not list them) and cached, since the Secret is immutable and its name
// carries the job's uid.
import type { CoreV1Api, V1Secret } from "@kubernetes/client-node";
import type { StreamJob } from "../api/types.ts";
import { buildControlTokenSecret, newControlToken } from "../build/control-token.ts";
import { CONTROL_TOKEN_KEY, controlTokenSecretName } from "../build/names.ts";
import { statusCodeOf } from "../machinery/api.ts";

export class ControlTokens {
  readonly #core: CoreV1Api;
  readonly #tokens = new Map<string, string>();

  constructor(core: CoreV1Api) {
    this.#core = core;
  }

  /** The job's token; undefined when it has no Secret (pods of an operator before tokens). */
  async read(job: StreamJob): Promise<string | undefined> {
    const key = keyOf(job);
    const cached = this.#tokens.get(key);
    if (cached) return cached;
    const secret = await this.#get(job);
    return secret ? this.#remember(key, secret) : undefined;
  }

  /** Creates the job's Secret with a fresh token unless it exists (checked live, not cached). */
  /** Whether it created the Secret (false: it was there). */
  async ensure(job: StreamJob): Promise<boolean> {
    const key = keyOf(job);
    const existing = await this.#get(job);
    if (existing) {
      this.#remember(key, existing);
      return false;
    }
    const token = newControlToken();
    try {
      await this.#core.createNamespacedSecret({
        namespace: job.metadata.namespace ?? "",
        body: buildControlTokenSecret(job, token),
      });
      this.#tokens.set(key, token);
      return true;
    } catch (error) {
      // Created meanwhile (by a predecessor that died): that one stands, read at the next use.
      if (statusCodeOf(error) !== 409) throw error;
      return false;
    }
  }

  /** Drops the token of a job that is gone. */
  forget(job: StreamJob): void {
    this.#tokens.delete(keyOf(job));
  }

  async #get(job: StreamJob): Promise<V1Secret | undefined> {
    try {
      return await this.#core.readNamespacedSecret({
        namespace: job.metadata.namespace ?? "",
        name: controlTokenSecretName(job.metadata),
      });
    } catch (error) {
      if (statusCodeOf(error) === 404) return undefined;
      throw error;
    }
  }

  #remember(key: string, secret: V1Secret): string | undefined {
    const encoded = secret.data?.[CONTROL_TOKEN_KEY];
    if (!encoded) return undefined;
    const token = Buffer.from(encoded, "base64").toString("utf8");
    this.#tokens.set(key, token);
    return token;
  }
}

const keyOf = (job: StreamJob) =>
  `${job.metadata.namespace}/${controlTokenSecretName(job.metadata)}`;
