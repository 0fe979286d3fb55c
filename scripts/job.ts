// `npm run job -- <example>`: runs one of runtime/examples/ against the local cluster, as one
// pod would (subtask 0 of 1), creating its source and sink topics if they are missing (through
// the plaintext listener). The job itself uses the secure listeners, as a pod of the demo does:
// Kafka SASL_SSL with SCRAM-SHA-512 and the listener's CA, MinIO over TLS with the cluster's CA.
// Stop it with Ctrl-C (SIGINT/SIGTERM: it checkpoints and commits before leaving).
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Admin } from "@platformatic/kafka";
import { type JobModule, jobOf } from "../runtime/src/api/job.ts";
import { compile } from "../runtime/src/engine/pipeline.ts";
import type { RuntimeConfig } from "../runtime/src/placement.ts";
import { readEnvFile } from "../test-e2e/cluster/cluster.ts";
import { clusterPaths, repoRoot } from "../test-e2e/cluster/layout.ts";

const example = process.argv[2];
const entry = join(repoRoot, "runtime", "examples", `${example}.ts`);
if (!example || !existsSync(entry)) {
  process.stderr.write("usage: npm run job -- <word-count | clicks-per-user | filter-enrich>\n");
  process.exit(2);
}
if (!existsSync(clusterPaths.env)) {
  process.stderr.write("the local cluster is not up: npm run cluster -- up\n");
  process.exit(1);
}
const env = readEnvFile();
const job = compile(jobOf(((await import(entry)) as { default: JobModule }).default, {}));
const bootstrap = env.KAFKA_BOOTSTRAP ?? "";

const admin = new Admin({ clientId: "weir-job-runner", bootstrapBrokers: [bootstrap] });
const existing = new Set(await admin.listTopics());
const userTopics = [...new Set(job.stages.flatMap((s) => [s.sourceTopic, ...s.sinkTopics]))].filter(
  (topic) => !job.describe().internalTopics.includes(topic) && !existing.has(topic),
);
if (userTopics.length > 0)
  await admin.createTopics({ topics: userTopics, partitions: 3, replicas: 1 });
await admin.close();

// As a pod reads it from its mounted Secret: a file, never the configuration.
const passwordFile = join(clusterPaths.config, "job-kafka-password");
writeFileSync(passwordFile, env.KAFKA_SASL_PASSWORD ?? "", { mode: 0o600 });
const configFile = join(clusterPaths.config, `job-${example}.json`);
const config: RuntimeConfig = {
  kafka: {
    bootstrap: [env.KAFKA_SASL_BOOTSTRAP ?? ""],
    tls: { caFile: env.KAFKA_CA_FILE ?? "" },
    sasl: { mechanism: "SCRAM-SHA-512", username: env.KAFKA_SASL_USERNAME ?? "", passwordFile },
  },
  storage: {
    endpoint: env.S3_TLS_ENDPOINT ?? "",
    caFile: env.S3_CA_FILE ?? "",
    bucket: env.S3_BUCKET ?? "",
    prefix: "jobs",
    region: env.S3_REGION ?? "",
  },
  checkpointIntervalMs: 2_000,
};
writeFileSync(configFile, JSON.stringify(config));
const child = spawn(process.execPath, [join(repoRoot, "runtime", "src", "main.ts"), entry], {
  stdio: "inherit",
  env: {
    ...process.env,
    WEIR_JOB: `local/${job.name}`,
    WEIR_SUBTASK: "0",
    WEIR_PARALLELISM: "1",
    WEIR_CONFIG: configFile,
    S3_ACCESS_KEY: env.S3_ACCESS_KEY,
    S3_SECRET_KEY: env.S3_SECRET_KEY,
  },
});
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => child.kill("SIGTERM"));
child.on("exit", (code) => process.exit(code ?? 1));
