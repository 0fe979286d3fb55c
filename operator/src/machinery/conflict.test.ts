import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException } from "@kubernetes/client-node";
import { retryOnConflict } from "./conflict.ts";

const conflict = () => new ApiException(409, "Conflict", {}, {});
const fast = { baseMs: 1, capMs: 1, jitter: 0 };

test("a conflict is retried from a fresh read", async () => {
  const reads: number[] = [];
  let version = 0;
  const result = await retryOnConflict(
    async () => {
      reads.push(++version);
      return version;
    },
    async (current) => {
      if (current < 3) throw conflict();
      return `wrote from version ${current}`;
    },
    { backoff: fast },
  );
  assert.equal(result, "wrote from version 3");
  assert.deepEqual(reads, [1, 2, 3]);
});

test("the last conflict is thrown after the attempts run out", async () => {
  let writes = 0;
  await assert.rejects(
    retryOnConflict(
      async () => undefined,
      async () => {
        writes++;
        throw conflict();
      },
      { attempts: 3, backoff: fast },
    ),
    (error) => error instanceof ApiException && error.code === 409,
  );
  assert.equal(writes, 3);
});

test("other failures are not retried", async () => {
  let writes = 0;
  await assert.rejects(
    retryOnConflict(
      async () => undefined,
      async () => {
        writes++;
        throw new ApiException(422, "Invalid", {}, {});
      },
    ),
  );
  assert.equal(writes, 1);
});
