/**
 * Goal: `snaplog log --data` prints bytes exactly as `hexdump -C` does (offset, two groups of
 * eight, printable characters, "*" for repeated lines, the end offset last), so people read
 * it the way they already know. Method: format buffers with runs, a short last line and
 * non-printable bytes, and compare with the real hexdump -C on the same bytes (where hexdump
 * is not installed that test skips loudly, or fails under CI: requireTool).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { hexdumpLines } from "../src/cli/hexdump.js";
import { requireTool } from "./support/nbd-server.js";

const skip = requireTool("hexdump", "bsdextrautils") ? false : "hexdump is not installed";

const samples: Array<[string, Buffer]> = [
  ["text with a short last line", Buffer.from("Hello world\n")],
  ["zeros between data, runs collapsed", Buffer.concat([Buffer.from("head"), Buffer.alloc(100), Buffer.from("tail\x01\x7f\xff")])],
  ["one block of one byte value", Buffer.alloc(4096, 0x41)],
  ["every byte value", Buffer.from(Array.from({ length: 256 }, (_, index) => index))],
  ["a line equal to the one before only in part", Buffer.concat([Buffer.alloc(16, 1), Buffer.alloc(8, 1)])],
];

test("hexdumpLines matches hexdump -C", { skip }, () => {
  for (const [what, data] of samples) {
    const hexdump = spawnSync("hexdump", ["-C"], { input: data, encoding: "utf8" });
    assert.equal(hexdump.status, 0, hexdump.stderr);
    const expected = hexdump.stdout.trimEnd().split("\n");
    assert.deepEqual([...hexdumpLines(data, 0)], expected, what);
  }
});

test("offsets start at the row's byte offset on the disk", () => {
  const lines = [...hexdumpLines(Buffer.alloc(32, 0x20), 0x1_0000_0000)];
  assert.deepEqual(lines, ["100000000  20 20 20 20 20 20 20 20  20 20 20 20 20 20 20 20  |                |", "*", "100000020"]);
});
