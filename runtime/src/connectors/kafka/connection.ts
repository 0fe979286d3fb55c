// How the runtime reaches its Kafka cluster: the one place where the job's Kafka configuration
// (RuntimeConfig.kafka: brokers, TLS, SASL, client properties) becomes @platformatic/kafka client
// options. Every client of the runtime (task readers and writers, internal topics, end offsets)
// is built from a KafkaConnection, so none of them can miss the cluster's security settings.
// And what a failure to connect means, in words a person can act on, without a secret.
import { subscribe } from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import type { ConnectionOptions as TlsOptions } from "node:tls";
import type { SASLOptions } from "@platformatic/kafka";
import type { RuntimeConfig } from "../../placement.ts";
import {
  KAFKA_CLIENT_PROPERTIES,
  type KafkaClientProperty,
  TEXT_PROPERTIES,
} from "./client-properties.ts";

/** Spread first into a client's options: the client's own settings (retries…) win. */
export interface KafkaConnection {
  bootstrapBrokers: string[];
  tls?: TlsOptions;
  sasl?: SASLOptions;
  clientRack?: string;
  metadataMaxAge?: number;
  requestTimeout?: number;
  retryDelay?: number;
  connectTimeout?: number;
}

type KafkaConfig = RuntimeConfig["kafka"];

/**
 * The client options of the job's Kafka configuration. Certificates are read once, here; the
 * SASL password at every authentication, so a rotated Secret (its mounted file) is used by the
 * next connection without a restart.
 */
export function kafkaConnection(
  config: KafkaConfig,
  read: (file: string) => string = (file) => readFileSync(file, "utf8"),
): KafkaConnection {
  const readNamed = (what: string, file: string) => {
    try {
      return read(file);
    } catch (error) {
      throw new Error(`Kafka: cannot read the ${what} (${file}): ${(error as Error).message}`);
    }
  };
  const connection: KafkaConnection = { bootstrapBrokers: config.bootstrap };
  if (config.tls) {
    watchBrokerTlsAlerts();
    const { caFile, certFile, keyFile, verifyHostname = true } = config.tls;
    connection.tls = {
      ...(caFile ? { ca: readNamed("TLS CA file", caFile) } : {}),
      ...(certFile ? { cert: readNamed("TLS client certificate", certFile) } : {}),
      ...(keyFile ? { key: readNamed("TLS client key", keyFile) } : {}),
      // The chain is still verified; only the name in the certificate is not checked.
      ...(verifyHostname ? {} : { checkServerIdentity: () => undefined }),
    };
  }
  if (config.sasl) {
    const { mechanism, username, passwordFile } = config.sasl;
    // Read now too: a missing file fails the start with its name, not every connection later.
    readNamed("SASL password file", passwordFile);
    connection.sasl = {
      mechanism,
      username,
      // A Secret made with `echo` ends in a newline that is not part of the password.
      password: () => readNamed("SASL password file", passwordFile).replace(/\r?\n$/, ""),
    };
  }
  for (const [key, value] of Object.entries(config.properties ?? {})) {
    Object.assign(connection, clientProperty(key, value));
  }
  return connection;
}

/** One `spec.kafka.properties` entry as a client option (unknown keys and values refused). */
function clientProperty(key: string, value: string): Partial<KafkaConnection> {
  if (!Object.hasOwn(KAFKA_CLIENT_PROPERTIES, key)) {
    throw new Error(
      `Kafka: client property ${key} is not supported (supported: ${Object.keys(KAFKA_CLIENT_PROPERTIES).join(", ")})`,
    );
  }
  const property = key as KafkaClientProperty;
  const option = KAFKA_CLIENT_PROPERTIES[property];
  if (TEXT_PROPERTIES.includes(property)) return { [option]: value };
  if (!/^[0-9]{1,9}$/.test(value)) {
    throw new Error(`Kafka: client property ${key} must be a whole number of milliseconds`);
  }
  return { [option]: Number(value) };
}

/** Node's codes for a certificate chain that does not lead to a trusted CA. */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
]);

/** A TLS alert a broker sent, and which broker (host:port). */
export interface BrokerTlsAlert {
  broker: string;
  error: Error & { code?: string };
}

/** The last TLS alert any broker sent this process (watchBrokerTlsAlerts), for explainKafkaError. */
let lastTlsAlert: BrokerTlsAlert | undefined;

/** What the client reports on every connection it opens (@platformatic/kafka's diagnostics). */
const CONNECTS_END = "tracing:plt:kafka:connections:connects:end";
let watching = false;
const watched = new WeakSet<object>();

/**
 * Keeps the TLS alerts brokers send on any Kafka connection of the process. A broker that
 * refuses a client certificate (or its absence) under TLS 1.3 does so after the client has
 * finished its side of the handshake, so the client only says "Connection closed" to the
 * request it was sending; the alert itself (`bad certificate`, `certificate required`…) is
 * on the socket alone. Idempotent.
 */
export function watchBrokerTlsAlerts(): void {
  if (watching) return;
  watching = true;
  subscribe(CONNECTS_END, (message) => {
    const { connection, host, port } = message as {
      connection?: { socket?: { on(event: "error", listener: (error: Error) => void): void } };
      host?: string;
      port?: number;
    };
    const socket = connection?.socket;
    if (!socket || watched.has(socket)) return;
    watched.add(socket);
    socket.on("error", (error: Error & { code?: string }) => {
      if (isTlsAlert(error)) lastTlsAlert = { broker: `${host}:${port}`, error };
    });
  });
}

