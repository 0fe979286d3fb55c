// Kafka as users have it: a StreamJob whose every Kafka client (sources, sinks, the repartition
// topic, transactions, admin, end offsets) goes through the local broker's SASL_SSL listener
// with SCRAM-SHA-512 and the listener's own CA, from a Secret and a ConfigMap; its output
// exactly once (read back through the plaintext listener, which is the same broker). A wrong
// password and a CA that did not sign the broker's certificate each give the job Degraded with
// a message saying so, and the password shows nowhere: not in the run's ConfigMap, the pods,
// the job's status or Events. The same through the broker's mTLS (SSL) listener with a client
// certificate from a kubernetes.io/tls Secret; without one the job is Degraded, saying the
// listener requires it.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { validateStreamJob } from "../../operator/src/api/validate.ts";
import { clusterPaths } from "../cluster/layout.ts";
import {
  cli,
  clusterEnv,
  type MutualTlsKafkaEnv,
  mutualTlsKafkaEnv,
  secureKafkaEnv,
} from "../support/cluster.ts";
import { ensureTopics } from "../support/kafka.ts";
import { jobReady, OperatorTestbed, readJob } from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceRounds } from "../support/word-count.ts";

const repo = join(import.meta.dirname, "..", "..");
const kafka = secureKafkaEnv();
const bed = new OperatorTestbed("kafka-sec");
const { namespace, core } = bed;
const WRONG_PASSWORD = "not-the-kafka-password";

const KAFKA_CA = { configMapKeyRef: { name: "kafka-ca", key: "ca.crt" } };
/** The cluster's own CA: real, but not the one that signed the Kafka listener's certificate. */
const OTHER_CA = { secretKeyRef: { name: "other-ca", key: "ca.crt" } };

/** spec.kafka for one of the broker's listeners, with its TLS (and SASL) settings. */
function kafkaThrough(bootstrap: string, security: Record<string, unknown>) {
  return {
    kafka: {
      bootstrapServers: [bootstrap],
      ...security,
      // The one broker has no default.replication.factor above 1 to fall back on.
      internalTopicReplicationFactor: 1,
    },
  };
}

/** spec.kafka for the secure listener, the password from `passwordSecret`, the CA as given. */
function secureKafka(passwordSecret: string, ca: Record<string, unknown>) {
  return kafkaThrough(kafka.bootstrap, {
    tls: { ca },
    sasl: {
      mechanism: "SCRAM-SHA-512",
      username: kafka.username,
      passwordSecret: { name: passwordSecret, key: "password" },
    },
  });
}

/**
 * spec.kafka for the mTLS listener: its CA, and the client certificate of the kubernetes.io/tls
 * Secret `clientCertificate` (its default keys tls.crt and tls.key); none when not given.
 */
function mutualTlsKafka(mtls: MutualTlsKafkaEnv, clientCertificate?: string) {
  return kafkaThrough(mtls.bootstrap, {
    tls: {
      ca: KAFKA_CA,
      ...(clientCertificate ? { clientCertificate: { secretName: clientCertificate } } : {}),
    },
  });
}

before(async () => {
  await bed.setUp();
  const secret = (name: string, stringData: Record<string, string>) =>
    core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData } });
  // As `kubectl create secret generic --from-file` of a file ending in a newline would.
  await secret("kafka-user", { password: `${kafka.password}\n` });
  await secret("kafka-user-wrong", { password: WRONG_PASSWORD });
  await secret("other-ca", { "ca.crt": readFileSync(join(clusterPaths.pki, "ca.crt"), "utf8") });
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: { name: "kafka-ca" },
      data: { "ca.crt": readFileSync(kafka.caFile, "utf8") },
    },
  });
});
after(() => bed.tearDown());

/**
 * Waits for Degraded=True (PodsFailing) with a message saying `says`: the kubelet's
 * CrashLoopBackOff comes first, the runtime's last words (read from the crashed container's
 * log) once the operator has them. A timeout names the last message seen.
 */
