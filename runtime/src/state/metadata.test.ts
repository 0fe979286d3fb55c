import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  buildMetadata,
  checkCompatibility,
  jobFingerprint,
  METADATA_FORMAT_VERSION,
  type MetadataInput,
  metadataKey,
  objectKey,
  parseMetadata,
  parseTopicPartition,
  type SnapshotLocation,
  serializeMetadata,
  sha256,
  snapshotDir,
  snapshotPrefix,
  topicPartition,
  verifyChecksum,
} from "./metadata.ts";

const location: SnapshotLocation = {
  prefix: "weir",
  namespace: "shop",
  job: "orders",
  kind: "savepoint",
  id: "sp-1",
};
const state0 = Buffer.from("state of orders-0");
const state1 = Buffer.from("state of orders-1");

function input(): MetadataInput {
  return {
    kind: "savepoint",
    id: "sp-1",
    job: { namespace: "shop", name: "orders" },
    jobOperators: ["source", "dedupe", "count", "sink"],
    createdAt: new Date("2025-01-02T03:04:05.678Z"),
    // Deliberately out of order: the metadata sorts tasks.
    tasks: [
      {
        task: { topic: "orders", partition: 1 },
        offsets: { "orders-1": 42n },
        key: objectKey(location, { topic: "orders", partition: 1 }),
        bytes: state1.length,
        sha256: sha256(state1),
        operators: ["dedupe"],
      },
      {
        task: { topic: "orders", partition: 0 },
        offsets: { "orders-0": 7 },
        key: objectKey(location, { topic: "orders", partition: 0 }),
        bytes: state0.length,
        sha256: sha256(state0),
        operators: ["dedupe", "count"],
      },
    ],
  };
}

/** Valid metadata as plain JSON data, for tests that break one field at a time. */
function json(): Record<string, unknown> & { tasks: Record<string, unknown>[] } {
  return JSON.parse(serializeMetadata(buildMetadata(input())));
}

describe("layout", () => {
  test("snapshot prefix, directories and keys", () => {
    assert.equal(snapshotPrefix("weir", "shop", "orders"), "weir/shop/orders/");
    assert.equal(snapshotDir(location), "weir/shop/orders/savepoints/sp-1/");
    assert.equal(
      snapshotDir({ ...location, kind: "checkpoint", id: "17" }),
      "weir/shop/orders/checkpoints/17/",
    );
    assert.equal(
      objectKey(location, { topic: "orders.v2", partition: 3 }),
      "weir/shop/orders/savepoints/sp-1/orders.v2-3.state",
    );
    assert.equal(metadataKey(location), "weir/shop/orders/savepoints/sp-1/_metadata.json");
  });

  test("prefix slashes are normalised; an empty prefix is allowed", () => {
    assert.equal(snapshotPrefix("/a/b//", "shop", "orders"), "a/b/shop/orders/");
    assert.equal(snapshotPrefix("", "shop", "orders"), "shop/orders/");
  });

  test("names that would escape or break the layout are refused", () => {
    assert.throws(
      () => snapshotPrefix("a/../b", "shop", "orders"),
      /must not contain "\." or "\.\." segments/,
    );
    assert.throws(
      () => snapshotPrefix("weir", "Shop", "orders"),
      /namespace "Shop" is not a valid DNS label/,
    );
    assert.throws(
      () => snapshotPrefix("weir", "shop", "a/b"),
      /job name "a\/b" is not a valid Kubernetes name/,
    );
    assert.throws(() => snapshotDir({ ...location, id: "../x" }), /snapshot id "\.\.\/x" must be/);
    assert.throws(() => snapshotDir({ ...location, id: "" }), /snapshot id "" must be/);
    assert.throws(
      () => objectKey(location, { topic: "a/b", partition: 0 }),
      /not a valid Kafka topic name/,
    );
    assert.throws(
      () => objectKey(location, { topic: "t", partition: -1 }),
      /partition must be an integer >= 0/,
    );
  });

  test("topic-partition names round-trip, also with dashes in the topic", () => {
    assert.equal(topicPartition("my-topic", 12), "my-topic-12");
    assert.deepEqual(parseTopicPartition("my-topic-12"), { topic: "my-topic", partition: 12 });
    assert.throws(() => parseTopicPartition("topic"), /is not a topic-partition/);
    assert.throws(() => parseTopicPartition("-3"), /is not a topic-partition/);
    assert.throws(() => parseTopicPartition("t-03"), /is not a topic-partition/);
    assert.throws(() => parseTopicPartition("t-"), /is not a topic-partition/);
  });
});

