import { crc32c } from "../../util/crc32c.js";
import { SnaplogError, ErrorCodes } from "../../util/errors.js";
import { readCheckpoint } from "./checkpoint.js";
import { isDataSlot, JOURNAL_HEADER_BYTES } from "../constants.js";
import { DiskState } from "../tables/disk-state.js";
import {
  checkRecord,
  entryCountOf,
  FLAG_SYNCED,
  journalFileName,
  parseJournalFileName,
  readEntry,
  readFoldDonePayload,
  readRecordHeader,
  readSnapshotPayload,
  RecordType,
  type RecordHeader,
} from "./journal-format.js";
import type { Sabotage } from "../engine-options.js";
import type { Medium } from "../medium.js";
import { SegmentFiles } from "../space/segment-files.js";
import { SlotAllocator } from "../space/slot-allocator.js";

/**
 * Opening a disk: load the checkpoint, then replay the journal files written after it.
 * The rules for the journal's tail (docs/recovery.md, test/recovery-table.test.ts), as a
 * decision table. "The last journal" is the newest replayed; each one before it was synced
 * whole before the next was created (also when the next one's header never made it):
 *
 *  A  record valid                                  → keep it (applied unless E cuts first)
 *  B  record invalid/short in the last journal,
 *     and no proof that it was synced (C)           → torn tail: the log ends there (appends
 *                                                     not yet synced may reach the disk in any
 *                                                     order, so valid ones may follow: dropped;
 *                                                     the open zeroes them in place)
 *  C  record invalid, then a valid SYNCED record,    → corruption: the SYNCED record's batch
 *     then another valid record                       synced the journal before the next batch
 *                                                     wrote: the bad record had been synced
 *  D  record invalid in a journal that is not the last
 *     (it was synced before the next one began)     → corruption
 *  E  valid ENTRIES record of the last journal after
 *     its last SYNCED record, not covered by a
 *     SYNC_MARK, whose data fails its checksum      → never promised: the log ends there (it
 *                                                     and all after dropped, zeroed at open)
 *  F  data of any other record fails its checksum   → not checked here; a read of that block
 *                                                     answers EIO (real corruption, reported)
 *
 * A journal that does not start with its valid HEADER is corruption, whatever its place: every
 * replayed journal's header was synced before the checkpoint named it (a newest one whose
 * header did not make it is a rotation cut short, dropped before this).
 */
export interface RecoveredDisk {
  state: DiskState;
  /** Generation of the journal to append to, and where. */
  generation: number;
  journalEndBytes: number;
  /** Generations of journal files older than the checkpoint's (or a headerless newest one), safe to delete. */
  staleGenerations: number[];
  /**
   * Bytes of the last journal after journalEndBytes (torn or unpromised records dropped, the
   * zero reserve): the open zeroes them in place (JournalFile.open), never truncates.
   */
  droppedTailBytes: number;
  checkpointGeneration: number;
  /** The fold under way: LSN of a fold into the baseline that began and did not finish (0: none); resume it before serving. */
  foldLsn: number;
}

/**
 * Where each valid record of the replayed journal files starts, as two columns: a journal at its
 * maximum size of the smallest records holds over a million of them, so no object per record
 * (their headers are read again from the file's bytes when needed).
 */
class RecordList {
  private generations = new Uint32Array(4096);
  private offsets = new Uint32Array(4096);
  count = 0;

  push(generation: number, offset: number): void {
    if (this.count === this.offsets.length) {
      this.generations = grown(this.generations);
      this.offsets = grown(this.offsets);
    }
    this.generations[this.count] = generation;
    this.offsets[this.count] = offset;
    this.count++;
  }

  generation(index: number): number {
    return this.generations[index];
  }

  offset(index: number): number {
    return this.offsets[index];
  }
}

function grown(column: Uint32Array<ArrayBuffer>): Uint32Array<ArrayBuffer> {
  const larger = new Uint32Array(column.length * 2);
  larger.set(column);
  return larger;
}

