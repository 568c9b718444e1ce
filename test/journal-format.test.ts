/**
 * Goal: the journal record codec (src/engine/log/journal-format.ts) gives back what it was given,
 * and no damaged record is ever taken for a good one — recovery's decision table rests on
 * checkRecord telling a whole record from anything else (docs/recovery.md).
 *
 * Method: every record type is encoded, checked with checkRecord and its header and payload read
 * back — the ENTRIES payload by the layout docs/on-disk-format.md gives, the others with the
 * codec's readers — from a fixed set of records at the edges (empty payloads, zero and trim
 * slots, multi-byte names, the SYNCED flag) and from fast-check's random ones. Then every
 * single-byte corruption of each record (each byte set to each of its 255 other values, one at a
 * time), alone and followed by a valid record, and every strict prefix, must be refused:
 * "invalid" or "short", never a record.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { JOURNAL_ENTRY_BYTES, JOURNAL_HEADER_BYTES, SLOT_TRIM, SLOT_ZERO } from "../src/engine/constants.js";
import {
  checkRecord,
  encodeEntriesRecord,
  encodeFoldDoneRecord,
  encodeHeaderRecord,
  encodeMarkRecord,
  encodeSnapshotRecord,
  entryCountOf,
  FLAG_SYNCED,
  journalFileName,
  parseJournalFileName,
  readFoldDonePayload,
  readSnapshotPayload,
  RecordType,
  withSyncedFlag,
} from "../src/engine/log/journal-format.js";

interface Entry {
  lba: number;
  slot: number;
  crc: number;
}

/** What a record says, as the test describes it before encoding and reads it back after. */
type Decoded =
  | { type: typeof RecordType.HEADER; lsn: number; timeMs: number; flags: number }
  | { type: typeof RecordType.ENTRIES; lsn: number; timeMs: number; flags: number; entries: Entry[] }
  | {
      type: typeof RecordType.SNAPSHOT | typeof RecordType.SNAPSHOT_DELETE;
      lsn: number;
      timeMs: number;
      flags: number;
      lun: number;
      name: string;
    }
  | {
      type: typeof RecordType.SYNC_MARK | typeof RecordType.HORIZON | typeof RecordType.FOLD_BEGIN;
      lsn: number;
      timeMs: number;
      flags: number;
    }
  | { type: typeof RecordType.FOLD_DONE; lsn: number; timeMs: number; flags: number; lbas: number[] };

function encode(record: Decoded): Buffer {
  switch (record.type) {
    case RecordType.HEADER:
      return encodeHeaderRecord(record.lsn, record.timeMs);
    case RecordType.ENTRIES: {
      const count = record.entries.length;
      const columns = { lbas: new Float64Array(count), slots: new Uint32Array(count), crcs: new Uint32Array(count), count };
      record.entries.forEach((entry, index) => {
        columns.lbas[index] = entry.lba;
        columns.slots[index] = entry.slot;
        columns.crcs[index] = entry.crc;
      });
      return encodeEntriesRecord(record.lsn, record.timeMs, record.flags, columns);
    }
    case RecordType.SNAPSHOT:
    case RecordType.SNAPSHOT_DELETE:
      return encodeSnapshotRecord(record.type, record.lsn, record.timeMs, record.lun, record.name);
    case RecordType.SYNC_MARK:
    case RecordType.HORIZON:
    case RecordType.FOLD_BEGIN:
      return encodeMarkRecord(record.type, record.lsn, record.timeMs);
    case RecordType.FOLD_DONE:
      return encodeFoldDoneRecord(record.lsn, record.timeMs, record.lbas);
  }
}

/** Reads the record at `offset` back; fails unless checkRecord accepts it. */
function decode(bytes: Buffer, offset: number): Decoded {
  const check = checkRecord(bytes, offset);
  assert.equal(check.kind, "record", `record at ${offset}: ${JSON.stringify(check)}`);
  if (check.kind !== "record") throw new Error("unreachable");
  const { type, lsn, timeMs, flags } = check.header;
  switch (type) {
    case RecordType.HEADER:
    case RecordType.SYNC_MARK:
    case RecordType.HORIZON:
    case RecordType.FOLD_BEGIN:
      return { type, lsn, timeMs, flags } as Decoded;
    case RecordType.ENTRIES: {
      // The layout of docs/on-disk-format.md: count u32, pad u32, count × (lba f64, slot u32, crc u32).
      const count = entryCountOf(bytes, offset);
      const entries: Entry[] = [];
      for (let index = 0; index < count; index++) {
        const at = offset + JOURNAL_HEADER_BYTES + 8 + index * JOURNAL_ENTRY_BYTES;
        entries.push({ lba: bytes.readDoubleLE(at), slot: bytes.readUInt32LE(at + 8), crc: bytes.readUInt32LE(at + 12) });
      }
      return { type, lsn, timeMs, flags, entries };
    }
    case RecordType.SNAPSHOT:
    case RecordType.SNAPSHOT_DELETE:
      return { type, lsn, timeMs, flags, ...readSnapshotPayload(bytes, offset) };
    case RecordType.FOLD_DONE:
      return { type, lsn, timeMs, flags, lbas: readFoldDonePayload(bytes, offset) };
    default:
      throw new Error(`unknown record type ${type}`);
  }
}

