// The operator process: `npm run operator -- [options]` against the current kubeconfig, or
// in a pod with its service account (in-cluster configuration).
//
//   --namespace NAME               watch this namespace (repeatable; default: all namespaces)
//   --http-address HOST:PORT       /healthz, /readyz, /metrics (default: $POD_IP or 127.0.0.1, :8080)
//   --leader-election-namespace NS where the Lease lives (default: $POD_NAMESPACE or "default")
//   --leader-election-id NAME      the Lease's name (default: weir-operator)
//   --leader-election-lease-duration D, --leader-election-renew-deadline D,
//   --leader-election-retry-period D   the Lease's timing, as client-go's (default 15s, 10s, 2s)
//   --no-leader-election           act without a Lease (only ever one replica!)
//   --concurrency N                jobs reconciled in parallel (default 4)
//   --log-level LEVEL              trace, debug, info (default), warn, error
//   --pod-security LEVEL           what job pods may ask for whatever their template says:
//                                  restricted (default), baseline, privileged (Pod Security Standards)
//   --job-resources JSON|none      requests and limits of job pods whose StreamJob names none, per
//                                  resource (default: DEFAULT_JOB_RESOURCES of build/job-pod-defaults.ts)
//   --job-priority-class NAME      priority class of job pods whose template names none
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Write } from "./act/apply-decision.ts";
import { parseDuration } from "./api/validate.ts";
import {
  DEFAULT_JOB_RESOURCES,
  type JobPodDefaults,
  parseJobResources,
} from "./build/job-pod-defaults.ts";
import { POD_SECURITY_LEVELS, type PodSecurityLevel } from "./build/pod-security.ts";
import { StreamJobController } from "./controller.ts";
import { OperatorHttpServer } from "./machinery/http.ts";
import { LeaderElector } from "./machinery/leader-election.ts";
import { instrumentKubeConfig } from "./machinery/metrics.ts";

const { values } = parseArgs({
  options: {
    namespace: { type: "string", multiple: true },
    "http-address": { type: "string" },
    "leader-election-namespace": { type: "string" },
    "leader-election-id": { type: "string", default: "weir-operator" },
    "leader-election-lease-duration": { type: "string", default: "15s" },
    "leader-election-renew-deadline": { type: "string", default: "10s" },
    "leader-election-retry-period": { type: "string", default: "2s" },
    "no-leader-election": { type: "boolean", default: false },
    concurrency: { type: "string", default: "4" },
    "log-level": { type: "string", default: "info" },
    "pod-security": { type: "string", default: "restricted" },
    "job-resources": { type: "string" },
    "job-priority-class": { type: "string" },
  },
});
const podSecurity = values["pod-security"] as PodSecurityLevel;
if (!POD_SECURITY_LEVELS.includes(podSecurity))
  throw new Error(
    `--pod-security must be one of ${POD_SECURITY_LEVELS.join(", ")}: ${podSecurity}`,
  );

const jobPriorityClass = values["job-priority-class"];
const jobPodDefaults: JobPodDefaults = {
  resources:
    values["job-resources"] === undefined
      ? DEFAULT_JOB_RESOURCES
      : parseJobResources(values["job-resources"]),
  ...(jobPriorityClass ? { priorityClassName: jobPriorityClass } : {}),
};

const log = pino({
  level: values["log-level"],
  base: { component: "weir-operator" },
  timestamp: pino.stdTimeFunctions.isoTime,
});
const identity = process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
const [httpHost, httpPort] = splitAddress(
  values["http-address"] ?? `${process.env.POD_IP || "127.0.0.1"}:8080`,
);

const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();
const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "weir_operator_" });
instrumentKubeConfig(kubeConfig, registry);

// Test-only crash hooks, so tests can prove a restarted operator carries on wherever the last
// one stopped: WEIR_TEST_EXIT_AT_STEP=<step> exits right after the status recorded that step of
// an operation (before taking it); WEIR_TEST_EXIT_AFTER_WRITES=<n> right after its n-th write
// that changed something (status, action or Event) — between any two API calls.
const exitAtStep = process.env.WEIR_TEST_EXIT_AT_STEP;
const exitAfterWrites = Number(process.env.WEIR_TEST_EXIT_AFTER_WRITES ?? 0);
let writes = 0;
const wrote = (write: Write) => {
  log.debug({ write: write.what, changed: write.changed }, "wrote");
  // One that changed nothing (a create of what exists) is as if the operator died before it.
  if (!write.changed) return;
  writes++;
  const atStep = exitAtStep !== undefined && write.status?.upgrade?.step === exitAtStep;
  if (!atStep && writes !== exitAfterWrites) return;
  log.warn(
    { write: write.what, writes, status: write.status },
    "test hook: exiting after this write",
  );
  process.exit(99);
};
let elector: LeaderElector | undefined;
const controller = new StreamJobController({
  kubeConfig,
  namespaces: values.namespace,
  registry,
  log,
  concurrency: Number(values.concurrency),
  podSecurity,
  jobPodDefaults,
  // A replica that was paused past its lease may wake in the middle of a reconcile: it must not
  // write a thing once another may lead.
  mayWrite: () => !elector || elector.isLeader(),
  wrote,
  ...(process.env.WEIR_TEST_POD_WATCH_DELAY_MS
    ? { podWatchDelayMs: Number(process.env.WEIR_TEST_POD_WATCH_DELAY_MS) }
    : {}),
});
let leading = false;
let lostLeadership = false;
const http = new OperatorHttpServer({
  registry,
  healthy: () => !lostLeadership,
  ready: () => controller.synced(),
});
await http.listen(httpHost, httpPort);
log.info(
  {
    identity,
    namespaces: values.namespace ?? "all",
    http: `${httpHost}:${httpPort}`,
    podSecurity,
    jobPodDefaults,
  },
  "starting",
);
await controller.start();
log.info("caches synced");

elector = values["no-leader-election"]
  ? undefined
  : new LeaderElector({
      kubeConfig,
      namespace: values["leader-election-namespace"] ?? process.env.POD_NAMESPACE ?? "default",
      name: values["leader-election-id"],
      identity,
      leaseDurationMs: parseDuration(values["leader-election-lease-duration"]),
      renewDeadlineMs: parseDuration(values["leader-election-renew-deadline"]),
      retryPeriodMs: parseDuration(values["leader-election-retry-period"]),
      onStartedLeading: () => {
        leading = true;
        log.info({ identity }, "leading: reconciling");
        controller.run();
      },
      onStoppedLeading: (why) => {
        // Released by our own shutdown: nothing to do. Lost: another replica may be acting
        // already, so stop at once and let the pod restart as a stand-by (as client-go's
        // controllers do).
        if (!leading || why === "released") return;
        lostLeadership = true;
        log.error({ identity }, "lost the lease; exiting");
        process.exit(1);
      },
      onNewLeader: (leader: string) => {
        if (leader !== identity) log.info({ leader }, "another replica leads");
      },
      logger: log,
    });
if (elector) elector.run();
else controller.run();

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: finishing in-flight reconciles");
    // Leadership is released only once nothing is in flight, so a successor never overlaps.
    controller
      .stop()
      .then(() => elector?.stop())
      .then(() => http.close())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          log.error({ err: String(error) }, "stop failed");
          process.exit(1);
        },
      );
  });
}

function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(":");
  return [address.slice(0, at) || "127.0.0.1", Number(address.slice(at + 1))];
}
