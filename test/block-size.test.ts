/**
 * Goal: one block-size rule (store/block-size.ts over the engine's limits, issue 8): a power of
 * two from 512 B to 64 KiB, with one message, whether the size comes typed (the CLI's
 * parseBlockSize) or as a number (the store, the API). Method: direct calls at the edges.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BLOCK_SIZE_BYTES_MAX, BLOCK_SIZE_BYTES_MIN, checkBlockSize, parseBlockSize } from "../src/store/block-size.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";

function refusal(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof SnaplogError && error.code === ErrorCodes.INVALID_ARGUMENT, String(error));
    assert.ok(!error.message.includes("\n"), "one-line reason");
    return error.message;
  }
  assert.fail("accepted");
}

test("block sizes: powers of two from 512 B to 64 KiB, typed or as numbers, refused with one message", () => {
  assert.deepEqual([BLOCK_SIZE_BYTES_MIN, BLOCK_SIZE_BYTES_MAX], [512, 65_536]);
  assert.equal(parseBlockSize("4K"), 4096);
  assert.equal(parseBlockSize("512"), 512);
  assert.equal(parseBlockSize("64KiB"), 65_536);
  for (const bytes of [0, 256, 1000, 128 * 1024, 4096.5]) {
    assert.equal(
      refusal(() => checkBlockSize(bytes)),
      `invalid block size ${bytes}: must be a power of two from 512 to 65536 bytes`,
    );
  }
  assert.equal(
    refusal(() => parseBlockSize("128K")),
    refusal(() => checkBlockSize(131_072)),
  );
  assert.match(
    refusal(() => parseBlockSize("x")),
    /^invalid block size "x"/,
  );
});