const timeMs = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

/** One record per type and the edges of each payload. */
const examples: Decoded[] = [
  { type: RecordType.HEADER, lsn: 1, timeMs, flags: 0 },
  { type: RecordType.HEADER, lsn: 0xffff_ffff, timeMs: 0, flags: 0 },
  { type: RecordType.ENTRIES, lsn: 1, timeMs, flags: 0, entries: [{ lba: 0, slot: 0, crc: 0 }] },
  { type: RecordType.ENTRIES, lsn: 7, timeMs, flags: 0, entries: [] },
  {
    type: RecordType.ENTRIES,
    lsn: 2 ** 40,
    timeMs,
    flags: FLAG_SYNCED,
    entries: [
      { lba: 2 ** 48 - 1, slot: 12345, crc: 0xdead_beef },
      { lba: 3, slot: SLOT_ZERO, crc: 0 },
      { lba: 4, slot: SLOT_TRIM, crc: 0 },
      { lba: 3, slot: 0xffff_ffef, crc: 0xffff_ffff },
    ],
  },
  { type: RecordType.SNAPSHOT, lsn: 5, timeMs, flags: 0, lun: 1, name: "s" },
  { type: RecordType.SNAPSHOT, lsn: 0, timeMs, flags: 0, lun: 0xffff_ffff, name: "" },
  { type: RecordType.SNAPSHOT, lsn: 9, timeMs, flags: 0, lun: 2, name: "nightly-2026.01.02_ü€😀" },
  { type: RecordType.SNAPSHOT_DELETE, lsn: 9, timeMs, flags: 0, lun: 2, name: "eight-ch" },
  { type: RecordType.SYNC_MARK, lsn: 100, timeMs, flags: 0 },
  { type: RecordType.HORIZON, lsn: 42, timeMs, flags: 0 },
  { type: RecordType.FOLD_BEGIN, lsn: 43, timeMs, flags: 0 },
  { type: RecordType.FOLD_DONE, lsn: 43, timeMs, flags: 0, lbas: [] },
  { type: RecordType.FOLD_DONE, lsn: 43, timeMs, flags: 0, lbas: [0, 17, 2 ** 48 - 1] },
];

/** Records made SYNCED after encoding (as a sync batch's last record is). */
function withSynced(record: Decoded): Decoded {
  return { ...record, flags: record.flags | FLAG_SYNCED };
}

test("every record type round-trips: encode, checkRecord, read header and payload", () => {
  const types = new Set<number>();
  for (const example of examples) {
    const bytes = encode(example);
    assert.equal(bytes.length % 8, 0, "records are 8-byte aligned");
    assert.deepEqual(decode(bytes, 0), example);
    const check = checkRecord(bytes, 0);
    assert.ok(check.kind === "record" && check.header.lengthBytes === bytes.length, "lengthBytes is the whole record");
    types.add(example.type);
  }
  assert.deepEqual([...types].sort(), Object.values(RecordType).sort(), "the examples cover every record type");
});

test("withSyncedFlag sets SYNCED and keeps the record valid, its content unchanged", () => {
  for (const example of examples) {
    if (example.type === RecordType.HEADER) continue;
    assert.deepEqual(decode(withSyncedFlag(encode(example)), 0), withSynced(example));
  }
});

test("records back to back in one buffer are each found at their offset", () => {
  const parts = examples.map(encode);
  const journal = Buffer.concat(parts);
  let offset = 0;
  for (const [index, example] of examples.entries()) {
    assert.deepEqual(decode(journal, offset), example);
    offset += parts[index].length;
  }
  assert.equal(offset, journal.length);
});

/** fc.record with a plain prototype, so that assert.deepEqual compares it with what decode() builds. */
function plainRecord<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

const entryArbitrary = plainRecord({
  lba: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
  slot: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffef }), fc.constantFrom(SLOT_ZERO, SLOT_TRIM)),
  crc: fc.integer({ min: 0, max: 0xffff_ffff }),
});
const lsnArbitrary = fc.integer({ min: 0, max: 2 ** 48 });
const timeArbitrary = fc.integer({ min: 0, max: 2 ** 45 });
const recordArbitrary: fc.Arbitrary<Decoded> = fc.oneof(
  plainRecord({ type: fc.constant(RecordType.HEADER), lsn: lsnArbitrary, timeMs: timeArbitrary, flags: fc.constant(0) }),
  plainRecord({
    type: fc.constant(RecordType.ENTRIES),
    lsn: lsnArbitrary,
    timeMs: timeArbitrary,
    flags: fc.constantFrom(0, FLAG_SYNCED),
    entries: fc.array(entryArbitrary, { maxLength: 40 }),
  }),
  plainRecord({
    type: fc.constantFrom(RecordType.SNAPSHOT, RecordType.SNAPSHOT_DELETE),
    lsn: lsnArbitrary,
    timeMs: timeArbitrary,
    flags: fc.constant(0),
    lun: fc.integer({ min: 0, max: 0xffff_ffff }),
    name: fc.string({ unit: "grapheme", maxLength: 40 }),
  }),
  plainRecord({
    type: fc.constantFrom(RecordType.SYNC_MARK, RecordType.HORIZON, RecordType.FOLD_BEGIN),
    lsn: lsnArbitrary,
    timeMs: timeArbitrary,
    flags: fc.constant(0),
  }),
  plainRecord({
    type: fc.constant(RecordType.FOLD_DONE),
    lsn: lsnArbitrary,
    timeMs: timeArbitrary,
    flags: fc.constant(0),
    lbas: fc.array(fc.integer({ min: 0, max: 2 ** 48 - 1 }), { maxLength: 40 }),
  }),
);