describe("sha256 and fingerprint", () => {
  test("sha256 is hex SHA-256", () => {
    assert.equal(
      sha256(Buffer.alloc(0)),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert.equal(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("fingerprint ignores order and repeats, not names", () => {
    assert.equal(jobFingerprint(["a", "b"]), jobFingerprint(["b", "a", "a"]));
    assert.notEqual(jobFingerprint(["a", "b"]), jobFingerprint(["a", "c"]));
    // Names are delimited: ["ab"] is not ["a", "b"].
    assert.notEqual(jobFingerprint(["ab"]), jobFingerprint(["a", "b"]));
  });
});

describe("buildMetadata", () => {
  test("builds sorted, versioned metadata with bigint offsets as numbers", () => {
    const m = buildMetadata(input());
    assert.equal(m.formatVersion, METADATA_FORMAT_VERSION);
    assert.equal(m.kind, "savepoint");
    assert.equal(m.id, "sp-1");
    assert.deepEqual(m.job, { namespace: "shop", name: "orders" });
    assert.equal(m.fingerprint, jobFingerprint(["count", "dedupe", "sink", "source"]));
    assert.equal(m.createdAt, "2025-01-02T03:04:05.678Z");
    assert.deepEqual(
      m.tasks.map((t) => t.task.partition),
      [0, 1],
    );
    assert.deepEqual(m.tasks[0]?.operators, ["count", "dedupe"]);
    assert.deepEqual(m.tasks[1]?.offsets, { "orders-1": 42 });
  });

  test("serialize → parse round-trips", () => {
    const m = buildMetadata(input());
    assert.deepEqual(parseMetadata(serializeMetadata(m)), m);
    assert.ok(serializeMetadata(m).endsWith("}\n"));
  });

  test("refuses a task holding state of an operator the job does not have", () => {
    const bad = input();
    bad.tasks[0]?.operators.push("window");
    assert.throws(
      () => buildMetadata(bad),
      /task orders-1 holds state of operator "window", which the job does not have/,
    );
  });

  test("refuses offsets beyond JSON's safe integers, bad times and bad fields", () => {
    const big = input();
    const [first] = big.tasks;
    assert.ok(first);
    first.offsets = { "orders-1": 2n ** 60n };
    assert.throws(
      () => buildMetadata(big),
      /offset 1152921504606846976 of orders-1 is too large for JSON/,
    );
    assert.throws(
      () => buildMetadata({ ...input(), createdAt: "yesterday" }),
      /createdAt "yesterday" is not a time/,
    );
    assert.throws(
      () => buildMetadata({ ...input(), id: "a/b" }),
      /snapshot metadata: id "a\/b" must be/,
    );
    assert.throws(() => buildMetadata({ ...input(), tasks: [] }), /tasks is empty/);
  });
});

describe("parseMetadata", () => {
  test("not JSON", () => {
    assert.throws(
      () => parseMetadata("{", "weir/x/_metadata.json"),
      /snapshot metadata weir\/x\/_metadata\.json is not valid JSON/,
    );
    assert.throws(() => parseMetadata(""), /snapshot metadata is not valid JSON/);
    assert.throws(
      () => parseMetadata("[]"),
      /snapshot metadata is invalid: it is not a JSON object/,
    );
    assert.throws(() => parseMetadata("null"), /it is not a JSON object/);
  });

  test("format versions other than 1 are refused", () => {
    const noVersion = json();
    delete noVersion.formatVersion;
    assert.throws(() => parseMetadata(JSON.stringify(noVersion)), /formatVersion is missing/);
    for (const version of [2, 0, "1"]) {
      assert.throws(
        () => parseMetadata(JSON.stringify({ ...json(), formatVersion: version })),
        /unsupported formatVersion .* \(this runtime reads 1\)/,
      );
    }
  });

  test("top-level fields are checked", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ kind: "backup" }, /kind must be "checkpoint" or "savepoint", got "backup"/],
      [{ id: 5 }, /id 5 must be/],
      [{ job: "shop/orders" }, /job must be an object/],
      [{ job: { namespace: "shop" } }, /job\.name is missing/],
      [{ job: { namespace: "shop", name: 3 } }, /job\.namespace and job\.name must be strings/],
      [{ fingerprint: "abc" }, /fingerprint must be 64 lowercase hex characters/],
      [{ createdAt: "1" }, /createdAt must be an ISO 8601 time, got "1"/],
      [{ createdAt: "2025-13-45T00:00:00Z" }, /createdAt must be an ISO 8601 time/],
      [{ tasks: {} }, /tasks must be a list/],
      [{ tasks: [] }, /tasks is empty/],
    ];
    for (const [change, message] of cases) {
      assert.throws(
        () => parseMetadata(JSON.stringify({ ...json(), ...change })),
        message,
        JSON.stringify(change),
      );
    }
  });

  test("task entries are checked", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ task: undefined }, /tasks\[0\]\.task is missing/],
      [
        { task: { topic: "orders", partition: 1.5 } },
        /tasks\[0\]\.task\.partition must be an integer >= 0/,
      ],
      [
        { task: { topic: "", partition: 1 } },
        /tasks\[0\]\.task\.topic "" is not a valid Kafka topic name/,
      ],
      [{ offsets: [] }, /tasks\[0\]\.offsets must be an object/],
      [{ offsets: { orders: 1 } }, /"orders" is not a topic-partition/],
      [
        { offsets: { "orders-0": -1 } },
        /tasks\[0\]\.offsets\["orders-0"\] must be an integer >= 0, got -1/,
      ],
      [{ offsets: { "orders-0": "7" } }, /must be an integer >= 0, got "7"/],
      [{ key: "" }, /tasks\[0\]\.key must be an object key/],
      [{ bytes: -1 }, /tasks\[0\]\.bytes must be an integer >= 0/],
      [{ sha256: "ABC" }, /tasks\[0\]\.sha256 must be 64 lowercase hex characters/],
      [{ operators: "count" }, /tasks\[0\]\.operators must be a list of operator names/],
      [{ operators: ["count", ""] }, /tasks\[0\]\.operators must be a list of operator names/],
      [{ operators: ["count", "count"] }, /tasks\[0\]\.operators lists an operator twice/],
    ];
    for (const [change, message] of cases) {
      const data = json();
      data.tasks[0] = { ...data.tasks[0], ...change };
      if ("task" in change && change.task === undefined) delete data.tasks[0].task;
      assert.throws(() => parseMetadata(JSON.stringify(data)), message, JSON.stringify(change));
    }
  });

  test("duplicate tasks or object keys are refused", () => {
    const dupTask = json();
    dupTask.tasks[1] = { ...dupTask.tasks[1], task: { topic: "orders", partition: 0 } };
    assert.throws(() => parseMetadata(JSON.stringify(dupTask)), /task orders-0 appears twice/);
    const dupKey = json();
    dupKey.tasks[1] = { ...dupKey.tasks[1], key: dupKey.tasks[0]?.key };
    assert.throws(
      () => parseMetadata(JSON.stringify(dupKey)),
      /object .*orders-0\.state is listed for two tasks/,
    );
  });

  test("unknown fields are ignored, times normalised", () => {
    const data = { ...json(), note: "hello", createdAt: "2025-01-02T04:04:05+01:00" };
    const m = parseMetadata(JSON.stringify(data));
    assert.equal("note" in m, false);
    assert.equal(m.createdAt, "2025-01-02T03:04:05.000Z");
  });
});

