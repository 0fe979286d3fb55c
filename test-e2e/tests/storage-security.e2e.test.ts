// Savepoint storage as clusters reach it (issue 15), end to end with an operator of the chart:
// - MinIO over TLS (the cluster's S3_TLS_ENDPOINT, certificate from the cluster's CA), the CA
//   from a Secret: an upgrade goes through a savepoint there and the next run restores it,
//   every running count exactly once;
// - a CA that did not sign the endpoint's certificate: Degraded=StorageUnusable saying so and
//   what to set; fixed by naming the right CA;
// - web identity, the IRSA path without EKS: the API server is the OpenID issuer (its own
//   discovery document and JWKS, readable anonymously as EKS/GKE federation set it up), a
//   MinIO of the test trusts it (MINIO_IDENTITY_OPENID_CONFIG_URL, role policy readwrite); the
//   pods get a projected service-account token for MinIO's client id and assume the role with
//   STS AssumeRoleWithWebIdentity, the operator with a TokenRequest token of the same account.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { validateStreamJob } from "../../operator/src/api/validate.ts";
import { minioTlsClient } from "../cluster/components.ts";
import { run } from "../cluster/exec.ts";
import { cli, clusterEnv } from "../support/cluster.ts";
import { PrivateMinio } from "../support/minio.ts";
import {
  jobReady,
  nextRunRunning,
  OperatorTestbed,
  patchJobSpec,
  readJob,
} from "../support/operator.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceContinuously } from "../support/word-count.ts";

const env = clusterEnv();
const bed = new OperatorTestbed("storage-sec");
const scratch = mkdtempSync(join(tmpdir(), "weir-storage-sec-"));
const clusterCa = readFileSync(env.s3CaFile, "utf8");
/** MinIO's OpenID client id: the audience of the pods' tokens. */
const CLIENT_ID = "weir-e2e-minio-sts";
let identityMinio: PrivateMinio | undefined;

before(async () => {
  await bed.setUp();
  await bed.core.createNamespacedSecret({
    namespace: bed.namespace,
    body: { metadata: { name: "storage-ca" }, stringData: { "ca.crt": clusterCa } },
  });
  // A CA of its own, which signed nothing MinIO serves.
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    join(scratch, "untrusted.key"),
    "-out",
    join(scratch, "untrusted.crt"),
    "-days",
    "1",
    "-subj",
    "/CN=weir-untrusted-ca",
  ]);
  await bed.core.createNamespacedConfigMap({
    namespace: bed.namespace,
    body: {
      metadata: { name: "untrusted-ca" },
      data: { "bundle.pem": readFileSync(join(scratch, "untrusted.crt"), "utf8") },
    },
  });
  // The pods' service account, which the controller manager creates with the namespace.
  await eventually(
    "the namespace's default service account",
    async () =>
      await bed.core
        .readNamespacedServiceAccount({ name: "default", namespace: bed.namespace })
        .then(() => true)
        .catch(() => undefined),
  );
});

after(async () => {
  await bed.tearDown();
  await identityMinio?.remove();
  rmSync(scratch, { recursive: true, force: true });
});

/** The storage settings of a job on the cluster's TLS MinIO; `extra` overrides. */
function tlsStorage(extra: Record<string, unknown> = {}) {
  return {
    storage: {
      endpoint: env.s3TlsEndpoint,
      bucket: env.s3Bucket,
      prefix: "operator-tests",
      credentialsSecret: "weir-storage",
      caBundle: { secretKeyRef: { name: "storage-ca" } },
      ...extra,
    },
  };
}

/** Patches the job's image and waits for the next run; asserts it restored the savepoint. */
async function upgradeThroughSavepoint(name: string, image: string) {
  const before = await readJob(bed.namespace, name);
  await patchJobSpec(bed.namespace, name, { image });
  const sj = await nextRunRunning(bed.namespace, name, before.status?.run?.id, 180_000);
  const savepoint = sj.status?.lastSavepoint;
  assert.equal(savepoint?.trigger, "upgrade");
  assert.equal(savepoint?.run, before.status?.run?.id, "taken from the run that was replaced");
  assert.equal(sj.status?.run?.restoredFrom, savepoint?.path, "the new run restored it");
  return savepoint?.path ?? "";
}

/** Waits for the job's Degraded condition to have `reason`; returns its message. */
async function degraded(name: string, reason: string, timeoutMs = 120_000): Promise<string> {
  return eventually(
    `StreamJob ${name} to be Degraded=${reason}`,
    async () => {
      const job = await readJob(bed.namespace, name);
      const condition = job.status?.conditions?.find((c) => c.type === "Degraded");
      return condition?.status === "True" && condition.reason === reason
        ? condition.message
        : undefined;
    },
    timeoutMs,
  );
}

