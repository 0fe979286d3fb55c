// The generated CRDs on the real API server: they apply (idempotently), fill in the same
// defaults as the operator's validation, refuse bad manifests naming the field, document every
// field for `kubectl explain`, and give kubectl its short names, printer columns and the scale
// subresource.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CoreV1Api } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import type { StreamJob, StreamSavepoint } from "../../operator/src/api/types.ts";
import { validateStreamJob } from "../../operator/src/api/validate.ts";
import { repoRoot } from "../cluster/layout.ts";
import { adminKubeConfig, cli, uniqueName } from "../support/cluster.ts";
import { eventually } from "../support/wait.ts";

const core = adminKubeConfig().makeApiClient(CoreV1Api);
const namespace = uniqueName("api");
const files = mkdtempSync(join(tmpdir(), "weir-api-e2e-"));

const kubectl = (...args: string[]) => cli("kubectl", args);

/** `kubectl apply` of one object (as a file, the way users apply manifests). */
async function apply(obj: object): Promise<string> {
  const file = join(files, `${uniqueName("manifest")}.json`);
  writeFileSync(file, JSON.stringify(obj));
  return kubectl("apply", "--namespace", namespace, "-f", file);
}

/** What kubectl prints when the API server refuses the object; fails if it is accepted. */
async function refusal(obj: object): Promise<string> {
  try {
    await apply(obj);
  } catch (error) {
    return String((error as { stderr?: string }).stderr ?? error);
  }
  assert.fail(`the API server accepted ${JSON.stringify(obj)}`);
}

function streamJob(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name, namespace },
    spec: {
      image: "weir/runtime",
      job: { entry: "runtime/examples/word-count.ts", config: { input: "words" } },
      kafka: { bootstrapServers: ["127.0.0.1:9092"] },
      // Suspended, so that an operator running on the shared cluster leaves these objects be.
      state: "suspended",
      savepoints: {
        storage: {
          endpoint: "http://127.0.0.1:9000",
          bucket: "weir",
          credentialsSecret: "weir-storage",
        },
      },
      ...spec,
    },
  };
}

async function getJson<T>(...args: string[]): Promise<T> {
  return JSON.parse(await kubectl("get", "--namespace", namespace, "-o", "json", ...args)) as T;
}

/** The rows of `kubectl get` as records keyed by column; empty cells read as "". */
function table(text: string): Record<string, string>[] {
  const [header = "", ...rows] = text.trimEnd().split("\n");
  const columns = [...header.matchAll(/\S+/g)].map((m, i, all) => ({
    name: m[0],
    start: m.index,
    end: all[i + 1]?.index ?? Number.POSITIVE_INFINITY,
  }));
  return rows.map((row) =>
    Object.fromEntries(columns.map((c) => [c.name, row.slice(c.start, c.end).trim()])),
  );
}

interface Scale {
  kind: string;
  spec: { replicas: number };
  status: { replicas: number; selector?: string };
}

