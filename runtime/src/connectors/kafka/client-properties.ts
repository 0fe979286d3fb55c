// The Kafka client properties a StreamJob may set beyond TLS and SASL (`spec.kafka.properties`),
// by their Java client names, and the @platformatic/kafka option each one becomes. No imports:
// the operator's schema lists these keys in a CEL rule, so an unknown key is refused by the API
// server instead of being ignored by the runtime.

/** Property → client option; every value is a whole number of milliseconds but `client.rack`. */
export const KAFKA_CLIENT_PROPERTIES = {
  "client.rack": "clientRack",
  "metadata.max.age.ms": "metadataMaxAge",
  "request.timeout.ms": "requestTimeout",
  "retry.backoff.ms": "retryDelay",
  "socket.connection.setup.timeout.ms": "connectTimeout",
} as const;

export type KafkaClientProperty = keyof typeof KAFKA_CLIENT_PROPERTIES;

/** The properties whose value is text; the others are milliseconds. */
export const TEXT_PROPERTIES: readonly KafkaClientProperty[] = ["client.rack"];
