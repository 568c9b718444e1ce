/**
 * Goal: the CRC32C every checksum in the store comes from is the Castagnoli CRC whichever native
 * implementation was loaded (src/util/crc32c.ts: sse4_crc32, built at install, else
 * @node-rs/crc32), so logs and streams written under one are read under the other.
 * Method: the standard check value, and fast-check against @node-rs/crc32 over random byte
 * strings, views into larger buffers and continued computations. In CI the fast one must have
 * been built (a missing compiler would otherwise halve checksum speed without a word).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32c as portableCrc32c } from "@node-rs/crc32";
import fc from "fast-check";
import { crc32c, crc32cImplementation } from "../src/util/crc32c.js";

test("the loaded CRC32C gives the Castagnoli check value and agrees with @node-rs/crc32", () => {
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(0)), 0);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 9000 }),
      fc.nat(64),
      fc.nat(64),
      fc.uint8Array({ maxLength: 300 }),
      (bytes, start, trim, tail) => {
        const view = bytes.subarray(Math.min(start, bytes.length), Math.max(Math.min(start, bytes.length), bytes.length - trim));
        assert.equal(crc32c(view), portableCrc32c(view) >>> 0);
        assert.equal(crc32c(tail, crc32c(view)), portableCrc32c(Buffer.concat([view, tail])) >>> 0);
      },
    ),
    { numRuns: 500 },
  );
});

test(
  "CI runs with the hardware CRC32C built",
  { skip: process.env.CI === "true" ? false : `local run: ${crc32cImplementation} loaded` },
  () => {
    assert.equal(crc32cImplementation, "sse4_crc32", "sse4_crc32 did not build at npm ci (a C++ compiler, make and python3 are needed)");
  },
);
