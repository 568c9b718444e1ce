/**
 * Goal: checksums combined from parts equal checksums computed over the bytes (src/util/crc32c.ts
 * crc32cCombine, crc32cOfBlocks), so the runs and frames an export writes from the log's block
 * checksums carry exactly what a reader computes; and a decoded run hands its block checksums on.
 * Method: fast-check over random byte strings and block runs against the native CRC32C; an
 * ENTRIES payload encoded from block checksums against one encoded from the data alone; the
 * payload as pieces (views of the runs' buffers, not copied) against the layout copied out.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { crc32c, crc32cCombine, crc32cOfBlocks, zeroBlockCrc } from "../src/util/crc32c.js";
import { decodeEntries, encodeEntriesParts, RUN_DESCRIPTOR_BYTES, type EntryRun } from "../src/stream/stream-format.js";

/** The payload in one buffer, as a reader receives it. */
function encodeEntries(runs: readonly EntryRun[], blockSizeBytes: number): { bytes: Buffer; crc32c: number } {
  const { parts, crc32c } = encodeEntriesParts(runs, blockSizeBytes);
  return { bytes: Buffer.concat(parts), crc32c };
}

test("the CRC32C of A then B combines from the CRCs of A and B", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ maxLength: 20_000 }), (a, b) => {
      const whole = Buffer.concat([a, b]);
      assert.equal(crc32cCombine(crc32c(a), crc32c(b), b.length), crc32c(whole));
    }),
    { numRuns: 300 },
  );
});

test("a run's CRC32C combines from its blocks' at any block size", () => {
  fc.assert(
    fc.property(fc.constantFrom(512, 4096, 65536), fc.integer({ min: 1, max: 9 }), fc.integer(), (blockSize, blocks, seed) => {
      const data = Buffer.alloc(blockSize * blocks);
      for (let index = 0; index < data.length; index++) data[index] = (seed + index * 131 + (index >> 7)) & 0xff;
      const crcs = Array.from({ length: blocks }, (_, index) => crc32c(data.subarray(index * blockSize, (index + 1) * blockSize)));
      assert.equal(crc32cOfBlocks(crcs, blockSize), crc32c(data));
    }),
    { numRuns: 100 },
  );
  assert.equal(zeroBlockCrc(4096), crc32c(Buffer.alloc(4096)));
});

test("an ENTRIES payload from block checksums is the payload from the data, its CRC the bytes' CRC", () => {
  const block = 4096;
  const runs: EntryRun[] = [];
  for (let index = 0; index < 12; index++) {
    const blockCount = 1 + (index % 4);
    const data = Buffer.alloc(blockCount * block, index * 7 + 1);
    data.writeUInt32LE(index * 977, 100);
    runs.push({ lsn: index + 1, timeMs: 1000 + index, lba: index * 8, blockCount, kind: "write", data });
    if (index % 5 === 0) runs.push({ lsn: 100 + index, timeMs: 5, lba: 200 + index, blockCount: 3, kind: "zero" });
  }
  const plain = encodeEntries(runs, block);
  const withCrcs = runs.map((run) => {
    if (run.data === undefined) return run;
    const data = run.data;
    const blockCrcs = Uint32Array.from({ length: run.blockCount }, (_, index) => crc32c(data.subarray(index * block, (index + 1) * block)));
    return { ...run, blockCrcs };
  });
  const combined = encodeEntries(withCrcs, block);
  assert.deepEqual(combined.bytes, plain.bytes);
  assert.equal(combined.crc32c, crc32c(combined.bytes));
  assert.equal(plain.crc32c, crc32c(plain.bytes));

  // Decoding hands each write run's block checksums on (the receiver's log keeps them).
  const decoded = decodeEntries(combined.bytes, { blockSizeBytes: block, blockCount: 1024 }, 0);
  for (const [index, run] of decoded.entries()) assert.deepEqual(run.blockCrcs, withCrcs[index].blockCrcs);

  // A wrong block checksum given to the writer makes a run the reader refuses: they are not trusted blindly on read.
  const broken = withCrcs.map((run, index) =>
    index === 3 && run.blockCrcs !== undefined ? { ...run, blockCrcs: run.blockCrcs.map((crc) => crc ^ 1) } : run,
  );
  assert.throws(
    () => decodeEntries(encodeEntries(broken, block).bytes, { blockSizeBytes: block, blockCount: 1024 }, 0),
    /checksum mismatch/,
  );
});

test("an ENTRIES payload as pieces (views of the runs' buffers, neighbours joined) is the payload copied out", () => {
  const block = 512;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ blocks: fc.integer({ min: 1, max: 4 }), kind: fc.constantFrom("write", "write", "zero", "trim"), gap: fc.boolean() }),
        {
          minLength: 1,
          maxLength: 30,
        },
      ),
      fc.integer({ min: 0, max: 3 }),
      (shapes, buffersWanted) => {
        // Write runs are views of a few shared buffers, taken in order: some touch the one before, some skip a block.
        const buffers = Array.from({ length: buffersWanted + 1 }, (_, index) => {
          const bytes = Buffer.alloc(200 * block);
          for (let at = 0; at < bytes.length; at++) bytes[at] = (at * 31 + index * 7 + (at >> 9)) & 0xff;
          return { bytes, at: 0 };
        });
        const runs: EntryRun[] = shapes.map((shape, index) => {
          const run = { lsn: index + 1, timeMs: 7, lba: index * 8, blockCount: shape.blocks, kind: shape.kind as EntryRun["kind"] };
          if (shape.kind !== "write") return run;
          const source = buffers[index % buffers.length];
          if (shape.gap) source.at += block;
          const data = source.bytes.subarray(source.at, source.at + shape.blocks * block);
          source.at += shape.blocks * block;
          return { ...run, data };
        });
        const { parts, bytes, crc32c: partsCrc } = encodeEntriesParts(runs, block);
        const joined = Buffer.concat(parts);
        assert.equal(joined.length, bytes);
        // The reference layout: count, reserved, the descriptors, then each write run's data copied in order.
        const head = joined.subarray(0, 8 + runs.length * RUN_DESCRIPTOR_BYTES);
        const data = Buffer.concat(runs.flatMap((run) => (run.data === undefined ? [] : [run.data])));
        assert.deepEqual(joined, Buffer.concat([head, data]));
        assert.equal(head.readUInt32LE(0), runs.length);
        assert.equal(partsCrc, crc32c(joined));
        const decoded = decodeEntries(joined, { blockSizeBytes: block, blockCount: 1024 }, 0);
        assert.deepEqual(
          decoded.map((run) => run.data),
          runs.map((run) => run.data),
        );
        // Pieces never outnumber the write runs (plus the descriptors).
        assert.ok(parts.length <= 1 + runs.filter((run) => run.kind === "write").length);
      },
    ),
    { numRuns: 300 },
  );
});
