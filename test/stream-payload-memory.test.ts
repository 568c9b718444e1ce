/**
 * Goal: a reader lent payload memory (src/stream/stream-reader.ts PayloadMemory, the replication
 * receiver's PayloadLease from src/util/payload-pool.ts) decodes exactly what a plain reader
 * does; the data of an entries frame stored raw lands page-aligned in reused memory (so O_DIRECT
 * takes it without a copy); memory given back is taken again, and after giveBack a lease hands
 * out plain buffers only.
 * Method: streams of random runs (writes of random sizes, zero and trim runs; compressible and
 * not) written by StreamWriter, read back in odd-sized chunks with and without a lease (fast-check).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { type EntryRun } from "../src/stream/stream-format.js";
import { testStreamHeader } from "./support/stream-header.js";
import { StreamReader, StreamWriter } from "../src/stream/index.js";
import { isPageAligned } from "../src/util/aligned-memory.js";
import { PayloadLease, POOLED_PAYLOAD_BYTES_MIN } from "../src/util/payload-pool.js";

const BLOCK = 4096;

const header = testStreamHeader({
  kind: "incremental",
  from: { name: "f", id: "f", lsn: 0, timeMs: 0 },
  to: { name: "t", id: "t", lsn: 1_000_000, timeMs: 0 },
});

async function writeStream(runs: EntryRun[], codec: "none" | "zstd"): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const writer = new StreamWriter(header, { codec }, async (chunk) => {
    chunks.push(Buffer.from(chunk));
  });
  await writer.start();
  for (const run of runs) await writer.addRun(run);
  await writer.finish();
  return Buffer.concat(chunks);
}

async function* inChunks(bytes: Buffer, chunkBytes: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += chunkBytes) yield Buffer.from(bytes.subarray(at, at + chunkBytes));
}

async function readRuns(bytes: Buffer, chunkBytes: number, lease?: PayloadLease): Promise<EntryRun[]> {
  const reader = new StreamReader(inChunks(bytes, chunkBytes), lease);
  const runs: EntryRun[] = [];
  await reader.readHeader();
  for await (const item of reader.items()) if (item.type === "runs") runs.push(...item.runs);
  return runs;
}

const runsArbitrary = fc
  .array(
    fc.record({
      kind: fc.constantFrom("write", "write", "write", "zero", "trim"),
      blockCount: fc.integer({ min: 1, max: 96 }),
      compressible: fc.boolean(),
    }),
    { minLength: 1, maxLength: 40 },
  )
  .map((shapes) => {
    let lsn = 1;
    return shapes.map(({ kind, blockCount, compressible }, index): EntryRun => {
      const run: EntryRun = { lsn, timeMs: 1000 + index, lba: (index * 97) % 4096, blockCount, kind: kind as EntryRun["kind"] };
      lsn += blockCount;
      if (kind === "write") run.data = compressible ? Buffer.alloc(blockCount * BLOCK, index + 1) : randomBytes(blockCount * BLOCK);
      return run;
    });
  });

test("a reader lent payload memory decodes what a plain reader does, raw frames' data page-aligned", async () => {
  let alignedRuns = 0;
  await fc.assert(
    fc.asyncProperty(
      runsArbitrary,
      fc.constantFrom("none" as const, "zstd" as const),
      fc.integer({ min: 1000, max: 70_000 }),
      async (runs, codec, chunkBytes) => {
        const stream = await writeStream(runs, codec);
        const plain = await readRuns(stream, chunkBytes);
        const lease = new PayloadLease();
        const lent = await readRuns(stream, chunkBytes, lease);
        assert.equal(lent.length, plain.length);
        for (const [index, run] of lent.entries()) {
          const expected = plain[index];
          assert.deepEqual({ ...run, data: undefined, blockCrcs: undefined }, { ...expected, data: undefined, blockCrcs: undefined });
          assert.deepEqual(run.blockCrcs, expected.blockCrcs);
          if (run.data === undefined) continue;
          assert.ok(run.data.equals(expected.data!), `run ${index}: the same bytes`);
          if (isPageAligned(run.data)) alignedRuns++;
        }
        lease.giveBack();
      },
    ),
    { numRuns: 60 },
  );
  assert.ok(alignedRuns > 0, "some runs landed page-aligned in pooled memory");
});

test("every raw entries frame assembled in lent memory has its data page-aligned; given back, the memory is reused", async () => {
  // 2 MiB of random writes in 4-block runs: frames of about 1 MiB stored raw, each spanning chunks.
  const runs: EntryRun[] = Array.from({ length: 128 }, (_, index) => ({
    lsn: 1 + index * 4,
    timeMs: 1,
    lba: index * 4,
    blockCount: 4,
    kind: "write",
    data: randomBytes(4 * BLOCK),
  }));
  const stream = await writeStream(runs, "none");
  const written = Buffer.concat(runs.map((run) => run.data!));
  const blocksOf = (run: EntryRun) => written.subarray(run.lba * BLOCK, (run.lba + run.blockCount) * BLOCK);
  const lease = new PayloadLease();
  const decoded = await readRuns(stream, 65_536, lease);
  // Runs split where frames end: the same blocks, in the same order.
  assert.equal(
    decoded.reduce((blocks, run) => blocks + run.blockCount, 0),
    128 * 4,
  );
  for (const run of decoded) assert.ok(run.data!.equals(blocksOf(run)), `run at block ${run.lba}: the bytes written`);
  // The first run of each frame starts the frame's data; the others follow it in the same memory.
  for (const run of decoded) assert.ok(isPageAligned(run.data!), `run at block ${run.lba}: page-aligned`);
  const buffers = new Set(decoded.map((run) => run.data!.buffer));
  lease.giveBack();
  // Taken again: the same memory comes back (from the pool's idle list), not new allocations.
  const again = new PayloadLease();
  const reread = await readRuns(stream, 65_536, again);
  assert.ok(
    reread.some((run) => buffers.has(run.data!.buffer)),
    "given-back payload memory is reused",
  );
  for (const run of reread) assert.ok(run.data!.equals(blocksOf(run)), `run at block ${run.lba}, read again: the bytes written`);
  again.giveBack();
  // After giveBack, takes are plain buffers, never pooled ones that could be reused under them.
  const after = again.take(POOLED_PAYLOAD_BYTES_MIN * 4, 0);
  assert.ok(!isPageAligned(after), "a lease given back hands out plain memory");
});
