import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { Admin, AuthenticationError, MultipleErrors, NetworkError } from "@platformatic/kafka";
import { explainKafkaError, kafkaConnection } from "./connection.ts";

const files: Record<string, string> = {
  "/k/ca.crt": "CA PEM",
  "/k/client.crt": "CERT PEM",
  "/k/client.key": "KEY PEM",
  "/k/password": "s3cret\n",
};
const read = (file: string) => {
  const content = files[file];
  if (content === undefined) throw new Error(`ENOENT: no such file, open '${file}'`);
  return content;
};
const bootstrap = ["kafka-0.example:9094"];
const sasl = { mechanism: "SCRAM-SHA-512", username: "weir", passwordFile: "/k/password" } as const;

describe("kafkaConnection", () => {
  test("plaintext: the brokers and nothing else", () => {
    assert.deepEqual(kafkaConnection({ bootstrap }, read), { bootstrapBrokers: bootstrap });
  });

  test("TLS with a CA and a client certificate; SASL with the password read at each use", async () => {
    const connection = kafkaConnection(
      {
        bootstrap,
        tls: { caFile: "/k/ca.crt", certFile: "/k/client.crt", keyFile: "/k/client.key" },
        sasl,
      },
      read,
    );
    assert.deepEqual(connection.tls, { ca: "CA PEM", cert: "CERT PEM", key: "KEY PEM" });
    assert.equal(connection.sasl?.mechanism, "SCRAM-SHA-512");
    assert.equal(connection.sasl?.username, "weir");
    const password = connection.sasl?.password as () => string;
    assert.equal(password(), "s3cret", "the Secret file's trailing newline is not the password's");
    files["/k/password"] = "rotated";
    assert.equal(password(), "rotated", "a rotated Secret is read by the next authentication");
    files["/k/password"] = "s3cret\n";
  });

  test("TLS without a CA uses Node's own; hostname verification only off when asked", () => {
    const verified = kafkaConnection({ bootstrap, tls: {} }, read);
    assert.deepEqual(verified.tls, {});
    const unverified = kafkaConnection({ bootstrap, tls: { verifyHostname: false } }, read);
    assert.equal(typeof unverified.tls?.checkServerIdentity, "function");
    assert.equal(unverified.tls?.checkServerIdentity?.("other.host", {} as never), undefined);
  });

  test("a missing file fails at once, naming it", () => {
    assert.throws(
      () => kafkaConnection({ bootstrap, sasl: { ...sasl, passwordFile: "/k/none" } }, read),
      /cannot read the SASL password file \(\/k\/none\)/,
    );
    assert.throws(
      () => kafkaConnection({ bootstrap, tls: { caFile: "/k/gone.crt" } }, read),
      /cannot read the TLS CA file \(\/k\/gone.crt\)/,
    );
  });

  test("client properties become client options; unknown keys and bad values are refused", () => {
    const connection = kafkaConnection(
      {
        bootstrap,
        properties: {
          "client.rack": "eu-west-1a",
          "metadata.max.age.ms": "30000",
          "request.timeout.ms": "45000",
          "retry.backoff.ms": "250",
          "socket.connection.setup.timeout.ms": "10000",
        },
      },
      read,
    );
    assert.deepEqual(connection, {
      bootstrapBrokers: bootstrap,
      clientRack: "eu-west-1a",
      metadataMaxAge: 30_000,
      requestTimeout: 45_000,
      retryDelay: 250,
      connectTimeout: 10_000,
    });
    assert.throws(
      () => kafkaConnection({ bootstrap, properties: { "sasl.jaas.config": "x" } }, read),
      /client property sasl.jaas.config is not supported/,
    );
    assert.throws(
      () => kafkaConnection({ bootstrap, properties: { "retry.backoff.ms": "1s" } }, read),
      /must be a whole number of milliseconds/,
    );
  });
});

/** The shape the client gives a failed connection: no broker reachable, because of `cause`. */
function cannotConnect(cause: Error): Error {
  return new MultipleErrors("Cannot connect to any broker.", [
    new NetworkError("Connection to kafka-0.example:9094 failed.", { cause }),
  ]);
}