function corrupt(diskName: string, message: string, path?: string): SnaplogError {
  return new SnaplogError(ErrorCodes.CORRUPT, `disk ${diskName}: ${message}`, {
    disk: diskName,
    path,
    hint: "the disk's metadata is damaged; it stays offline (other disks are served). Restore it from an archive.",
  });
}

async function readWhole(medium: Medium, name: string): Promise<Buffer> {
  const file = await medium.open(name, { create: false });
  try {
    const bytes = Buffer.alloc(await file.sizeBytes());
    await file.read(bytes, 0);
    return bytes;
  } finally {
    await file.close();
  }
}

/**
 * True when the bytes at `offset` were synced: a valid record with the SYNCED flag follows
 * them, and a valid record follows that one. A sync batch writes its SYNCED record and then
 * syncs the journal before the next batch writes anything; so a record after it proves the
 * sync, and the sync covered everything before. (A SYNCED record alone proves nothing: the
 * power may have gone between its write and its sync.)
 */
function provenSynced(bytes: Buffer, offset: number, trustWithoutCrc: boolean): boolean {
  let synced = false;
  for (let position = (offset + 8) & ~7; position + JOURNAL_HEADER_BYTES <= bytes.length; position += 8) {
    const check = checkRecord(bytes, position, trustWithoutCrc);
    if (check.kind !== "record") continue;
    if (synced) return true;
    if ((check.header.flags & FLAG_SYNCED) !== 0) synced = true;
    position += check.header.lengthBytes - 8;
  }
  return false;
}

/** Adds the valid records of one journal file to `records`; returns where its valid part ends. */
function parseJournal(
  diskName: string,
  generation: number,
  bytes: Buffer,
  isLast: boolean,
  trustWithoutCrc: boolean,
  records: RecordList,
): number {
  const name = journalFileName(generation);
  let offset = 0;
  while (offset < bytes.length) {
    const check = checkRecord(bytes, offset, trustWithoutCrc);
    if (check.kind === "record") {
      if (offset === 0 && (check.header.type !== RecordType.HEADER || check.header.lsn !== generation)) {
        throw corrupt(diskName, `journal ${name} does not start with its header`, name);
      }
      records.push(generation, offset);
      offset += check.header.lengthBytes;
      continue;
    }
    const why = check.kind === "short" ? "truncated record" : check.reason;
    // Every journal replayed had its header synced before anything depended on it (the disk's
    // creation and each rotation sync it before the checkpoint names the journal; a newest one
    // whose header did not make it is dropped before this): a bad one is no torn append.
    if (offset === 0) throw corrupt(diskName, `journal ${name} does not start with its header (${why})`, name);
    if (!isLast) throw corrupt(diskName, `journal ${name} has a bad record at byte ${offset} (${why})`, name);
    if (provenSynced(bytes, offset, trustWithoutCrc)) {
      throw corrupt(
        diskName,
        `journal ${name} has a bad record at byte ${offset} (${why}), and records after it prove it was synced`,
        name,
      );
    }
    break;
  }
  if (bytes.length === 0) throw corrupt(diskName, `journal ${name} does not start with its header (empty)`, name);
  return offset;
}

/** Whether the journal file of `generation` begins with its valid HEADER record. */
async function startsWithHeader(medium: Medium, generation: number): Promise<boolean> {
  const file = await medium.open(journalFileName(generation), { create: false });
  try {
    const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
    if ((await file.read(header, 0)) < JOURNAL_HEADER_BYTES) return false;
    const check = checkRecord(header, 0);
    return check.kind === "record" && check.header.type === RecordType.HEADER && check.header.lsn === generation;
  } finally {
    await file.close();
  }
}

/** Data bytes the tail check reads at once (records checked concurrently, each read one run of slots). */
const TAIL_CHECK_BYTES_IN_FLIGHT = 16 * 1024 * 1024;
/** A read of the tail check covers at most this many consecutive slots. */
const TAIL_CHECK_RUN_BLOCKS_MAX = 256;

/**
 * Whether every data block of an ENTRIES record matches its checksum. A batch's slots are mostly
 * consecutive: each run of them is one read, not one read per block (a tail of 4 KiB random
 * writes on a disk of 512-byte blocks holds hundreds of thousands of entries).
 */
