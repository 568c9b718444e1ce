import { crc32c } from "../../util/crc32c.js";
import { JOURNAL_ENTRY_BYTES, JOURNAL_HEADER_BYTES, JOURNAL_MAGIC } from "../constants.js";

/**
 * The metadata journal: append-only records, each checksummed. Layout (little-endian),
 * see docs/on-disk-format.md:
 *
 *   0  u32 magic "SLJR"
 *   4  u32 crc32c of bytes [8, lengthBytes)
 *   8  u32 lengthBytes of the whole record
 *  12  u8  type, u8 flags, u16 reserved
 *  16  f64 lsn        (ENTRIES: LSN of the first entry; SNAPSHOT: the cut; HEADER: generation)
 *  24  f64 timeMs
 *  32  payload
 */
export const RecordType = {
  /** First record of every journal file: lsn field holds the generation. */
  HEADER: 1,
  /** count u32, pad u32, then count × (f64 lba, u32 slot, u32 crc); LSNs are lsn, lsn+1, ... */
  ENTRIES: 2,
  /** lun u32, nameBytes u32, name (utf-8), padded to 8. */
  SNAPSHOT: 3,
  /** A background sync finished: every entry with LSN <= lsn is durable (no payload). */
  SYNC_MARK: 4,
  /** The snapshot cut at lsn named in the payload (as SNAPSHOT's) is deleted: its partition merges into the next. */
  SNAPSHOT_DELETE: 5,
  /** The history window's horizon moved to lsn: views before it (but cuts and pins) are gone. No payload. */
  HORIZON: 6,
  /** A fold into the baseline at lsn began: the view at lsn is pinned until FOLD_DONE. No payload. */
  FOLD_BEGIN: 7,
  /**
   * The fold at lsn is in the baseline (synced): what it made redundant is freed.
   * count u32, pad u32, then count × f64: blocks whose data failed its checksum (not folded).
   */
  FOLD_DONE: 8,
} as const;

/** The record's data and every record before it were synced before it was written. */
export const FLAG_SYNCED = 1;

export interface RecordHeader {
  type: number;
  flags: number;
  lsn: number;
  timeMs: number;
  lengthBytes: number;
}

function pad8(bytes: number): number {
  return (bytes + 7) & ~7;
}

function finishRecord(record: Buffer, type: number, flags: number, lsn: number, timeMs: number): Buffer {
  record.writeUInt32LE(JOURNAL_MAGIC, 0);
  record.writeUInt32LE(record.length, 8);
  record.writeUInt8(type, 12);
  record.writeUInt8(flags, 13);
  record.writeUInt16LE(0, 14);
  record.writeDoubleLE(lsn, 16);
  record.writeDoubleLE(timeMs, 24);
  record.writeUInt32LE(crc32c(record.subarray(8)), 4);
  return record;
}

export function encodeHeaderRecord(generation: number, timeMs: number): Buffer {
  return finishRecord(Buffer.alloc(JOURNAL_HEADER_BYTES), RecordType.HEADER, 0, generation, timeMs);
}

/** An ENTRIES record's payload starts with its entry count (u32) and a pad (u32); the entries follow. */
const ENTRIES_COUNT_BYTES = 8;

/** Where entry `index` of the ENTRIES record at `recordOffset` starts: the one place that knows the payload layout. */
function entryOffset(recordOffset: number, index: number): number {
  return recordOffset + JOURNAL_HEADER_BYTES + ENTRIES_COUNT_BYTES + index * JOURNAL_ENTRY_BYTES;
}

/** Entries given as parallel columns, `count` of them from index 0. */
export function encodeEntriesRecord(
  lsnFirst: number,
  timeMs: number,
  flags: number,
  columns: { lbas: Float64Array; slots: Uint32Array; crcs: Uint32Array; count: number },
): Buffer {
  const record = Buffer.alloc(entryOffset(0, columns.count));
  record.writeUInt32LE(columns.count, JOURNAL_HEADER_BYTES);
  for (let index = 0; index < columns.count; index++) {
    const offset = entryOffset(0, index);
    record.writeDoubleLE(columns.lbas[index], offset);
    record.writeUInt32LE(columns.slots[index], offset + 8);
    record.writeUInt32LE(columns.crcs[index], offset + 12);
  }
  return finishRecord(record, RecordType.ENTRIES, flags, lsnFirst, timeMs);
}

/** A record with no payload: SYNC_MARK, HORIZON, FOLD_BEGIN, FOLD_DONE. */
export function encodeMarkRecord(type: number, lsn: number, timeMs: number): Buffer {
  return finishRecord(Buffer.alloc(JOURNAL_HEADER_BYTES), type, 0, lsn, timeMs);
}

/** SNAPSHOT (a cut) or SNAPSHOT_DELETE (its deletion): the cut's LSN, LUN and name. */
export function encodeSnapshotRecord(type: number, cutLsn: number, timeMs: number, lun: number, name: string): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const record = Buffer.alloc(pad8(JOURNAL_HEADER_BYTES + 8 + nameBytes.length));
  record.writeUInt32LE(lun, JOURNAL_HEADER_BYTES);
  record.writeUInt32LE(nameBytes.length, JOURNAL_HEADER_BYTES + 4);
  nameBytes.copy(record, JOURNAL_HEADER_BYTES + 8);
  return finishRecord(record, type, 0, cutLsn, timeMs);
}

