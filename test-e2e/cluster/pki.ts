// The local cluster's certificates and kubeconfigs, made fresh by every `up` with openssl:
// one CA, the API server's serving certificate, a client certificate per identity, the
// service-account signing key pair, and the Kafka listeners' own CA, server certificate and
// client certificate (mTLS).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { run } from "./exec.ts";

export interface ClientIdentity {
  /** File stem and kubeconfig user name. */
  name: string;
  commonName: string;
  organization?: string;
}

/** Names the API server answers to: loopback, and what in-cluster clients use. */
export const API_SERVER_SANS = [
  "DNS:localhost",
  "DNS:kubernetes",
  "DNS:kubernetes.default",
  "DNS:kubernetes.default.svc",
  "DNS:kubernetes.default.svc.cluster.local",
  "IP:127.0.0.1",
  "IP:10.96.0.1",
];

/** Names the Kafka broker's TLS listener answers to (it listens on loopback only). */
export const KAFKA_SERVER_SANS = ["DNS:localhost", "IP:127.0.0.1"];

/** The client identity the Kafka broker's mTLS (SSL) listener accepts, signed by `kafka-ca`. */
export const KAFKA_CLIENT = { name: "kafka-client", commonName: "weir-local-kafka-client" };

export function clientIdentities(nodeName: string): ClientIdentity[] {
  return [
    { name: "admin", commonName: "weir-admin", organization: "system:masters" },
    { name: "kube-controller-manager", commonName: "system:kube-controller-manager" },
    { name: "kube-scheduler", commonName: "system:kube-scheduler" },
    // The node's identity: the Node authorizer limits it to its own pods' objects.
    { name: "kubelet", commonName: `system:node:${nodeName}`, organization: "system:nodes" },
    // How the API server reaches kubelets (logs); kubelets verify it against the CA.
    {
      name: "apiserver-kubelet-client",
      commonName: "kube-apiserver-kubelet-client",
      organization: "system:masters",
    },
  ];
}

export function opensslConfig(options: {
  commonName: string;
  organization?: string;
  ca?: boolean;
  extendedKeyUsage?: string;
  subjectAltNames?: string[];
}): string {
  const dn = [options.organization && `O = ${options.organization}`, `CN = ${options.commonName}`];
  const ext = options.ca
    ? [
        "basicConstraints = critical,CA:TRUE",
        "keyUsage = critical,keyCertSign,cRLSign,digitalSignature",
      ]
    : [
        "basicConstraints = critical,CA:FALSE",
        "keyUsage = critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage = ${options.extendedKeyUsage ?? "clientAuth"}`,
        "authorityKeyIdentifier = keyid",
      ];
  if (options.subjectAltNames?.length) {
    ext.push(`subjectAltName = ${options.subjectAltNames.join(",")}`);
  }
  ext.push("subjectKeyIdentifier = hash");
  return [
    "[req]",
    "distinguished_name = dn",
    "prompt = no",
    "[dn]",
    ...dn.filter(Boolean),
    "[ext]",
    ...ext,
    "",
  ].join("\n");
}