test("random records of every type round-trip, alone and back to back (fast-check)", () => {
  fc.assert(
    fc.property(fc.array(recordArbitrary, { minLength: 1, maxLength: 8 }), (records) => {
      const parts = records.map(encode);
      const journal = Buffer.concat(parts);
      let offset = 0;
      for (const [index, record] of records.entries()) {
        assert.deepEqual(decode(journal, offset), record);
        offset += parts[index].length;
      }
    }),
    { numRuns: 300 },
  );
});

/**
 * Every single-byte corruption of `record` (each byte set to each other value), placed at
 * `offset` of a copy of `journal`: checkRecord must refuse it. Returns how many were tried.
 */
function assertEveryByteCorruptionRefused(journal: Buffer, offset: number, lengthBytes: number, what: string): number {
  let tried = 0;
  for (let at = offset; at < offset + lengthBytes; at++) {
    const original = journal[at];
    for (let value = 0; value < 256; value++) {
      if (value === original) continue;
      journal[at] = value;
      const check = checkRecord(journal, offset);
      if (check.kind === "record")
        assert.fail(`${what}: byte ${at - offset} set from ${original} to ${value} was accepted as ${JSON.stringify(check.header)}`);
      tried++;
    }
    journal[at] = original;
  }
  assert.equal(checkRecord(journal, offset).kind, "record", `${what}: the record is whole again after the flips`);
  return tried;
}

test("every single-byte corruption of every example record is refused, alone and followed by a valid record", () => {
  const next = encode({ type: RecordType.SYNC_MARK, lsn: 1, timeMs, flags: 0 });
  for (const example of examples) {
    for (const record of [encode(example), withSyncedFlag(encode(example))]) {
      const what = `${JSON.stringify(example)} (flags ${record[13]})`;
      const alone = Buffer.from(record);
      assert.equal(assertEveryByteCorruptionRefused(alone, 0, record.length, `${what} alone`), record.length * 255);
      // A valid record after it: a length made larger then covers real bytes, not the buffer's end.
      const inJournal = Buffer.concat([encode({ type: RecordType.HEADER, lsn: 1, timeMs, flags: 0 }), record, next, next]);
      assertEveryByteCorruptionRefused(inJournal, JOURNAL_HEADER_BYTES, record.length, `${what} in a journal`);
    }
  }
});

test("every single-byte corruption of random records is refused (fast-check)", () => {
  fc.assert(
    fc.property(recordArbitrary, fc.array(recordArbitrary, { maxLength: 3 }), (record, after) => {
      const bytes = encode(record);
      assertEveryByteCorruptionRefused(Buffer.concat([bytes, ...after.map(encode)]), 0, bytes.length, JSON.stringify(record));
    }),
    { numRuns: Number(process.env.SNAPLOG_FUZZ_RUNS ?? 40) },
  );
});

test("every strict prefix of a record is short (read more), never a record", () => {
  for (const example of examples) {
    const record = encode(example);
    for (let lengthBytes = 0; lengthBytes < record.length; lengthBytes++) {
      const check = checkRecord(record.subarray(0, lengthBytes), 0);
      assert.equal(check.kind, "short", `${JSON.stringify(example)} cut to ${lengthBytes} bytes: ${JSON.stringify(check)}`);
      if (check.kind === "short")
        assert.equal(check.lengthBytes, lengthBytes < JOURNAL_HEADER_BYTES ? JOURNAL_HEADER_BYTES : record.length, "bytes to read");
    }
  }
});

test("zeros (the journal's reserve, a zeroed tail) are invalid, not a record", () => {
  const check = checkRecord(Buffer.alloc(4096), 0);
  assert.deepEqual(check, { kind: "invalid", reason: "bad magic" });
});

test("journal file names round-trip and nothing else parses", () => {
  for (const generation of [0, 1, 7, 12345678, 99_999_999]) assert.equal(parseJournalFileName(journalFileName(generation)), generation);
  assert.equal(journalFileName(7), "journal-00000007.log");
  for (const name of ["journal-7.log", "journal-00000007.log.tmp", "checkpoint.ckpt", "segment-00000000.dat", "journal-0000000a.log"])
    assert.equal(parseJournalFileName(name), undefined, name);
});
