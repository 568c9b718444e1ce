/**
 * Goal: recovery decides each case of docs/recovery.md's table ("Opening a disk") as the doc
 * says, one test per row — A to F, the header rule, the rotation rules of step 2, the checks of
 * steps 1, 4 and 6, and step 7 (the dropped tail zeroed in place). The scenario tests reach these
 * cases only by chance (a SIGKILL, a power cut); here each is built on purpose.
 *
 * Method: each test writes a disk's files byte by byte on an in-memory medium — the checkpoint
 * (encodeCheckpoint), journals made of encoded records, data blocks in segment slots (a block
 * whose bytes do not match its record's CRC32C is damaged data) — then calls recoverDisk and
 * checks the decision: which records were applied (entries by LSN, snapshots, horizon, fold),
 * where the journal's valid part ends (the cut) and what is dropped, or the CORRUPT refusal and
 * its reason. The rows whose action is carried out by DiskEngine.open (step 7, stale journals,
 * EIO for case F) open the engine on the same files and look at the files and reads after.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SLOT_TRIM, SLOT_ZERO } from "../src/engine/constants.js";
import { DiskEngine } from "../src/engine/index.js";
import { encodeCheckpoint, writeCheckpoint, CHECKPOINT_FILE, type CheckpointState } from "../src/engine/log/checkpoint.js";
import {
  encodeEntriesRecord,
  encodeFoldDoneRecord,
  encodeHeaderRecord,
  encodeMarkRecord,
  encodeSnapshotRecord,
  FLAG_SYNCED,
  journalFileName,
  RecordType,
  withSyncedFlag,
} from "../src/engine/log/journal-format.js";
import { recoverDisk, type RecoveredDisk } from "../src/engine/log/recovery.js";
import { SegmentFiles } from "../src/engine/space/segment-files.js";
import { crc32c } from "../src/util/crc32c.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { MemoryMedium } from "./support/memory-medium.js";

const DISK = "d0";
const BLOCK_SIZE_BYTES = 512;
const BLOCK_COUNT = 64;
const SEGMENT_FILE = SegmentFiles.fileName(0);
const timeMs = Date.UTC(2026, 0, 2, 3, 4, 5);
const geometry = { name: DISK, sizeBytes: BLOCK_COUNT * BLOCK_SIZE_BYTES, blockSizeBytes: BLOCK_SIZE_BYTES, historySeconds: 3600 };
const tuning = { backgroundSyncTimer: false };

/** The bytes a test writes to `lba` at `lsn`: different for every (lba, lsn). */
function blockData(lba: number, lsn: number): Buffer {
  const data = Buffer.alloc(BLOCK_SIZE_BYTES, (lba * 31 + lsn * 7) & 0xff);
  data.writeUInt32LE(lba, 0);
  data.writeUInt32LE(lsn, 4);
  return data;
}

type Write = number | { lba: number; kind: "zero" | "trim" };

/**
 * A disk's files being built: entries get consecutive LSNs from 1 (or from the checkpoint's
 * last LSN + 1) and fresh slots; journals are lists of records, written out by install().
 */
class DiskFiles {
  readonly medium = new MemoryMedium();
  private lsnNext = 1;
  private slotNext = 0;
  private segment = Buffer.alloc(0);
  private readonly journals = new Map<number, Buffer[]>();
  checkpoint: CheckpointState = checkpointNaming(1);

  /** Starts journal `generation` with its HEADER. */
  journal(generation: number): this {
    this.journals.set(generation, [encodeHeaderRecord(generation, timeMs)]);
    return this;
  }

  /** Appends raw bytes (any record, or garbage) to journal `generation`; returns their offset. */
  append(generation: number, bytes: Buffer): number {
    const parts = this.journals.get(generation)!;
    const offset = parts.reduce((sum, part) => sum + part.length, 0);
    parts.push(bytes);
    return offset;
  }