/** OpenSSL's codes for an alert received from the peer: `ERR_SSL_…ALERT_<DESCRIPTION>`. */
function isTlsAlert(error: Error & { code?: string }): boolean {
  return /^ERR_SSL_.*ALERT_[A-Z_]+$/.test(error.code ?? "");
}

/** The alert's description as TLS names it: `bad certificate`, `certificate required`… */
function alertName(error: Error & { code?: string }): string {
  return (error.code ?? "")
    .replace(/^.*ALERT_/, "")
    .toLowerCase()
    .replaceAll("_", " ");
}

/** Alerts about the client's certificate: the broker wants one, or one it trusts. */
const CLIENT_CERTIFICATE_ALERTS = new Set([
  "bad certificate",
  "certificate required",
  "certificate unknown",
  "unknown ca",
  "unsupported certificate",
  "certificate expired",
  "certificate revoked",
]);

/** Every error in `error`'s causes and aggregated errors, outermost first. */
function* chain(error: unknown, depth = 0): Generator<Error & { code?: string }> {
  if (!(error instanceof Error) || depth > 10) return;
  yield error;
  yield* chain(error.cause, depth + 1);
  for (const inner of (error as { errors?: unknown[] }).errors ?? [])
    yield* chain(inner, depth + 1);
}

/**
 * What a failure to reach or use the brokers means, for the process's last log line (which the
 * operator shows in the job's Degraded condition): SASL refused (naming the user and
 * mechanism, never the password), a certificate not trusted or not for this host, a client
 * certificate missing or refused (mTLS), TLS spoken to a listener without it. Undefined when
 * the error is none of these. `tlsAlert`: the last TLS alert a broker sent
 * (watchBrokerTlsAlerts), consulted when the client saw only its connection closed.
 */
export function explainKafkaError(
  error: unknown,
  config: KafkaConfig,
  tlsAlert: BrokerTlsAlert | undefined = lastTlsAlert,
): string | undefined {
  const errors = [...chain(error)];
  // The broker the client names (the client says "Connection to host:port failed.").
  const where =
    errors.map((e) => /^Connection to (\S+) failed\./.exec(e.message)?.[1]).find(Boolean) ??
    config.bootstrap.join(",");
  const sasl = config.sasl;
  const saslFailed = errors.some((e) => /^SASL authentication failed/.test(e.message));
  if (saslFailed && sasl) {
    return `Kafka: SASL authentication failed for user ${sasl.username} (${sasl.mechanism}) at ${where}: the broker refused the username or password (spec.kafka.sasl)`;
  }
  if (errors.some((e) => /Cannot find a suitable SASL mechanism/.test(e.message)) && sasl) {
    return `Kafka: SASL handshake failed at ${where}: the listener does not offer ${sasl.mechanism}${config.tls ? "" : ", or it expects TLS (spec.kafka.tls)"}`;
  }
  const tls = errors.find((e) => e.code !== undefined && UNTRUSTED.has(e.code));
  if (tls) {
    return `Kafka: TLS: certificate not trusted (${tls.message.split(";")[0]}) at ${where}: spec.kafka.tls.ca must hold the CA that signed the brokers' certificates`;
  }
  if (errors.some((e) => e.code === "CERT_HAS_EXPIRED")) {
    return `Kafka: TLS: the broker's certificate has expired (at ${where})`;
  }
  const altName = errors.find((e) => e.code === "ERR_TLS_CERT_ALTNAME_INVALID");
  if (altName) {
    return `Kafka: TLS: ${altName.message} (at ${where}); the certificate must name the host of the bootstrap server, or spec.kafka.tls.verifyHostname: false`;
  }
  // In the handshake (TLS 1.2) the alert is the failure's cause; after it (TLS 1.3) the
  // client saw the connection closed, and the socket kept the alert.
  const inChain = errors.find(isTlsAlert);
  const closed = errors.some((e) => /^Connection closed/.test(e.message));
  const alert = inChain ? { broker: where, error: inChain } : closed ? tlsAlert : undefined;
  if (alert) {
    const name = alertName(alert.error);
    if (!CLIENT_CERTIFICATE_ALERTS.has(name)) {
      return `Kafka: TLS: the broker ended the connection (alert "${name}") at ${alert.broker}`;
    }
    return config.tls?.certFile
      ? `Kafka: TLS: client certificate refused (alert "${name}") at ${alert.broker}: it must be signed by a CA the listener trusts and allow client authentication (spec.kafka.tls.clientCertificate)`
      : `Kafka: TLS: client certificate required (alert "${name}") at ${alert.broker}: the listener takes only clients with a certificate its CA signed (spec.kafka.tls.clientCertificate)`;
  }
  if (
    errors.some((e) =>
      /TLS handshake failed|wrong version number|packet length too long/i.test(e.message),
    )
  ) {
    return `Kafka: TLS handshake failed at ${where}: the listener does not speak TLS (spec.kafka.tls)`;
  }
  return undefined;
}
