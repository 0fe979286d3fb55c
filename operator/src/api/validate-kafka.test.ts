// spec.kafka as the API server (and validateStreamJob, its mirror) judges it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { validateStreamJob } from "./validate.ts";

function withKafka(kafka: Record<string, unknown>) {
  return validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team" },
    spec: {
      image: "weir/runtime",
      job: { entry: "/app/job.ts" },
      kafka: { bootstrapServers: ["kafka:9094"], ...kafka },
      upgradeMode: "stateless",
    },
  });
}

function errorsOf(kafka: Record<string, unknown>): string[] {
  const result = withKafka(kafka);
  assert.equal(result.ok, false, "refused");
  return result.ok ? [] : result.errors;
}

const sasl = {
  mechanism: "SCRAM-SHA-512",
  username: "wc",
  passwordSecret: { name: "wc-kafka", key: "password" },
};

test("SASL_SSL with SCRAM and a CA from a Secret is accepted, with TLS defaults filled in", () => {
  const result = withKafka({
    tls: { ca: { secretKeyRef: { name: "kafka-ca", key: "ca.crt" } } },
    sasl,
    internalTopicReplicationFactor: -1,
  });
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.job.spec.kafka.tls, {
    enabled: true,
    verifyHostname: true,
    ca: { secretKeyRef: { name: "kafka-ca", key: "ca.crt" } },
  });
  const cert = withKafka({ tls: { clientCertificate: { secretName: "client" } } });
  assert.ok(cert.ok);
  assert.deepEqual(cert.job.spec.kafka.tls?.clientCertificate, {
    secretName: "client",
    certificate: "tls.crt",
    key: "tls.key",
  });
});

test("SASL needs a mechanism, a user and the password's Secret; only known mechanisms", () => {
  assert.deepEqual(errorsOf({ sasl: { passwordSecret: sasl.passwordSecret } }), [
    "spec.kafka.sasl.mechanism: is required",
    "spec.kafka.sasl.username: is required",
  ]);
  assert.deepEqual(errorsOf({ sasl: { ...sasl, passwordSecret: undefined } }), [
    "spec.kafka.sasl.passwordSecret: is required",
  ]);
  assert.match(
    errorsOf({ sasl: { ...sasl, mechanism: "GSSAPI" } })[0] ?? "",
    /must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512/,
  );
  // A password inline has no field to go to.
  assert.deepEqual(errorsOf({ sasl: { ...sasl, password: "x" } }), [
    "spec.kafka.sasl.password: unknown field",
  ]);
});

test("the CA comes from exactly one of a Secret and a ConfigMap; no TLS files with TLS off", () => {
  const ref = { name: "kafka-ca", key: "ca.crt" };
  assert.deepEqual(errorsOf({ tls: { ca: { secretKeyRef: ref, configMapKeyRef: ref } } }), [
    "spec.kafka.tls.ca: must name exactly one of secretKeyRef and configMapKeyRef",
  ]);
  assert.deepEqual(errorsOf({ tls: { ca: {} } }), [
    "spec.kafka.tls.ca: must name exactly one of secretKeyRef and configMapKeyRef",
  ]);
  assert.deepEqual(errorsOf({ tls: { enabled: false, ca: { configMapKeyRef: ref } } }), [
    "spec.kafka.tls: ca and clientCertificate need TLS enabled",
  ]);
});

test("client properties: only the keys the runtime honours, milliseconds as whole numbers", () => {
  assert.ok(withKafka({ properties: { "client.rack": "a", "request.timeout.ms": "40000" } }).ok);
  assert.match(
    errorsOf({ properties: { "security.protocol": "SASL_SSL" } })[0] ?? "",
    /^spec.kafka.properties: only client.rack, .* are supported$/,
  );
  assert.deepEqual(errorsOf({ properties: { "retry.backoff.ms": "1s" } }), [
    "spec.kafka.properties: must be a whole number of milliseconds (client.rack excepted)",
  ]);
});

test("internal topics: -1 (the broker's default) or a real replication factor", () => {
  assert.ok(withKafka({ internalTopicReplicationFactor: 3 }).ok);
  assert.deepEqual(errorsOf({ internalTopicReplicationFactor: 0 }), [
    "spec.kafka.internalTopicReplicationFactor: must be -1 (the broker's default) or at least 1",
  ]);
});

test("the SASL_SSL sample is a valid StreamJob", () => {
  const file = join(
    import.meta.dirname,
    "..",
    "..",
    "..",
    "config",
    "samples",
    "word-count-sasl.yaml",
  );
  const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS());
  const job = docs.find((d) => d?.kind === "StreamJob");
  const result = validateStreamJob(job);
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.job.spec.kafka.sasl?.mechanism, "SCRAM-SHA-512");
  const secret = docs.find((d) => d?.kind === "Secret" && d.metadata.name === "kafka-user");
  assert.ok(secret?.stringData?.password, "with the Secret the job names");
});