  /**
   * An ENTRIES record writing `writes` (a number: a data block at that LBA, put in a fresh slot;
   * or a zero/trim entry), SYNCED when asked. `damaged` LBAs get bytes in their slot that do not
   * match the record's checksum. Returns the record and its LSNs.
   */
  entries(writes: Write[], options: { synced?: boolean; damaged?: number[] } = {}): { record: Buffer; lsnFirst: number; lsnLast: number } {
    const count = writes.length;
    const columns = { lbas: new Float64Array(count), slots: new Uint32Array(count), crcs: new Uint32Array(count), count };
    const lsnFirst = this.lsnNext;
    writes.forEach((write, index) => {
      const lsn = this.lsnNext++;
      if (typeof write !== "number") {
        columns.lbas[index] = write.lba;
        columns.slots[index] = write.kind === "zero" ? SLOT_ZERO : SLOT_TRIM;
        return;
      }
      const slot = this.slotNext++;
      const data = blockData(write, lsn);
      columns.lbas[index] = write;
      columns.slots[index] = slot;
      columns.crcs[index] = crc32c(data);
      const stored = options.damaged?.includes(write) ? Buffer.from(data).fill(0xee, 64, 80) : data;
      this.putSlot(slot, stored);
    });
    const record = encodeEntriesRecord(lsnFirst, timeMs + lsnFirst, options.synced ? FLAG_SYNCED : 0, columns);
    return { record, lsnFirst, lsnLast: this.lsnNext - 1 };
  }

  /** Appends an ENTRIES record (see entries()) to journal `generation`; returns its offset and LSNs. */
  write(generation: number, writes: Write[], options: { synced?: boolean; damaged?: number[] } = {}) {
    const { record, lsnFirst, lsnLast } = this.entries(writes, options);
    return { offset: this.append(generation, record), lsnFirst, lsnLast, lengthBytes: record.length };
  }

  /** Skips LSNs (those the checkpoint holds, or a gap). */
  skipLsns(count: number): void {
    this.lsnNext += count;
  }

  /** A fresh slot (for entries a test puts in the checkpoint). */
  takeSlot(): number {
    return this.slotNext++;
  }

  putSlot(slot: number, data: Buffer): void {
    const end = (slot + 1) * BLOCK_SIZE_BYTES;
    if (this.segment.length < end) this.segment = Buffer.concat([this.segment, Buffer.alloc(end - this.segment.length)]);
    data.copy(this.segment, slot * BLOCK_SIZE_BYTES);
  }

  journalBytes(generation: number): Buffer {
    return Buffer.concat(this.journals.get(generation)!);
  }

  /** Writes every file to the medium. */
  async install(): Promise<MemoryMedium> {
    await writeCheckpoint(this.medium, encodeCheckpoint(this.checkpoint));
    for (const generation of this.journals.keys()) this.medium.setBytes(journalFileName(generation), this.journalBytes(generation));
    if (this.segment.length > 0) this.medium.setBytes(SEGMENT_FILE, this.segment);
    return this.medium;
  }
}

/** An empty checkpoint naming `generation`, with `entries` (lba, lsn, slot, crc) and its last LSN. */
function checkpointNaming(
  generation: number,
  options: { lsnLast?: number; entries?: [number, number, number, number][]; snapshots?: CheckpointState["snapshots"] } = {},
): CheckpointState {
  const entries = options.entries ?? [];
  return {
    generation,
    lsnLast: options.lsnLast ?? 0,
    entryCount: entries.length,
    forEachEntry: (visit) => {
      for (const [lba, lsn, slot, crc] of entries) visit(lba, lsn, slot, crc);
    },
    snapshots: options.snapshots ?? [],
    timePoints: { count: 0, lsnAt: () => 0, timeMsAt: () => 0 },
    lsnHorizon: 0,
    foldLsn: 0,
    baselineBad: [],
  };
}

async function recover(medium: MemoryMedium): Promise<RecoveredDisk> {
  const segments = new SegmentFiles(medium, BLOCK_SIZE_BYTES);
  await segments.discover();
  return recoverDisk({ diskName: DISK, medium, segments, hasBaseline: false, reclaimOverwritten: false });
}

/** The LSNs of the live entries recovered, in order. */
function lsnsOf(recovered: RecoveredDisk): number[] {
  const lsns: number[] = [];
  recovered.state.forEachEntryInLsnOrder((_lba, lsn) => lsns.push(lsn));
  return lsns;
}

function range(first: number, last: number): number[] {
  const values: number[] = [];
  for (let value = first; value <= last; value++) values.push(value);
  return values;
}

async function assertCorrupt(medium: MemoryMedium, reason: RegExp): Promise<void> {
  await assert.rejects(recover(medium), (error: unknown) => {
    assert.ok(error instanceof SnaplogError, String(error));
    assert.equal(error.code, ErrorCodes.CORRUPT, error.message);
    assert.match(error.message, reason);
    return true;
  });
}

