// Nothing a user applies breaks the operator (issue 14). A batch of mistaken and hostile
// StreamJobs — huge parallelism, parallelism above the partitions, absurd quantities, invalid
// labels, reserved environment variables, privileged security contexts, a huge job.config,
// durations at and beyond their limits, unreachable storage, missing Secrets, quota, … — is
// applied at once against ONE in-cluster operator (a release of the chart), next to a good job.
// Every case ends in either a refusal by the API server naming the field, or a verdict within
// a deadline: Ready, or Degraded=True with its reason, a message saying what is wrong (in the
// API server's or the runtime's own words where they said it) and a Warning Event. The good
// job gets Ready, and the operator never restarts nor loses its Lease. Then, on the good job:
// `kubectl scale` with the autoscaler on is honoured as an override (the printer columns show
// what runs, and its lag), and a change whose pods the API server refuses rolls back at once.
//
// The namespace enforces PodSecurity "restricted" (Weir's pods pass it whatever their template
// asks: the operator overrides what goes beyond it, and says so) and holds a quota of no pods for
// one priority class, so that quota refusals are real ones.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CustomObjectsApi, SchedulingV1Api } from "@kubernetes/client-node";
import { stringify } from "yaml";
import type { StreamJob } from "../../operator/src/api/types.ts";
import { adminKubeConfig, cli, clusterEnv, uniqueName } from "../support/cluster.ts";
import { deleteTopicsOf } from "../support/kafka.ts";
import { OperatorTestbed, patchJobSpec, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";

const bed = new OperatorTestbed("hostile");
const { namespace } = bed;
const kubeConfig = adminKubeConfig();
const custom = kubeConfig.makeApiClient(CustomObjectsApi);
const capped = `${namespace}-capped`;
/** How long after it is applied a case must have its verdict. */
const VERDICT_DEADLINE_MS = 150_000;

type Expectation =
  /** The API server refuses it, naming this field (and saying this). */
  | { refused: string; says?: RegExp }
  /** Accepted; Degraded=True with this reason, its message saying this. */
  | { degraded: string; says: RegExp }
  /** Ready, with this Warning Event when set. */
  | { ready: true; warns?: string };

interface Case {
  name: string;
  /** Merged into the base spec (objects field by field; `null` removes a field). */
  spec?: Record<string, unknown>;
  expect: Expectation;
}

const env = clusterEnv();
const storage = {
  endpoint: env.s3Endpoint,
  bucket: env.s3Bucket,
  prefix: "hostile-tests",
  credentialsSecret: "weir-storage",
};
const many = (n: number, value: (i: number) => unknown) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value(i)]));
const container = (securityContext: object) => ({
  podTemplate: { spec: { containerSecurityContext: securityContext } },
});
const labels = (values: Record<string, string>) => ({
  podTemplate: { metadata: { labels: values } },
});

