import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { serialize } from "node:v8";
import { readFrames, TASK_STATE_FORMAT_VERSION, TaskState } from "./keyed-state.ts";

describe("ValueState", () => {
  test("get, set, has, delete per key", () => {
    const counts = new TaskState().operator("count").value<number>("count");
    assert.equal(counts.get("a", 0), undefined);
    assert.equal(counts.has("a", 0), false);
    counts.set("a", 1, 0);
    counts.set("b", 2, 0);
    counts.set("a", 3, 1);
    assert.equal(counts.get("a", 2), 3);
    assert.equal(counts.has("b", 2), true);
    assert.deepEqual(counts.keys(2).sort(), ["a", "b"]);
    assert.equal(counts.delete("a"), true);
    assert.equal(counts.delete("a"), false);
    assert.deepEqual(counts.entries(3), [["b", 2]]);
  });

  test("falsy values are values, undefined is refused", () => {
    const s = new TaskState().operator("op").value<number | null | string>("v");
    s.set("zero", 0, 0);
    s.set("null", null, 0);
    s.set("empty", "", 0);
    assert.equal(s.get("zero", 0), 0);
    assert.equal(s.get("null", 0), null);
    assert.equal(s.has("empty", 0), true);
    assert.throws(
      () => s.set("u", undefined as unknown as string, 0),
      /use delete\(\) instead of setting undefined/,
    );
  });

  test("TTL: visible before the deadline, invisible from it, renewed by writes not reads", () => {
    const s = new TaskState().operator("dedupe").value<boolean>("seen", { ttlMs: 100 });
    s.set("k", true, 1000);
    assert.equal(s.get("k", 1099), true);
    assert.equal(s.get("k", 1100), undefined);
    assert.equal(s.has("k", 1100), false);
    // The expired entry is gone for good, even when asked about an earlier time afterwards.
    assert.equal(s.get("k", 1050), undefined);

    s.set("r", true, 0);
    assert.equal(s.get("r", 90), true); // a read does not renew
    assert.equal(s.get("r", 100), undefined);

    s.set("w", true, 0);
    s.set("w", true, 90); // a write does
    assert.equal(s.get("w", 150), true);
    assert.equal(s.get("w", 190), undefined);
  });

  test("TTL: entries() and keys() hide expired entries without a read of each", () => {
    const s = new TaskState().operator("op").value<number>("v", { ttlMs: 10 });
    s.set("old", 1, 0);
    s.set("new", 2, 5);
    assert.deepEqual(s.entries(12), [["new", 2]]);
    assert.deepEqual(s.keys(15), []);
    assert.equal(s.entryCount(), 2);
    assert.equal(s.purge(15), 2);
    assert.equal(s.entryCount(), 0);
  });

  test("rejects a bad TTL or now", () => {
    const op = new TaskState().operator("op");
    assert.throws(() => op.value("v", { ttlMs: 0 }), /ttlMs must be a positive integer/);
    assert.throws(() => op.value("v", { ttlMs: 1.5 }), /ttlMs must be a positive integer/);
    const s = op.value<number>("ok");
    assert.throws(() => s.set("k", 1, Number.NaN), /now must be a finite number/);
    assert.throws(() => s.get("k", Number.POSITIVE_INFINITY), /now must be a finite number/);
  });
});

