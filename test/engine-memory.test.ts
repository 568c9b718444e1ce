/**
 * Goal: memory grows with live entries only, at most 32 bytes each, with no JavaScript object
 * per block (SPEC §2 Bounded resources). Method: write 300 Ki distinct blocks through the
 * engine, then compare (a) the engine's own accounting of its typed-array tables and (b) the
 * process's ArrayBuffer and heap growth after a forced GC, per live entry.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { DiskEngine } from "../src/engine/disk-engine.js";
import { DirectoryMedium } from "../src/engine/medium.js";
import { tempDir } from "./support/temp-dir.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const BLOCK_BYTES = 512;
// Not a multiple of the 64 Ki chunk: the figure includes the last chunk's slack.
const ENTRY_COUNT = 300 * 1024;
const BLOCKS_PER_WRITE = 256;

test("memory per live entry stays at or under 32 bytes", async () => {
  const directory = tempDir("memory");
  const medium = new DirectoryMedium(directory);
  await DiskEngine.create(medium);
  const engine = await DiskEngine.open(medium, {
    name: "mem",
    sizeBytes: ENTRY_COUNT * BLOCK_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    historySeconds: 3600,
  });
  try {
    gc();
    const before = process.memoryUsage();
    const data = Buffer.alloc(BLOCKS_PER_WRITE * BLOCK_BYTES, 0x5a);
    for (let lba = 0; lba < ENTRY_COUNT; lba += BLOCKS_PER_WRITE * 8) {
      const work: Promise<void>[] = [];
      for (let part = 0; part < 8; part++) work.push(engine.writeBytes((lba + part * BLOCKS_PER_WRITE) * BLOCK_BYTES, data, false));
      await Promise.all(work);
    }
    gc();
    const after = process.memoryUsage();
    const stats = engine.stats();
    assert.equal(stats.entryCount, ENTRY_COUNT);
    const tableBytesPerEntry = stats.memoryBytes / stats.entryCount;
    const processBytesPerEntry =
      (after.arrayBuffers - before.arrayBuffers + Math.max(0, after.heapUsed - before.heapUsed)) / stats.entryCount;
    console.log(
      `# memory per live entry: tables ${tableBytesPerEntry.toFixed(1)} B, process growth ${processBytesPerEntry.toFixed(1)} B (${stats.entryCount} entries)`,
    );
    assert.ok(tableBytesPerEntry <= 32, `tables use ${tableBytesPerEntry} bytes per entry`);
    // The process figure includes transient buffers and allocator slack; an object per block would add 50+ bytes.
    assert.ok(processBytesPerEntry <= 40, `process grew ${processBytesPerEntry} bytes per entry`);
  } finally {
    await engine.close();
  }
});