/** A record-sized run of bytes that is no valid record (a torn append). */
function garbage(lengthBytes: number): Buffer {
  return Buffer.alloc(lengthBytes, 0xa5);
}

// ---- the table of step 3 -----------------------------------------------------------------------

test("A: every valid record is applied — entries, snapshot, delete, horizon, fold begun and done, sync mark", async () => {
  const disk = new DiskFiles().journal(1);
  const first = disk.write(1, [0, 1, 2], { synced: true });
  disk.append(1, withSyncedFlag(encodeSnapshotRecord(RecordType.SNAPSHOT, first.lsnLast, timeMs, 1, "s1")));
  disk.append(1, withSyncedFlag(encodeSnapshotRecord(RecordType.SNAPSHOT, first.lsnLast, timeMs, 2, "gone")));
  const second = disk.write(1, [1, { lba: 2, kind: "zero" }, { lba: 3, kind: "trim" }]);
  disk.append(1, encodeMarkRecord(RecordType.SYNC_MARK, second.lsnLast, timeMs));
  disk.append(1, withSyncedFlag(encodeSnapshotRecord(RecordType.SNAPSHOT_DELETE, first.lsnLast, timeMs, 2, "gone")));
  disk.append(1, withSyncedFlag(encodeMarkRecord(RecordType.HORIZON, 2, timeMs)));
  disk.append(1, withSyncedFlag(encodeMarkRecord(RecordType.FOLD_BEGIN, 1, timeMs)));
  disk.append(1, withSyncedFlag(encodeFoldDoneRecord(1, timeMs, [])));
  disk.append(1, withSyncedFlag(encodeMarkRecord(RecordType.FOLD_BEGIN, second.lsnFirst, timeMs)));
  const recovered = await recover(await disk.install());

  assert.equal(recovered.state.lsnLast, second.lsnLast);
  // The fold at LSN 1 put block 0's version 1 in the baseline and dropped it from the log.
  assert.deepEqual(lsnsOf(recovered), range(2, second.lsnLast));
  assert.deepEqual(
    recovered.state.snapshots.map((cut) => [cut.name, cut.lsn]),
    [["s1", first.lsnLast]],
  );
  assert.equal(recovered.state.lsnHorizon, 2);
  assert.equal(recovered.foldLsn, second.lsnFirst, "the fold begun last is unfinished: resumed before serving");
  assert.equal(recovered.journalEndBytes, disk.journalBytes(1).length, "nothing dropped");
  assert.equal(recovered.droppedTailBytes, 0);
  assert.deepEqual(recovered.staleGenerations, []);
});

test("B: a torn record at the end of the last journal — the valid part ends there", async () => {
  const disk = new DiskFiles().journal(1);
  const kept = disk.write(1, [0, 1], { synced: true });
  const torn = disk.entries([2, 3]);
  const tornOffset = disk.append(1, torn.record.subarray(0, torn.record.length - 8));
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), range(1, kept.lsnLast));
  assert.equal(recovered.state.lsnLast, kept.lsnLast);
  assert.equal(recovered.journalEndBytes, tornOffset);
  assert.equal(recovered.droppedTailBytes, torn.record.length - 8);
});

test("B: valid records after a bad one without proof of a sync are dropped with it (a lone SYNCED record proves nothing)", async () => {
  const disk = new DiskFiles().journal(1);
  const kept = disk.write(1, [0], { synced: true });
  const badOffset = disk.append(1, garbage(48));
  disk.write(1, [1]);
  disk.write(1, [2], { synced: true });
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), [kept.lsnFirst]);
  assert.equal(recovered.journalEndBytes, badOffset);
  assert.equal(recovered.droppedTailBytes, disk.journalBytes(1).length - badOffset);
});

test("B: the zeros past the last record (the journal's reserve) end its valid part", async () => {
  const disk = new DiskFiles().journal(1);
  const kept = disk.write(1, [0, 1], { synced: true });
  const zerosOffset = disk.append(1, Buffer.alloc(4096));
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), range(1, kept.lsnLast));
  assert.equal(recovered.journalEndBytes, zerosOffset);
});

test("C: a bad record followed by a valid SYNCED record and another valid record is corruption", async () => {
  const disk = new DiskFiles().journal(1);
  disk.write(1, [0], { synced: true });
  const bad = disk.entries([1]).record;
  bad[40] ^= 0x01;
  disk.append(1, bad);
  disk.write(1, [2], { synced: true });
  disk.write(1, [3]);
  await assertCorrupt(await disk.install(), /journal-00000001\.log has a bad record at byte \d+ .*prove it was synced/);
});