describe("MapState", () => {
  test("a map per key", () => {
    const s = new TaskState().operator("join").map<string, number>("prices");
    s.set("order-1", "apple", 3, 0);
    s.set("order-1", "pear", 4, 0);
    s.set("order-2", "apple", 5, 0);
    assert.equal(s.get("order-1", "pear", 0), 4);
    assert.equal(s.get("order-2", "pear", 0), undefined);
    assert.equal(s.has("order-2", "apple", 0), true);
    assert.deepEqual(s.entries("order-1", 0), [
      ["apple", 3],
      ["pear", 4],
    ]);
    assert.deepEqual(s.entries("nobody", 0), []);
    assert.deepEqual(s.keys(0).sort(), ["order-1", "order-2"]);
    assert.equal(s.delete("order-1", "apple"), true);
    assert.equal(s.delete("order-1", "apple"), false);
    assert.equal(s.delete("nobody", "apple"), false);
    assert.equal(s.clear("order-2"), true);
    assert.deepEqual(s.keys(0), ["order-1"]);
    // Deleting the last entry removes the key.
    s.delete("order-1", "pear");
    assert.deepEqual(s.keys(0), []);
    assert.equal(s.entryCount(), 0);
  });

  test("number map keys", () => {
    const s = new TaskState().operator("op").map<number, string>("m");
    s.set("k", 1, "one", 0);
    assert.equal(s.get("k", 1, 0), "one");
    assert.equal(s.get("k", 2, 0), undefined);
  });

  test("TTL per map entry", () => {
    const s = new TaskState().operator("op").map<string, number>("m", { ttlMs: 10 });
    s.set("k", "a", 1, 0);
    s.set("k", "b", 2, 8);
    assert.deepEqual(s.entries("k", 10), [["b", 2]]);
    assert.equal(s.get("k", "a", 10), undefined);
    assert.equal(s.get("k", "b", 17), 2);
    assert.deepEqual(s.keys(17), ["k"]);
    assert.deepEqual(s.keys(18), []);
    assert.equal(s.get("k", "b", 18), undefined);
    assert.equal(s.entryCount(), 0);
  });
});

describe("OperatorState", () => {
  test("declaring a state twice returns the same store", () => {
    const op = new TaskState().operator("op");
    const first = op.value<number>("v", { ttlMs: 5 });
    first.set("k", 1, 0);
    assert.equal(op.value<number>("v", { ttlMs: 5 }), first);
    assert.deepEqual(op.stateNames(), ["v"]);
  });

  test("a state declared with another kind or TTL is refused", () => {
    const op = new TaskState().operator("op");
    op.value("v", { ttlMs: 5 });
    assert.throws(
      () => op.map("v"),
      /state "v" of operator "op" is a value state, not a map state/,
    );
    assert.throws(() => op.value("v"), /already declared with ttlMs 5, not undefined/);
  });

  test("names must be non-empty", () => {
    const task = new TaskState();
    assert.throws(() => task.operator(""), /operator name must be a non-empty string/);
    assert.throws(() => task.operator("op").value(""), /state name must be a non-empty string/);
  });
});

