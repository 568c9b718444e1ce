/**
 * Goal: a stream's SHA-256 hashed on the worker thread (src/util/stream-hash.ts) is the SHA-256
 * of its bytes, whatever memory the chunks are in and however streams interleave; a stream given
 * up does not disturb the others; a writer far ahead of the worker waits; and a process that used
 * the worker still exits by itself. Method: fast-check over interleaved streams of chunks in shared
 * and private memory against node:crypto in place; a real child process for the exit.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { streamHash } from "../src/util/stream-hash.js";
import { tempDir } from "./support/temp-dir.js";

function chunkOf(length: number, seed: number, shared: boolean): Buffer {
  const bytes = shared ? Buffer.from(new SharedArrayBuffer(length + 16), 16 - (seed % 16), length) : Buffer.allocUnsafe(length);
  for (let at = 0; at < length; at++) bytes[at] = (seed * 131 + at * 7 + (at >> 8)) & 0xff;
  return bytes;
}

test("streams hashed on the worker, interleaved, in shared and private memory: each digest is its bytes' SHA-256", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ stream: fc.integer({ min: 0, max: 3 }), length: fc.integer({ min: 0, max: 70_000 }), shared: fc.boolean() }), {
        maxLength: 40,
      }),
      fc.integer({ min: 0, max: 3 }),
      async (chunks, givenUp) => {
        const hashes = [0, 1, 2, 3].map(() => streamHash(true));
        const expected = [0, 1, 2, 3].map(() => createHash("sha256"));
        for (const [index, chunk] of chunks.entries()) {
          const bytes = chunkOf(chunk.length, index, chunk.shared);
          const behind = hashes[chunk.stream].update(bytes);
          if (behind !== undefined) await behind;
          expected[chunk.stream].update(bytes);
        }
        for (let stream = 0; stream < 4; stream++) {
          if (stream === givenUp) continue; // never asked for: the worker drops it once it is collected
          assert.equal((await hashes[stream].digest()).toString("hex"), expected[stream].digest("hex"), `stream ${stream}`);
        }
      },
    ),
    { numRuns: 60 },
  );
});

test("a writer far ahead of the worker waits for it, and the digest is still right", async () => {
  const hash = streamHash(true);
  const expected = createHash("sha256");
  let waited = 0;
  const chunk = chunkOf(8 * 1024 * 1024, 3, true);
  for (let index = 0; index < 24; index++) {
    const behind = hash.update(chunk);
    if (behind !== undefined) {
      waited++;
      await behind;
    }
  }
  for (let index = 0; index < 24; index++) expected.update(chunk);
  assert.equal((await hash.digest()).toString("hex"), expected.digest("hex"));
  assert.ok(waited > 0, "192 MiB handed over at memory speed gets ahead of a 1-2 GB/s hash");
});

test("a process that hashed on the worker exits by itself (an idle worker keeps nothing alive)", () => {
  const module = fileURLToPath(new URL("../src/util/stream-hash.js", import.meta.url));
  const script = `
    const { streamHash } = await import(${JSON.stringify(module)});
    const hash = streamHash(true);
    hash.update(Buffer.from(new SharedArrayBuffer(1 << 20)));
    streamHash(true).update(Buffer.alloc(10)); // given up
    console.log((await hash.digest()).toString("hex"));`;
  const file = path.join(tempDir("stream-hash-exit"), "uses-worker.mjs");
  writeFileSync(file, script);
  const run = spawnSync(process.execPath, [file], { encoding: "utf8", timeout: 20_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(
    run.stdout.trim(),
    createHash("sha256")
      .update(Buffer.alloc(1 << 20))
      .digest("hex"),
  );
});