function tlsError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe("explainKafkaError", () => {
  const config = { bootstrap, tls: { caFile: "/k/ca.crt" }, sasl };

  test("a refused password names user, mechanism and broker, never the password", () => {
    const error = cannotConnect(new AuthenticationError("SASL authentication failed."));
    const text = explainKafkaError(error, config) ?? "";
    assert.equal(
      text,
      "Kafka: SASL authentication failed for user weir (SCRAM-SHA-512) at kafka-0.example:9094: the broker refused the username or password (spec.kafka.sasl)",
    );
    assert.doesNotMatch(text, /s3cret/);
  });

  test("an untrusted CA says so, with Node's reason", () => {
    const error = cannotConnect(
      tlsError(
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        "unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca",
      ),
    );
    assert.equal(
      explainKafkaError(error, config),
      "Kafka: TLS: certificate not trusted (unable to verify the first certificate) at kafka-0.example:9094: spec.kafka.tls.ca must hold the CA that signed the brokers' certificates",
    );
  });

  test("a certificate for another host points at verifyHostname", () => {
    const error = cannotConnect(
      tlsError(
        "ERR_TLS_CERT_ALTNAME_INVALID",
        "Hostname/IP does not match certificate's altnames: Host: kafka-0.example. is not in the cert's altnames: DNS:localhost",
      ),
    );
    assert.match(
      explainKafkaError(error, config) ?? "",
      /Hostname\/IP does not match .*verifyHostname: false/,
    );
  });

  test("SASL to a listener without it (or without TLS)", () => {
    const error = cannotConnect(
      new AuthenticationError("Cannot find a suitable SASL mechanism.", {
        cause: new NetworkError("Connection closed"),
      }),
    );
    assert.match(
      explainKafkaError(error, { bootstrap, sasl }) ?? "",
      /SASL handshake failed at kafka-0.example:9094: the listener does not offer SCRAM-SHA-512, or it expects TLS/,
    );
  });

  // OpenSSL's words for an alert the broker sent (Kafka's JVM answers a missing client
  // certificate with bad_certificate, one from an unknown CA with certificate_unknown).
  const badCertificate = tlsError(
    "ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE",
    "40BD0C6DA87F0000:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42",
  );
  const mtls = { bootstrap: ["kafka-0.example:9095"], tls: { caFile: "/k/ca.crt" } };

  test("no client certificate for a listener that requires one (TLS 1.3: only the connection closed)", () => {
    // After the client's side of the handshake the client just sees its request's connection
    // closed; the broker's alert is what the socket kept (watchBrokerTlsAlerts).
    const closed = new MultipleErrors("metadata failed 4 times.", [
      new MultipleErrors("listApis failed 4 times.", [new NetworkError("Connection closed")]),
    ]);
    assert.equal(
      explainKafkaError(closed, mtls, { broker: "kafka-0.example:9095", error: badCertificate }),
      'Kafka: TLS: client certificate required (alert "bad certificate") at kafka-0.example:9095: the listener takes only clients with a certificate its CA signed (spec.kafka.tls.clientCertificate)',
    );
  });

  test("a client certificate the listener refused (TLS 1.2: the alert fails the handshake)", () => {
    const error = cannotConnect(
      tlsError(
        "ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_UNKNOWN",
        "…:ssl3_read_bytes:ssl/tls alert certificate unknown:…:SSL alert number 46",
      ),
    );
    const withCertificate = {
      ...mtls,
      tls: { caFile: "/k/ca.crt", certFile: "/k/client.crt", keyFile: "/k/client.key" },
    };
    assert.equal(
      explainKafkaError(error, withCertificate, undefined),
      'Kafka: TLS: client certificate refused (alert "certificate unknown") at kafka-0.example:9094: it must be signed by a CA the listener trusts and allow client authentication (spec.kafka.tls.clientCertificate)',
    );
  });

  test("a closed connection without an alert is not blamed on TLS; other alerts say their name", () => {
    assert.equal(
      explainKafkaError(new NetworkError("Connection closed"), mtls, undefined),
      undefined,
    );
    const handshake = tlsError(
      "ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE",
      "ssl/tls alert handshake failure",
    );
    assert.equal(
      explainKafkaError(cannotConnect(handshake), mtls, undefined),
      'Kafka: TLS: the broker ended the connection (alert "handshake failure") at kafka-0.example:9094',
    );
    // An alert some earlier connection got does not explain an error that is not a closed one.
    const alert = { broker: "kafka-0.example:9095", error: badCertificate };
    assert.equal(explainKafkaError(new Error("topic missing"), mtls, alert), undefined);
  });

  test("the alert a broker sends on any connection of the process is kept for the explanation", async () => {
    // A listener that answers the ClientHello with a fatal bad_certificate alert record.
    const broker = createServer((socket) => {
      socket.once("data", () => socket.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 42])));
    });
    broker.listen(0, "127.0.0.1");
    await once(broker, "listening");
    const { port } = broker.address() as { port: number };
    const config = { bootstrap: [`127.0.0.1:${port}`], tls: {} };
    const admin = new Admin({ clientId: "alert-test", retries: 0, ...kafkaConnection(config) });
    try {
      await assert.rejects(admin.metadata({ topics: [] }));
    } finally {
      await admin.close().catch(() => {});
      broker.close();
    }
    // What the runtime says later, when all it has left is a closed connection.
    assert.equal(
      explainKafkaError(new NetworkError("Connection closed"), config),
      `Kafka: TLS: client certificate required (alert "bad certificate") at 127.0.0.1:${port}: the listener takes only clients with a certificate its CA signed (spec.kafka.tls.clientCertificate)`,
    );
  });

  test("anything else is left to the error's own message", () => {
    assert.equal(explainKafkaError(new Error("topic missing"), config), undefined);
    assert.equal(explainKafkaError("not an error", config), undefined);
  });
});
