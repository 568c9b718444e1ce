/**
 * Goal: the log read back from the middle of a long journal (replication and exports read a
 * recent range every few milliseconds) starts at the pipeline's seek points and finds exactly
 * what a scan from the journal's start finds. Method: a real engine on a directory, thousands
 * of small batches (many seek points), then for ranges starting anywhere: readLog against the
 * rows of a whole read, filtered to the range.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DirectoryMedium, DiskEngine, readLog, type LogRow } from "../src/engine/index.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 512;

/** Every entry the log lists in the range, one line each: LSN, kind, block. */
async function entries(engine: DiskEngine, lsnFirst: number, lsnLast: number): Promise<string[]> {
  const found: string[] = [];
  for await (const row of readLog(engine, { lsnFirst, lsnLast, withData: false })) found.push(...describe(row));
  return found;
}

function describe(row: LogRow): string[] {
  const lines: string[] = [];
  for (let index = 0; index < row.blockCount; index++) lines.push(`${row.lsnFirst + index} ${row.kind} ${row.lba + index}`);
  return lines;
}

test("readLog of a range inside a long journal starts at a seek point and equals a scan from the start", async () => {
  const medium = new DirectoryMedium(tempDir("log-seek"));
  await DiskEngine.create(medium);
  const engine = await DiskEngine.open(medium, {
    name: "seek",
    sizeBytes: 4096 * BLOCK_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    historySeconds: 3600,
  });
  try {
    // 20,000 batches of 1-3 blocks: over 1 MiB of journal (so records straddle the reader's
    // 1 MiB reads), many seek points.
    const written: string[] = [];
    for (let index = 0; index < 20_000; index++) {
      const blocks = 1 + (index % 3);
      const lba = (index * 7) % 4000;
      await engine.writeBytes(lba * BLOCK_BYTES, Buffer.alloc(blocks * BLOCK_BYTES, index % 251), false);
      for (let block = 0; block < blocks; block++) written.push(`${written.length + 1} write ${lba + block}`);
    }
    const lsnLast = engine.lsnLast;
    const whole = await entries(engine, 1, lsnLast);
    assert.equal(whole.length, lsnLast, "every entry is live (a 1 h window)");
    assert.deepEqual(whole, written, "the log read back is what was written, in order");
    for (const lsnFirst of [1, 2, 1000, 4321, 7777, 25_000, lsnLast - 50, lsnLast]) {
      const expected = whole.filter((line) => Number(line.split(" ")[0]) >= lsnFirst);
      assert.deepEqual(await entries(engine, lsnFirst, lsnLast), expected, `from LSN ${lsnFirst}`);
    }
  } finally {
    await engine.close();
  }
});
