/**
 * Goal: the checkpoint codec (src/engine/log/checkpoint.ts) gives back the tables it was given,
 * and a damaged checkpoint is always refused: opening a disk trusts its checkpoint whole
 * (docs/recovery.md, step 1), so one wrong byte taken for a good one would be silent corruption.
 *
 * Method: checkpoints are encoded (encodeCheckpoint), written (writeCheckpoint) to an in-memory
 * medium and read back (readCheckpoint) through a sink — entries in LSN order, time points,
 * snapshot cuts, horizon, fold LSN, baselineBad and the header's counts must all come back
 * equal: examples at the edges (empty, one entry, entries across the encoder's 64 Ki chunks and
 * the reader's 512 Ki steps), a real DiskState through checkpointStateOf, and fast-check's
 * random tables. Then every single-byte corruption of a checkpoint file (each byte set to each
 * of its 255 other values), every truncation and an appended tail must make readCheckpoint throw
 * a CORRUPT SnaplogError naming the disk and the file, whatever the sink got before (it may
 * have refused an entry itself, as recovery's tables do).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CHECKPOINT_VERSION } from "../src/engine/constants.js";
import {
  CHECKPOINT_FILE,
  checkpointStateOf,
  encodeCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type CheckpointSink,
  type CheckpointState,
  type LoadedCheckpoint,
  type SnapshotCut,
} from "../src/engine/log/checkpoint.js";
import { DiskState } from "../src/engine/tables/disk-state.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { withCauseShown } from "./support/fast-check-report.js";
import { MemoryMedium } from "./support/memory-medium.js";

const DISK = "d0";

/** The tables a checkpoint holds, as plain data. */
interface Tables {
  generation: number;
  lsnLast: number;
  entries: { lba: number; lsn: number; slot: number; crc: number }[];
  snapshots: SnapshotCut[];
  timePoints: { lsn: number; timeMs: number }[];
  lsnHorizon: number;
  foldLsn: number;
  baselineBad: number[];
}

function stateOf(tables: Tables): CheckpointState {
  return {
    generation: tables.generation,
    lsnLast: tables.lsnLast,
    entryCount: tables.entries.length,
    forEachEntry: (visit) => {
      for (const entry of tables.entries) visit(entry.lba, entry.lsn, entry.slot, entry.crc);
    },
    snapshots: tables.snapshots,
    timePoints: {
      count: tables.timePoints.length,
      lsnAt: (index) => tables.timePoints[index].lsn,
      timeMsAt: (index) => tables.timePoints[index].timeMs,
    },
    lsnHorizon: tables.lsnHorizon,
    foldLsn: tables.foldLsn,
    baselineBad: tables.baselineBad,
  };
}

/** Collects what readCheckpoint hands over; `strict` refuses an entry out of LSN order, as DiskState.appendRecovered does. */
function collectingSink(strict: boolean): CheckpointSink & Pick<Tables, "entries" | "timePoints"> {
  const entries: Tables["entries"] = [];
  const timePoints: Tables["timePoints"] = [];
  return {
    entries,
    timePoints,
    entry(lba, lsn, slot, crc) {
      if (strict && entries.length > 0 && lsn <= entries[entries.length - 1].lsn) throw new Error("entries out of LSN order");
      entries.push({ lba, lsn, slot, crc });
    },
    timePoint(lsn, timeMs) {
      timePoints.push({ lsn, timeMs });
    },
  };
}

/** readCheckpoint must hand over exactly `tables`. */
async function assertReadsAs(medium: MemoryMedium, tables: Tables): Promise<void> {
  const sink = collectingSink(true);
  const loaded = await readCheckpoint(medium, DISK, sink);
  const expected: LoadedCheckpoint = {
    generation: tables.generation,
    lsnLast: tables.lsnLast,
    entryCount: tables.entries.length,
    snapshots: tables.snapshots,
    lsnHorizon: tables.lsnHorizon,
    foldLsn: tables.foldLsn,
    baselineBad: tables.baselineBad,
  };
  assert.deepEqual(loaded, expected);
  assert.equal(sink.entries.length, tables.entries.length);
  assert.deepEqual(sink.entries, tables.entries);
  assert.deepEqual(sink.timePoints, tables.timePoints);
}

