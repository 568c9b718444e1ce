/**
 * Goal: every positioned read of the store's files (src/util/positioned-reads.ts) returns the
 * file's bytes whichever way it went — preadv2(RWF_NOWAIT) on the event loop for data in the
 * page cache, the thread pool for the rest, or both for one read that was only partly cached —
 * stops at the end of the file, and never runs on a closed descriptor.
 * Method: a real file on disk with cached regions (written buffered) and uncached ones (written
 * O_DIRECT, which leaves nothing in the page cache); the addon's answers checked directly, then
 * fast-check reads of random ranges against the bytes written. In CI the addon must have been
 * built (without it every read pays a thread-pool round trip without a word).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { constants as fsConstants, promises as fs } from "node:fs";
import { constants as osConstants } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { allocateAligned } from "../src/util/aligned-memory.js";
import { loadNowaitRead, NOWAIT_READ_BYTES_MAX, PositionedReads, smallReadPath } from "../src/util/positioned-reads.js";
import { tempDir } from "./support/temp-dir.js";

const addon = loadNowaitRead();
const MIB = 1024 * 1024;

/** A 4 MiB file: the first 2 MiB written buffered (cached), the last 2 MiB O_DIRECT (not cached). */
async function halfCachedFile(): Promise<{ filePath: string; content: Buffer; directWritten: boolean }> {
  const filePath = path.join(tempDir("reads"), "data");
  const content = randomBytes(4 * MIB);
  await fs.writeFile(filePath, content.subarray(0, 2 * MIB));
  let directWritten = false;
  try {
    const direct = await fs.open(filePath, fsConstants.O_WRONLY | fsConstants.O_DIRECT);
    const aligned = allocateAligned(2 * MIB);
    content.copy(aligned, 0, 2 * MIB);
    await direct.write(aligned, 0, aligned.length, 2 * MIB);
    await direct.close();
    directWritten = true;
  } catch {
    const handle = await fs.open(filePath, "r+");
    await handle.write(content, 2 * MIB, 2 * MIB, 2 * MIB);
    await handle.close();
  }
  return { filePath, content, directWritten };
}

test(
  "CI runs with the nowait read built",
  { skip: process.env.CI === "true" ? false : `local run: small reads go by ${smallReadPath()}` },
  () => {
    assert.equal(
      smallReadPath(),
      "preadv2-nowait",
      "snaplog-nowait-read did not build at npm ci (a C compiler, make and python3 are needed)",
    );
  },
);

test("the addon reads cached data, answers EAGAIN for uncached data without waiting, and refuses bad arguments", async (t) => {
  if (addon === undefined) return t.skip("snaplog-nowait-read is not built here (or SNAPLOG_NOWAIT_READS=0)");
  const { filePath, content, directWritten } = await halfCachedFile();
  const handle = await fs.open(filePath, "r");
  try {
    const target = Buffer.alloc(8192);
    assert.equal(addon.readNowait(handle.fd, target, 0, 4096, 4096), 4096);
    assert.deepEqual(target.subarray(0, 4096), content.subarray(4096, 8192));
    assert.equal(addon.readNowait(handle.fd, target, 4096, 4096, 4 * MIB), 0, "the end of the file reads 0 bytes");
    await handle.read(target, 0, 4096, 4 * MIB - 4096); // the last page, through the pool: now cached
    assert.equal(addon.readNowait(handle.fd, target, 0, 8192, 4 * MIB - 4096), 4096, "a read across the end stops there");
    if (directWritten) {
      const position = 3 * MIB;
      assert.equal(addon.readNowait(handle.fd, target, 0, 4096, position), -osConstants.errno.EAGAIN);
      await handle.read(target, 0, 4096, position); // through the pool: now cached
      target.fill(0);
      assert.equal(addon.readNowait(handle.fd, target, 0, 4096, position), 4096);
      assert.deepEqual(target.subarray(0, 4096), content.subarray(position, position + 4096));
    } else {
      t.diagnostic("O_DIRECT refused here: the uncached case was not checked");
    }
    assert.throws(() => addon.readNowait(handle.fd, target, 4096, 8192, 0), RangeError);
    assert.throws(() => addon.readNowait(-1, target, 0, 1, 0), TypeError);
    assert.throws(() => addon.readNowait(handle.fd, [] as unknown as Uint8Array, 0, 1, 0), TypeError);
    assert.throws(() => addon.readNowait(handle.fd, new Uint16Array(4) as unknown as Uint8Array, 0, 1, 0), TypeError);
    assert.throws(() => addon.readNowait(handle.fd, target, 0, 1, -1), TypeError);
    assert.equal(addon.readNowait(999_999, target, 0, 1, 0), -osConstants.errno.EBADF, "an unopened descriptor is the read's error");
  } finally {
    await handle.close();
  }
});

test("readAll returns the file's bytes for any range, cached, uncached or both", async () => {
  const { filePath, content } = await halfCachedFile();
  const handle = await fs.open(filePath, "r");
  const reads = new PositionedReads(handle);
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(4 * MIB + 8192),
        fc.oneof(
          fc.integer({ min: 1, max: 8192 }),
          fc.integer({ min: 1, max: NOWAIT_READ_BYTES_MAX + 4096 }),
          fc.integer({ min: 1, max: MIB }),
        ),
        async (position, length) => {
          const target = Buffer.alloc(length, 0xee);
          const bytesRead = await reads.readAll(target, position);
          const expected = content.subarray(Math.min(position, content.length), Math.min(position + length, content.length));
          assert.equal(bytesRead, expected.length);
          assert.deepEqual(target.subarray(0, bytesRead), expected);
        },
      ),
      { numRuns: 300 },
    );
  } finally {
    await reads.drained();
    await handle.close();
  }
});

test("close waits for reads in flight, and a read after close is EBADF", async () => {
  const { filePath, content } = await halfCachedFile();
  const handle = await fs.open(filePath, "r");
  const reads = new PositionedReads(handle);
  const targets = [0, 1, 2, 3].map(() => Buffer.alloc(MIB));
  const inFlight = targets.map((target, index) => reads.readAll(target, index * MIB));
  await reads.drained();
  await handle.close();
  assert.deepEqual(await Promise.all(inFlight), [MIB, MIB, MIB, MIB]);
  assert.deepEqual(Buffer.concat(targets), content);
  await assert.rejects(reads.readAll(Buffer.alloc(4096), 0), { code: "EBADF" });
});
