// One pod on the process kubelet: its volumes, its containers' runs, probes and restarts,
// its status in the API, and its graceful end.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiException,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1ContainerState,
  type V1ContainerStatus,
  type V1Pod,
  type V1Probe,
} from "@kubernetes/client-node";
import { ContainerProcess, type Mount } from "./container.ts";
import {
  containerEnv,
  MissingInput,
  type PodInputs,
  podVolumes,
  refreshTokens,
  tokenRefreshMs,
} from "./pod-inputs.ts";
import {
  type CatalogImage,
  containerArgv,
  effectiveRestartPolicy,
  lookupImage,
  podConditions,
  podPhase,
  restartBackoffMs,
  shouldRestart,
} from "./pod-spec.ts";
import { runProbe } from "./probes.ts";

export interface NodeContext extends PodInputs {
  nodeName: string;
  dataDir: string;
  catalog: Record<string, CatalogImage>;
  log: (message: string) => void;
}

interface ContainerRun {
  spec: V1Container;
  restartCount: number;
  state: V1ContainerState;
  lastState?: V1ContainerState;
  ready: boolean;
  started: boolean;
  mainPid?: number;
  process?: ContainerProcess;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

export function logPath(dataDir: string, pod: V1Pod, container: string, restart: number): string {
  const { namespace, name, uid } = pod.metadata ?? {};
  return join(dataDir, "logs", `${namespace}_${name}_${uid}`, container, `${restart}.log`);
}

export class PodWorker {
  private pod: V1Pod;
  private readonly node: NodeContext;
  readonly podIP: string;
  private readonly containers: ContainerRun[];
  private readonly initContainers: ContainerRun[];
  private readonly startTime = now();
  private terminating = false;
  private terminationGraceMs = 0;
  private readonly wake = new AbortController();
  private dirty = false;
  private publishing: Promise<void> | undefined;
  private gone = false;
  readonly finished: Promise<void>;

  constructor(pod: V1Pod, podIP: string, node: NodeContext) {
    this.pod = pod;
    this.podIP = podIP;
    this.node = node;
    const hasInit = (pod.spec?.initContainers?.length ?? 0) > 0;
    const run = (spec: V1Container, reason: string): ContainerRun => ({
      spec,
      restartCount: 0,
      state: { waiting: { reason } },
      ready: false,
      started: false,
    });
    this.initContainers = (pod.spec?.initContainers ?? []).map((spec) =>
      run(spec, "PodInitializing"),
    );
    this.containers = (pod.spec?.containers ?? []).map((spec) =>
      run(spec, hasInit ? "PodInitializing" : "ContainerCreating"),
    );
    this.finished = this.run();
  }

  private get key(): string {
    return `${this.pod.metadata?.namespace}/${this.pod.metadata?.name}`;
  }

  /**
   * The pod with the IP this kubelet gave it, for the downward API: the copy from the API may
   * not carry it yet when the first container starts (a real kubelet knows it by then too).
   */
  private withOwnIP(): V1Pod {
    return {
      ...this.pod,
      status: { ...this.pod.status, podIP: this.podIP, podIPs: [{ ip: this.podIP }] },
    };
  }

  private get podDir(): string {
    return join(this.node.dataDir, "pods", this.pod.metadata?.uid ?? "unknown");
  }

  get current(): V1Pod {
    return this.pod;
  }

  matches(namespace: string, name: string): boolean {
    return this.pod.metadata?.namespace === namespace && this.pod.metadata?.name === name;
  }

  private get allContainers(): ContainerRun[] {
    return [...this.initContainers, ...this.containers];
  }

  /** How often the named container restarted (its current run's log index), if it exists. */
  restartsOf(container: string): number | undefined {
    return this.allContainers.find((c) => c.spec.name === container)?.restartCount;
  }

  isRunning(container: string): boolean {
    return this.allContainers.find((c) => c.spec.name === container)?.process?.running ?? false;
  }

  /** A newer version of the pod object. */
  update(pod: V1Pod): void {
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp && !this.terminating) void this.terminate(true);
  }

  /** The pod object is gone from the API (force-deleted): stop everything now. */
  removed(): void {
    this.gone = true;
    if (!this.terminating) void this.terminate(false);
  }