describe("chains of incremental checkpoints", () => {
  const ref = (key: string) => ({ key, bytes: 3, sha256: "a".repeat(64) });
  /** A checkpoint whose first task's object is the last delta of a chain. */
  function checkpoint(
    chain: unknown,
  ): Record<string, unknown> & { tasks: Record<string, unknown>[] } {
    const data = { ...json(), kind: "checkpoint", id: "orders-0-7-r1.3" };
    data.tasks[0] = { ...data.tasks[0], ...ref("d2"), chain };
    return data;
  }

  test("a checkpoint's chain reads back, its own object last", () => {
    const chain = { base: ref("b"), deltas: [ref("d1"), ref("d2")] };
    const m = parseMetadata(JSON.stringify(checkpoint(chain)));
    assert.deepEqual(m.tasks.find((t) => t.key === "d2")?.chain, chain);
    assert.equal(m.tasks.find((t) => t.key !== "d2")?.chain, undefined);
  });

  test("a chain that does not end with the entry's object, or is malformed, is refused", () => {
    const cases: [unknown, RegExp][] = [
      [{ base: ref("b"), deltas: [ref("d1")] }, /chain must end with the entry's own object/],
      [{ base: ref("b"), deltas: [] }, /chain\.deltas must be a non-empty list/],
      [{ base: ref("d2"), deltas: [ref("d2")] }, /chain names an object twice/],
      [
        { base: { key: "b", bytes: -1, sha256: "a".repeat(64) }, deltas: [ref("d2")] },
        /chain\.base\.bytes/,
      ],
      ["b", /chain must be an object/],
    ];
    for (const [chain, message] of cases) {
      assert.throws(() => parseMetadata(JSON.stringify(checkpoint(chain))), message);
    }
  });

  test("a savepoint never has a chain: its objects stand alone", () => {
    const data = checkpoint({ base: ref("b"), deltas: [ref("d2")] });
    assert.throws(
      () => parseMetadata(JSON.stringify({ ...data, kind: "savepoint" })),
      /a savepoint's objects are full snapshots/,
    );
  });
});

describe("verifyChecksum", () => {
  const m = buildMetadata(input());
  const entry = m.tasks[0];
  assert.ok(entry);

  test("accepts the object as written", () => {
    verifyChecksum(entry, state0);
    verifyChecksum(entry, new Uint8Array(state0));
  });

  test("a changed byte is a checksum mismatch naming the task and the object", () => {
    const tampered = Buffer.from(state0);
    tampered[0] = (tampered[0] ?? 0) ^ 1;
    assert.throws(
      () => verifyChecksum(entry, tampered),
      (error: Error) =>
        error.message.includes("task orders-0") &&
        error.message.includes("weir/shop/orders/savepoints/sp-1/orders-0.state") &&
        error.message.includes(
          `checksum mismatch, expected sha256 ${entry.sha256}, got ${sha256(tampered)}`,
        ),
    );
  });

  test("a truncated or empty object is a size mismatch", () => {
    assert.throws(
      () => verifyChecksum(entry, state0.subarray(1)),
      /task orders-0 .* is corrupt: expected 17 bytes, got 16/,
    );
    assert.throws(() => verifyChecksum(entry, Buffer.alloc(0)), /expected 17 bytes, got 0/);
  });
});

describe("checkCompatibility", () => {
  const m = buildMetadata(input());

  test("same operators: nothing dropped", () => {
    assert.deepEqual(checkCompatibility(m, ["source", "dedupe", "count", "sink"], false), []);
  });

  test("new operators without state are fine", () => {
    assert.deepEqual(
      checkCompatibility(m, ["source", "dedupe", "count", "window", "sink"], false),
      [],
    );
  });

  test("removing a stateless operator is fine", () => {
    assert.deepEqual(checkCompatibility(m, ["dedupe", "count"], false), []);
  });

  test("a removed stateful operator is refused, naming it", () => {
    assert.throws(
      () => checkCompatibility(m, ["source", "count", "sink"], false),
      /savepoint sp-1 holds state of operators the job no longer has: "dedupe" \(2 of 2 tasks\); set allowNonRestoredState/,
    );
    assert.throws(
      () => checkCompatibility(m, [], false),
      /"count" \(1 of 2 tasks\), "dedupe" \(2 of 2 tasks\)/,
    );
  });

  test("with allowNonRestoredState the dropped operators are returned", () => {
    assert.deepEqual(checkCompatibility(m, ["source", "count", "sink"], true), ["dedupe"]);
    assert.deepEqual(checkCompatibility(m, [], true), ["count", "dedupe"]);
    assert.deepEqual(checkCompatibility(m, ["count", "dedupe"], true), []);
  });
});