test("C: the proof is found at any 8-byte boundary after the bad bytes, not only where a record would end", async () => {
  const disk = new DiskFiles().journal(1);
  disk.write(1, [0], { synced: true });
  // 40 bytes whose length field claims 64: the next record starts inside what the bad one claims.
  const bad = garbage(40);
  bad.writeUInt32LE(0x524a_4c53, 0);
  bad.writeUInt32LE(64, 8);
  disk.append(1, bad);
  disk.write(1, [2], { synced: true });
  disk.append(1, encodeMarkRecord(RecordType.SYNC_MARK, 2, timeMs));
  await assertCorrupt(await disk.install(), /prove it was synced/);
});

test("D: a bad record in a journal that is not the last is corruption", async () => {
  const disk = new DiskFiles().journal(1).journal(2);
  disk.write(1, [0], { synced: true });
  disk.append(1, garbage(48));
  disk.write(2, [1], { synced: true });
  await assertCorrupt(await disk.install(), /journal journal-00000001\.log has a bad record at byte \d+ \(bad magic\)/);
});

test("D: a journal that is not the last, cut short, is corruption", async () => {
  const disk = new DiskFiles().journal(1).journal(2);
  const record = disk.entries([0], { synced: true }).record;
  disk.append(1, record.subarray(0, record.length - 8));
  disk.write(2, [1], { synced: true });
  await assertCorrupt(await disk.install(), /journal journal-00000001\.log has a bad record at byte 32 \(truncated record\)/);
});

test("E: the first unproven ENTRIES record with damaged data is the cut — it and every record after it are dropped", async () => {
  const disk = new DiskFiles().journal(1);
  const synced = disk.write(1, [0, 1], { synced: true });
  const whole = disk.write(1, [2, 3]);
  const damaged = disk.write(1, [4, 5, 6], { damaged: [5] });
  disk.write(1, [7]);
  disk.append(1, encodeSnapshotRecord(RecordType.SNAPSHOT, whole.lsnLast, timeMs, 1, "after-the-cut"));
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), range(1, whole.lsnLast), "the records before the cut are applied, whole data or not synced");
  assert.ok(whole.lsnFirst > synced.lsnLast);
  assert.equal(recovered.state.lsnLast, whole.lsnLast);
  assert.deepEqual(recovered.state.snapshots, [], "a record of another kind after the cut is dropped too");
  assert.equal(recovered.journalEndBytes, damaged.offset);
  assert.equal(recovered.droppedTailBytes, disk.journalBytes(1).length - damaged.offset);
});

test("E: zero and trim entries have no data to check; a SYNC_MARK covering a record leaves its data unchecked", async () => {
  const disk = new DiskFiles().journal(1);
  disk.write(1, [0], { synced: true });
  const marked = disk.write(1, [1, 2], { damaged: [2] });
  disk.append(1, encodeMarkRecord(RecordType.SYNC_MARK, marked.lsnLast, timeMs));
  const zeros = disk.write(1, [
    { lba: 3, kind: "zero" },
    { lba: 4, kind: "trim" },
  ]);
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), range(1, zeros.lsnLast));
  assert.equal(recovered.journalEndBytes, disk.journalBytes(1).length);
});

test("E: a SYNC_MARK below a record's last LSN does not cover it", async () => {
  const disk = new DiskFiles().journal(1);
  const synced = disk.write(1, [0], { synced: true });
  const damaged = disk.write(1, [1, 2], { damaged: [2] });
  disk.append(1, encodeMarkRecord(RecordType.SYNC_MARK, damaged.lsnLast - 1, timeMs));
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), [synced.lsnFirst]);
  assert.equal(recovered.journalEndBytes, damaged.offset);
});

