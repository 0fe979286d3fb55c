// `npm run demo`: the local demo. For now it brings the local cluster up and shows how to use
// it; it grows with the product (operator, sample job, upgrade, autoscaling).
// `npm run demo -- down` stops everything it started.

import { down, up } from "../test-e2e/cluster/cluster.ts";
import { addresses, STORAGE } from "../test-e2e/cluster/components.ts";
import { clusterPaths } from "../test-e2e/cluster/layout.ts";

if (process.argv[2] === "down") {
  await down();
} else {
  await up();
  process.stdout.write(`
The local cluster is up: a Kubernetes control plane, a Kafka broker and MinIO, on loopback.

  source ${clusterPaths.env}      # KUBECONFIG, KAFKA_BOOTSTRAP, S3_*, and kubectl/helm on PATH
  kubectl get --raw /readyz
  kubectl get namespaces
  helm list -A

  Kafka bootstrap:  ${addresses.kafkaBootstrap}
  S3 endpoint:      ${addresses.s3Endpoint}  (bucket ${STORAGE.bucket})
  Logs:             ${clusterPaths.logs}/

  npm run cluster -- status       # each component's state and address
  npm run demo -- down            # stop everything
`);
}