describe("TaskState", () => {
  function sample(): TaskState {
    const task = new TaskState();
    const counts = task.operator("count").value<number>("count");
    counts.set("a", 1, 0);
    counts.set("b", 2, 0);
    const window = task.operator("window").map<number, { sum: bigint; tags: Set<string> }>("panes");
    window.set("a", 60_000, { sum: 10n, tags: new Set(["x"]) }, 0);
    const blobs = task.operator("blobs").value<Buffer>("raw");
    blobs.set("a", Buffer.from([1, 2, 3]), 0);
    return task;
  }

  test("snapshot and restore round-trip every kind of store and value", () => {
    const restored = TaskState.restore(sample().snapshot(0));
    assert.deepEqual(restored.operatorNames(), ["blobs", "count", "window"]);
    assert.equal(restored.operator("count").value<number>("count").get("b", 1), 2);
    const pane = restored
      .operator("window")
      .map<number, { sum: bigint; tags: Set<string> }>("panes")
      .get("a", 60_000, 1);
    assert.deepEqual(pane, { sum: 10n, tags: new Set(["x"]) });
    const raw = restored.operator("blobs").value<Buffer>("raw").get("a", 1);
    assert.ok(Buffer.isBuffer(raw));
    assert.deepEqual([...raw], [1, 2, 3]);
  });

  test("the snapshot is a copy: later writes do not change it", () => {
    const task = sample();
    const buffer = task.snapshot(0);
    task.operator("count").value<number>("count").set("a", 99, 1);
    assert.equal(TaskState.restore(buffer).operator("count").value<number>("count").get("a", 1), 1);
  });

  test("the snapshot carries a format version", () => {
    const data = readFrames(new TaskState().snapshot(0)) as {
      formatVersion: number;
      operators: unknown[];
    };
    assert.equal(data.formatVersion, TASK_STATE_FORMAT_VERSION);
    assert.deepEqual(data.operators, []);
  });

  test("empty state: empty snapshot, no operators", () => {
    const task = new TaskState();
    task.operator("declared-but-empty").value("v");
    assert.deepEqual(task.operatorNames(), []);
    const restored = TaskState.restore(task.snapshot(0));
    assert.deepEqual(restored.operatorNames(), []);
    assert.equal(restored.hasOperator("declared-but-empty"), false);
  });

  test("snapshot purges expired entries from the state and the snapshot", () => {
    const task = new TaskState();
    const v = task.operator("dedupe").value<boolean>("seen", { ttlMs: 100 });
    v.set("old", true, 0);
    v.set("new", true, 50);
    const m = task.operator("session").map<string, number>("m", { ttlMs: 100 });
    m.set("old", "x", 1, 0);
    task.operator("gone").value<number>("v", { ttlMs: 10 }).set("k", 1, 0);

    const buffer = task.snapshot(120);
    assert.equal(v.entryCount(), 1);
    assert.equal(m.entryCount(), 0);
    // Operators left with nothing are not in the snapshot, nor reported.
    assert.deepEqual(task.operatorNames(), ["dedupe"]);

    const restored = TaskState.restore(buffer);
    assert.deepEqual(restored.operatorNames(), ["dedupe"]);
    const seen = restored.operator("dedupe").value<boolean>("seen", { ttlMs: 100 });
    assert.deepEqual(seen.keys(120), ["new"]);
    // The write time survives the restore: the entry still expires when it would have.
    assert.equal(seen.get("new", 149), true);
    assert.equal(seen.get("new", 150), undefined);
  });

  test("a restored store keeps its TTL until the job declares another", () => {
    const task = new TaskState();
    task.operator("op").value<number>("v", { ttlMs: 100 }).set("k", 1, 0);
    const undeclared = TaskState.restore(task.snapshot(0));
    // Not declared yet: the snapshot's TTL still applies to purging.
    assert.deepEqual(TaskState.restore(undeclared.snapshot(100)).operatorNames(), []);

    const redeclared = TaskState.restore(task.snapshot(0));
    const longer = redeclared.operator("op").value<number>("v", { ttlMs: 1000 });
    assert.equal(longer.get("k", 500), 1);
    const none = TaskState.restore(task.snapshot(0)).operator("op").value<number>("v");
    assert.equal(none.get("k", 1_000_000), 1);
  });

  test("a restored store of one kind cannot be declared as the other", () => {
    const restored = TaskState.restore(sample().snapshot(0));
    assert.throws(
      () => restored.operator("count").map("count"),
      /is a value state, not a map state/,
    );
  });

  test("dropOperator forgets an operator's state", () => {
    const task = sample();
    assert.equal(task.dropOperator("window"), true);
    assert.equal(task.dropOperator("window"), false);
    assert.deepEqual(TaskState.restore(task.snapshot(0)).operatorNames(), ["blobs", "count"]);
  });

  test("a value that cannot be cloned names its store", () => {
    const task = sample();
    task
      .operator("bad")
      .value<unknown>("fn")
      .set("k", () => 1, 0);
    assert.throws(
      () => task.snapshot(0),
      /state "fn" of operator "bad" cannot be snapshotted: .*could not be cloned/,
    );
  });

  test("restore rejects garbage, other versions and malformed content", () => {
    assert.throws(
      () => TaskState.restore(Buffer.from("garbage")),
      /task state snapshot cannot be read/,
    );
    assert.throws(() => TaskState.restore(Buffer.alloc(0)), /task state snapshot cannot be read/);
    assert.throws(() => TaskState.restore(serialize("hello")), /malformed: no formatVersion/);
    assert.throws(
      () => TaskState.restore(serialize({ formatVersion: 3, operators: [] })),
      /unsupported task state format version 3 \(this runtime reads 1 and 2\)/,
    );
    assert.throws(
      () => TaskState.restore(serialize({ formatVersion: 1 })),
      /operators is not a list/,
    );
    const state = (entries: unknown, kind = "value") => ({
      formatVersion: 1,
      operators: [{ name: "op", states: [{ name: "s", kind, ttlMs: null, entries }] }],
    });
    assert.throws(
      () => TaskState.restore(serialize(state({}))),
      /state "s" of operator "op" has no entries map/,
    );
    assert.throws(
      () => TaskState.restore(serialize(state(new Map([["k", 1]])))),
      /state "s" of operator "op" has a malformed entry/,
    );
    assert.throws(
      () => TaskState.restore(serialize(state(new Map([["k", { v: 1, w: 0 }]]), "map"))),
      /has a malformed entry/,
    );
    assert.throws(() => TaskState.restore(serialize(state(new Map(), "list"))), /has unknown kind/);
    assert.throws(
      () =>
        TaskState.restore(
          serialize({
            formatVersion: 1,
            operators: [
              { name: "op", states: [] },
              { name: "op", states: [] },
            ],
          }),
        ),
      /operator "op" appears twice/,
    );
  });

  test("sizeEstimate grows with content and stays near the snapshot size", () => {
    const task = new TaskState();
    assert.equal(task.sizeEstimate(), 0);
    const v = task.operator("op").value<{ name: string; n: number }>("v");
    const m = task.operator("op").map<number, string>("m");
    let previous = 0;
    for (let i = 0; i < 1000; i++) {
      v.set(`key-${i}`, { name: `name-${i}`.repeat(3), n: i }, 0);
      m.set(`key-${i % 10}`, i, "x".repeat(i % 50), 0);
      if (i % 100 === 99) {
        const estimate = task.sizeEstimate();
        assert.ok(estimate > previous);
        previous = estimate;
      }
    }
    v.set("blob", { name: "b".repeat(100_000), n: 0 }, 0);
    const actual = task.snapshot(0).length;
    const estimate = task.sizeEstimate();
    assert.ok(
      estimate > actual * 0.5 && estimate < actual * 2,
      `estimate ${estimate}, actual ${actual}`,
    );
  });

  test("sizeEstimate survives shared and cyclic values", () => {
    const task = new TaskState();
    const cyclic: { self?: unknown; pad: string } = { pad: "p".repeat(1000) };
    cyclic.self = cyclic;
    task.operator("op").value<unknown>("v").set("a", cyclic, 0);
    task.operator("op").value<unknown>("v").set("b", cyclic, 0);
    const estimate = task.sizeEstimate();
    assert.ok(estimate > 1000 && estimate < 1200, `estimate ${estimate}`);
    const restored = TaskState.restore(task.snapshot(0))
      .operator("op")
      .value<typeof cyclic>("v")
      .get("a", 0);
    assert.equal(restored?.self, restored);
  });
});

