import { CHECKPOINT_ENTRY_BYTES, CHECKPOINT_HEADER_BYTES, readCheckpointEntry, readCheckpointHeader } from "./checkpoint.js";
import { JOURNAL_HEADER_BYTES, SLOT_TRIM, SLOT_ZERO } from "../constants.js";
import { checkRecord, entryCountOf, readEntry, recordLengthOf, RecordType } from "./journal-format.js";
import type { MediumFile } from "../medium.js";
import type { SnapshotCut } from "../tables/snapshot-cut.js";
import { timedBy, type LoopClock } from "../../util/loop-clock.js";

/** One row of the log: a run of entries (consecutive LSNs and blocks, one kind, one time), or a snapshot cut. */
export interface LogRow {
  kind: "write" | "zero" | "trim" | "snapshot";
  lsnFirst: number;
  lsnLast: number;
  /** Wall-clock time of the entries (ms since the epoch); a cut's creation time. */
  timeMs: number;
  /** First block and block count (0 and 0 for a cut). */
  lba: number;
  blockCount: number;
  snapshot?: { name: string; lun: number };
  /** With `withData`: the entries' bytes (zeros for zero/trim). Absent when compaction freed them while reading. */
  data?: Buffer;
}

export interface LogQuery {
  /** Inclusive LSN range. */
  lsnFirst: number;
  lsnLast: number;
  withData: boolean;
  /** Counts the reader's work on the event loop (a replication sender paces itself by it). */
  clock?: LoopClock;
}

/** The files that hold a disk's log in LSN order: the checkpoint, then each journal after it up to `endBytes`. */
export interface LogFiles {
  checkpoint: MediumFile;
  /**
   * Each journal up to `endBytes`; `seekPoints` (the current journal's): where batches starting
   * at some LSNs begin, so a reader of a recent range need not scan the journal from its start.
   */
  journals: { file: MediumFile; endBytes: number; seekPoints?: readonly JournalSeekPoint[] }[];
  /** The log's end when the files were opened (rows stop there). */
  lsnLast: number;
}

/** The data of entries read together: entry i's bytes at i × the block size, live[i] 0 when it is gone. */
export interface EntriesData {
  data: Buffer;
  live: Uint8Array;
  /** The CRC32C of each block of `data` (those read from the log checked against it): an export's checksums come from these. */
  crcs: Uint32Array;
}

/** How entries' data is read: into memory a worker thread can share (util/stream-hash.ts), and whose clock counts the checking. */
export interface EntriesDataOptions {
  memory?: "private" | "shared";
  clock?: LoopClock;
}

/** What the log reader needs of a disk (DiskEngine is one): its log files, what is live now, and entries' data. */
export interface LogSource {
  readonly geometry: { blockSizeBytes: number };
  /** Opens the log files (the reader closes them); journal rotation waits while they open. */
  openLogFiles(): Promise<LogFiles>;
  /** Facts from memory: whether an entry is still live, entry times, snapshot cuts. */
  logView(): { isLive(lba: number, lsn: number): boolean; timeOf(lsn: number): number; snapshots: readonly SnapshotCut[] };
  /** The checked data of entries (zeros for zero/trim) in one buffer, and which are still live. */
  readEntriesData(lbas: ArrayLike<number>, lsns: ArrayLike<number>, options?: EntriesDataOptions): Promise<EntriesData>;
}

/** A row holds at most this many blocks, so a row with data stays small. */
const ROW_BLOCKS_MAX = 256;
/** Journal bytes read per positioned read (a record longer than this is read whole). */
const JOURNAL_READ_BYTES = 1024 * 1024;
/** Journal entries passed on at once, at most (a record with more is passed whole). */
const JOURNAL_ENTRIES_PER_YIELD = 16 * 1024;
/** Checkpoint entries read per positioned read. */
const CHECKPOINT_ENTRIES_PER_READ = 16 * 1024;

/** A batch's first LSN and the journal offset where its records begin. */
export interface JournalSeekPoint {
  lsn: number;
  bytes: number;
}