test("F: damaged data at or before the last SYNCED record, or in a journal before the last, is kept and answers EIO when read", async () => {
  const disk = new DiskFiles().journal(1).journal(2);
  const earlier = disk.write(1, [0], { damaged: [0] });
  disk.write(2, [1]);
  const beforeSynced = disk.write(2, [2], { damaged: [2] });
  const synced = disk.write(2, [3], { synced: true });
  const medium = await disk.install();
  const recovered = await recover(medium);
  assert.deepEqual(lsnsOf(recovered), range(earlier.lsnFirst, synced.lsnLast), "nothing cut");

  const checksumErrors: number[] = [];
  const engine = await DiskEngine.open(medium, geometry, { onChecksumError: ({ lba }) => checksumErrors.push(lba) }, tuning);
  try {
    for (const lba of [0, 2])
      await assert.rejects(engine.readBlocks(lba, 1, Infinity), (error: unknown) => {
        assert.ok(error instanceof SnaplogError && error.code === ErrorCodes.CORRUPT, String(error));
        assert.match(
          error.message,
          new RegExp(`block ${lba} \\(LSN ${lba === 0 ? earlier.lsnFirst : beforeSynced.lsnFirst}\\) failed its checksum`),
        );
        return true;
      });
    assert.deepEqual(await engine.readBlocks(1, 1, Infinity), blockData(1, earlier.lsnFirst + 1));
    assert.deepEqual(checksumErrors, [0, 2], "each EIO is counted");
  } finally {
    await engine.abandon();
  }
});

test("header rule: a journal whose first valid record is not its HEADER is corruption", async () => {
  const notHeader = new DiskFiles();
  notHeader.journal(1);
  const { record } = notHeader.entries([0], { synced: true });
  notHeader.medium.setBytes(journalFileName(1), record);
  await writeCheckpoint(notHeader.medium, encodeCheckpoint(checkpointNaming(1)));
  await assertCorrupt(notHeader.medium, /journal journal-00000001\.log does not start with its header/);

  const otherGeneration = new DiskFiles().journal(1);
  otherGeneration.write(1, [0], { synced: true });
  const medium = await otherGeneration.install();
  const bytes = medium.bytes(journalFileName(1));
  medium.setBytes(journalFileName(1), Buffer.concat([encodeHeaderRecord(2, timeMs), bytes.subarray(32)]));
  await assertCorrupt(medium, /journal journal-00000001\.log does not start with its header/);
});

test("header rule: a damaged header of the last journal is corruption, not a torn tail (its header was synced before the checkpoint named it)", async () => {
  const disk = new DiskFiles().journal(1);
  disk.write(1, [0]);
  const medium = await disk.install();
  const bytes = medium.bytes(journalFileName(1));
  bytes[20] ^= 0x01;
  medium.setBytes(journalFileName(1), bytes);
  await assertCorrupt(medium, /journal journal-00000001\.log does not start with its header/);

  // Opening it anyway used to accept writes at byte 0, without a header: after a crash the disk
  // refused to open, its acknowledged writes with it.
  const empty = new DiskFiles().journal(1);
  const emptyMedium = await empty.install();
  emptyMedium.setBytes(journalFileName(1), Buffer.alloc(0));
  await assertCorrupt(emptyMedium, /journal journal-00000001\.log does not start with its header/);
});

// ---- step 2: which journals are replayed --------------------------------------------------------

test("rotation: journals older than the checkpoint's are not replayed, and are deleted at open", async () => {
  const disk = new DiskFiles().journal(1).journal(2);
  // Journal 1 holds what the checkpoint already has: replaying it would be an LSN gap.
  disk.write(1, [0, 1], { synced: true });
  disk.checkpoint = checkpointNaming(2, { lsnLast: 2 });
  const newer = disk.write(2, [2], { synced: true });
  const medium = await disk.install();
  const recovered = await recover(medium);
  assert.deepEqual(recovered.staleGenerations, [1]);
  assert.equal(recovered.generation, 2);
  assert.equal(recovered.state.lsnLast, newer.lsnLast);
  assert.deepEqual(lsnsOf(recovered), [newer.lsnFirst]);

  const engine = await DiskEngine.open(medium, geometry, {}, tuning);
  await engine.abandon();
  assert.deepEqual(
    (await medium.list()).filter((name) => name.startsWith("journal-")),
    [journalFileName(2)],
  );
});

test("rotation: the checkpoint's journal missing, or a generation missing after it, is corruption", async () => {
  const missingFirst = new DiskFiles().journal(3);
  missingFirst.checkpoint = checkpointNaming(2);
  await assertCorrupt(await missingFirst.install(), /journal journal-00000002\.log is missing/);

  const gap = new DiskFiles().journal(1).journal(3);
  await assertCorrupt(await gap.install(), /journal generation 2 is missing/);
});