  /** Records an Event on the pod, as a kubelet does (`kubectl describe pod` shows them). */
  private event(
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    container?: string,
  ): void {
    const { name = "", namespace = "", uid } = this.pod.metadata ?? {};
    const time = new Date();
    void this.node.api
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.` },
          involvedObject: {
            kind: "Pod",
            apiVersion: "v1",
            name,
            namespace,
            uid,
            ...(container ? { fieldPath: `spec.containers{${container}}` } : {}),
          },
          type,
          reason,
          message,
          source: { component: "kubelet", host: this.node.nodeName },
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
          reportingComponent: "kubelet",
          reportingInstance: this.node.nodeName,
        },
      })
      .catch((error: unknown) => {
        // A namespace being deleted refuses new Events (403): nothing to record there.
        if (error instanceof ApiException && error.code === 403) return;
        this.node.log(`${this.key}: event ${reason} not recorded: ${error}`);
      });
  }

  /** Sleeps, but wakes up early when the pod starts terminating. */
  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.wake.signal }).catch(() => {});
  }

  private async run(): Promise<void> {
    this.publish();
    let volumes: Map<string, string> | undefined;
    while (!this.terminating && !volumes) {
      try {
        volumes = await podVolumes(this.withOwnIP(), this.podDir, this.node);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        for (const c of this.allContainers)
          c.state = { waiting: { reason: "ContainerCreating", message } };
        this.publish();
        this.node.log(`${this.key}: volumes not ready: ${message}`);
        await this.pause(2_000);
      }
    }
    const refreshMs = tokenRefreshMs(this.pod);
    const renewal =
      volumes && refreshMs !== undefined
        ? setInterval(() => {
            refreshTokens(this.pod, this.podDir, this.node).catch((error: unknown) =>
              this.node.log(`${this.key}: token renewal failed: ${error}`),
            );
          }, refreshMs)
        : undefined;
    try {
      await this.runAll(volumes);
    } finally {
      clearInterval(renewal);
    }
    await this.publishing;
  }

  private async runAll(volumes: Map<string, string> | undefined): Promise<void> {
    if (volumes) {
      const ready = volumes;
      // Init containers run one at a time, each to a successful end, before the others start.
      for (const c of this.initContainers) {
        await this.runContainer(c, ready, true);
        if (c.state.terminated?.exitCode !== 0) return;
      }
      for (const c of this.containers) c.state = { waiting: { reason: "ContainerCreating" } };
      await Promise.all(this.containers.map((c) => this.runContainer(c, ready, false)));
    }
  }

  private mounts(
    container: V1Container,
    image: CatalogImage,
    volumes: Map<string, string>,
  ): Mount[] {
    const fromImage = Object.entries(image.mounts ?? {}).map(([containerPath, hostPath]) => ({
      containerPath,
      hostPath,
      readOnly: false,
    }));
    const fromVolumes = (container.volumeMounts ?? []).map((m) => {
      const dir = volumes.get(m.name);
      if (!dir)
        throw new MissingInput("CreateContainerConfigError", `volume ${m.name} is not defined`);
      return {
        containerPath: m.mountPath,
        hostPath: m.subPath ? join(dir, m.subPath) : dir,
        readOnly: m.readOnly ?? false,
      };
    });
    return [...fromImage, ...fromVolumes];
  }

  private async runContainer(
    c: ContainerRun,
    volumes: Map<string, string>,
    init: boolean,
  ): Promise<void> {
    const policy = effectiveRestartPolicy(this.pod.spec?.restartPolicy, init);
    let pullFailures = 0;
    while (!this.terminating) {
      const image = lookupImage(this.node.catalog, c.spec.image ?? "");
      if (!image) {
        c.state = {
          waiting: {
            reason: pullFailures === 0 ? "ErrImagePull" : "ImagePullBackOff",
            message: `image "${c.spec.image}" is not in the process kubelet's image catalog`,
          },
        };
        pullFailures++;
        this.event(
          "Warning",
          "Failed",
          `Failed to pull image "${c.spec.image}": not in the image catalog`,
          c.spec.name,
        );
        this.publish();
        await this.pause(pullFailures === 1 ? 1_000 : restartBackoffMs(pullFailures - 1));
        continue;
      }
      let process: ContainerProcess;
      try {
        const env = await containerEnv(this.withOwnIP(), c.spec, image.env ?? {}, this.node);
        process = new ContainerProcess({
          argv: containerArgv(c.spec, image, env),
          env,
          mounts: this.mounts(c.spec, image, volumes),
          workingDir: c.spec.workingDir ?? image.workingDir,
          logFile: logPath(this.node.dataDir, this.pod, c.spec.name, c.restartCount),
        });
      } catch (error) {
        const reason = error instanceof MissingInput ? error.reason : "CreateContainerError";
        c.state = {
          waiting: { reason, message: error instanceof Error ? error.message : String(error) },
        };
        this.publish();
        await this.pause(2_000);
        continue;
      }
      c.process = process;
      // Termination may have begun while the container was being set up.
      if (this.terminating) void process.stop(this.terminationGraceMs);
      c.mainPid = await process.mainPid();
      c.state = { running: { startedAt: now() as unknown as Date } };
      this.event("Normal", "Started", `Started container ${c.spec.name}`, c.spec.name);
      c.started = !c.spec.startupProbe;
      c.ready = c.started && !c.spec.readinessProbe;
      this.publish();
      const stopProbes = this.startProbes(c, process);
      const exit = await process.exited;
      stopProbes();
      c.ready = false;
      c.started = false;
      const terminated: V1ContainerState = {
        terminated: {
          exitCode: exit.exitCode,
          reason: exit.reason,
          startedAt: process.startedAt.toISOString().replace(/\.\d+Z$/, "Z") as unknown as Date,
          finishedAt: now() as unknown as Date,
          containerID: `weir://${c.mainPid}`,
        },
      };
      if (this.terminating || !shouldRestart(policy, exit.exitCode)) {
        c.state = terminated;
        this.publish();
        return;
      }
      c.lastState = terminated;
      c.restartCount++;
      const delay = restartBackoffMs(c.restartCount - 1);
      if (delay > 0) {
        this.event("Warning", "BackOff", "Back-off restarting failed container", c.spec.name);
        c.state = {
          waiting: {
            reason: "CrashLoopBackOff",
            message: `back-off ${delay / 1000}s restarting failed container=${c.spec.name} pod=${this.pod.metadata?.name}`,
          },
        };
        this.publish();
        await this.pause(delay);
      }
    }
  }

  /** Starts the container's probe loops; returns a function that stops them. */
  private startProbes(c: ContainerRun, process: ContainerProcess): () => void {
    const stopped = new AbortController();
    const loop = async (
      probe: V1Probe,
      onResult: (ok: boolean, failures: number, why?: string) => boolean,
    ) => {
      await sleep((probe.initialDelaySeconds ?? 0) * 1000, undefined, {
        signal: stopped.signal,
      }).catch(() => {});
      let failures = 0;
      let successes = 0;
      while (!stopped.signal.aborted && process.running) {
        const why = await runProbe(probe, {
          podIP: this.podIP,
          container: c.spec,
          mainPid: c.mainPid,
        });
        if (stopped.signal.aborted) return;
        failures = why === undefined ? 0 : failures + 1;
        successes = why === undefined ? successes + 1 : 0;
        const ok = successes >= (probe.successThreshold ?? 1);
        if (!onResult(ok, failures, why)) return;
        await sleep((probe.periodSeconds ?? 10) * 1000, undefined, {
          signal: stopped.signal,
        }).catch(() => {});
      }
    };
    const grace = () => (this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
    const kill = (what: string, why?: string) => {
      this.event("Warning", "Unhealthy", `${what} probe failed: ${why}`, c.spec.name);
      this.event(
        "Normal",
        "Killing",
        `Container ${c.spec.name} failed ${what} probe, will be restarted`,
        c.spec.name,
      );
      void process.stop(grace());
    };
    const afterStarted = () => {
      if (c.spec.readinessProbe) {
        void loop(c.spec.readinessProbe, (ok) => {
          if (c.ready !== ok) {
            c.ready = ok;
            this.publish();
          }
          return true;
        });
      } else {
        c.ready = true;
        this.publish();
      }
      if (c.spec.livenessProbe) {
        const threshold = c.spec.livenessProbe.failureThreshold ?? 3;
        void loop(c.spec.livenessProbe, (_ok, failures, why) => {
          if (failures < threshold) return true;
          kill("liveness", why);
          return false;
        });
      }
    };
    if (c.spec.startupProbe) {
      const threshold = c.spec.startupProbe.failureThreshold ?? 3;
      void loop(c.spec.startupProbe, (ok, failures, why) => {
        if (ok) {
          c.started = true;
          this.publish();
          afterStarted();
          return false;
        }
        if (failures >= threshold) {
          kill("startup", why);
          return false;
        }
        return true;
      });
    } else {
      afterStarted();
    }
    return () => stopped.abort();
  }

  private async terminate(graceful: boolean): Promise<void> {
    this.terminating = true;
    this.wake.abort();
    const seconds =
      this.pod.metadata?.deletionGracePeriodSeconds ??
      this.pod.spec?.terminationGracePeriodSeconds ??
      30;
    const graceMs = graceful ? seconds * 1000 : 0;
    this.terminationGraceMs = graceMs;
    for (const c of this.allContainers.filter((c) => c.process?.running)) {
      this.event("Normal", "Killing", `Stopping container ${c.spec.name}`, c.spec.name);
    }
    await Promise.all(this.allContainers.map((c) => c.process?.stop(graceMs)));
    await this.finished;
    rmSync(this.podDir, { recursive: true, force: true });
    if (graceful && !this.gone) await this.deleteObject();
  }

  /**
   * The kubelet has the last word on a pod: once its processes are gone it deletes the object
   * for good (grace 0), guarded by uid so that a same-named successor is never touched.
   */
  private async deleteObject(): Promise<void> {
    const { name = "", namespace = "", uid } = this.pod.metadata ?? {};
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        // With a body, the API server reads the options from it alone (not the query).
        await this.node.api.deleteNamespacedPod({
          name,
          namespace,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        });
        return;
      } catch (error) {
        if (error instanceof ApiException && error.code === 404) return;
        this.node.log(`${this.key}: final delete failed (attempt ${attempt}): ${error}`);
        await sleep(500 * attempt);
      }
    }
  }

  private containerStatus(c: ContainerRun): V1ContainerStatus {
    return {
      name: c.spec.name,
      image: c.spec.image ?? "",
      imageID: `weir-catalog://${c.spec.image}`,
      ...(c.mainPid !== undefined && !c.state.waiting
        ? { containerID: `weir://${c.mainPid}` }
        : {}),
      ready: c.ready,
      started: c.started,
      restartCount: c.restartCount,
      state: c.state,
      lastState: c.lastState ?? {},
    };
  }

  private publish(): void {
    this.dirty = true;
    if (!this.publishing) {
      this.publishing = this.flush().finally(() => {
        this.publishing = undefined;
      });
    }
  }

  private async flush(): Promise<void> {
    while (this.dirty && !this.gone) {
      this.dirty = false;
      const containerStatuses = this.containers.map((c) => this.containerStatus(c));
      const initContainerStatuses = this.initContainers.map((c) => this.containerStatus(c));
      const status = {
        phase: podPhase(this.pod.spec?.restartPolicy, containerStatuses, initContainerStatuses),
        conditions: podConditions(this.pod, containerStatuses, new Date(), initContainerStatuses),
        initContainerStatuses,
        hostIP: this.node.hostIP,
        hostIPs: [{ ip: this.node.hostIP }],
        podIP: this.podIP,
        podIPs: [{ ip: this.podIP }],
        startTime: this.startTime,
        containerStatuses,
      };
      try {
        this.pod = await this.node.api.patchNamespacedPodStatus(
          {
            name: this.pod.metadata?.name ?? "",
            namespace: this.pod.metadata?.namespace ?? "",
            body: { status },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
      } catch (error) {
        if (error instanceof ApiException && error.code === 404) {
          this.gone = true;
          return;
        }
        this.node.log(`${this.key}: status update failed: ${error}`);
        this.dirty = true;
        await sleep(500);
      }
    }
  }
}