const cases: Case[] = [
  // --- what the schema refuses: the API server says no, naming the field ---------------------
  {
    name: "parallelism-huge",
    spec: { parallelism: 100_000 },
    expect: { refused: "spec.parallelism", says: /less than or equal to 1000/ },
  },
  { name: "parallelism-zero", spec: { parallelism: 0 }, expect: { refused: "spec.parallelism" } },
  {
    name: "parallelism-text",
    spec: { parallelism: "many" },
    expect: { refused: "spec.parallelism" },
  },
  { name: "image-empty", spec: { image: "" }, expect: { refused: "spec.image" } },
  {
    name: "image-upper-case",
    spec: { image: "Weir/Runtime:dev" },
    expect: { refused: "spec.image" },
  },
  {
    name: "image-with-space",
    spec: { image: "weir/runtime dev" },
    expect: { refused: "spec.image" },
  },
  {
    name: "cpu-not-a-quantity",
    spec: { resources: { limits: { cpu: "lots" } } },
    expect: { refused: "spec.resources.limits[cpu]", says: /must be a quantity/ },
  },
  {
    name: "memory-not-a-quantity",
    spec: { resources: { requests: { memory: "1.2.3Gi" } } },
    expect: { refused: "spec.resources.requests[memory]" },
  },
  {
    name: "readiness-timeout-zero",
    spec: { readinessTimeout: "0s" },
    expect: { refused: "spec.readinessTimeout", says: /from 10s to 1h/ },
  },
  {
    name: "readiness-timeout-overflow",
    spec: { readinessTimeout: "99999999999h" },
    expect: { refused: "spec.readinessTimeout" },
  },
  {
    name: "metrics-interval-zero",
    spec: { autoscaler: { enabled: true, metricsInterval: "0s" } },
    expect: { refused: "spec.autoscaler.metricsInterval" },
  },
  {
    name: "metrics-window-zero",
    spec: { autoscaler: { metricsWindow: "0s" } },
    expect: { refused: "spec.autoscaler.metricsWindow" },
  },
  {
    name: "catch-up-zero",
    spec: { autoscaler: { catchUpDuration: "0s" } },
    expect: { refused: "spec.autoscaler.catchUpDuration" },
  },
  {
    name: "savepoint-timeout-zero",
    spec: { savepoints: { storage, timeout: "0s" } },
    expect: { refused: "spec.savepoints.timeout" },
  },
  {
    name: "savepoint-every-second",
    spec: { savepoints: { storage, interval: "1s" } },
    expect: { refused: "spec.savepoints.interval" },
  },
  {
    name: "checkpoint-interval-long",
    spec: { checkpoints: { interval: "10m" } },
    expect: { refused: "spec.checkpoints.interval", says: /from 100ms to 5m/ },
  },
  {
    name: "grace-period-zero",
    spec: { podTemplate: { spec: { terminationGracePeriodSeconds: 0 } } },
    expect: { refused: "spec.podTemplate.spec.terminationGracePeriodSeconds" },
  },
  {
    name: "grace-period-huge",
    spec: { podTemplate: { spec: { terminationGracePeriodSeconds: 1_000_000 } } },
    expect: { refused: "spec.podTemplate.spec.terminationGracePeriodSeconds" },
  },
  {
    name: "autoscaler-min-above-max",
    spec: { autoscaler: { enabled: true, minParallelism: 5, maxParallelism: 2 } },
    expect: { refused: "spec.autoscaler.minParallelism", says: /must be <= maxParallelism/ },
  },
  {
    name: "autoscaler-max-huge",
    spec: { autoscaler: { enabled: true, maxParallelism: 5000 } },
    expect: { refused: "spec.autoscaler.maxParallelism" },
  },
  {
    name: "utilization-zero",
    spec: { autoscaler: { targetUtilization: 0 } },
    expect: { refused: "spec.autoscaler.targetUtilization" },
  },
  {
    name: "dead-band-whole",
    spec: { autoscaler: { deadBand: 1 } },
    expect: { refused: "spec.autoscaler.deadBand" },
  },
  {
    name: "config-many-keys",
    spec: { job: { entry: "/app/runtime/examples/word-count.ts", config: many(300, (i) => i) } },
    expect: { refused: "spec.job.config", says: /at most 256/ },
  },
  {
    name: "args-many",
    spec: {
      job: {
        entry: "/app/runtime/examples/word-count.ts",
        args: Array.from({ length: 100 }, () => "x"),
      },
    },
    expect: { refused: "spec.job.args" },
  },
  {
    name: "dead-letter-no-topic",
    spec: { failures: "dead-letter" },
    expect: { refused: "spec.deadLetterTopic" },
  },
  {
    name: "unknown-field",
    spec: { paralellism: 2 },
    // Server-side apply's words for it (kubectl's client-side validation says "unknown field").
    expect: { refused: "spec.paralellism", says: /field not declared in schema/ },
  },
  {
    name: "bootstrap-no-port",
    spec: { kafka: { bootstrapServers: ["kafka"] } },
    expect: { refused: "spec.kafka.bootstrapServers[0]" },
  },
  {
    name: "endpoint-no-scheme",
    spec: { savepoints: { storage: { ...storage, endpoint: "minio:9000" } } },
    expect: { refused: "spec.savepoints.storage.endpoint" },
  },

  // --- what only the operator can judge: Degraded=InvalidSpec, nothing started -------------
  {
    name: "env-reserved",
    spec: { podTemplate: { spec: { env: [{ name: "WEIR_SUBTASK", value: "7" }] } } },
    expect: {
      degraded: "InvalidSpec",
      says: /spec\.podTemplate\.spec\.env\[0\]\.name: WEIR_SUBTASK is set by the operator/,
    },
  },
  {
    name: "env-credentials",
    spec: { podTemplate: { spec: { env: [{ name: "S3_SECRET_KEY", value: "x" }] } } },
    expect: { degraded: "InvalidSpec", says: /S3_SECRET_KEY is set by the operator/ },
  },
  {
    name: "label-reserved",
    spec: labels({ "weir.dev/run": "r9" }),
    expect: {
      degraded: "InvalidSpec",
      says: /spec\.podTemplate\.metadata\.labels: weir\.dev\/run is reserved/,
    },
  },
  {
    name: "name-far-too-long-for-the-pods-and-labels-of-its-runs",
    expect: { degraded: "InvalidSpec", says: /metadata\.name: at most 45 characters/ },
  },
  {
    name: "config-over-a-mebibyte",
    spec: {
      job: {
        entry: "/app/runtime/examples/word-count.ts",
        config: { table: "x".repeat(1_100_000) },
      },
    },
    expect: {
      degraded: "InvalidSpec",
      says: /spec\.job\.config: the run's configuration file would be \d+ bytes; a ConfigMap holds at most 1048576/,
    },
  },

  // --- pods the API server refuses: Degraded=PodsRefused in its words, naming the field -----
  {
    name: "label-value-invalid",
    spec: labels({ team: "web analytics!" }),
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.metadata\.labels: the API server refused Pod .* \(422\): .*Invalid value: "web analytics!"/,
    },
  },
  {
    name: "label-key-invalid",
    spec: labels({ "-team": "web" }),
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.metadata\.labels.*\(422\).*Invalid value: "-team"/,
    },
  },
  {
    name: "annotation-key-invalid",
    spec: { podTemplate: { metadata: { annotations: { "bad key": "x" } } } },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.metadata\.annotations.*Invalid value: "bad key"/,
    },
  },
  {
    name: "annotation-huge",
    spec: {
      podTemplate: { metadata: { annotations: { "example.com/blob": "x".repeat(300_000) } } },
    },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.metadata\.annotations.*Too long: may not be (longer|more) than 262144/,
    },
  },
  {
    name: "cpu-negative",
    spec: { resources: { limits: { cpu: "-1" } } },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.resources\.limits\[cpu\].*must be greater than or equal to 0/,
    },
  },
  {
    name: "requests-above-limits",
    spec: { resources: { requests: { memory: "2Gi" }, limits: { memory: "1Gi" } } },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.resources\.requests.*must be less than or equal to memory limit/,
    },
  },
  {
    name: "env-name-with-equals",
    spec: { podTemplate: { spec: { env: [{ name: "A=B", value: "x" }] } } },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.spec\.env\[0\]\.name.*Invalid value: "A=B"/,
    },
  },
  {
    name: "toleration-invalid",
    spec: { podTemplate: { spec: { tolerations: [{ key: "k", operator: "Sometimes" }] } } },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.spec\.tolerations\[0\]\.operator.*Unsupported value: "Sometimes"/,
    },
  },
  {
    name: "node-selector-invalid",
    spec: { podTemplate: { spec: { nodeSelector: { "bad key": "x" } } } },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.spec\.nodeSelector.*Invalid value: "bad key"/,
    },
  },
  {
    name: "affinity-empty-terms",
    spec: {
      podTemplate: {
        spec: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] },
            },
          },
        },
      },
    },
    expect: {
      degraded: "PodsRefused",
      says: /spec\.podTemplate\.spec\.affinity.*nodeSelectorTerms.*Required value/,
    },
  },
  // --- beyond Pod Security "restricted": overridden by the operator, which says so -----------
  {
    name: "privileged",
    spec: container({ privileged: true }),
    expect: { ready: true, warns: "PodSecurityOverridden" },
  },
  {
    name: "privileged-escalating",
    spec: container({ privileged: true, allowPrivilegeEscalation: true }),
    expect: { ready: true, warns: "PodSecurityOverridden" },
  },
  {
    name: "root-user",
    spec: { podTemplate: { spec: { securityContext: { runAsNonRoot: false, runAsUser: 0 } } } },
    expect: { ready: true, warns: "PodSecurityOverridden" },
  },
  {
    name: "capability-added",
    spec: container({ capabilities: { add: ["NET_ADMIN"] } }),
    expect: { ready: true, warns: "PodSecurityOverridden" },
  },
  {
    name: "service-account-missing",
    spec: { podTemplate: { spec: { serviceAccountName: "nobody" } } },
    expect: { degraded: "PodsRefused", says: /\(403\): .*serviceaccount "nobody" not found/ },
  },
  {
    name: "priority-class-missing",
    spec: { podTemplate: { spec: { priorityClassName: "no-such-class" } } },
    expect: { degraded: "PodsRefused", says: /no PriorityClass with name no-such-class was found/ },
  },
  {
    name: "over-quota",
    spec: { podTemplate: { spec: { priorityClassName: capped } } },
    expect: { degraded: "PodsRefused", says: /\(403\): .*exceeded quota/ },
  },

  // --- pods that cannot run: Degraded, in the kubelet's, scheduler's or runtime's words ------
  {
    name: "image-unknown",
    spec: { image: "registry.example.com/nope/runtime:1" },
    expect: { degraded: "PodsFailing", says: /ErrImagePull|ImagePullBackOff/ },
  },
  {
    name: "cpu-absurd",
    spec: { resources: { requests: { cpu: "1000" } } },
    expect: {
      degraded: "PodsFailing",
      says: /Unschedulable: 0\/\d+ nodes are available: .*Insufficient cpu/,
    },
  },
  {
    name: "entry-missing",
    spec: { job: { entry: "/app/runtime/examples/no-such-job.ts", config: {} } },
    expect: { degraded: "PodsFailing", says: /CrashLoopBackOff: exited with 1: .*no-such-job\.ts/ },
  },
  {
    name: "parallelism-above-partitions",
    spec: { parallelism: 5 },
    expect: {
      degraded: "PodsFailing",
      says: /exited with 1: parallelism 5 exceeds the partition count 3/,
    },
  },
  {
    name: "initial-savepoint-missing",
    spec: { initialSavepoint: `s3://${env.s3Bucket}/hostile-tests/none/` },
    expect: { degraded: "PodsFailing", says: /exited with 1: no completed savepoint at/ },
  },

  // --- storage that cannot be used: Degraded=StorageUnusable, naming what to check ------------
  {
    name: "storage-unreachable",
    spec: { savepoints: { storage: { ...storage, endpoint: "http://127.0.0.1:1" } } },
    expect: {
      degraded: "StorageUnusable",
      says: /spec\.savepoints\.storage: the storage at http:\/\/127\.0\.0\.1:1 failed/,
    },
  },
  {
    name: "bucket-missing",
    spec: { savepoints: { storage: { ...storage, bucket: "no-such-bucket-hostile" } } },
    expect: {
      degraded: "StorageUnusable",
      says: /the bucket no-such-bucket-hostile does not exist/,
    },
  },
  {
    name: "secret-missing",
    spec: { savepoints: { storage: { ...storage, credentialsSecret: "no-such-secret" } } },
    expect: {
      degraded: "StorageUnusable",
      says: /the credentials Secret no-such-secret does not exist/,
    },
  },

  // --- accepted at the very limits: runs ----------------------------------------------------
  {
    name: "durations-at-limits",
    spec: {
      readinessTimeout: "1h",
      checkpoints: { interval: "5m" },
      podTemplate: { spec: { terminationGracePeriodSeconds: 600 } },
      autoscaler: {
        metricsInterval: "1s",
        metricsWindow: "2s",
        catchUpDuration: "10s",
        scaleDownDelay: "0s",
      },
      savepoints: {
        storage,
        timeout: "1h",
        interval: "168h",
        maxCheckpointAge: "1s",
        retention: { maxAge: "1m" },
      },
    },
    expect: { ready: true },
  },
];