test("rotation: two journals (the checkpoint not yet renamed) are replayed in order", async () => {
  const disk = new DiskFiles().journal(1).journal(2);
  const older = disk.write(1, [0, 1]);
  disk.append(1, encodeMarkRecord(RecordType.SYNC_MARK, older.lsnLast, timeMs));
  disk.append(1, encodeSnapshotRecord(RecordType.SNAPSHOT, older.lsnLast, timeMs, 1, "s1"));
  const newer = disk.write(2, [1], { synced: true });
  const recovered = await recover(await disk.install());
  assert.deepEqual(lsnsOf(recovered), range(1, newer.lsnLast));
  assert.deepEqual(
    recovered.state.snapshots.map((cut) => cut.name),
    ["s1"],
  );
  assert.equal(recovered.generation, 2);
  assert.equal(recovered.checkpointGeneration, 1);
  assert.equal(recovered.journalEndBytes, disk.journalBytes(2).length);
});

test("rotation: a newest journal without its header (a rotation cut short) holds nothing — deleted, and the one before is the last", async () => {
  for (const newest of [Buffer.alloc(0), Buffer.alloc(32), encodeHeaderRecord(2, timeMs).subarray(0, 24)]) {
    const disk = new DiskFiles().journal(1);
    const kept = disk.write(1, [0, 1], { synced: true });
    const medium = await disk.install();
    medium.setBytes(journalFileName(2), newest);
    const recovered = await recover(medium);
    assert.deepEqual(recovered.staleGenerations, [2]);
    assert.equal(recovered.generation, 1, "appends continue in journal 1");
    assert.equal(recovered.journalEndBytes, disk.journalBytes(1).length);
    assert.deepEqual(lsnsOf(recovered), range(1, kept.lsnLast));

    const engine = await DiskEngine.open(medium, geometry, {}, tuning);
    await engine.abandon();
    assert.equal(await medium.exists(journalFileName(2)), false, "the headerless journal is deleted");
  }
});

test("rotation: a bad record in the journal before a headerless newest one is corruption (D: it was synced whole before the next was created)", async () => {
  const disk = new DiskFiles().journal(1);
  disk.write(1, [0], { synced: true });
  disk.append(1, garbage(48));
  const medium = await disk.install();
  medium.setBytes(journalFileName(2), Buffer.alloc(0));
  await assertCorrupt(medium, /journal journal-00000001\.log has a bad record at byte \d+ \(bad magic\)/);
});

// ---- steps 1, 4 and 6: what replay refuses -------------------------------------------------------

test("step 1: no checkpoint, a damaged checkpoint, or checkpoint entries past its LSN is corruption", async () => {
  const missing = new DiskFiles().journal(1);
  const medium = await missing.install();
  await medium.remove(CHECKPOINT_FILE);
  await assertCorrupt(medium, /no checkpoint file/);

  const damaged = new DiskFiles().journal(1);
  const damagedMedium = await damaged.install();
  const bytes = damagedMedium.bytes(CHECKPOINT_FILE);
  bytes[20] ^= 0x01;
  damagedMedium.setBytes(CHECKPOINT_FILE, bytes);
  await assertCorrupt(damagedMedium, /checkpoint of disk d0 is corrupt: checksum mismatch/);

  const past = new DiskFiles().journal(1);
  past.checkpoint = checkpointNaming(1, { lsnLast: 1, entries: [[0, 2, 0, 0]] });
  await assertCorrupt(await past.install(), /checkpoint entries past its LSN/);
});

test("step 4: entries continue the checkpoint's LSNs with no gap", async () => {
  const continuing = new DiskFiles().journal(1);
  const data = blockData(0, 3);
  const slot = continuing.takeSlot();
  continuing.checkpoint = checkpointNaming(1, { lsnLast: 3, entries: [[0, 3, slot, crc32c(data)]] });
  continuing.putSlot(slot, data);
  continuing.skipLsns(3);
  const next = continuing.write(1, [1], { synced: true });
  const recovered = await recover(await continuing.install());
  assert.deepEqual(lsnsOf(recovered), [3, next.lsnFirst]);
  assert.equal(next.lsnFirst, 4);

  const gap = new DiskFiles().journal(1);
  gap.checkpoint = checkpointNaming(1, { lsnLast: 3 });
  gap.skipLsns(4);
  gap.write(1, [1], { synced: true });
  await assertCorrupt(await gap.install(), /journal LSN gap: expected 4, found 5/);

  const replayed = new DiskFiles().journal(1);
  replayed.checkpoint = checkpointNaming(1, { lsnLast: 3 });
  replayed.write(1, [1], { synced: true });
  await assertCorrupt(await replayed.install(), /journal LSN gap: expected 4, found 1/);
});