async function recordDataIsWhole(segments: SegmentFiles, bytes: Buffer, offset: number): Promise<boolean> {
  const count = entryCountOf(bytes, offset);
  const blockSizeBytes = segments.blockSizeBytes;
  const entry = { lba: 0, slot: 0, crc: 0 };
  const slotOf = (index: number): number => readEntry(bytes, offset, index, entry).slot;
  const continues = (slot: number, previous: number, runLength: number): boolean =>
    slot === previous + 1 && slot % segments.slotsPerSegment !== 0 && runLength < TAIL_CHECK_RUN_BLOCKS_MAX;
  const runs: Promise<boolean>[] = [];
  let index = 0;
  while (index < count) {
    const slotFirst = slotOf(index);
    if (!isDataSlot(slotFirst)) {
      index++;
      continue;
    }
    const indexFirst = index;
    for (index++; index < count && continues(slotOf(index), slotOf(index - 1), index - indexFirst); index++);
    const indexEnd = index;
    runs.push(
      (async () => {
        const buffer = Buffer.allocUnsafe((indexEnd - indexFirst) * blockSizeBytes);
        await segments.readRun(slotFirst, buffer);
        const expected = { lba: 0, slot: 0, crc: 0 };
        for (let at = indexFirst; at < indexEnd; at++) {
          const block = buffer.subarray((at - indexFirst) * blockSizeBytes, (at - indexFirst + 1) * blockSizeBytes);
          if (crc32c(block) !== readEntry(bytes, offset, at, expected).crc) return false;
        }
        return true;
      })(),
    );
  }
  return (await settledAll(runs)).every(Boolean);
}

/** Promise.all that waits for every promise before it throws the first failure: no read is left running unawaited. */
async function settledAll<T>(promises: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((outcome) => outcome.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<T>).value);
}

/**
 * The first of `candidates` (record indexes, ascending) whose data is not whole, or undefined.
 * Records are checked concurrently, up to TAIL_CHECK_BYTES_IN_FLIGHT of data at a time; the
 * answer is the first failing one in record order, as a sequential check would find.
 */
async function firstRecordWithBadData(
  segments: SegmentFiles,
  candidates: { bytes: Buffer; offset: number; index: number }[],
): Promise<number | undefined> {
  let start = 0;
  while (start < candidates.length) {
    let end = start;
    let windowBytes = 0;
    while (end < candidates.length && (end === start || windowBytes < TAIL_CHECK_BYTES_IN_FLIGHT)) {
      windowBytes += entryCountOf(candidates[end].bytes, candidates[end].offset) * segments.blockSizeBytes;
      end++;
    }
    const window = candidates.slice(start, end);
    const outcomes = await settledAll(window.map((candidate) => recordDataIsWhole(segments, candidate.bytes, candidate.offset)));
    const bad = outcomes.indexOf(false);
    if (bad >= 0) return window[bad].index;
    start = end;
  }
  return undefined;
}

/** What replay carries from record to record besides the state. */
interface ReplayContext {
  diskName: string;
  state: DiskState;
  /** A fold under way (FOLD_BEGIN seen, FOLD_DONE not yet), else 0. */
  foldLsn: number;
}

