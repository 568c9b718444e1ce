/**
 * Goal: readEntriesData (the export's and replication's read of the log back) gives each
 * entry's own data, whatever the view: the version written at that LSN, not a newer or older
 * one; zeros for zero and trim entries; nothing for an entry that never existed or was freed;
 * and it reads entries whose slots are consecutive together without mixing their bytes up.
 * Method: a real engine on a directory against a model (a map from LSN to the bytes written),
 * in random order and in LSN order, then again after compaction freed the overwritten entries.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DirectoryMedium, DiskEngine } from "../src/engine/index.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 512;
const BLOCK_COUNT = 256;

function blockOf(lsn: number): Buffer {
  const block = Buffer.alloc(BLOCK_BYTES, lsn % 251);
  block.writeUInt32LE(lsn, 0);
  return block;
}

test("readEntriesData: each entry's own bytes, zeros for zero entries, nothing for what is gone", async () => {
  const medium = new DirectoryMedium(tempDir("read-entries"));
  await DiskEngine.create(medium);
  const engine = await DiskEngine.open(medium, {
    name: "re",
    sizeBytes: BLOCK_COUNT * BLOCK_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    historySeconds: 3600,
  });
  try {
    // The model: every entry's block and what it holds (undefined: a zero entry).
    const model = new Map<number, { lba: number; data: Buffer | undefined }>();
    /** Blocks whose newest entry holds data. */
    const written = new Set<number>();
    for (let step = 0; step < 600; step++) {
      const lba = (step * 37) % BLOCK_COUNT;
      const blocks = 1 + (step % 4);
      const count = Math.min(blocks, BLOCK_COUNT - lba);
      const lsnFirst = engine.lsnLast + 1;
      if (step % 17 === 5) {
        await engine.zeroBytes(lba * BLOCK_BYTES, count * BLOCK_BYTES, "zero", { fua: false, noHole: false });
        // Zeros over zeros (never written, or zeroed last) make no entry and take no LSN.
        let lsn = lsnFirst;
        for (let index = 0; index < count; index++) {
          if (!written.has(lba + index)) continue;
          model.set(lsn++, { lba: lba + index, data: undefined });
          written.delete(lba + index);
        }
        continue;
      }
      const data = Buffer.concat(Array.from({ length: count }, (_, index) => blockOf(lsnFirst + index)));
      await engine.writeBytes(lba * BLOCK_BYTES, data, false);
      for (let index = 0; index < count; index++) {
        model.set(lsnFirst + index, { lba: lba + index, data: blockOf(lsnFirst + index) });
        written.add(lba + index);
      }
    }
    assert.equal(model.size, engine.lsnLast, "the model has every LSN");
    assert.ok(
      [...model.values()].some((entry) => entry.data === undefined),
      "zero entries are among them",
    );
    const all = [...model].map(([lsn, { lba }]) => ({ lba, lsn }));
    /** The answer per entry: its bytes, or undefined when it is gone. */
    const read = async (entries: { lba: number; lsn: number }[]): Promise<(Buffer | undefined)[]> => {
      const { data, live } = await engine.readEntriesData(
        entries.map((entry) => entry.lba),
        entries.map((entry) => entry.lsn),
      );
      assert.equal(data.length, entries.length * BLOCK_BYTES);
      return entries.map((_, index) => (live[index] === 1 ? data.subarray(index * BLOCK_BYTES, (index + 1) * BLOCK_BYTES) : undefined));
    };
    const expect = (entries: { lba: number; lsn: number }[], got: (Buffer | undefined)[], what: string) => {
      assert.equal(got.length, entries.length);
      entries.forEach((entry, index) => {
        const known = model.get(entry.lsn);
        if (known === undefined || known.lba !== entry.lba)
          return assert.equal(got[index], undefined, `${what}: no entry ${entry.lba}@${entry.lsn}`);
        assert.deepEqual(got[index], known.data ?? Buffer.alloc(BLOCK_BYTES), `${what}: entry ${entry.lba}@${entry.lsn}`);
      });
    };
    expect(all, await read(all), "in LSN order");
    const shuffled = [...all].sort((a, b) => ((a.lsn * 7919) % 1013) - ((b.lsn * 7919) % 1013));
    // Entries that never existed: a block with another block's LSN, and an LSN past the end.
    shuffled.splice(10, 0, { lba: (all[3].lba + 1) % BLOCK_COUNT, lsn: all[3].lsn }, { lba: 0, lsn: engine.lsnLast + 5 });
    expect(shuffled, await read(shuffled), "in random order");

    // History off and compaction: the overwritten entries are freed; the newest of each block stays.
    await engine.setHistory(0);
    await engine.compact();
    const newest = new Map<number, number>();
    for (const [lsn, { lba }] of model) newest.set(lba, Math.max(newest.get(lba) ?? 0, lsn));
    const after = await read(all);
    let freed = 0;
    all.forEach((entry, index) => {
      if (newest.get(entry.lba) === entry.lsn) assert.deepEqual(after[index], model.get(entry.lsn)!.data ?? Buffer.alloc(BLOCK_BYTES));
      else if (after[index] === undefined) freed++;
      else assert.deepEqual(after[index], model.get(entry.lsn)!.data ?? Buffer.alloc(BLOCK_BYTES), "a kept old entry is still its own");
    });
    assert.ok(freed > 0, "compaction freed overwritten entries, and they read as gone");
  } finally {
    await engine.close();
  }
});
