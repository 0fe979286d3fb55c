import assert from "node:assert/strict";
import { test } from "node:test";
import { seededRandom } from "../../examples/golden.ts";
import { type DueEntry, DueIndex, inDueOrder } from "./due-index.ts";

test("entries come out due-first in (time, order, key, id) order, only once due", () => {
  const random = seededRandom(3);
  const index = new DueIndex();
  const all: DueEntry[] = Array.from({ length: 2_000 }, (_, i) => ({
    at: Math.floor(random() * 500),
    order: Math.floor(random() * 3),
    key: `k${Math.floor(random() * 40)}`,
    id: `i${i}`,
  }));
  for (const entry of all) index.add(entry);
  assert.equal(index.size, all.length);
  const popped: DueEntry[] = [];
  for (const time of [-1, 100, 100, 250, 499]) {
    for (let e = index.popDue(time); e; e = index.popDue(time)) {
      assert.ok(e.at <= time, `${e.at} popped at ${time}`);
      popped.push(e);
    }
    assert.ok(index.next > time, "nothing due left behind");
  }
  assert.equal(index.size, 0);
  assert.equal(index.next, Number.POSITIVE_INFINITY);
  assert.deepEqual(popped, inDueOrder([...all]));
});