function applyRecord(context: ReplayContext, bytes: Buffer, offset: number): void {
  const { diskName, state } = context;
  const header = readRecordHeader(bytes, offset);
  switch (header.type) {
    case RecordType.HEADER:
    case RecordType.SYNC_MARK:
      return;
    case RecordType.ENTRIES: {
      const count = entryCountOf(bytes, offset);
      if (count > 0 && header.lsn !== state.lsnLast + 1) {
        throw corrupt(diskName, `journal LSN gap: expected ${state.lsnLast + 1}, found ${header.lsn}`);
      }
      const entry = { lba: 0, slot: 0, crc: 0 };
      for (let index = 0; index < count; index++) {
        readEntry(bytes, offset, index, entry);
        state.appendRecovered(entry.lba, header.lsn + index, entry.slot, entry.crc);
      }
      if (count > 0) state.times.add(header.lsn, header.timeMs);
      return;
    }
    case RecordType.SNAPSHOT: {
      const { lun, name } = readSnapshotPayload(bytes, offset);
      if (header.lsn > state.lsnLast) throw corrupt(diskName, `snapshot ${name} cuts at LSN ${header.lsn}, past the log's end`);
      if (state.findSnapshot(name) !== undefined) throw corrupt(diskName, `journal creates snapshot ${name} twice`);
      state.insertSnapshot({ name, lun, lsn: header.lsn, timeMs: header.timeMs });
      return;
    }
    case RecordType.SNAPSHOT_DELETE: {
      const { name } = readSnapshotPayload(bytes, offset);
      if (state.removeSnapshot(name) === undefined) throw corrupt(diskName, `journal deletes snapshot ${name}, which does not exist`);
      return;
    }
    case RecordType.HORIZON:
      state.lsnHorizon = Math.max(state.lsnHorizon, header.lsn);
      return;
    case RecordType.FOLD_BEGIN:
      if (context.foldLsn !== 0)
        throw corrupt(diskName, `fold at LSN ${header.lsn} begins while the fold at ${context.foldLsn} is unfinished`);
      context.foldLsn = header.lsn;
      state.pin(header.lsn);
      return;
    case RecordType.FOLD_DONE:
      if (context.foldLsn !== header.lsn) throw corrupt(diskName, `fold at LSN ${header.lsn} ends without having begun`);
      state.dropFoldedAll(header.lsn, new Set(readFoldDonePayload(bytes, offset)), () => undefined);
      state.unpin(header.lsn);
      context.foldLsn = 0;
      return;
    default:
      throw corrupt(diskName, `unknown journal record type ${header.type}`);
  }
}

/** Rebuilds the slot allocator from the live entries: used slots, high water, the rest free. */
function rebuildSlots(state: DiskState, slotsPerSegment: number): void {
  let highWater = 0;
  const entries = state.entries;
  for (let id = 1; id < entries.idLimit; id++) {
    if (entries.lsn(id) === 0) continue;
    const slot = entries.slot(id);
    if (isDataSlot(slot) && slot + 1 > highWater) highWater = slot + 1;
  }
  const used = new Uint8Array((highWater + 7) >>> 3);
  for (let id = 1; id < entries.idLimit; id++) {
    if (entries.lsn(id) === 0) continue;
    const slot = entries.slot(id);
    if (!isDataSlot(slot)) continue;
    const byte = slot >>> 3;
    const bit = 1 << (slot & 7);
    if (used[byte] & bit) throw new SnaplogError(ErrorCodes.CORRUPT, `slot ${slot} is used by two entries`);
    used[byte] |= bit;
  }
  state.slots = SlotAllocator.fromUsed(used, highWater, slotsPerSegment);
}

