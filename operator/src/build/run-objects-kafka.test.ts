// A run's Kafka security settings: the runtime's configuration names files, the pod mounts them
// from the job's Secrets and ConfigMaps, and no secret is ever in the ConfigMap or the pod spec.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { StreamJob } from "../api/types.ts";
import { validateStreamJob } from "../api/validate.ts";
import { runSpecOf, specHash } from "../decide/run-spec.ts";
import { buildConfigMap, buildPod, type RunRef } from "./run-objects.ts";

function runOf(kafka: Record<string, unknown>): RunRef {
  const checked = validateStreamJob({
    apiVersion: "weir.dev/v1alpha1",
    kind: "StreamJob",
    metadata: { name: "wc", namespace: "team", uid: "u-1" },
    spec: {
      image: "weir/runtime:2",
      job: { entry: "/app/runtime/examples/word-count.ts" },
      kafka: { bootstrapServers: ["kafka.example:9094"], ...kafka },
      upgradeMode: "stateless",
    },
  });
  if (!checked.ok) throw new Error(checked.errors.join("; "));
  const job = checked.job as StreamJob;
  const spec = runSpecOf(job);
  return { job, id: "r1", spec, specHash: specHash(spec) };
}

const SASL_SSL = {
  tls: {
    ca: { configMapKeyRef: { name: "kafka-ca", key: "ca.crt" } },
    clientCertificate: { secretName: "wc-client" },
  },
  sasl: {
    mechanism: "SCRAM-SHA-512",
    username: "wc",
    passwordSecret: { name: "wc-kafka", key: "password" },
  },
  internalTopicReplicationFactor: 3,
  properties: { "client.rack": "zone-a" },
};

test("SASL_SSL: the configuration names the mounted files and the user, never a secret", () => {
  const run = runOf(SASL_SSL);
  const config = JSON.parse(buildConfigMap(run).data?.["config.json"] ?? "{}");
  assert.deepEqual(config.kafka, {
    bootstrap: ["kafka.example:9094"],
    internalTopicReplicationFactor: 3,
    tls: {
      caFile: "/etc/weir-kafka/ca.crt",
      certFile: "/etc/weir-kafka/client.crt",
      keyFile: "/etc/weir-kafka/client.key",
      verifyHostname: true,
    },
    sasl: {
      mechanism: "SCRAM-SHA-512",
      username: "wc",
      passwordFile: "/etc/weir-kafka/sasl-password",
    },
    properties: { "client.rack": "zone-a" },
  });
});

test("SASL_SSL: one read-only projected volume of the Secret and ConfigMap keys", () => {
  const pod = buildPod(runOf(SASL_SSL), 0);
  const volume = pod.spec?.volumes?.find((v) => v.name === "kafka");
  assert.deepEqual(volume?.projected?.sources, [
    { configMap: { name: "kafka-ca", items: [{ key: "ca.crt", path: "ca.crt" }] } },
    { secret: { name: "wc-client", items: [{ key: "tls.crt", path: "client.crt" }] } },
    { secret: { name: "wc-client", items: [{ key: "tls.key", path: "client.key" }] } },
    { secret: { name: "wc-kafka", items: [{ key: "password", path: "sasl-password" }] } },
  ]);
  const mount = pod.spec?.containers[0]?.volumeMounts?.find((m) => m.name === "kafka");
  assert.deepEqual(mount, { name: "kafka", mountPath: "/etc/weir-kafka", readOnly: true });
  // Not through the environment either.
  const env = JSON.stringify(pod.spec?.containers[0]?.env);
  assert.doesNotMatch(env, /wc-kafka|wc-client|kafka-ca/);
});

test("TLS from a Secret, hostname verification turned off explicitly", () => {
  const run = runOf({
    tls: { ca: { secretKeyRef: { name: "ca", key: "bundle.pem" } }, verifyHostname: false },
  });
  const config = JSON.parse(buildConfigMap(run).data?.["config.json"] ?? "{}");
  assert.deepEqual(config.kafka.tls, { caFile: "/etc/weir-kafka/ca.crt", verifyHostname: false });
  const volume = buildPod(run, 0).spec?.volumes?.find((v) => v.name === "kafka");
  assert.deepEqual(volume?.projected?.sources, [
    { secret: { name: "ca", items: [{ key: "bundle.pem", path: "ca.crt" }] } },
  ]);
});

test("plaintext and TLS without files: no volume; TLS off: no TLS", () => {
  for (const kafka of [{}, { tls: {} }, { tls: { enabled: false } }]) {
    const run = runOf(kafka);
    const pod = buildPod(run, 0);
    assert.equal(
      pod.spec?.volumes?.find((v) => v.name === "kafka"),
      undefined,
    );
    assert.equal(
      pod.spec?.containers[0]?.volumeMounts?.find((m) => m.name === "kafka"),
      undefined,
    );
  }
  const off = JSON.parse(
    buildConfigMap(runOf({ tls: { enabled: false } })).data?.["config.json"] ?? "{}",
  );
  assert.equal(off.kafka.tls, undefined);
  const on = JSON.parse(buildConfigMap(runOf({ tls: {} })).data?.["config.json"] ?? "{}");
  assert.deepEqual(on.kafka.tls, { verifyHostname: true });
});
