// Weir's images as users get them: images/operator.Dockerfile and images/runtime.Dockerfile built
// with buildah, run with podman as the chart and the operator run their pods — the image's own
// user (not root), a read-only root filesystem with only /tmp writable, no capabilities. The
// operator container serves a cluster with its ServiceAccount's token; the runtime container
// counts words exactly once through the cluster's Kafka, its checkpoints in MinIO.
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { httpGet } from "../cluster/probe.ts";
import { clusterEnv, uniqueName } from "../support/cluster.ts";
import {
  buildImage,
  containerLogs,
  ensureNodeBase,
  execIn,
  removeContainer,
  startContainer,
  stopContainer,
} from "../support/images.ts";
import { installCrds, operatorAccountKubeconfig } from "../support/operator.ts";
import { podIp, RuntimeTestbed, runtimeConfig } from "../support/runtime.ts";
import { eventually } from "../support/wait.ts";
import { assertExactlyOnce, produceRounds } from "../support/word-count.ts";

const env = clusterEnv();
const OPERATOR = "localhost/weir/operator:e2e";
const RUNTIME = "localhost/weir/runtime:e2e";
const USER = "65532";
const bed = new RuntimeTestbed();
const containers: string[] = [];
/** Files the containers' user (not root) may read. */
const shared = mkdtempSync(join(tmpdir(), "weir-images-"));
chmodSync(shared, 0o755);

before(async () => {
  // The operator container lists StreamJobs and StreamSavepoints: their CRDs must be served.
  await installCrds();
  const started = Date.now();
  await ensureNodeBase();
  const based = Date.now();
  await buildImage("operator", OPERATOR);
  await buildImage("runtime", RUNTIME);
  console.log(
    `[images e2e] base image ready in ${((based - started) / 1000).toFixed(1)} s; both images built in ${((Date.now() - based) / 1000).toFixed(1)} s`,
  );
});

after(async () => {
  for (const name of containers) await removeContainer(name);
  await bed.tearDown();
});

function readable(file: string, name: string): string {
  const copy = join(shared, name);
  copyFileSync(file, copy);
  chmodSync(copy, 0o644);
  return copy;
}

/** What the container's user may and may not do to its filesystem. */
async function assertLockedDown(container: string): Promise<void> {
  assert.equal((await execIn(container, ["id", "-u"])).trim(), USER, "not root: the image's user");
  await assert.rejects(
    execIn(container, ["touch", "/var/tmp/probe"]),
    /Read-only file system/,
    "the root filesystem is read-only (/var/tmp is writable for everyone in the image)",
  );
  await execIn(container, ["touch", "/tmp/scratch"]);
}

test("the operator image serves the cluster as its ServiceAccount, locked down, and stops gracefully", async () => {
  const name = uniqueName("weir-operator-image");
  const port = 18_600 + Math.floor(Math.random() * 300);
  const kubeconfig = readable(await operatorAccountKubeconfig(), "operator-kubeconfig");
  containers.push(name);
  await startContainer({
    name,
    image: OPERATOR,
    args: ["--no-leader-election", `--http-address=127.0.0.1:${port}`, "--namespace=default"],
    env: { KUBECONFIG: "/etc/weir/kubeconfig" },
    files: { [kubeconfig]: "/etc/weir/kubeconfig" },
  });
  try {
    // Ready: its informers listed and watch StreamJobs with the account's permissions.
    await eventually(
      "the operator container to be ready",
      async () =>
        (await httpGet(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200
          ? true
          : undefined,
      60_000,
    );
  } catch (error) {
    throw new Error(`${error}\n${await containerLogs(name)}`);
  }
  await assertLockedDown(name);
  assert.equal(await stopContainer(name), 0, "SIGTERM: in-flight work finished, exit 0");
  assert.match(await containerLogs(name), /stopping: finishing in-flight reconciles/);
});

test("the runtime image runs a job exactly once, locked down, and stops gracefully", async () => {
  const job = bed.jobName("image-wc");
  const input = `${job}-in`;
  const output = `${job}-out`;
  await bed.admin.createTopics({ topics: [input, output], partitions: 2, replicas: 1 });
  const config = join(shared, "runtime-config.json");
  writeFileSync(
    config,
    JSON.stringify(
      runtimeConfig({
        prefix: "image-tests",
        config: { job: { config: { name: job, input, output } } },
      }),
    ),
  );
  chmodSync(config, 0o644);
  const ip = podIp();
  const name = uniqueName("weir-runtime-image");
  containers.push(name);
  await startContainer({
    name,
    image: RUNTIME,
    args: ["/app/runtime/examples/word-count.ts"],
    env: {
      WEIR_JOB: `tests/${job}`,
      WEIR_SUBTASK: "0",
      WEIR_PARALLELISM: "1",
      WEIR_CONFIG: "/etc/weir/config.json",
      S3_ACCESS_KEY: env.s3AccessKey,
      S3_SECRET_KEY: env.s3SecretKey,
      POD_IP: ip,
    },
    files: { [config]: "/etc/weir/config.json" },
  });
  try {
    await eventually(
      "the runtime container to be ready",
      async () =>
        (await httpGet(`http://${ip}:9249/readyz`).catch(() => undefined))?.status === 200
          ? true
          : undefined,
      60_000,
    );
    await produceRounds(input, 2, 20);
    await assertExactlyOnce(output, 20, { timeoutMs: 60_000 });
  } catch (error) {
    throw new Error(`${error}\n${await containerLogs(name)}`);
  }
  await assertLockedDown(name);
  assert.equal(await stopContainer(name), 0, "SIGTERM: checkpoint, commit, exit 0");
});
