// The operator process: `npm run operator -- [options]` against the current kubeconfig, or
// in a pod with its service account (in-cluster configuration).
//
//   --namespace NAME               watch this namespace (repeatable; default: all namespaces)
//   --http-address HOST:PORT       /healthz, /readyz, /metrics (default: $POD_IP or 127.0.0.1, :8080)
//   --leader-election-namespace NS where the Lease lives (default: $POD_NAMESPACE or "default")
//   --leader-election-id NAME      the Lease's name (default: weir-operator)
//   --no-leader-election           act without a Lease (only ever one replica!)
//   --concurrency N                jobs reconciled in parallel (default 4)
//   --log-level LEVEL              trace, debug, info (default), warn, error
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
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
    "no-leader-election": { type: "boolean", default: false },
    concurrency: { type: "string", default: "4" },
    "log-level": { type: "string", default: "info" },
  },
});

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

// Test-only: WEIR_TEST_EXIT_AT_STEP=<step> kills the operator right after it recorded that step
// of an operation and before taking it, so tests can prove a restarted operator resumes there.
const exitAtStep = process.env.WEIR_TEST_EXIT_AT_STEP;
const controller = new StreamJobController({
  kubeConfig,
  namespaces: values.namespace,
  registry,
  log,
  concurrency: Number(values.concurrency),
  ...(exitAtStep
    ? {
        statusWritten: (status) => {
          if (status.upgrade?.step !== exitAtStep) return;
          log.warn({ step: exitAtStep }, "test hook: exiting at this step");
          process.exit(99);
        },
      }
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
  { identity, namespaces: values.namespace ?? "all", http: `${httpHost}:${httpPort}` },
  "starting",
);
await controller.start();
log.info("caches synced");

const elector = values["no-leader-election"]
  ? undefined
  : new LeaderElector({
      kubeConfig,
      namespace: values["leader-election-namespace"] ?? process.env.POD_NAMESPACE ?? "default",
      name: values["leader-election-id"],
      identity,
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