export class Pki {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  /** Creates everything the cluster needs; replaces what an earlier `up` left. */
  async create(nodeName: string): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await this.certificate("ca", { commonName: "weir-local-ca", ca: true });
    await this.certificate("apiserver", {
      commonName: "kube-apiserver",
      extendedKeyUsage: "serverAuth",
      subjectAltNames: API_SERVER_SANS,
    });
    await this.certificate("kubelet-serving", {
      commonName: `system:node:${nodeName}`,
      organization: "system:nodes",
      extendedKeyUsage: "serverAuth",
      subjectAltNames: ["IP:127.0.0.1", `DNS:${nodeName}`],
    });
    for (const identity of clientIdentities(nodeName)) {
      await this.certificate(identity.name, {
        commonName: identity.commonName,
        organization: identity.organization,
      });
    }
    await this.createKafka();
    await run("openssl", ["genrsa", "-out", this.path("sa.key"), "2048"]);
    await run("openssl", [
      "rsa",
      "-in",
      this.path("sa.key"),
      "-pubout",
      "-out",
      this.path("sa.pub"),
    ]);
  }

  /**
   * The Kafka broker's TLS listeners (SASL_SSL, and SSL with client certificates): a CA of its
   * own (clients must be given it, as for a real cluster; the cluster CA does not vouch for it,
   * which the untrusted-CA tests rely on), the server's certificate for loopback, and a client
   * certificate (kafkaClientCertificate). `kafka-server.pem` holds the key and the certificate
   * in one file, as the broker's PEM key store takes them.
   */
  async createKafka(): Promise<void> {
    await this.certificate("kafka-ca", { commonName: "weir-local-kafka-ca", ca: true });
    await this.certificate(
      "kafka-server",
      {
        commonName: "weir-local-kafka",
        extendedKeyUsage: "serverAuth",
        subjectAltNames: KAFKA_SERVER_SANS,
      },
      "kafka-ca",
    );
    writeFileSync(
      this.path("kafka-server.pem"),
      readFileSync(this.path("kafka-server.key"), "utf8") +
        readFileSync(this.path("kafka-server.crt"), "utf8"),
      { mode: 0o600 },
    );
    await this.kafkaClientCertificate();
  }

  /**
   * The client certificate of the Kafka broker's mTLS listener (`kafka-client.crt`/`.key`,
   * clientAuth, signed by `kafka-ca`), made when missing: a cluster directory from before the
   * listener gets it the next time its Kafka is prepared, from the CA the broker already trusts.
   */
  async kafkaClientCertificate(): Promise<void> {
    const { name, commonName } = KAFKA_CLIENT;
    if (existsSync(this.path(`${name}.crt`)) && existsSync(this.path(`${name}.key`))) return;
    await this.certificate(name, { commonName, extendedKeyUsage: "clientAuth" }, "kafka-ca");
  }

  /**
   * A serving certificate from the cluster's CA, made when missing: components added to a
   * running cluster (`up` starts just them) get theirs from the CA the cluster already trusts.
   */
  async servingCertificate(name: string, subjectAltNames: string[]): Promise<void> {
    if (existsSync(this.path(`${name}.crt`)) && existsSync(this.path(`${name}.key`))) return;
    await this.certificate(name, {
      commonName: name,
      extendedKeyUsage: "serverAuth",
      subjectAltNames,
    });
  }

  /**
   * A further node's client identity `system:node:<nodeName>` (the Node authorizer then limits
   * it to that Node's objects), made when missing from the CA the cluster already trusts. Its
   * kubelets all serve with `kubelet-serving`: the API server reaches every one at 127.0.0.1.
   */
  async nodeClientCertificate(name: string, nodeName: string): Promise<void> {
    if (existsSync(this.path(`${name}.crt`)) && existsSync(this.path(`${name}.key`))) return;
    await this.certificate(name, {
      commonName: `system:node:${nodeName}`,
      organization: "system:nodes",
    });
  }

  private async certificate(
    name: string,
    options: Parameters<typeof opensslConfig>[0],
    signedBy = "ca",
  ): Promise<void> {
    const config = this.path(`${name}.cnf`);
    writeFileSync(config, opensslConfig(options));
    const signer = options.ca
      ? []
      : ["-CA", this.path(`${signedBy}.crt`), "-CAkey", this.path(`${signedBy}.key`)];
    await run("openssl", [
      "req",
      "-x509",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      this.path(`${name}.key`),
      "-out",
      this.path(`${name}.crt`),
      "-days",
      options.ca ? "3650" : "365",
      "-config",
      config,
      "-extensions",
      "ext",
      ...signer,
    ]);
    rmSync(config);
  }

  /** A self-contained kubeconfig (certificates inline) for one client identity. */
  writeKubeconfig(file: string, identity: string, server: string): void {
    const base64 = (name: string) => readFileSync(this.path(name)).toString("base64");
    const config = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "weir-local",
          cluster: { server, "certificate-authority-data": base64("ca.crt") },
        },
      ],
      users: [
        {
          name: identity,
          user: {
            "client-certificate-data": base64(`${identity}.crt`),
            "client-key-data": base64(`${identity}.key`),
          },
        },
      ],
      contexts: [{ name: "weir-local", context: { cluster: "weir-local", user: identity } }],
      "current-context": "weir-local",
    };
    writeFileSync(file, stringify(config), { mode: 0o600 });
  }
}
