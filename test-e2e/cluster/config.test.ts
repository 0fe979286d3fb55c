// The pure builders behind the local cluster: what they produce is what the components get.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { envFileContents, readEnvFile } from "./cluster.ts";
import {
  COMPONENTS,
  componentsFor,
  KAFKA_USER,
  kafkaClusterId,
  kafkaFormatArgs,
  kafkaProperties,
  kubeletLaunch,
  MAX_NODES,
  NODE_NAME,
  nodeLayout,
  nodeNameFor,
  PORTS,
} from "./components.ts";
import { KAFKA_CLIENT, opensslConfig, Pki } from "./pki.ts";
import { formatDuration } from "./progress.ts";
import type { Binaries } from "./toolchain.ts";
import { compareVersions, kafkaPom, wrapperGoMod } from "./toolchain.ts";
import { KAFKA_VERSION, KUBERNETES_VERSION } from "./versions.ts";

function parseProperties(text: string): Map<string, string> {
  return new Map(
    text
      .trim()
      .split("\n")
      .map((line) => {
        const at = line.indexOf("=");
        return [line.slice(0, at), line.slice(at + 1)] as [string, string];
      }),
  );
}

const node = {
  dataDir: "/data/kafka",
  ports: {
    plaintext: PORTS.kafka,
    sasl: PORTS.kafkaSasl,
    mtls: PORTS.kafkaMtls,
    controller: PORTS.kafkaController,
  },
  keyStore: "/pki/kafka-server.pem",
  trustStore: "/pki/kafka-ca.crt",
};

test("kafka properties make a single KRaft node that can run transactions", () => {
  const props = parseProperties(kafkaProperties(node));
  assert.equal(props.get("process.roles"), "broker,controller");
  assert.equal(props.get("controller.quorum.voters"), `1@127.0.0.1:${PORTS.kafkaController}`);
  assert.equal(
    props.get("advertised.listeners"),
    `PLAINTEXT://127.0.0.1:${PORTS.kafka},SASL_SSL://127.0.0.1:${PORTS.kafkaSasl},SSL://127.0.0.1:${PORTS.kafkaMtls}`,
  );
  for (const key of [
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
  ]) {
    assert.equal(props.get(key), "1", key);
  }
  assert.equal(props.get("group.initial.rebalance.delay.ms"), "0");
  assert.equal(props.get("log.dirs"), "/data/kafka");
});

test("the SASL_SSL listener: PEM key store, SCRAM and PLAIN, brokers still talk PLAINTEXT", () => {
  const props = parseProperties(kafkaProperties(node));
  assert.match(props.get("listeners") ?? "", new RegExp(`SASL_SSL://127.0.0.1:${PORTS.kafkaSasl}`));
  assert.match(props.get("listener.security.protocol.map") ?? "", /SASL_SSL:SASL_SSL/);
  assert.equal(props.get("inter.broker.listener.name"), "PLAINTEXT");
  assert.equal(props.get("listener.name.sasl_ssl.ssl.keystore.type"), "PEM");
  assert.equal(props.get("listener.name.sasl_ssl.ssl.keystore.location"), node.keyStore);
  assert.equal(
    props.get("listener.name.sasl_ssl.sasl.enabled.mechanisms"),
    "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
  );
  for (const mechanism of ["scram-sha-512", "scram-sha-256", "plain"]) {
    assert.ok(props.get(`listener.name.sasl_ssl.${mechanism}.sasl.jaas.config`), mechanism);
  }
});

test("the SSL listener requires a client certificate from the node's CA (PEM trust store)", () => {
  const props = parseProperties(kafkaProperties(node));
  assert.equal(
    props.get("listeners"),
    `PLAINTEXT://127.0.0.1:${PORTS.kafka},SASL_SSL://127.0.0.1:${PORTS.kafkaSasl},SSL://127.0.0.1:${PORTS.kafkaMtls},CONTROLLER://127.0.0.1:${PORTS.kafkaController}`,
  );
  assert.equal(
    props.get("listener.security.protocol.map"),
    "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT",
  );
  assert.equal(props.get("listener.name.ssl.ssl.client.auth"), "required");
  assert.equal(props.get("listener.name.ssl.ssl.truststore.type"), "PEM");
  assert.equal(props.get("listener.name.ssl.ssl.truststore.location"), node.trustStore);
  // The same server key and certificate as the SASL_SSL listener.
  assert.equal(props.get("listener.name.ssl.ssl.keystore.type"), "PEM");
  assert.equal(props.get("listener.name.ssl.ssl.keystore.location"), node.keyStore);
  // Client authentication on that listener alone: SASL_SSL clients bring no certificate.
  assert.equal(props.get("ssl.client.auth"), undefined);
  assert.equal(props.get("listener.name.sasl_ssl.ssl.client.auth"), undefined);
  assert.equal(props.get("inter.broker.listener.name"), "PLAINTEXT");
  assert.equal(new Set(Object.values(PORTS)).size, Object.values(PORTS).length, "ports differ");
});