test("step 4: a snapshot past the log's end, deleting an unknown snapshot, and unmatched folds are corruption", async () => {
  const cases: [string, (disk: DiskFiles) => void, RegExp][] = [
    [
      "cut past the end",
      (disk) => disk.append(1, encodeSnapshotRecord(RecordType.SNAPSHOT, 2, timeMs, 1, "s")),
      /snapshot s cuts at LSN 2, past the log's end/,
    ],
    [
      "unknown delete",
      (disk) => disk.append(1, encodeSnapshotRecord(RecordType.SNAPSHOT_DELETE, 1, timeMs, 1, "nope")),
      /deletes snapshot nope, which does not exist/,
    ],
    [
      "two folds",
      (disk) => {
        disk.append(1, encodeMarkRecord(RecordType.FOLD_BEGIN, 1, timeMs));
        disk.append(1, encodeMarkRecord(RecordType.FOLD_BEGIN, 1, timeMs));
      },
      /fold at LSN 1 begins while the fold at 1 is unfinished/,
    ],
    ["fold done, never begun", (disk) => disk.append(1, encodeFoldDoneRecord(1, timeMs, [])), /fold at LSN 1 ends without having begun/],
    ["unknown type", (disk) => disk.append(1, encodeMarkRecord(99, 1, timeMs)), /unknown journal record type 99/],
  ];
  for (const [what, build, reason] of cases) {
    const disk = new DiskFiles().journal(1);
    disk.write(1, [0], { synced: true });
    build(disk);
    disk.write(1, [1], { synced: true });
    await assert.doesNotReject(async () => assertCorrupt(await disk.install(), reason), what);
  }
});

test("step 6: a slot held by two live entries is corruption", async () => {
  const disk = new DiskFiles().journal(1);
  const data = blockData(0, 1);
  disk.checkpoint = checkpointNaming(1, {
    lsnLast: 2,
    entries: [
      [0, 1, 0, crc32c(data)],
      [1, 2, 0, crc32c(data)],
    ],
  });
  disk.putSlot(0, data);
  await assertCorrupt(await disk.install(), /slot 0 is used by two entries/);
});

// ---- step 7: what DiskEngine.open does with the cut ----------------------------------------------

test("step 7: the dropped tail is zeroed in place (not truncated), and new records follow the valid ones", async () => {
  const disk = new DiskFiles().journal(1);
  const kept = disk.write(1, [0, 1], { synced: true });
  const cut = disk.write(1, [2], { damaged: [2] });
  disk.write(1, [3]);
  disk.append(1, garbage(64));
  const medium = await disk.install();
  const sizeBefore = medium.bytes(journalFileName(1)).length;

  let engine = await DiskEngine.open(medium, geometry, {}, tuning);
  const after = medium.bytes(journalFileName(1));
  assert.ok(after.length >= sizeBefore, `the journal is not truncated (${after.length} < ${sizeBefore})`);
  assert.deepEqual(after.subarray(0, cut.offset), disk.journalBytes(1).subarray(0, cut.offset), "the valid part is untouched");
  assert.ok(
    after.subarray(cut.offset).every((byte) => byte === 0),
    "everything past the cut is zeros",
  );
  assert.equal(engine.lsnLast, kept.lsnLast);
  assert.deepEqual(await engine.readBlocks(2, 1, Infinity), Buffer.alloc(BLOCK_SIZE_BYTES), "the dropped write never happened");

  // A write after open, then a crash (no final checkpoint): the next open finds it right after the valid records.
  const fresh = Buffer.alloc(BLOCK_SIZE_BYTES, 0x3c);
  await engine.writeBytes(5 * BLOCK_SIZE_BYTES, fresh, true);
  await engine.abandon();
  assert.equal(medium.bytes(journalFileName(1)).readUInt32LE(cut.offset), 0x524a_4c53, "the next record starts at the cut");
  engine = await DiskEngine.open(medium, geometry, {}, tuning);
  try {
    assert.equal(engine.lsnLast, kept.lsnLast + 1);
    assert.deepEqual(await engine.readBlocks(5, 1, Infinity), fresh);
    assert.deepEqual(await engine.readBlocks(0, 1, Infinity), blockData(0, kept.lsnFirst));
  } finally {
    await engine.close();
  }
});
