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
import { LoopClock } from "../src/util/loop-clock.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 512;

/** Every entry the log lists in the range, one line each: LSN, kind, block. */
async function entries(engine: DiskEngine, lsnFirst: number, lsnLast: number): Promise<string[]> {
  const found: string[] = [];
  for await (const row of readLog(engine, { lsnFirst, lsnLast, withData: false })) found.push(...describe(row));
  return found;
}

function describe(row: LogRow): string[] {
  if (row.kind === "snapshot") return [`${row.lsnFirst} snapshot ${row.snapshot?.name}`];
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

test("readLog across the checkpoint and the journal: records larger than a read, zero and trim entries, cuts, any range", async () => {
  const directory = tempDir("log-read-back");
  const options = { name: "back", sizeBytes: 65_536 * BLOCK_BYTES, blockSizeBytes: BLOCK_BYTES, historySeconds: 3600 };
  await DiskEngine.create(new DirectoryMedium(directory));
  const expected: string[] = [];
  let lsn = 0;
  const write = async (engine: DiskEngine, lba: number, blocks: number, fill: number) => {
    await engine.writeBytes(lba * BLOCK_BYTES, Buffer.alloc(blocks * BLOCK_BYTES, fill), false);
    for (let block = 0; block < blocks; block++) expected.push(`${++lsn} write ${lba + block}`);
  };
  const zero = async (engine: DiskEngine, lba: number, blocks: number, kind: "zero" | "trim") => {
    await engine.zeroBytes(lba * BLOCK_BYTES, blocks * BLOCK_BYTES, kind, { fua: false, noHole: kind === "zero" });
    for (let block = 0; block < blocks; block++) expected.push(`${++lsn} ${kind} ${lba + block}`);
  };
  const cut = async (engine: DiskEngine, name: string) => {
    await engine.cutSnapshot(name, 0);
    expected.push(`${lsn} snapshot ${name}`);
  };
  const sorted = () =>
    expected.slice().sort((a, b) => Number(a.split(" ")[0]) - Number(b.split(" ")[0]) || (a.includes("snapshot") ? 1 : -1));
  // First life: one write of 40,000 blocks (a record longer than the reader hands on at once),
  // small writes, zero and trim runs, two cuts. Closing and opening again moves them into the checkpoint.
  let engine = await DiskEngine.open(new DirectoryMedium(directory), options);
  await write(engine, 1000, 40_000, 1);
  for (let index = 0; index < 3000; index++) await write(engine, (index * 13) % 60_000, 1 + (index % 2), index % 251);
  await cut(engine, "one");
  // Inside the big write: a zero or trim of a block already zero is no entry.
  await zero(engine, 1005, 300, "zero");
  await zero(engine, 1400, 200, "trim");
  await cut(engine, "two");
  await engine.close();
  // Second life: the journal after the checkpoint.
  engine = await DiskEngine.open(new DirectoryMedium(directory), options);
  try {
    for (let index = 0; index < 3000; index++) await write(engine, (index * 17) % 60_000, 1 + (index % 3), index % 241);
    await zero(engine, 20_000, 50, "trim");
    await write(engine, 30_000, 20_000, 7);
    const all = sorted();
    const lsnLast = engine.lsnLast;
    assert.equal(lsnLast, all.filter((line) => !line.includes("snapshot")).length);
    const inRange = (first: number, last: number) =>
      all.filter((line) => Number(line.split(" ")[0]) >= first && Number(line.split(" ")[0]) <= last);
    assert.deepEqual(await entries(engine, 1, lsnLast), inRange(1, lsnLast), "the whole log");
    for (const [first, last] of [
      [1, 1],
      [1, 20_000],
      [39_999, 40_002],
      [40_001, 43_000],
      [45_000, 45_600],
      [45_400, lsnLast - 10_000],
      [lsnLast - 20_000, lsnLast],
    ])
      assert.deepEqual(await entries(engine, first, last), inRange(first, last), `LSNs ${first}-${last}`);
    const rows: LogRow[] = [];
    for await (const row of readLog(engine, { lsnFirst: 39_990, lsnLast: 40_010, withData: true })) rows.push(row);
    const bytes = Buffer.concat(rows.filter((row) => row.kind === "write").map((row) => row.data ?? Buffer.alloc(0)));
    assert.deepEqual(bytes.subarray(0, 11 * BLOCK_BYTES), Buffer.alloc(11 * BLOCK_BYTES, 1), "the big write's last blocks");
    assert.deepEqual(bytes.subarray(11 * BLOCK_BYTES, 12 * BLOCK_BYTES), Buffer.alloc(BLOCK_BYTES, 0), "then the first small write's");
    assert.equal(bytes.length, 21 * BLOCK_BYTES, "every entry read with its data");
    // With data across both cuts (a cut met while the row before it is being read) and a clock
    // (the parsing then runs in timed steps): the same rows, each write with all its blocks.
    const clock = new LoopClock();
    const withData: LogRow[] = [];
    for await (const row of readLog(engine, { lsnFirst: 40_001, lsnLast: 48_000, withData: true, clock })) withData.push(row);
    assert.deepEqual(withData.flatMap(describe), inRange(40_001, 48_000), "rows read with data and a clock");
    const short = withData.filter((row) => row.kind === "write" && row.data?.length !== row.blockCount * BLOCK_BYTES);
    assert.deepEqual(short, [], "every write row has its data");
    assert.ok(clock.ms > 0, "the reader's steps were timed");
  } finally {
    await engine.close();
  }
});