// openssl is one of the host tools the cluster needs (host-tools.ts), as the PKI does.
test("the Kafka client certificate: clientAuth, signed by kafka-ca, made only when missing", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-pki-"));
  try {
    const pki = new Pki(dir);
    await pki.createKafka();
    const cert = pki.path(`${KAFKA_CLIENT.name}.crt`);
    const openssl = (...args: string[]) => execFileSync("openssl", args).toString();
    assert.match(openssl("verify", "-CAfile", pki.path("kafka-ca.crt"), cert), /: OK$/m);
    const text = openssl("x509", "-in", cert, "-noout", "-subject", "-ext", "extendedKeyUsage");
    assert.match(text, new RegExp(`CN ?= ?${KAFKA_CLIENT.commonName}`));
    assert.match(text, /TLS Web Client Authentication/);
    assert.doesNotMatch(text, /TLS Web Server Authentication/);
    // A cluster directory from before it gets one; an existing one is kept.
    const before = readFileSync(cert, "utf8");
    await pki.kafkaClientCertificate();
    assert.equal(readFileSync(cert, "utf8"), before);
    rmSync(cert);
    await pki.kafkaClientCertificate();
    assert.match(openssl("verify", "-CAfile", pki.path("kafka-ca.crt"), cert), /: OK$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("formatting the storage creates the SCRAM users, after the cluster id it was given", () => {
  const args = kafkaFormatArgs("abc", "/config/kafka.properties");
  assert.deepEqual(args.slice(0, 5), ["format", "-t", "abc", "-c", "/config/kafka.properties"]);
  for (const mechanism of ["SCRAM-SHA-512", "SCRAM-SHA-256"]) {
    const at = args.indexOf(
      `${mechanism}=[name=${KAFKA_USER.username},password=${KAFKA_USER.password}]`,
    );
    assert.ok(at > 0 && args[at - 1] === "--add-scram", mechanism);
  }
});

test("kafka cluster ids are 22 URL-safe base64 characters, differ, and never start with '-'", () => {
  const a = kafkaClusterId();
  assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(a, kafkaClusterId());
  // One id in 64 would start with "-" if drawn once; 2,000 draws would meet ~31 of them.
  for (let i = 0; i < 2_000; i++) assert.doesNotMatch(kafkaClusterId(), /^-/);
});

test("the Kubernetes wrapper module maps every staging module to its v0 twin", () => {
  const goMod = wrapperGoMod({
    name: "kubernetes",
    version: KUBERNETES_VERSION,
    module: "k8s.io/kubernetes",
    binaries: {},
    replaces: ["k8s.io/api => k8s.io/api v0.36.3"],
  });
  assert.match(goMod, new RegExp(`^require k8s.io/kubernetes ${KUBERNETES_VERSION}$`, "m"));
  assert.match(goMod, /^replace \(\n\tk8s\.io\/api => k8s\.io\/api v0\.36\.3\n\)$/m);
});

test("the Kafka pom asks for the pinned broker and a logging binding", () => {
  const pom = kafkaPom();
  assert.match(pom, new RegExp(`<artifactId>kafka_2.13</artifactId><version>${KAFKA_VERSION}<`));
  assert.match(pom, /<artifactId>log4j-slf4j-impl<\/artifactId>/);
});

test("version comparison orders Go versions numerically", () => {
  assert.equal(compareVersions("1.26.8", "1.26.0"), 1);
  assert.equal(compareVersions("1.9", "1.26.0"), -1);
  assert.equal(compareVersions("1.26", "1.26.0"), 0);
});

test("openssl configs give the CA its powers and leaves only theirs", () => {
  const ca = opensslConfig({ commonName: "ca", ca: true });
  assert.match(ca, /basicConstraints = critical,CA:TRUE/);
  const leaf = opensslConfig({
    commonName: "weir-admin",
    organization: "system:masters",
    subjectAltNames: ["IP:127.0.0.1"],
  });
  assert.match(leaf, /basicConstraints = critical,CA:FALSE/);
  assert.match(leaf, /^O = system:masters$/m);
  assert.match(leaf, /^extendedKeyUsage = clientAuth$/m);
  assert.match(leaf, /^subjectAltName = IP:127.0.0.1$/m);
});

test("the env file is shell-sourceable and reads back the same", () => {
  const bin = { kubectl: "/cache/k8s/bin/kubectl", helm: "/cache/helm/bin/helm" } as Binaries;
  const contents = envFileContents(bin);
  const dir = mkdtempSync(join(tmpdir(), "weir-env-"));
  try {
    const file = join(dir, "env");
    writeFileSync(file, contents);
    const vars = readEnvFile(file);
    for (const name of [
      "KUBECONFIG",
      "KAFKA_BOOTSTRAP",
      "KAFKA_SASL_BOOTSTRAP",
      "KAFKA_SASL_USERNAME",
      "KAFKA_SASL_PASSWORD",
      "KAFKA_CA_FILE",
      "KAFKA_MTLS_BOOTSTRAP",
      "KAFKA_CLIENT_CERT_FILE",
      "KAFKA_CLIENT_KEY_FILE",
      "S3_ENDPOINT",
      "S3_ACCESS_KEY",
      "S3_SECRET_KEY",
      "S3_BUCKET",
      "S3_TLS_ENDPOINT",
      "S3_CA_FILE",
    ]) {
      assert.ok(vars[name], `${name} is set`);
    }
    const fromShell = execFileSync("sh", ["-c", `. ${file} && echo "$S3_BUCKET|$PATH"`], {
      env: { PATH: "/usr/bin:/bin" },
    })
      .toString()
      .trim();
    assert.equal(fromShell, `${vars.S3_BUCKET}|/cache/k8s/bin:/cache/helm/bin:/usr/bin:/bin`);
    // The mTLS listener's address, and the client certificate next to the CA that signed it.
    assert.equal(vars.KAFKA_MTLS_BOOTSTRAP, `127.0.0.1:${PORTS.kafkaMtls}`);
    assert.equal(
      vars.KAFKA_CLIENT_CERT_FILE,
      join(dirname(vars.KAFKA_CA_FILE ?? ""), "kafka-client.crt"),
    );
    assert.equal(
      vars.KAFKA_CLIENT_KEY_FILE,
      join(dirname(vars.KAFKA_CA_FILE ?? ""), "kafka-client.key"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the node is named after the machine, as a valid DNS label", () => {
  assert.equal(nodeNameFor("vm"), "vm");
  assert.equal(nodeNameFor("Build_Box.example.com"), "build-box");
  assert.equal(nodeNameFor("__"), "node");
});

test("every node has its own name, kubelet port, pod range, data folder and identity", () => {
  const nodes = Array.from({ length: MAX_NODES }, (_, i) => nodeLayout(i + 1));
  for (const field of ["name", "port", "podCidr", "dataDir", "identity", "kubeconfig"] as const) {
    assert.equal(new Set(nodes.map((n) => n[field])).size, MAX_NODES, `${field} differs`);
  }
  // Node 1 is the one-node cluster's, as it was.
  assert.deepEqual(
    [nodes[0]?.name, nodes[0]?.port, nodes[0]?.podCidr, nodes[0]?.identity],
    [NODE_NAME, PORTS.kubelet, "127.1.0.0/16", "kubelet"],
  );
  assert.deepEqual(
    [nodes[2]?.name, nodes[2]?.port, nodes[2]?.podCidr],
    [`${NODE_NAME}-3`, 10_263, "127.13.0.0/16"],
  );
  const taken = new Set<number>(Object.values(PORTS));
  for (const n of nodes.slice(1)) assert.ok(!taken.has(n.port), `${n.name}'s port is free`);
  // Loopback only, clear of the runtime tests' own addresses (127.2–127.9, 127.77, 127.100+).
  for (const n of nodes) {
    const second = Number(/^127\.(\d+)\.0\.0\/16$/.exec(n.podCidr)?.[1]);
    assert.ok(second === 1 || (second >= 12 && second < 77), n.podCidr);
  }
  assert.throws(() => nodeLayout(MAX_NODES + 1), /numbered 1 to/);
  const env = kubeletLaunch(nodeLayout(2, ["k=v:NoSchedule"]), { dir: "/pki" } as never).env;
  assert.equal(env?.WEIR_NODE_TAINTS, "k=v:NoSchedule");
  assert.equal(env?.WEIR_POD_CIDR, "127.12.0.0/16");
});

test("a cluster of n nodes has a kubelet component per node", () => {
  assert.deepEqual(componentsFor(1), COMPONENTS);
  assert.deepEqual(
    componentsFor(3)
      .filter((c) => c.name.startsWith("kubelet"))
      .map((c) => [c.name, c.address]),
    [
      ["kubelet", "https://127.0.0.1:10250"],
      ["kubelet-2", "https://127.0.0.1:10262"],
      ["kubelet-3", "https://127.0.0.1:10263"],
    ],
  );
});

test("durations read as a person would say them", () => {
  assert.equal(formatDuration(1_234), "1.2s");
  assert.equal(formatDuration(754_000), "12m34s");
});