async function roundTrip(tables: Tables): Promise<void> {
  const medium = new MemoryMedium();
  await writeCheckpoint(medium, encodeCheckpoint(stateOf(tables)));
  assert.deepEqual(await medium.list(), [CHECKPOINT_FILE], "only the checkpoint is left (no checkpoint.tmp)");
  await assertReadsAs(medium, tables);
}

const timeMs = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

/** A small checkpoint with something in every part (the corruption tests flip each of its bytes). */
const small: Tables = {
  generation: 7,
  lsnLast: 12,
  entries: [
    { lba: 0, lsn: 2, slot: 0, crc: 0x1234_5678 },
    { lba: 2 ** 48 - 1, lsn: 5, slot: 0xffff_ffff, crc: 0 },
    { lba: 3, lsn: 11, slot: 0xffff_fffe, crc: 0 },
    { lba: 3, lsn: 12, slot: 41, crc: 0xffff_ffff },
  ],
  snapshots: [
    { name: "before-upgrade", lun: 3, lsn: 5, timeMs },
    { name: "ü€", lun: 4, lsn: 12, timeMs: timeMs + 1 },
  ],
  timePoints: [
    { lsn: 1, timeMs },
    { lsn: 11, timeMs: timeMs + 1 },
  ],
  lsnHorizon: 4,
  foldLsn: 9,
  baselineBad: [6, 2 ** 40],
};

const empty: Tables = {
  generation: 1,
  lsnLast: 0,
  entries: [],
  snapshots: [],
  timePoints: [],
  lsnHorizon: 0,
  foldLsn: 0,
  baselineBad: [],
};

test("a checkpoint round-trips: empty, small, and every part filled", async () => {
  await roundTrip(empty);
  await roundTrip({ ...empty, lsnLast: 1, entries: [{ lba: 9, lsn: 1, slot: 0, crc: 7 }], timePoints: [{ lsn: 1, timeMs }] });
  await roundTrip(small);
});

test("a checkpoint larger than the encoder's chunk and the reader's step round-trips", async () => {
  // 64 Ki entries per encoded chunk, 512 Ki per read step: cross both, and end off a boundary.
  const entryCount = 512 * 1024 + 3;
  const entries: Tables["entries"] = [];
  for (let index = 0; index < entryCount; index++)
    entries.push({ lba: (index * 7919) % 100_003, lsn: 2 * index + 1, slot: index, crc: index ^ 0x5a5a });
  await roundTrip({ ...small, lsnLast: 2 * entryCount, entries });
});

test("writeCheckpoint replaces an older checkpoint and a leftover checkpoint.tmp", async () => {
  const medium = new MemoryMedium();
  await writeCheckpoint(medium, encodeCheckpoint(stateOf(small)));
  medium.setBytes("checkpoint.tmp", Buffer.from("half a checkpoint"));
  await writeCheckpoint(medium, encodeCheckpoint(stateOf(empty)));
  assert.deepEqual(await medium.list(), [CHECKPOINT_FILE]);
  assert.equal((await readCheckpoint(medium, DISK, collectingSink(true)))?.generation, empty.generation);
});

test("no checkpoint file: readCheckpoint answers undefined", async () => {
  assert.equal(await readCheckpoint(new MemoryMedium(), DISK, collectingSink(true)), undefined);
});