/**
 * Entries as the files hold them, one read's worth (entry i: lbas[i], lsns[i], slots[i]).
 * Passed a read at a time, not an entry at a time: a step of an async generator per entry (and
 * an object per entry) was most of what reading a log of small writes back cost.
 */
interface RawEntries {
  count: number;
  lbas: Float64Array;
  lsns: Float64Array;
  slots: Float64Array;
}

function rawEntries(capacity: number): RawEntries {
  return { count: 0, lbas: new Float64Array(capacity), lsns: new Float64Array(capacity), slots: new Float64Array(capacity) };
}

/**
 * "Read entry" (the patent's term): the disk's log in time (= LSN) order, streamed from the
 * files that hold it — the checkpoint's entries, then each journal's ENTRIES records — so
 * memory stays constant whatever the log's size. Only entries still live are listed (freed
 * ones no longer exist); snapshot cuts are interleaved at their LSN.
 */
export async function* readLog(source: LogSource, query: LogQuery): AsyncGenerator<LogRow> {
  for await (const rows of readLogRows(source, query)) yield* rows;
}

/** The same rows, a read of the files at a time (for readers that go through many rows). */
export async function* readLogRows(source: LogSource, query: LogQuery): AsyncGenerator<LogRow[]> {
  const view = source.logView();
  const files = await source.openLogFiles();
  try {
    const lsnLast = Math.min(query.lsnLast, files.lsnLast);
    const cuts = view.snapshots.filter((cut) => cut.lsn >= query.lsnFirst && cut.lsn <= lsnLast).sort((a, b) => a.lsn - b.lsn);
    let cutIndex = 0;
    let row: LogRow | undefined;
    let rows: LogRow[] = [];
    // Ends the row being built; a promise only when its data is to be read (an await per row was garbage).
    const endRow = (): Promise<void> | undefined => {
      const done = row;
      row = undefined;
      if (done === undefined) return undefined;
      rows.push(done);
      if (!query.withData) return undefined;
      return rowData(source, done).then((data) => {
        done.data = data;
      });
    };
    // The entries of one read, from `index`: returns where it stopped and, with data, the read to
    // wait for before going on (an entry's row is started before its predecessor's data is read).
    const scan = (entries: RawEntries, from: number): { index: number; reading?: Promise<void> } => {
      for (let index = from; index < entries.count; index++) {
        const lba = entries.lbas[index];
        const lsn = entries.lsns[index];
        const slot = entries.slots[index];
        while (cutIndex < cuts.length && cuts[cutIndex].lsn < lsn) {
          const reading = endRow();
          rows.push(cutRow(cuts[cutIndex++]));
          if (reading !== undefined) return { index, reading };
        }
        if (!view.isLive(lba, lsn)) continue;
        const kind = slot === SLOT_ZERO ? "zero" : slot === SLOT_TRIM ? "trim" : "write";
        const timeMs = view.timeOf(lsn);
        const extends_ =
          row !== undefined &&
          row.kind === kind &&
          row.lsnLast + 1 === lsn &&
          row.lba + row.blockCount === lba &&
          row.timeMs === timeMs &&
          row.blockCount < ROW_BLOCKS_MAX;
        if (extends_) {
          row!.lsnLast = lsn;
          row!.blockCount++;
          continue;
        }
        const reading = endRow();
        row = { kind, lsnFirst: lsn, lsnLast: lsn, timeMs, lba, blockCount: 1 };
        if (reading !== undefined) return { index: index + 1, reading };
      }
      return { index: entries.count };
    };
    const clock = query.clock;
    for await (const entries of entriesInLsnOrder(files, query.lsnFirst, lsnLast, clock)) {
      for (let index = 0; index < entries.count;) {
        const step = timedBy(clock, () => scan(entries, index));
        index = step.index;
        if (step.reading !== undefined) await step.reading;
      }
      if (rows.length > 0) {
        yield rows;
        rows = [];
      }
    }
    await endRow();
    while (cutIndex < cuts.length) rows.push(cutRow(cuts[cutIndex++]));
    if (rows.length > 0) yield rows;
  } finally {
    await files.checkpoint.close();
    for (const journal of files.journals) await journal.file.close();
  }
}

