/**
 * Brings a freshly created disk's journal close to its maximum size, made of the smallest
 * records a client can cause: one 512-byte-block write followed by a FLUSH, which the server
 * journals as an ENTRIES record of one entry (56 bytes) and an empty ENTRIES record carrying
 * the SYNCED flag (40 bytes) — 96 bytes per write, about 700,000 writes and 1.4 million records
 * in a 64 MiB journal. A client at queue depth 1 needs ten minutes to get there through the
 * server (each FLUSH is an fdatasync); this writes the same records with the engine's own
 * encoder (journal-format.ts) and the same data slots in seconds, so a test can then run the
 * real server on it, write more over NBD, SIGKILL it, and check what the restart recovers.
 *
 * The disk must have been created by `snaplog disk create` (checkpoint at generation 1, journal 1
 * holding only its header) and never opened since. Write i (0-based) has LSN i + 1, goes to block
 * i mod blockCount, takes data slot i, and holds fillerBlock(i); its time is timeFirstMs + i.
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import { encodeEntriesRecord, encodeSnapshotRecord, RecordType, withSyncedFlag } from "../../src/engine/log/journal-format.js";
import { JOURNAL_HEADER_BYTES, SEGMENT_SIZE_BYTES } from "../../src/engine/constants.js";
import { crc32c } from "../../src/util/crc32c.js";

export interface FillPlan {
  diskDirectory: string;
  blockSizeBytes: number;
  /** Writes go round-robin over blocks [0, blockCount). */
  blockCount: number;
  /** Stop before the journal file would pass this many bytes. */
  journalBytesMax: number;
  /** A snapshot is cut after every this many writes (SNAPSHOT record, SYNCED), named fill-N with LUN lunFirst + N. */
  snapshotEvery: number;
  lunFirst: number;
  timeFirstMs: number;
}

export interface FilledSnapshot {
  name: string;
  lun: number;
  /** The cut: the LSN of the last write it holds (= the number of writes before it). */
  lsn: number;
}

export interface FillResult {
  writeCount: number;
  recordCount: number;
  journalBytes: number;
  snapshots: FilledSnapshot[];
}

/** The content of write `index`: its index as a u64 at byte 0, the rest its low byte. */
export function fillerBlock(index: number, blockSizeBytes: number): Buffer {
  const block = Buffer.alloc(blockSizeBytes, index & 0xff);
  block.writeBigUInt64LE(BigInt(index), 0);
  return block;
}

const JOURNAL_CHUNK_BYTES = 4 * 1024 * 1024;

export function fillJournal(plan: FillPlan): FillResult {
  const journalPath = path.join(plan.diskDirectory, "journal-00000001.log");
  const existing = readFileSync(journalPath);
  if (existing.length !== JOURNAL_HEADER_BYTES)
    throw new Error(`${journalPath}: expected a new disk's journal (${JOURNAL_HEADER_BYTES} bytes), found ${existing.length}`);
  const journal = openSync(journalPath, "r+");
  const columns = { lbas: new Float64Array(1), slots: new Uint32Array(1), crcs: new Uint32Array(1), count: 1 };
  const noEntries = { lbas: new Float64Array(0), slots: new Uint32Array(0), crcs: new Uint32Array(0), count: 0 };
  const snapshots: FilledSnapshot[] = [];
  const chunk = Buffer.alloc(JOURNAL_CHUNK_BYTES);
  let chunkUsed = 0;
  let journalBytes = JOURNAL_HEADER_BYTES;
  let recordCount = 0;
  let segment = Buffer.alloc(SEGMENT_SIZE_BYTES);
  let segmentIndex = 0;
  let segmentUsed = 0;

  const append = (record: Buffer): void => {
    if (chunkUsed + record.length > chunk.length) {
      writeSync(journal, chunk, 0, chunkUsed, journalBytes - chunkUsed);
      chunkUsed = 0;
    }
    record.copy(chunk, chunkUsed);
    chunkUsed += record.length;
    journalBytes += record.length;
    recordCount++;
  };
  const flushSegment = (): void => {
    if (segmentUsed === 0) return;
    const file = openSync(path.join(plan.diskDirectory, `segment-${String(segmentIndex).padStart(8, "0")}.dat`), "w");
    writeSync(file, segment, 0, segmentUsed, 0);
    closeSync(file);
    segmentIndex++;
    segmentUsed = 0;
    segment = Buffer.alloc(SEGMENT_SIZE_BYTES);
  };

  // The most one write can add: its two records and a snapshot record.
  const writeAndSnapshotBytes = 56 + 40 + 64;
  let index = 0;
  try {
    for (; journalBytes + writeAndSnapshotBytes <= plan.journalBytesMax; index++) {
      const lsn = index + 1;
      const timeMs = plan.timeFirstMs + index;
      const data = fillerBlock(index, plan.blockSizeBytes);
      data.copy(segment, segmentUsed);
      segmentUsed += plan.blockSizeBytes;
      if (segmentUsed === segment.length) flushSegment();
      columns.lbas[0] = index % plan.blockCount;
      columns.slots[0] = index;
      columns.crcs[0] = crc32c(data);
      append(encodeEntriesRecord(lsn, timeMs, 0, columns));
      // The FLUSH: a batch with no entries whose record says everything before it was synced.
      append(withSyncedFlag(encodeEntriesRecord(lsn + 1, timeMs, 0, noEntries)));
      if ((index + 1) % plan.snapshotEvery === 0) {
        const snapshot = { name: `fill-${snapshots.length + 1}`, lun: plan.lunFirst + snapshots.length, lsn };
        append(withSyncedFlag(encodeSnapshotRecord(RecordType.SNAPSHOT, lsn, timeMs, snapshot.lun, snapshot.name)));
        snapshots.push(snapshot);
      }
    }
    if (chunkUsed > 0) writeSync(journal, chunk, 0, chunkUsed, journalBytes - chunkUsed);
    flushSegment();
  } finally {
    closeSync(journal);
  }
  return { writeCount: index, recordCount, journalBytes, snapshots };
}