/** Field by field: objects merged, anything else replaced, `null` removed. */
function merge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    if (value === null) delete out[key];
    else if (isObject(value) && isObject(current)) out[key] = merge(current, value);
    else out[key] = value;
  }
  return out;
}
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Server-side apply (a huge job.config would not fit kubectl's last-applied annotation). */
async function apply(manifest: object): Promise<{ ok: true } | { ok: false; stderr: string }> {
  const file = join(tmpdir(), `${uniqueName("hostile")}.yaml`);
  writeFileSync(file, stringify(manifest));
  try {
    await cli("kubectl", ["apply", "--server-side", "-f", file]);
    return { ok: true };
  } catch (error) {
    return { ok: false, stderr: String((error as { stderr?: string }).stderr ?? error) };
  }
}

/** Runs `work` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<void>) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

const conditionOf = (job: StreamJob, type: string) =>
  job.status?.conditions?.find(
    (c) => c.type === type && c.observedGeneration === job.metadata.generation,
  );

before(async () => {
  await bed.setUp();
  await cli("kubectl", [
    "label",
    "namespace",
    namespace,
    "pod-security.kubernetes.io/enforce=restricted",
  ]);
  await kubeConfig.makeApiClient(SchedulingV1Api).createPriorityClass({
    body: {
      metadata: { name: capped },
      value: 1000,
      description: "hostile-manifests e2e: no pods allowed",
    },
  });
  await bed.core.createNamespacedResourceQuota({
    namespace,
    body: {
      metadata: { name: "capped" },
      spec: {
        hard: { pods: "0" },
        scopeSelector: {
          matchExpressions: [{ scopeName: "PriorityClass", operator: "In", values: [capped] }],
        },
      },
    },
  });
});

after(async () => {
  await deleteTopicsOf(bed.admin, [namespace]).catch(() => {});
  await bed.tearDown();
  await kubeConfig
    .makeApiClient(SchedulingV1Api)
    .deletePriorityClass({ name: capped })
    .catch(() => {});
});

test("every hostile manifest is refused or gets its verdict; the good job runs; the operator never restarts", async () => {
  const operatorPod = bed.operator?.identity ?? "";
  // A scrape resets the event-loop delay figures: what the last one shows is the batch's.
  await bed.operator?.metrics();
  const base = await bed.wordCountJob("base");
  const good = await bed.wordCountJob("good", { parallelism: 2 });
  const manifests = cases.map((c) => {
    const manifest = base.manifest as unknown as StreamJob;
    const spec = merge(
      {
        ...(manifest.spec as unknown as Record<string, unknown>),
        parallelism: 1,
        job: {
          ...manifest.spec.job,
          config: { ...manifest.spec.job.config, name: `${namespace}-${c.name}` },
        },
      },
      c.spec ?? {},
    );
    return { ...manifest, metadata: { name: c.name, namespace }, spec };
  });

  const started = Date.now();
  /** When each case's apply returned, and its verdict with the seconds it took from there. */
  const appliedAt = new Map<string, number>();
  const outcome = new Map<string, { verdict: string; seconds: number }>();
  const since = (name: string) => (Date.now() - (appliedAt.get(name) ?? started)) / 1000;
  assert.deepEqual((await apply(good.manifest)).ok, true, "the good job is accepted");
  appliedAt.set("good", Date.now());
  let applying = true;
  const applied = inParallel(
    cases.map((c, i) => ({ c, manifest: manifests[i] as object })),
    6,
    async ({ c, manifest }) => {
      const before = Date.now();
      const result = await apply(manifest);
      appliedAt.set(c.name, Date.now());
      if (!result.ok)
        outcome.set(c.name, {
          verdict: `refused: ${result.stderr.replace(/\s+/g, " ").trim()}`,
          seconds: (Date.now() - before) / 1000,
        });
    },
  ).finally(() => {
    applying = false;
  });

  // Verdicts, polled for all jobs at once (while the batch is still being applied, too) until
  // each has one, or the deadline.
  const pending = () =>
    cases.filter((c) => !("refused" in c.expect) && appliedAt.has(c.name) && !outcome.has(c.name));
  const latest = new Map<string, string>();
  let goodReady: number | undefined;
  while (
    (applying || pending().length > 0 || goodReady === undefined) &&
    Date.now() - started < VERDICT_DEADLINE_MS
  ) {
    const list = (await custom.listNamespacedCustomObject({
      group: "weir.dev",
      version: "v1alpha1",
      plural: "streamjobs",
      namespace,
    })) as { items: StreamJob[] };
    const jobs = new Map(list.items.map((j) => [j.metadata.name ?? "", j]));
    const goodJob = jobs.get("good");
    if (goodReady === undefined && goodJob && conditionOf(goodJob, "Ready")?.status === "True")
      goodReady = since("good");
    for (const c of pending()) {
      const job = jobs.get(c.name);
      if (!job) continue;
      const degraded = conditionOf(job, "Degraded");
      const ready = conditionOf(job, "Ready");
      const seen =
        degraded?.status === "True"
          ? `Degraded ${degraded.reason}: ${degraded.message}`
          : ready?.status === "True"
            ? "Ready"
            : `${job.status?.state ?? "(no status)"}, Degraded=${degraded?.status ?? "?"} ${degraded?.reason ?? ""}`;
      latest.set(c.name, seen);
      const verdict =
        ("ready" in c.expect && seen === "Ready") ||
        ("degraded" in c.expect &&
          degraded?.status === "True" &&
          degraded.reason === c.expect.degraded &&
          c.expect.says.test(degraded.message ?? ""));
      if (verdict) outcome.set(c.name, { verdict: seen, seconds: since(c.name) });
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  await applied;
  const appliedAfter = (Math.max(...appliedAt.values()) - started) / 1000;

  // Every verdict came with a Warning Event on its job.
  const events = JSON.parse(
    await cli("kubectl", [
      "get",
      "events",
      "-n",
      namespace,
      "--field-selector",
      "type=Warning",
      "-o",
      "json",
    ]),
  ) as {
    items: { reason?: string; involvedObject?: { name?: string } }[];
  };
  const warned = new Set(events.items.map((e) => `${e.involvedObject?.name}/${e.reason}`));

  const rows = cases.map((c) => {
    const got = outcome.get(c.name);
    const expected =
      "refused" in c.expect
        ? `refused (${c.expect.refused})`
        : "degraded" in c.expect
          ? `Degraded ${c.expect.degraded}`
          : "Ready";
    const verdict = got?.verdict ?? `NONE — last seen: ${latest.get(c.name) ?? "(not found)"}`;
    return { c, expected, verdict, seconds: got?.seconds };
  });
  const cut = (text: string, n: number) => (text.length <= n ? text : `${text.slice(0, n - 1)}…`);
  console.log(
    [
      `hostile manifests: ${cases.length} cases, applied in ${appliedAfter.toFixed(1)} s; the good job Ready ${goodReady?.toFixed(1) ?? "—"} s after it was applied`,
      "| case | expected | verdict | s after its apply |",
      "| --- | --- | --- | --- |",
      ...rows.map(
        (r) =>
          `| ${r.c.name} | ${r.expected} | ${cut(r.verdict, 220).replaceAll("|", "\\|")} | ${r.seconds?.toFixed(1) ?? "—"} |`,
      ),
    ].join("\n"),
  );

  const failures: string[] = [];
  for (const { c, verdict } of rows) {
    const got = outcome.get(c.name);
    if (!got) {
      failures.push(`${c.name}: no verdict within ${VERDICT_DEADLINE_MS / 1000} s (${verdict})`);
    } else if ("refused" in c.expect) {
      const { refused, says } = c.expect;
      if (!got.verdict.includes(`${refused}:`) && !got.verdict.includes(`"${refused}"`))
        failures.push(`${c.name}: the refusal does not name ${refused}: ${got.verdict}`);
      if (says && !says.test(got.verdict))
        failures.push(`${c.name}: the refusal does not say ${says}: ${got.verdict}`);
    } else if ("degraded" in c.expect && !warned.has(`${c.name}/${c.expect.degraded}`)) {
      failures.push(`${c.name}: no Warning Event ${c.expect.degraded}`);
    } else if ("warns" in c.expect && !warned.has(`${c.name}/${c.expect.warns}`)) {
      failures.push(`${c.name}: no Warning Event ${c.expect.warns}`);
    }
  }
  if (goodReady === undefined) failures.push("the good job did not get Ready");
  assert.deepEqual(failures, []);

  // The one operator saw it all through: same pod, never restarted, still leading.
  const pod = await bed.core.readNamespacedPod({
    namespace: bed.leaseNamespace,
    name: operatorPod,
  });
  assert.equal(pod.status?.containerStatuses?.[0]?.restartCount, 0, "the operator never restarted");
  const lease = JSON.parse(
    await cli("kubectl", ["get", "lease", bed.leaseName, "-n", bed.leaseNamespace, "-o", "json"]),
  );
  assert.equal(lease.spec.holderIdentity, operatorPod, "the leader never changed");
  assert.equal(lease.spec.leaseTransitions ?? 0, 0, "the Lease never changed hands");
  // Nothing held the event loop long enough to threaten a renewal (its deadline is 10 s).
  const metrics = (await bed.operator?.metrics()) ?? "";
  const lagMax = Number(
    /^weir_operator_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(metrics)?.[1],
  );
  console.log(`the operator's longest event-loop delay meanwhile: ${lagMax.toFixed(3)} s`);
  assert.ok(lagMax < 2, `event loop blocked for ${lagMax} s`);
  const lost = (await bed.operator?.logs())?.filter((line) =>
    /lost the lease/.test(String(line.msg)),
  );
  assert.deepEqual(lost, []);
  const goodNow = await custom.getNamespacedCustomObject({
    group: "weir.dev",
    version: "v1alpha1",
    plural: "streamjobs",
    namespace,
    name: "good",
  });
  assert.equal(
    conditionOf(goodNow as StreamJob, "Ready")?.status,
    "True",
    "the good job keeps running",
  );
});

test("kubectl scale with the autoscaler on is a manual override; the columns show what runs, with its lag", async () => {
  const read = async () =>
    (await custom.getNamespacedCustomObject({
      group: "weir.dev",
      version: "v1alpha1",
      plural: "streamjobs",
      namespace,
      name: "good",
    })) as StreamJob;
  await patchJobSpec(namespace, "good", {
    autoscaler: { enabled: true, minParallelism: 1, maxParallelism: 3, metricsInterval: "2s" },
  });
  await eventually("the autoscaler to see spec.parallelism", async () =>
    (await read()).status?.autoscaler?.specParallelism === 2 ? true : undefined,
  );
  await cli("kubectl", ["scale", "sj/good", "-n", namespace, "--replicas=3"]);
  const scaled = await eventually(
    "the override to run: 3 pods, Running",
    async () => {
      const job = await read();
      return job.status?.parallelism === 3 && job.status.state === "Running" && !job.status.upgrade
        ? job
        : undefined;
    },
    180_000,
  );
  assert.equal(scaled.status?.desiredParallelism, 3);
  assert.equal(scaled.status?.autoscaler?.recommendedParallelism, 3);
  const events = await cli("kubectl", ["get", "events", "-n", namespace, "-o", "json"]);
  assert.match(events, /ManualOverride: spec.parallelism changed from 2 to 3: the job runs 3/);

  const row = await eventually("kubectl get to show the lag", async () => {
    const [header = "", line = ""] = (await cli("kubectl", ["get", "sj", "good", "-n", namespace]))
      .trimEnd()
      .split("\n");
    // Cells by the header's column positions (an empty cell leaves only spaces).
    const columns = [...header.matchAll(/\S+/g)];
    const cells = Object.fromEntries(
      columns.map((m, i) => [m[0], line.slice(m.index, columns[i + 1]?.index).trim()]),
    );
    return /^\d+$/.test(cells.LAG ?? "") ? cells : undefined;
  });
  assert.equal(row.PARALLELISM, "3");
  assert.equal(row.DESIRED, "3", "DESIRED is what the operator runs");
});

test("a change whose pods the API server refuses rolls back to the last good run at once", async () => {
  const before = (await readJob(namespace, "good")).status?.run;
  await patchJobSpec(namespace, "good", {
    podTemplate: { metadata: { labels: { team: "web analytics!" } } },
  });
  const rolledBack = await eventually(
    "the last good spec to run again, Degraded=RolledBack",
    async () => {
      const job = await readJob(namespace, "good");
      const degraded = conditionOf(job, "Degraded");
      return job.status?.state === "Running" &&
        !job.status.upgrade &&
        degraded?.reason === "RolledBack"
        ? job
        : undefined;
    },
    180_000,
  );
  const degraded = conditionOf(rolledBack, "Degraded");
  assert.match(
    degraded?.message ?? "",
    /spec\.podTemplate\.metadata\.labels: the API server refused Pod good-r\d+-0 \(422\): .*Invalid value: "web analytics!"/,
  );
  assert.equal(rolledBack.status?.run?.specHash, before?.specHash, "the last good spec");
  assert.equal(rolledBack.status?.parallelism, 3);
});