function cutRow(cut: { name: string; lun: number; lsn: number; timeMs: number }): LogRow {
  return {
    kind: "snapshot",
    lsnFirst: cut.lsn,
    lsnLast: cut.lsn,
    timeMs: cut.timeMs,
    lba: 0,
    blockCount: 0,
    snapshot: { name: cut.name, lun: cut.lun },
  };
}

async function rowData(source: LogSource, row: LogRow): Promise<Buffer | undefined> {
  const lbas = new Float64Array(row.blockCount);
  const lsns = new Float64Array(row.blockCount);
  for (let index = 0; index < row.blockCount; index++) {
    lbas[index] = row.lba + index;
    lsns[index] = row.lsnFirst + index;
  }
  const { data, live } = await source.readEntriesData(lbas, lsns);
  return live.every((flag) => flag === 1) ? data : undefined;
}

/**
 * Every entry of the checkpoint and the journals with LSN in [lsnFirst, lsnLast], in LSN order.
 * Each yielded batch is only valid until the next is asked for (its arrays are reused).
 */
async function* entriesInLsnOrder(files: LogFiles, lsnFirst: number, lsnLast: number, clock?: LoopClock): AsyncGenerator<RawEntries> {
  yield* checkpointEntries(files.checkpoint, lsnFirst, lsnLast, clock);
  for (const journal of files.journals)
    yield* journalEntries(journal.file, journal.endBytes, lsnFirst, lsnLast, startBytesFor(journal.seekPoints, lsnFirst), clock);
}

async function* checkpointEntries(file: MediumFile, lsnFirst: number, lsnLast: number, clock?: LoopClock): AsyncGenerator<RawEntries> {
  const { entryCount } = await readCheckpointHeader(file);
  const entryAt = async (index: number, target: Buffer) => file.read(target, CHECKPOINT_HEADER_BYTES + index * CHECKPOINT_ENTRY_BYTES);
  // Entries are in LSN order: find the first with lsn >= lsnFirst by bisection.
  const probe = Buffer.alloc(CHECKPOINT_ENTRY_BYTES);
  let low = 0;
  let high = entryCount;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    await entryAt(middle, probe);
    if (readCheckpointEntry(probe, 0).lsn < lsnFirst) low = middle + 1;
    else high = middle;
  }
  const chunk = Buffer.alloc(CHECKPOINT_ENTRIES_PER_READ * CHECKPOINT_ENTRY_BYTES);
  const entries = rawEntries(CHECKPOINT_ENTRIES_PER_READ);
  const entry = { lba: 0, lsn: 0, slot: 0, crc: 0 };
  // Copies a read's entries up to lsnLast out; returns whether it got past it.
  const copyOut = (count: number): boolean => {
    entries.count = 0;
    for (let offset = 0; offset < count * CHECKPOINT_ENTRY_BYTES; offset += CHECKPOINT_ENTRY_BYTES) {
      readCheckpointEntry(chunk, offset, entry);
      if (entry.lsn > lsnLast) return true;
      entries.lbas[entries.count] = entry.lba;
      entries.lsns[entries.count] = entry.lsn;
      entries.slots[entries.count++] = entry.slot;
    }
    return false;
  };
  for (let index = low; index < entryCount; index += CHECKPOINT_ENTRIES_PER_READ) {
    const count = Math.min(CHECKPOINT_ENTRIES_PER_READ, entryCount - index);
    await entryAt(index, chunk.subarray(0, count * CHECKPOINT_ENTRY_BYTES));
    const past = timedBy(clock, () => copyOut(count));
    if (entries.count > 0) yield entries;
    if (past) return;
  }
}