export async function recoverDisk(options: {
  diskName: string;
  medium: Medium;
  segments: SegmentFiles;
  hasBaseline: boolean;
  reclaimOverwritten: boolean;
  /** Test-only (engine-options.ts). */
  sabotage?: Sabotage;
}): Promise<RecoveredDisk> {
  const { diskName, medium, segments } = options;
  const state = new DiskState(options.hasBaseline, options.reclaimOverwritten);
  const checkpoint = await readCheckpoint(medium, diskName, {
    entry: (lba, lsn, slot, crc) => state.appendRecovered(lba, lsn, slot, crc),
    timePoint: (lsn, timeMs) => state.times.add(lsn, timeMs),
  });
  if (checkpoint === undefined) throw corrupt(diskName, "no checkpoint file");
  if (state.lsnLast > checkpoint.lsnLast) throw corrupt(diskName, "checkpoint entries past its LSN");
  state.lsnLast = checkpoint.lsnLast;
  state.lsnHorizon = checkpoint.lsnHorizon;
  for (const snapshot of checkpoint.snapshots) state.insertSnapshot(snapshot);
  for (const lba of checkpoint.baselineBad) state.baselineBad.add(lba);
  const context: ReplayContext = { diskName, state, foldLsn: checkpoint.foldLsn };
  if (checkpoint.foldLsn !== 0) state.pin(checkpoint.foldLsn);

  const generations = (await medium.list())
    .map(parseJournalFileName)
    .filter((generation): generation is number => generation !== undefined)
    .sort((a, b) => a - b);
  const staleGenerations = generations.filter((generation) => generation < checkpoint.generation);
  const replay = generations.filter((generation) => generation >= checkpoint.generation);
  if (replay[0] !== checkpoint.generation) throw corrupt(diskName, `journal ${journalFileName(checkpoint.generation)} is missing`);
  replay.forEach((generation, index) => {
    if (generation !== checkpoint.generation + index)
      throw corrupt(diskName, `journal generation ${checkpoint.generation + index} is missing`);
  });

  // A rotation that a crash cut short may leave the next journal without its header (created,
  // not yet synced): it holds nothing, and the one before it was synced whole before it began,
  // so that one is no last journal with a tail to forgive (case D, not B) and all of it is proven.
  const rotationCutShort = replay.length > 1 && !(await startsWithHeader(medium, replay[replay.length - 1]));
  if (rotationCutShort) staleGenerations.push(replay.pop()!);
  const files = new Map<number, Buffer>();
  const records = new RecordList();
  let lastValidEnd = 0;
  for (const [index, generation] of replay.entries()) {
    const bytes = await readWhole(medium, journalFileName(generation));
    files.set(generation, bytes);
    lastValidEnd = parseJournal(
      diskName,
      generation,
      bytes,
      index === replay.length - 1 && !rotationCutShort,
      options.sabotage === "trust-record-without-crc",
      records,
    );
  }
  const lastGeneration = replay[replay.length - 1];
  const headerOf = (index: number): RecordHeader => readRecordHeader(files.get(records.generation(index))!, records.offset(index));

  // Rule E: records after the last synced one must prove their data, else the tail goes.
  let lastSynced = -1;
  for (let index = 0; index < records.count; index++) {
    if (rotationCutShort || records.generation(index) !== lastGeneration || headerOf(index).flags & FLAG_SYNCED) lastSynced = index;
  }
  // A sync mark says every entry up to its LSN is durable, whichever records hold them.
  let lsnMarked = 0;
  for (let index = 0; index < records.count; index++) {
    const header = headerOf(index);
    if (header.type === RecordType.SYNC_MARK && header.lsn > lsnMarked) lsnMarked = header.lsn;
  }
  const unproven: { bytes: Buffer; offset: number; index: number }[] = [];
  for (let index = lastSynced + 1; index < records.count; index++) {
    const header = headerOf(index);
    if (header.type !== RecordType.ENTRIES) continue;
    const bytes = files.get(records.generation(index))!;
    if (header.lsn + entryCountOf(bytes, records.offset(index)) - 1 <= lsnMarked) continue;
    unproven.push({ bytes, offset: records.offset(index), index });
  }
  const cut =
    options.sabotage === "skip-tail-data-check" ? records.count : ((await firstRecordWithBadData(segments, unproven)) ?? records.count);
  for (let index = 0; index < cut; index++) applyRecord(context, files.get(records.generation(index))!, records.offset(index));
  // Free what the running engine freed (or would have): the kept views are all known now
  // (cuts, the recorded horizon, an unfinished fold's pin), and they are at most the ones it
  // had, so this frees at least as much. Slots it freed may already hold newer data.
  state.scanBlocks(0, Number.MAX_SAFE_INTEGER, { lsnMin: 0, lsnMax: Infinity, dryRun: false }, () => undefined);
  rebuildSlots(state, segments.slotsPerSegment);

  const journalEndBytes = cut < records.count ? records.offset(cut) : lastValidEnd;
  const lastBytes = files.get(lastGeneration)!;
  return {
    state,
    generation: lastGeneration,
    journalEndBytes,
    staleGenerations,
    droppedTailBytes: lastBytes.length - journalEndBytes,
    checkpointGeneration: checkpoint.generation,
    foldLsn: context.foldLsn,
  };
}