test("a disk's tables round-trip through checkpointStateOf", async () => {
  const state = new DiskState(true, false);
  for (let index = 0; index < 100; index++) state.append(index % 13, index, (index * 2654435761) >>> 0);
  state.times.add(1, timeMs);
  state.times.add(40, timeMs + 5);
  state.insertSnapshot({ name: "s1", lun: 2, lsn: 30, timeMs: timeMs + 1 });
  state.insertSnapshot({ name: "s0", lun: 1, lsn: 10, timeMs });
  state.lsnHorizon = 50;
  state.baselineBad.add(4);
  const medium = new MemoryMedium();
  await writeCheckpoint(medium, encodeCheckpoint(checkpointStateOf(state, 3, 60)));
  const sink = collectingSink(true);
  const loaded = await readCheckpoint(medium, DISK, sink);
  const entries: Tables["entries"] = [];
  state.forEachEntryInLsnOrder((lba, lsn, slot, crc) => entries.push({ lba, lsn, slot, crc }));
  assert.equal(entries.length, 100);
  assert.deepEqual(sink.entries, entries);
  assert.deepEqual(sink.timePoints, [
    { lsn: 1, timeMs },
    { lsn: 40, timeMs: timeMs + 5 },
  ]);
  assert.deepEqual(loaded, {
    generation: 3,
    lsnLast: 100,
    entryCount: 100,
    snapshots: [
      { name: "s0", lun: 1, lsn: 10, timeMs },
      { name: "s1", lun: 2, lsn: 30, timeMs: timeMs + 1 },
    ],
    lsnHorizon: 50,
    foldLsn: 60,
    baselineBad: [4],
  });
});

/** Random tables: entries in LSN order (gaps allowed), points and cuts anywhere. */
const tablesArbitrary: fc.Arbitrary<Tables> = fc
  .record(
    {
      generation: fc.integer({ min: 1, max: 2 ** 32 }),
      lsnSteps: fc.array(fc.integer({ min: 1, max: 1000 }), { maxLength: 60 }),
      cells: fc.array(
        fc.record(
          { lba: fc.integer({ min: 0, max: 2 ** 48 - 1 }), slot: fc.nat(0xffff_ffff), crc: fc.nat(0xffff_ffff) },
          { noNullPrototype: true },
        ),
        { minLength: 60, maxLength: 60 },
      ),
      snapshots: fc.array(
        fc.record(
          { name: fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 }), lun: fc.nat(), lsn: fc.nat(), timeMs: fc.nat() },
          { noNullPrototype: true },
        ),
        { maxLength: 5 },
      ),
      timePoints: fc.array(
        fc.record({ lsn: fc.integer({ min: 1, max: 2 ** 48 }), timeMs: fc.integer({ min: 0, max: 2 ** 45 }) }, { noNullPrototype: true }),
        { maxLength: 10 },
      ),
      lsnHorizon: fc.nat(),
      foldLsn: fc.nat(),
      baselineBad: fc.array(fc.integer({ min: 0, max: 2 ** 48 - 1 }), { maxLength: 5 }),
    },
    { noNullPrototype: true },
  )
  .map(({ lsnSteps, cells, ...rest }) => {
    let lsn = 0;
    const entries = lsnSteps.map((step, index) => ({
      lba: cells[index].lba,
      lsn: (lsn += step),
      slot: cells[index].slot,
      crc: cells[index].crc,
    }));
    return { ...rest, lsnLast: lsn + 1, entries };
  });

test("random tables round-trip (fast-check)", async () => {
  await withCauseShown(() => fc.assert(fc.asyncProperty(tablesArbitrary, roundTrip), { numRuns: 200 }));
});

/** readCheckpoint of `bytes` must throw a CORRUPT SnaplogError naming the disk and the file. */
async function assertRefused(bytes: Buffer, what: string): Promise<void> {
  const medium = new MemoryMedium();
  medium.setBytes(CHECKPOINT_FILE, bytes);
  let loaded: LoadedCheckpoint | undefined;
  try {
    loaded = await readCheckpoint(medium, DISK, collectingSink(true));
  } catch (error) {
    assert.ok(error instanceof SnaplogError, `${what}: ${String(error)} is a SnaplogError`);
    assert.equal(error.code, ErrorCodes.CORRUPT, `${what}: ${error.message}`);
    assert.equal(error.disk, DISK);
    assert.equal(error.path, CHECKPOINT_FILE);
    return;
  }
  assert.fail(`${what} was accepted: ${JSON.stringify(loaded)}`);
}