/** The offset of the last seek point at or before lsnFirst (records before it hold only smaller LSNs), else 0. */
function startBytesFor(points: readonly JournalSeekPoint[] | undefined, lsnFirst: number): number {
  if (points === undefined) return 0;
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (points[middle].lsn <= lsnFirst) low = middle + 1;
    else high = middle;
  }
  return low === 0 ? 0 : points[low - 1].bytes;
}

async function* journalEntries(
  file: MediumFile,
  endBytes: number,
  lsnFirst: number,
  lsnLast: number,
  startBytes = 0,
  clock?: LoopClock,
): AsyncGenerator<RawEntries> {
  // Records are parsed from JOURNAL_READ_BYTES read at once: a journal of small commits holds a
  // record per write, and two positioned reads per record made reading it back crawl.
  // Only the bytes read (bufferLength) are ever parsed: no need to zero it.
  let buffer = Buffer.allocUnsafe(JOURNAL_READ_BYTES);
  let bufferStart = startBytes;
  let bufferLength = 0;
  let position = startBytes;
  const inBuffer = (bytes: number): boolean =>
    position + bytes <= endBytes && position >= bufferStart && position + bytes <= bufferStart + bufferLength;
  /** Whether [position, position + bytes) is in the buffer after reading the file from `position`. */
  const load = async (bytes: number): Promise<boolean> => {
    if (position + bytes > endBytes) return false;
    if (bytes > buffer.length) buffer = Buffer.allocUnsafe(bytes);
    bufferStart = position;
    bufferLength = await file.read(buffer.subarray(0, Math.min(buffer.length, endBytes - position)), position);
    return bufferLength >= bytes;
  };
  // The entries parsed since the last yield (copied out of the buffer, which is read over).
  let entries = rawEntries(JOURNAL_ENTRIES_PER_YIELD);
  const entry = { lba: 0, slot: 0, crc: 0 };
  /** Bytes to read at `position` before parsing can go on (after a "load"). */
  let needBytes = 0;
  /**
   * Parses the records already in the buffer (most are: an await per record cost), without
   * waiting: "load" when it needs `needBytes` more from the file, "yield" when `entries` is full
   * (the record that did not fit is parsed again after), "last" past lsnLast, "end" at the
   * journal's end or a record that does not check out.
   */
  const parse = (): "load" | "yield" | "last" | "end" => {
    for (;;) {
      if (!inBuffer(JOURNAL_HEADER_BYTES)) {
        needBytes = JOURNAL_HEADER_BYTES;
        return "load";
      }
      const lengthBytes = recordLengthOf(buffer, position - bufferStart);
      if (lengthBytes < JOURNAL_HEADER_BYTES) return "end";
      if (!inBuffer(lengthBytes)) {
        needBytes = lengthBytes;
        return "load";
      }
      const record = buffer.subarray(position - bufferStart, position - bufferStart + lengthBytes);
      const check = checkRecord(record, 0);
      if (check.kind !== "record") return "end";
      if (check.header.type !== RecordType.ENTRIES) {
        position += lengthBytes;
        continue;
      }
      const count = entryCountOf(record, 0);
      if (check.header.lsn + count - 1 < lsnFirst) {
        position += lengthBytes;
        continue;
      }
      if (entries.count + count > entries.lbas.length) {
        if (entries.count > 0) return "yield";
        entries = rawEntries(count);
      }
      position += lengthBytes;
      for (let index = 0; index < count; index++) {
        const lsn = check.header.lsn + index;
        if (lsn < lsnFirst) continue;
        if (lsn > lsnLast) return "last";
        readEntry(record, 0, index, entry);
        entries.lbas[entries.count] = entry.lba;
        entries.lsns[entries.count] = lsn;
        entries.slots[entries.count++] = entry.slot;
      }
    }
  };
  for (;;) {
    const step = timedBy(clock, parse);
    if (step === "load") {
      if (await load(needBytes)) continue;
    } else if (step === "yield") {
      yield entries;
      entries.count = 0;
      continue;
    }
    if (entries.count > 0) yield entries;
    return;
  }
}
