// Pinned versions of every component of the local cluster. Changing a pin changes the
// cache folder it lives in, so the next `cluster up` rebuilds just that component.

export const KUBERNETES_VERSION = "v1.36.3";
/** The etcd release Kubernetes 1.36 is tested with (3.6.x). */
export const ETCD_VERSION = "v3.6.16";
export const HELM_VERSION = "v4.3.1";
/** MinIO's repository is archived; this is its last published pseudo-version. */
export const MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c";
export const KAFKA_VERSION = "4.1.2";
/** Kafka 4.1 logs through SLF4J 1.7; it ships no binding of its own. */
export const LOG4J_VERSION = "2.24.3";
/** Oldest Go that builds every pin above (their go.mod files say 1.26.0). */
export const MIN_GO_VERSION = "1.26.0";

/**
 * Kubernetes' own go.mod points its staging modules at ./staging; when the module is a
 * dependency those directives do not apply, so ours maps each to its published v0.x twin.
 * A replace for a module outside the build graph is harmless, so one superset serves.
 */
export const KUBERNETES_STAGING_MODULES = [
  "api",
  "apiextensions-apiserver",
  "apimachinery",
  "apiserver",
  "cli-runtime",
  "client-go",
  "cloud-provider",
  "cluster-bootstrap",
  "code-generator",
  "component-base",
  "component-helpers",
  "controller-manager",
  "cri-api",
  "cri-client",
  "cri-streaming",
  "csi-translation-lib",
  "dynamic-resource-allocation",
  "endpointslice",
  "externaljwt",
  "kms",
  "kube-aggregator",
  "kube-controller-manager",
  "kube-proxy",
  "kube-scheduler",
  "kubectl",
  "kubelet",
  "metrics",
  "mount-utils",
  "pod-security-admission",
  "sample-apiserver",
  "sample-cli-plugin",
  "sample-controller",
  "streaming",
];