describe("the StreamJob and StreamSavepoint API", () => {
  before(async () => {
    // Server-side apply of unchanged CRDs changes nothing, so other tests using them are safe.
    await kubectl("apply", "--server-side", "--force-conflicts", "-f", join(repoRoot, "crds"));
    await kubectl(
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/streamjobs.weir.dev",
      "crd/streamsavepoints.weir.dev",
    );
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => {});
    rmSync(files, { recursive: true, force: true });
  });

  test("applying the CRDs again changes nothing", async () => {
    type Crd = { metadata: { resourceVersion: string } };
    const before = await getJson<Crd>("crd/streamjobs.weir.dev");
    const output = await kubectl("apply", "--server-side", "-f", join(repoRoot, "crds"));
    assert.match(output, /streamjobs\.weir\.dev serverside-applied/);
    const again = await getJson<Crd>("crd/streamjobs.weir.dev");
    assert.equal(again.metadata.resourceVersion, before.metadata.resourceVersion);
  });

  test("config/crd renders the same two CRDs through kustomize", async () => {
    const docs = parseAllDocuments(await kubectl("kustomize", join(repoRoot, "config", "crd")));
    assert.deepEqual(docs.map((doc) => doc.toJS().metadata.name).sort(), [
      "streamjobs.weir.dev",
      "streamsavepoints.weir.dev",
    ]);
  });

  test("a good manifest is accepted, with the same defaults the operator applies", async () => {
    const manifest = streamJob("defaults");
    await apply(manifest);
    const stored = await getJson<StreamJob>("streamjob/defaults");
    assert.equal(stored.spec.parallelism, 1);
    assert.equal(stored.spec.upgradeMode, "savepoint");
    assert.equal(stored.spec.autoscaler.targetUtilization, 0.7);
    assert.equal(stored.spec.savepoints?.retention.maxCount, 10);
    assert.equal(stored.spec.savepoints?.storage.prefix, "weir");
    assert.deepEqual(stored.spec.job.config, { input: "words" }, "free-form config kept");
    const local = validateStreamJob(manifest);
    assert.ok(local.ok);
    assert.deepEqual(stored.spec, local.job.spec);
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ["wrong type", { parallelism: "two" }, "spec.parallelism", /must be of type integer/],
    [
      "out of range",
      { parallelism: 0 },
      "spec.parallelism",
      /should be greater than or equal to 1/,
    ],
    ["enum", { state: "paused" }, "spec.state", /Unsupported value: "paused"/],
    ["duration", { readinessTimeout: "2 minutes" }, "spec.readinessTimeout", /should match/],
    [
      "minParallelism > maxParallelism (CEL)",
      { autoscaler: { minParallelism: 5, maxParallelism: 2 } },
      "spec.autoscaler.minParallelism",
      /must be <= maxParallelism/,
    ],
    [
      "savepoint upgrades without storage (CEL)",
      { savepoints: undefined },
      "spec.savepoints",
      /savepoints.storage is required for savepoint and last-state upgrades/,
    ],
    [
      "initialSavepoint without storage (CEL)",
      { upgradeMode: "stateless", savepoints: undefined, initialSavepoint: "s3://weir/sp/" },
      "spec.initialSavepoint",
      /initialSavepoint needs savepoints.storage/,
    ],
    [
      "dead-letter without a topic (CEL)",
      { failures: "dead-letter" },
      "spec.deadLetterTopic",
      /is required when failures is dead-letter/,
    ],
    ["a missing required field", { job: { args: [] } }, "spec.job.entry", /Required value/],
    [
      "a checkpoint interval beyond a transaction's life (CEL)",
      { checkpoints: { interval: "10m" } },
      "spec.checkpoints.interval",
      /must be from 100ms to 5m/,
    ],
    [
      "a checkpoint interval of nothing (CEL)",
      { checkpoints: { interval: "0s" } },
      "spec.checkpoints.interval",
      /must be from 100ms to 5m/,
    ],
  ];
  for (const [name, spec, field, message] of bad) {
    test(`refused by the API server and by the operator, naming the field: ${name}`, async () => {
      const manifest = streamJob(uniqueName("bad"), spec);
      const stderr = await refusal(manifest);
      assert.ok(stderr.includes(`${field}: `), `${field} named in: ${stderr}`);
      assert.match(stderr, message);
      const local = validateStreamJob(manifest);
      assert.ok(!local.ok && local.errors.some((e) => e.startsWith(`${field}: `)), `${field}`);
    });
  }

  test("an unknown field is refused (kubectl's strict field validation)", async () => {
    const stderr = await refusal(streamJob(uniqueName("bad"), { paralellism: 2 }));
    assert.match(stderr, /unknown field "spec.paralellism"/);
  });

  test("kubectl explain documents the fields", async () => {
    const explained = await eventually("kubectl explain to know the StreamJob schema", () =>
      kubectl("explain", "sj.spec.autoscaler").then(
        (out) => out,
        () => undefined,
      ),
    );
    const text = explained.replace(/\s+/g, " ");
    assert.match(text, /KIND: StreamJob/);
    assert.match(text, /Scales parallelism from the job's backlog/);
    assert.match(text, /minParallelism <integer>/);
    assert.match(text, /Lowest parallelism the autoscaler chooses/);
    const field = await kubectl("explain", "streamjobs.spec.savepoints.storage.credentialsSecret");
    assert.match(
      field.replace(/\s+/g, " "),
      /Secret in the job's namespace with the keys accessKey and secretKey/,
    );
  });

  test("the scale subresource sets spec.parallelism and reads status", async () => {
    await apply(streamJob("scaled"));
    await kubectl("scale", "--namespace", namespace, "sj/scaled", "--replicas=4");
    assert.equal((await getJson<StreamJob>("sj/scaled")).spec.parallelism, 4);

    await kubectl(
      "patch",
      "--namespace",
      namespace,
      "sj/scaled",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({
        // DESIRED is what the operator runs (status.desiredParallelism), not the spec.
        status: { parallelism: 3, desiredParallelism: 4, selector: "weir.dev/job=scaled", lag: 42 },
      }),
    );
    const scale = await getJson<Scale>("sj/scaled", "--subresource=scale");
    assert.equal(scale.kind, "Scale");
    assert.equal(scale.spec.replicas, 4);
    assert.equal(scale.status.replicas, 3);
    assert.equal(scale.status.selector, "weir.dev/job=scaled");

    const [row] = table(await kubectl("get", "--namespace", namespace, "sj", "scaled"));
    assert.deepEqual(Object.keys(row ?? {}), [
      "NAME",
      "STATE",
      "PARALLELISM",
      "DESIRED",
      "LAG",
      "LAST-SAVEPOINT",
      "AGE",
    ]);
    assert.deepEqual(
      { ...row, AGE: undefined },
      {
        NAME: "scaled",
        STATE: "",
        PARALLELISM: "3",
        DESIRED: "4",
        LAG: "42",
        "LAST-SAVEPOINT": "",
        AGE: undefined,
      },
    );
  });

  test("status is checked against the schema too", async () => {
    await apply(streamJob("status"));
    const stderr = await kubectl(
      "patch",
      "--namespace",
      namespace,
      "sj/status",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { state: "Sleeping" } }),
    ).then(
      () => assert.fail("a status outside the enum was accepted"),
      (error: { stderr?: string }) => String(error.stderr),
    );
    assert.match(stderr, /status.state: Unsupported value: "Sleeping"/);
  });

  test("StreamSavepoint: defaults, short name, printer columns, immutable jobName", async () => {
    const savepoint = {
      apiVersion: "weir.dev/v1alpha1",
      kind: "StreamSavepoint",
      metadata: { name: "manual-1", namespace },
      spec: { jobName: "defaults" },
    };
    await apply(savepoint);
    const stored = await getJson<StreamSavepoint>("ssp/manual-1");
    assert.deepEqual(stored.spec, { jobName: "defaults", stop: false, trigger: "manual" });

    const [row] = table(await kubectl("get", "--namespace", namespace, "ssp"));
    assert.deepEqual(row, {
      NAME: "manual-1",
      JOB: "defaults",
      TRIGGER: "manual",
      STATE: "",
      PATH: "",
      SIZE: "",
      AGE: row?.AGE,
    });

    const stderr = await refusal({ ...savepoint, spec: { jobName: "another" } });
    assert.match(stderr, /spec.jobName: Invalid value: "another": is immutable/);
  });

  test("the category weir lists both kinds", async () => {
    await apply(streamJob("listed"));
    await apply({
      apiVersion: "weir.dev/v1alpha1",
      kind: "StreamSavepoint",
      metadata: { name: "listed", namespace },
      spec: { jobName: "listed" },
    });
    const names = (await kubectl("get", "--namespace", namespace, "weir", "-o", "name")).split(
      "\n",
    );
    assert.ok(names.includes("streamjob.weir.dev/listed"), names.join(", "));
    assert.ok(names.includes("streamsavepoint.weir.dev/listed"), names.join(", "));
  });
});