describe("units of work", () => {
  /** Everything the task's stores hold, as comparable data (write times included). */
  const contents = (task: TaskState) => readFrames(task.snapshot(0));

  function filled(): TaskState {
    const task = new TaskState();
    const op = task.operator("op");
    op.value<number>("count").set("a", 1, 0);
    op.value<number>("count").set("b", 2, 0);
    const windows = op.map<string, number>("windows");
    windows.set("a", "w1", 10, 0);
    windows.set("a", "w2", 20, 0);
    windows.set("b", "w1", 30, 0);
    return task;
  }

  test("rollback undoes every write since begin, of every kind, in any order", () => {
    const task = filled();
    const before = contents(task);
    const op = task.operator("op");
    task.begin();
    op.value<number>("count").set("a", 5, 7);
    op.value<number>("count").set("a", 6, 8);
    op.value<number>("count").delete("b");
    op.value<number>("count").set("new", 1, 7);
    const windows = op.map<string, number>("windows");
    windows.set("a", "w1", 11, 7);
    windows.delete("a", "w2");
    windows.set("c", "w9", 1, 7);
    windows.clear("b");
    windows.set("b", "w5", 5, 7);
    task.operator("other").value<string>("s").set("k", "v", 7);
    assert.notDeepEqual(contents(task), before);
    task.rollback();
    assert.deepEqual(contents(task), before);
    assert.equal(op.value<number>("count").get("a", 0), 1);
    assert.deepEqual(windows.entries("a", 0), [
      ["w1", 10],
      ["w2", 20],
    ]);
  });

  test("commit keeps the writes; writes outside a unit are not journalled", () => {
    const task = filled();
    const count = task.operator("op").value<number>("count");
    task.begin();
    count.set("a", 9, 1);
    task.commit();
    count.set("b", 8, 1);
    task.begin();
    task.rollback();
    assert.equal(count.get("a", 1), 9);
    assert.equal(count.get("b", 1), 8);
  });

  test("restored stores are journalled too; units do not nest", () => {
    const task = TaskState.restore(filled().snapshot(0));
    const before = contents(task);
    task.begin();
    task.operator("op").value<number>("count").set("a", 100, 1);
    task.operator("op").map<string, number>("windows").clear("a");
    assert.throws(() => task.begin(), /a unit of work is already open/);
    task.rollback();
    assert.deepEqual(contents(task), before);
  });
});