/**
 * The one corruption no check can see: the version (outside the checksum) rotted from 2 to 1 in
 * a checkpoint without a horizon or a fold, which version 1 reads exactly the same.
 */
function readsTheSameAsVersion1(tables: Tables, at: number, value: number): boolean {
  return at === 4 && value === 1 && tables.lsnHorizon === 0 && tables.foldLsn === 0;
}

/**
 * Sets each byte of the checkpoint of `tables` to each value `valuesFor` gives, one at a time:
 * every such file must be refused (or, for the one invisible corruption, read the same).
 */
async function assertByteCorruptionsRefused(tables: Tables, valuesFor: (original: number) => number[]): Promise<number> {
  const medium = new MemoryMedium();
  await writeCheckpoint(medium, encodeCheckpoint(stateOf(tables)));
  const file = medium.bytes(CHECKPOINT_FILE);
  let tried = 0;
  for (let at = 0; at < file.length; at++) {
    const original = file[at];
    for (const value of valuesFor(original)) {
      assert.notEqual(value, original);
      const damaged = Buffer.from(file);
      damaged[at] = value;
      if (readsTheSameAsVersion1(tables, at, value)) {
        medium.setBytes(CHECKPOINT_FILE, damaged);
        await assertReadsAs(medium, tables);
      } else {
        await assertRefused(damaged, `byte ${at} of ${file.length} set from ${original} to ${value}`);
      }
      tried++;
    }
  }
  return tried;
}

const everyOtherValue = (original: number): number[] => [...Array(256).keys()].filter((value) => value !== original);
const everyBitFlip = (original: number): number[] => [...Array(8).keys()].map((bit) => original ^ (1 << bit));

test("every single-byte corruption of a checkpoint is refused with CORRUPT", async () => {
  const fileBytes = encodeCheckpoint(stateOf(small)).reduce((sum, part) => sum + part.length, 0);
  assert.equal(await assertByteCorruptionsRefused(small, everyOtherValue), 255 * fileBytes);
  await assertByteCorruptionsRefused(empty, everyOtherValue);
  await assertByteCorruptionsRefused({ ...empty, lsnHorizon: 1 }, everyOtherValue);
});

test("every bit flip of random checkpoints is refused with CORRUPT (fast-check)", async () => {
  await withCauseShown(() =>
    fc.assert(
      fc.asyncProperty(tablesArbitrary, async (tables) => void (await assertByteCorruptionsRefused(tables, everyBitFlip))),
      { numRuns: 10 },
    ),
  );
});

test("a checkpoint cut short anywhere, or with bytes after its end, is refused with CORRUPT", async () => {
  const medium = new MemoryMedium();
  await writeCheckpoint(medium, encodeCheckpoint(stateOf(small)));
  const file = medium.bytes(CHECKPOINT_FILE);
  for (let lengthBytes = 0; lengthBytes < file.length; lengthBytes++)
    await assertRefused(file.subarray(0, lengthBytes), `cut to ${lengthBytes} of ${file.length} bytes`);
  for (const tail of [Buffer.alloc(1), Buffer.alloc(8), Buffer.alloc(16), Buffer.alloc(24)])
    await assertRefused(Buffer.concat([file, tail]), `${tail.length} zero bytes appended`);
});

test("the version written is the current one", async () => {
  const medium = new MemoryMedium();
  await writeCheckpoint(medium, encodeCheckpoint(stateOf(small)));
  assert.equal(medium.bytes(CHECKPOINT_FILE).readUInt32LE(4), CHECKPOINT_VERSION);
});