describe("savepoint storage over TLS and web identity", { concurrency: false }, () => {
  test("the API server refuses what the schema can say no to, as validateStreamJob does", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { caBundle: { secretKeyRef: { name: "a" }, configMapKeyRef: { name: "b" } } },
        /spec\.savepoints\.storage\.caBundle: Invalid value: .*name exactly one of secretKeyRef and configMapKeyRef/,
      ],
      [
        { endpoint: env.s3Endpoint, caBundle: { secretKeyRef: { name: "storage-ca" } } },
        /spec\.savepoints\.storage\.caBundle: Invalid value: .*needs an https:\/\/ endpoint/,
      ],
      [
        { webIdentity: { roleArn: "arn:aws:iam::1:role/r" } },
        /spec\.savepoints\.storage\.webIdentity: Invalid value: .*credentialsSecret and webIdentity are two sources of credentials/,
      ],
      [{ addressing: "dns" }, /spec\.savepoints\.storage\.addressing: Unsupported value: "dns"/],
    ];
    const { manifest } = await bed.wordCountJob("refused");
    for (const [extra, refusal] of cases) {
      const job = { ...manifest, spec: { ...manifest.spec, savepoints: tlsStorage(extra) } };
      const validated = validateStreamJob(job);
      assert.equal(validated.ok, false, `validateStreamJob refuses ${JSON.stringify(extra)}`);
      await assert.rejects(bed.apply(job), (error: Error) => {
        assert.match(String((error as { stderr?: string }).stderr ?? error.message), refusal);
        return true;
      });
    }
  });

  test("over TLS with the CA from a Secret: an upgrade through a savepoint restores it, exactly once", async () => {
    const job = await bed.wordCountJob("tls", { savepoints: tlsStorage() });
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, "tls");
    const traffic = produceContinuously(job.input, 3);
    try {
      await eventually("some input", async () => (traffic.rounds > 20 ? true : undefined));
      const path = await upgradeThroughSavepoint("tls", "weir/runtime:v2");
      // The savepoint is in the TLS MinIO, which has a data folder of its own.
      const key = `${path.replace(`s3://${env.s3Bucket}/`, "")}_metadata.json`;
      const stat = await minioTlsClient(clusterCa).statObject(env.s3Bucket, key);
      assert.ok(stat.size > 0, `${key} is in the TLS MinIO`);
    } finally {
      const rounds = await traffic.stop();
      await assertExactlyOnce(job.output, rounds, { timeoutMs: 180_000 });
    }
    // The CA is mounted into the pods, never copied into the run's ConfigMap.
    const pod = (await bed.podsOf("tls"))[0];
    const volume = pod?.spec?.volumes?.find((v) => v.name === "storage-ca");
    assert.equal(volume?.secret?.secretName, "storage-ca");
    const configMaps = await cli("kubectl", [
      ...["get", "cm", "-n", bed.namespace, "-l", "weir.dev/job=tls", "-o", "json"],
    ]);
    assert.match(configMaps, /caFile/, "the run's configuration names the mounted file");
    assert.doesNotMatch(configMaps, /BEGIN CERTIFICATE/);
    assert.ok(!configMaps.includes(env.s3SecretKey), "no credentials in a ConfigMap");
  });

  test("a CA that did not sign the endpoint's certificate: Degraded=StorageUnusable, then fixed", async () => {
    const job = await bed.wordCountJob("untrusted", {
      savepoints: tlsStorage({
        caBundle: { configMapKeyRef: { name: "untrusted-ca", key: "bundle.pem" } },
      }),
    });
    await bed.apply(job.manifest);
    const message = await degraded("untrusted", "StorageUnusable");
    assert.match(
      message,
      /^spec\.savepoints\.storage: the storage at https:\/\/127\.0\.0\.1:9443 presented a TLS certificate that is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)[^)]*\): spec\.savepoints\.storage\.caBundle does not hold the CA that signed it$/,
    );
    assert.ok(!message.includes(env.s3SecretKey));
    const events = await cli("kubectl", [
      "get",
      "events",
      "-n",
      bed.namespace,
      "--field-selector=reason=StorageUnusable",
      "-o",
      "json",
    ]);
    assert.match(events, /not trusted/);
    // Naming the CA that signed it clears the condition.
    await patchJobSpec(bed.namespace, "untrusted", {
      savepoints: tlsStorage({
        caBundle: { secretKeyRef: { name: "storage-ca" }, configMapKeyRef: null },
      }),
    });
    await eventually(
      "Degraded to clear once the right CA is named",
      async () => {
        const sj = await readJob(bed.namespace, "untrusted");
        const condition = sj.status?.conditions?.find((c) => c.type === "Degraded");
        return condition?.status === "False" ? true : undefined;
      },
      180_000,
    );
    await cli("kubectl", ["delete", "sj", "untrusted", "-n", bed.namespace, "--timeout=90s"]);
  });

  test("web identity: the pods' service-account token assumes a MinIO role (AssumeRoleWithWebIdentity)", async () => {
    // The issuer's discovery document and keys readable without credentials, as EKS and GKE
    // publish theirs for federation (idempotent; harmless: public keys only).
    await cli("kubectl", [
      "create",
      "clusterrolebinding",
      "weir-e2e-oidc-discovery",
      "--clusterrole=system:service-account-issuer-discovery",
      "--group=system:unauthenticated",
      "--dry-run=client",
      "-o",
      "yaml",
    ]).then((yaml) => applyYaml(yaml));
    const certs = join(scratch, "minio-certs");
    mkdirSync(join(certs, "CAs"), { recursive: true });
    copyFileSync(env.s3CaFile, join(certs, "CAs", "ca.crt"));
    identityMinio = await PrivateMinio.start({
      certsDir: certs,
      env: {
        MINIO_IDENTITY_OPENID_CONFIG_URL: "https://127.0.0.1:6443/.well-known/openid-configuration",
        MINIO_IDENTITY_OPENID_CLIENT_ID: CLIENT_ID,
        MINIO_IDENTITY_OPENID_ROLE_POLICY: "readwrite",
      },
    });
    // MinIO names a role-policy provider's role after a hash of its client id.
    const roleArn = `arn:minio:iam:${env.s3Region}::role/${createHash("sha1").update(CLIENT_ID).digest("base64url")}`;
    const storage = {
      endpoint: identityMinio.endpoint,
      bucket: identityMinio.bucket,
      prefix: "operator-tests",
      webIdentity: { roleArn, audience: CLIENT_ID },
      stsEndpoint: identityMinio.endpoint,
    };
    const job = await bed.wordCountJob("identity", { savepoints: { storage } });
    await bed.apply(job.manifest);
    await jobReady(bed.namespace, "identity", 180_000);
    const pod = (await bed.podsOf("identity"))[0];
    const names = new Set(pod?.spec?.containers[0]?.env?.map((e) => e.name));
    assert.ok(!names.has("S3_ACCESS_KEY"), "no static keys");
    assert.ok(names.has("AWS_WEB_IDENTITY_TOKEN_FILE") && names.has("AWS_ROLE_ARN"));
    const traffic = produceContinuously(job.input, 3);
    let path = "";
    try {
      await eventually("some input", async () => (traffic.rounds > 20 ? true : undefined));
      path = await upgradeThroughSavepoint("identity", "weir/runtime:v2");
    } finally {
      const rounds = await traffic.stop();
      await assertExactlyOnce(job.output, rounds, { timeoutMs: 180_000 });
    }
    const key = `${path.replace(`s3://${identityMinio.bucket}/`, "")}_metadata.json`;
    assert.ok((await identityMinio.client().statObject(identityMinio.bucket, key)).size > 0);
    // No token (a JWT) in the operator's or the pods' logs.
    const jwt = /eyJ[A-Za-z0-9_-]{10,}\.eyJ/;
    assert.doesNotMatch(JSON.stringify(await bed.operator?.logs()), jwt);
    for (const p of await bed.podsOf("identity"))
      assert.doesNotMatch(
        await cli("kubectl", ["logs", p.metadata?.name ?? "", "-n", bed.namespace]),
        jwt,
      );

    // A role MinIO does not know: STS says so, and the operator passes its words on.
    await patchJobSpec(bed.namespace, "identity", {
      savepoints: {
        storage: { ...storage, webIdentity: { roleArn: `${roleArn}x`, audience: CLIENT_ID } },
      },
    });
    const message = await degraded("identity", "StorageUnusable");
    assert.match(
      message,
      /STS at http:\/\/127\.0\.0\.1:\d+ refused AssumeRoleWithWebIdentity: .*\(spec\.savepoints\.storage\.webIdentity\)$/,
    );
  });
});

async function applyYaml(yaml: string): Promise<void> {
  const file = join(scratch, "manifest.yaml");
  writeFileSync(file, yaml);
  await cli("kubectl", ["apply", "--server-side", "-f", file]);
}