describe("snapshots in slices", () => {
  const big = () => {
    const task = new TaskState();
    const counts = task.operator("count").value<number>("n");
    const seen = task.operator("count").map<string, string>("seen");
    for (let i = 0; i < 5_500; i++) {
      counts.set(`k${i}`, i, 0);
      if (i % 2 === 0) seen.set(`k${i}`, "x", "y".repeat(i % 50), 0);
    }
    return task;
  };

  test("many slices round-trip, and the sliced and whole snapshots are the same bytes", async () => {
    const task = big();
    const whole = task.snapshot(0);
    const chunks: Buffer[] = [];
    for await (const chunk of task.chunks("full", 0)) chunks.push(chunk);
    assert.deepEqual(Buffer.concat(chunks), whole);
    const restored = TaskState.restore(whole);
    assert.deepEqual(readFrames(restored.snapshot(0)), readFrames(whole));
    assert.equal(restored.operator("count").value<number>("n").get("k5499", 0), 5499);
    assert.equal(
      restored.operator("count").map<string, string>("seen").get("k5498", "x", 0),
      "y".repeat(48),
    );
  });

  test("a snapshot in slices lets the event loop run (the clients' heartbeats)", async () => {
    const task = big();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      for await (const _ of task.chunks("full", 0, 0));
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks >= 2, `the event loop ran ${ticks} times during the snapshot`);
  });

  test("a format 1 snapshot (one v8 value) is still restored", () => {
    const v1 = serialize({
      formatVersion: 1,
      operators: [
        {
          name: "count",
          states: [
            { name: "n", kind: "value", ttlMs: null, entries: new Map([["a", { v: 3, w: 0 }]]) },
          ],
        },
      ],
    });
    assert.equal(TaskState.restore(v1).operator("count").value<number>("n").get("a", 0), 3);
  });

  test("a snapshot cut short is refused", () => {
    const whole = big().snapshot(0);
    assert.throws(
      () => TaskState.restore(whole.subarray(0, whole.length - 10)),
      /cannot be read .*ends inside a frame/,
    );
  });
});