async function degradedSaying(name: string, says: RegExp): Promise<string> {
  let last = "(no Degraded condition)";
  try {
    return await eventually(
      `StreamJob ${name} to be Degraded saying ${says}`,
      async () => {
        const job = await readJob(namespace, name);
        const degraded = job.status?.conditions?.find((c) => c.type === "Degraded");
        if (degraded?.status !== "True") return undefined;
        last = `${degraded.reason}: ${degraded.message}`;
        return degraded.reason === "PodsFailing" && says.test(degraded.message ?? "")
          ? (degraded.message ?? "")
          : undefined;
      },
      180_000,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last Degraded: ${last}`);
  }
}

/**
 * The word count `name` with `spec` through the listener the spec names: 20 rounds before it
 * runs and 20 after it is Ready, every running count exactly once in its output.
 */
async function wordCountExactlyOnce(name: string, spec: Record<string, unknown>): Promise<void> {
  const job = await bed.wordCountJob(name, spec);
  await produceRounds(job.input, 3, 20);
  await bed.apply(job.manifest);
  await jobReady(namespace, name, 180_000);
  await produceRounds(job.input, 3, 20);
  await assertExactlyOnce(job.output, 40);
}

/** A one-pod word count `name` with `spec` that the broker refuses: Degraded saying `says`. */
async function refusedSaying(
  name: string,
  spec: Record<string, unknown>,
  says: RegExp,
): Promise<string> {
  const job = await bed.wordCountJob(name, { ...spec, parallelism: 1 }, { partitions: 1 });
  await bed.apply(job.manifest);
  return degradedSaying(name, says);
}

/** The runtime's config of the job's run (`config.json` of its ConfigMap `<name>-…`). */
async function runConfig(name: string): Promise<{ kafka: Record<string, unknown> }> {
  const configMaps = await core.listNamespacedConfigMap({ namespace });
  const run = configMaps.items.find((c) => c.metadata?.name?.startsWith(`${name}-`));
  return JSON.parse(run?.data?.["config.json"] ?? "{}");
}

/** Everything a user (or a log collector) could read about the job, as one text. */
async function whatIsVisible(name: string): Promise<string> {
  const configMaps = await core.listNamespacedConfigMap({ namespace });
  const pods = await bed.podsOf(name);
  const events = await cli("kubectl", ["get", "events", "-n", namespace, "-o", "json"]);
  const job = await readJob(namespace, name);
  const logs = await Promise.all(
    pods.map((pod) =>
      cli("kubectl", ["logs", pod.metadata?.name ?? "", "-n", namespace]).catch(() => ""),
    ),
  );
  return JSON.stringify([configMaps.items, pods, events, job.status, logs]);
}

describe("spec.kafka the API server refuses (and the operator's validation with it)", () => {
  const ref = { name: "kafka-ca", key: "ca.crt" };
  const sasl = {
    mechanism: "SCRAM-SHA-512",
    username: "u",
    passwordSecret: { name: "s", key: "p" },
  };
  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    [
      "a password without a mechanism",
      { sasl: { username: "u", passwordSecret: sasl.passwordSecret } },
      "spec.kafka.sasl.mechanism",
      /Required value/,
    ],
    [
      "an inline password",
      { sasl: { ...sasl, password: "x" } },
      "spec.kafka.sasl.password",
      /unknown field/,
    ],
    [
      "an unknown mechanism",
      { sasl: { ...sasl, mechanism: "GSSAPI" } },
      "spec.kafka.sasl.mechanism",
      /Unsupported value/,
    ],
    [
      "a CA from two places",
      { tls: { ca: { secretKeyRef: ref, configMapKeyRef: ref } } },
      "spec.kafka.tls.ca",
      /exactly one of secretKeyRef and configMapKeyRef/,
    ],
    [
      "a CA with TLS off",
      { tls: { enabled: false, ca: { secretKeyRef: ref } } },
      "spec.kafka.tls",
      /need TLS enabled/,
    ],
    [
      "a client property the runtime does not honour",
      { properties: { "security.protocol": "SSL" } },
      "spec.kafka.properties",
      /only client.rack, .* are supported/,
    ],
    [
      "milliseconds that are not",
      { properties: { "request.timeout.ms": "30s" } },
      "spec.kafka.properties",
      /whole number of milliseconds/,
    ],
    [
      "replication factor 0",
      { internalTopicReplicationFactor: 0 },
      "spec.kafka.internalTopicReplicationFactor",
      /-1 \(the broker's default\) or at least 1/,
    ],
  ];
  for (const [what, kafkaSpec, field, message] of bad) {
    test(what, async () => {
      const manifest = {
        apiVersion: "weir.dev/v1alpha1",
        kind: "StreamJob",
        metadata: { name: "refused", namespace },
        spec: {
          image: "weir/runtime",
          job: { entry: "/app/runtime/examples/word-count.ts" },
          kafka: { bootstrapServers: [kafka.bootstrap], ...kafkaSpec },
          upgradeMode: "stateless",
        },
      };
      const file = join(mkdtempSync(join(tmpdir(), "weir-kafka-sec-")), "job.json");
      writeFileSync(file, JSON.stringify(manifest));
      const stderr = await cli("kubectl", ["apply", "--dry-run=server", "-f", file]).then(
        () => assert.fail(`the API server accepted ${JSON.stringify(kafkaSpec)}`),
        (error: { stderr?: string }) => String(error.stderr ?? error),
      );
      // Schema errors say `field: why`; strict decoding says `unknown field "field"`.
      assert.ok(stderr.includes(`${field}: `) || stderr.includes(`"${field}"`), stderr);
      assert.match(stderr, message);
      const local = validateStreamJob(manifest);
      assert.ok(
        !local.ok && local.errors.some((e) => e.startsWith(`${field}: `)),
        JSON.stringify(local),
      );
    });
  }
});

describe("Kafka through SASL_SSL with SCRAM-SHA-512", { concurrency: false }, () => {
  test("the word count reads and writes through it, every running count exactly once", async () => {
    await wordCountExactlyOnce("wc", secureKafka("kafka-user", KAFKA_CA));
    const config = await runConfig("wc");
    assert.deepEqual(config.kafka.sasl, {
      mechanism: "SCRAM-SHA-512",
      username: kafka.username,
      passwordFile: "/etc/weir-kafka/sasl-password",
    });
    assert.deepEqual(
      config.kafka.bootstrap,
      [kafka.bootstrap],
      "no plaintext broker to fall back on",
    );
    assert.ok(!(await whatIsVisible("wc")).includes(kafka.password), "the password shows nowhere");
  });

  test("the sample runs as it is, with the CAs handed over as its header says", async () => {
    // The header's `kubectl create configmap kafka-ca` made in before(), storage-ca here.
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: { name: "storage-ca" },
        data: { "ca.crt": readFileSync(clusterEnv().s3CaFile, "utf8") },
      },
    });
    await ensureTopics(bed.admin, ["lines", "word-counts-secure"], 3);
    // `lines` stays: the other samples' test reads it too.
    bed.topics.push("word-counts-secure", "word-count-secure-counts-repartition");
    await cli("kubectl", [
      "apply",
      "-n",
      namespace,
      "-f",
      join(repo, "config", "samples", "word-count-sasl.yaml"),
    ]);
    await jobReady(namespace, "word-count-sasl", 180_000);
    // Its storage is the TLS MinIO alone: a savepoint completes only through it, with the CA.
    await bed.apply({
      apiVersion: "weir.dev/v1alpha1",
      kind: "StreamSavepoint",
      metadata: { name: "word-count-sasl-by-hand", namespace },
      spec: { jobName: "word-count-sasl" },
    });
    const path = await eventually(
      "the sample's savepoint to complete",
      async () => {
        const ssp = JSON.parse(
          await cli("kubectl", [
            "get",
            "ssp",
            "word-count-sasl-by-hand",
            "-n",
            namespace,
            "-o",
            "json",
          ]),
        ) as { status?: { state?: string; path?: string; message?: string } };
        assert.notEqual(ssp.status?.state, "Failed", ssp.status?.message);
        return ssp.status?.state === "Completed" ? ssp.status.path : undefined;
      },
      120_000,
    );
    assert.match(path ?? "", /^s3:\/\/weir-savepoints\//);
    await cli("kubectl", ["delete", "sj", "word-count-sasl", "-n", namespace, "--timeout=90s"]);
  });

  test("a wrong password: Degraded, naming the user and the mechanism, not the password", async () => {
    await refusedSaying(
      "wrong-password",
      secureKafka("kafka-user-wrong", KAFKA_CA),
      new RegExp(
        `exited with 1: Kafka: SASL authentication failed for user ${kafka.username} \\(SCRAM-SHA-512\\) at ${kafka.bootstrap}`,
      ),
    );
    const visible = await whatIsVisible("wrong-password");
    assert.ok(!visible.includes(WRONG_PASSWORD), "the wrong password shows nowhere");
    assert.ok(!visible.includes(kafka.password), "nor the right one");
  });

  test("a CA that did not sign the broker's certificate: Degraded, saying it is not trusted", async () => {
    await refusedSaying(
      "untrusted-ca",
      secureKafka("kafka-user", OTHER_CA),
      new RegExp(
        `exited with 1: Kafka: TLS: certificate not trusted \\(unable to verify the first certificate\\) at ${kafka.bootstrap}`,
      ),
    );
  });
});

describe("Kafka through the mTLS (SSL) listener with a client certificate", {
  concurrency: false,
}, () => {
  // Read here, not with the file: a cluster started before the listener fails just these.
  let mtls: MutualTlsKafkaEnv;
  let clientKey: string;
  before(async () => {
    mtls = mutualTlsKafkaEnv();
    clientKey = readFileSync(mtls.keyFile, "utf8");
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: "kafka-client" },
        type: "kubernetes.io/tls",
        stringData: { "tls.crt": readFileSync(mtls.certFile, "utf8"), "tls.key": clientKey },
      },
    });
  });

  test("the word count reads and writes through it, every running count exactly once", async () => {
    await wordCountExactlyOnce("mtls-wc", mutualTlsKafka(mtls, "kafka-client"));
    const config = await runConfig("mtls-wc");
    assert.deepEqual(
      config.kafka.bootstrap,
      [mtls.bootstrap],
      "no plaintext broker to fall back on",
    );
    assert.deepEqual(config.kafka.tls, {
      caFile: "/etc/weir-kafka/ca.crt",
      certFile: "/etc/weir-kafka/client.crt",
      keyFile: "/etc/weir-kafka/client.key",
      verifyHostname: true,
    });
    assert.equal(config.kafka.sasl, undefined, "the certificate alone authenticates");
    // The key's first line of base64: in no ConfigMap, pod, Event, status or log.
    const keyLine = clientKey.split("\n").find((line) => line && !line.startsWith("-----")) ?? "";
    assert.ok(keyLine.length > 20 && !(await whatIsVisible("mtls-wc")).includes(keyLine));
  });

  test("no client certificate: Degraded, saying the listener requires one", async () => {
    await refusedSaying(
      "no-client-cert",
      mutualTlsKafka(mtls),
      new RegExp(
        `exited with 1: Kafka: TLS: client certificate required \\(alert "[a-z ]+"\\) at ${mtls.bootstrap}: .*spec\\.kafka\\.tls\\.clientCertificate`,
      ),
    );
  });
});