export function encodeFoldDoneRecord(lsnFold: number, timeMs: number, corruptLbas: readonly number[]): Buffer {
  const record = Buffer.alloc(JOURNAL_HEADER_BYTES + 8 + corruptLbas.length * 8);
  record.writeUInt32LE(corruptLbas.length, JOURNAL_HEADER_BYTES);
  corruptLbas.forEach((lba, index) => record.writeDoubleLE(lba, JOURNAL_HEADER_BYTES + 8 + index * 8));
  return finishRecord(record, RecordType.FOLD_DONE, 0, lsnFold, timeMs);
}

export function readFoldDonePayload(bytes: Buffer, recordOffset: number): number[] {
  const count = bytes.readUInt32LE(recordOffset + JOURNAL_HEADER_BYTES);
  const lbas: number[] = [];
  for (let index = 0; index < count; index++) lbas.push(bytes.readDoubleLE(recordOffset + JOURNAL_HEADER_BYTES + 8 + index * 8));
  return lbas;
}

/** Sets the SYNCED flag on an encoded record (the last record of a synced batch). */
export function withSyncedFlag(record: Buffer): Buffer {
  record.writeUInt8(record.readUInt8(13) | FLAG_SYNCED, 13);
  record.writeUInt32LE(crc32c(record.subarray(8)), 4);
  return record;
}

export type RecordCheck =
  | { kind: "record"; header: RecordHeader }
  /** Not a whole, valid record: a torn tail, or corruption if valid records follow. */
  | { kind: "invalid"; reason: string }
  /** The buffer ends inside the record; read more. */
  | { kind: "short"; lengthBytes: number };

/**
 * Checks the record starting at `offset` of `bytes` (which may end early). `trustWithoutCrc`
 * exists only for the test-only sabotage that shows the simulator catches a skipped check.
 */
export function checkRecord(bytes: Buffer, offset: number, trustWithoutCrc = false): RecordCheck {
  if (bytes.length - offset < JOURNAL_HEADER_BYTES) return { kind: "short", lengthBytes: JOURNAL_HEADER_BYTES };
  if (bytes.readUInt32LE(offset) !== JOURNAL_MAGIC) return { kind: "invalid", reason: "bad magic" };
  const lengthBytes = recordLengthOf(bytes, offset);
  if (lengthBytes < JOURNAL_HEADER_BYTES || lengthBytes % 8 !== 0) return { kind: "invalid", reason: "bad length" };
  if (bytes.length - offset < lengthBytes) return { kind: "short", lengthBytes };
  const expected = bytes.readUInt32LE(offset + 4);
  if (!trustWithoutCrc && crc32c(bytes.subarray(offset + 8, offset + lengthBytes)) !== expected) {
    return { kind: "invalid", reason: "record checksum mismatch" };
  }
  return { kind: "record", header: readRecordHeader(bytes, offset) };
}

/** The header of the record at `offset`, read without checks: only for a record checkRecord accepted. */
export function readRecordHeader(bytes: Buffer, offset: number): RecordHeader {
  return {
    type: bytes.readUInt8(offset + 12),
    flags: bytes.readUInt8(offset + 13),
    lsn: bytes.readDoubleLE(offset + 16),
    timeMs: bytes.readDoubleLE(offset + 24),
    lengthBytes: recordLengthOf(bytes, offset),
  };
}

/** How many entries the ENTRIES record at `recordOffset` holds (a record checkRecord accepted). */
export function entryCountOf(bytes: Buffer, recordOffset: number): number {
  return bytes.readUInt32LE(recordOffset + JOURNAL_HEADER_BYTES);
}

/** One entry of an ENTRIES record; its LSN is the record's lsn + the entry's index. */
export interface JournalEntry {
  lba: number;
  slot: number;
  crc: number;
}

/**
 * Entry `index` (below entryCountOf) of the ENTRIES record at `recordOffset`, of a record
 * checkRecord accepted. Fills `into` when given, so a replay of millions of entries makes no
 * object per entry.
 */
export function readEntry(
  bytes: Buffer,
  recordOffset: number,
  index: number,
  into: JournalEntry = { lba: 0, slot: 0, crc: 0 },
): JournalEntry {
  const offset = entryOffset(recordOffset, index);
  into.lba = bytes.readDoubleLE(offset);
  into.slot = bytes.readUInt32LE(offset + 8);
  into.crc = bytes.readUInt32LE(offset + 12);
  return into;
}

/** The lengthBytes field of the record starting at `offset` (unchecked: checkRecord says whether the record is whole and valid). */
export function recordLengthOf(bytes: Buffer, offset: number): number {
  return bytes.readUInt32LE(offset + 8);
}

export function readSnapshotPayload(bytes: Buffer, recordOffset: number): { lun: number; name: string } {
  const lun = bytes.readUInt32LE(recordOffset + JOURNAL_HEADER_BYTES);
  const nameLength = bytes.readUInt32LE(recordOffset + JOURNAL_HEADER_BYTES + 4);
  const start = recordOffset + JOURNAL_HEADER_BYTES + 8;
  return { lun, name: bytes.toString("utf8", start, start + nameLength) };
}

export function journalFileName(generation: number): string {
  return `journal-${String(generation).padStart(8, "0")}.log`;
}

export function parseJournalFileName(name: string): number | undefined {
  const match = /^journal-(\d{8})\.log$/.exec(name);
  return match ? Number(match[1]) : undefined;
}
