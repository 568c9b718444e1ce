import { ErrorCodes, fromSystemError } from "../../util/errors.js";
import type { Medium, MediumFile } from "../medium.js";
import { encodeHeaderRecord, encodeMarkRecord, journalFileName, RecordType, withSyncedFlag } from "./journal-format.js";

/**
 * Journal bytes kept written past the appends, for the records that free space on a full file
 * system; the file is also extended (with zeros) this much at a time.
 */
const JOURNAL_RESERVE_BYTES_DEFAULT = 64 * 1024;

/**
 * What a batch's records may use of the reserve: `entries` none of it (so writes fail with
 * NO_SPACE first), `records` (flushes, snapshot cuts) half of it, `freeing` (the records that free
 * space: snapshot deletes, horizons, folds) all of it.
 */
export type ReserveUse = "entries" | "records" | "freeing";

/** A journal file of one generation: the next one before appends switch to it, or one they left. */
export interface JournalGeneration {
  file: MediumFile;
  generation: number;
  /** Where appends go (the next file: after its header) or stopped. */
  positionBytes: number;
}

export interface JournalFileOptions {
  diskName: string;
  medium: Medium;
  /** The journal of `generation`, open; appends go at `positionBytes`; the file is `sizeBytes` long. */
  file: MediumFile;
  generation: number;
  positionBytes: number;
  sizeBytes: number;
  /** The reserve (default 64 KiB; DiskEngineTuning.journalReserveBytes). */
  reserveBytes?: number;
}

/**
 * The journal file that appends go to, and its state: the append position, the reserve written
 * past it, the sync mark owed, and the generation (a rotation starts the next file). The commit
 * pipeline is its one writer and calls it one batch at a time; it decides when to write, sync
 * and rotate, and keeps the crash points of a batch. The contract:
 *
 *   makeRoom(bytes, keptFor(use)) → write(records) → advance(bytes) → sync()
 *     A record is written at the position and counts once advance() moves past it; a write
 *     that failed leaves the position, so the next records overwrite it. A record that was
 *     written but must not count is erased (durably) with erase().
 *   recordsOf(...)  the records of a batch, led by a SYNC_MARK when noteSynced() owes one
 *   rotation: appendSyncMark() → seal() → (the caller captures its checkpoint) → createNext()
 *     → switchTo(next) → (the checkpoint names the new generation) → retire(previous)
 *
 * Appends before the reserved end allocate nothing: on a full file system the records that free
 * space still fit (makeRoom fails with NO_SPACE only when they would not).
 */
export class JournalFile {
  readonly reserveBytes: number;
  private current: MediumFile;
  private currentGeneration: number;
  private position: number;
  /** The file is written (appends or zeros) up to here: appends before it allocate nothing. */
  private reservedEnd: number;
  /** Set by a finished background sync; the next records begin with a SYNC_MARK of it (shortens recovery). */
  private syncMarkLsn = 0;
  private readonly diskName: string;
  private readonly medium: Medium;

  constructor(options: JournalFileOptions) {
    this.diskName = options.diskName;
    this.medium = options.medium;
    this.current = options.file;
    this.currentGeneration = options.generation;
    this.position = options.positionBytes;
    this.reservedEnd = Math.max(options.sizeBytes, options.positionBytes);
    this.reserveBytes = options.reserveBytes ?? JOURNAL_RESERVE_BYTES_DEFAULT;
  }

  /**
   * Opens the journal recovery ended in, to append at `endBytes`. When recovery dropped a tail
   * (torn or unpromised records, the zero reserve), it is zeroed in place and synced, not cut:
   * opening a disk on a full file system must not need space.
   */
  static async open(
    options: Omit<JournalFileOptions, "file" | "positionBytes" | "sizeBytes"> & { endBytes: number; droppedTailBytes: number },
  ): Promise<JournalFile> {
    const file = await options.medium.open(journalFileName(options.generation), { create: false });
    const sizeBytes = await file.sizeBytes();
    if (options.droppedTailBytes > 0) {
      await zeroRange(file, options.endBytes, sizeBytes);
      await file.sync();
    }
    return new JournalFile({ ...options, file, positionBytes: options.endBytes, sizeBytes });
  }

  get generation(): number {
    return this.currentGeneration;
  }

  /** Where the next record goes: the journal's length in records. */
  get positionBytes(): number {
    return this.position;
  }

  /** The file appends go to now (a background sync holds on to it: a rotation may switch meanwhile). */
  get file(): MediumFile {
    return this.current;
  }

  /** A background sync made every entry up to `lsn` durable: the next records say so (a SYNC_MARK). */
  noteSynced(lsn: number): void {
    this.syncMarkLsn = lsn;
  }

  /** The journal records of a batch: a SYNC_MARK owed, its entries, then snapshot/control records; with `sync`, the last carries SYNCED. */
  recordsOf(timeMs: number, entries: Buffer | undefined, tail: Buffer[], sync: boolean): Buffer[] {
    const records: Buffer[] = [];
    if (this.syncMarkLsn > 0) {
      records.push(encodeMarkRecord(RecordType.SYNC_MARK, this.syncMarkLsn, timeMs));
      this.syncMarkLsn = 0;
    }
    if (entries !== undefined) records.push(entries);
    for (const record of tail) records.push(record);
    if (sync && records.length > 0) records[records.length - 1] = withSyncedFlag(records[records.length - 1]);
    return records;
  }

  /** How many bytes of the reserve records of this use must leave unused (ReserveUse). */
  keptFor(use: ReserveUse): number {
    if (use === "entries") return this.reserveBytes;
    if (use === "freeing") return 0;
    return this.reserveBytes / 2;
  }

  /**
   * Makes sure `bytes` of records fit in the file without allocating on the way: the file is kept
   * written (with zeros) a reserve past the appends, so that when the file system is full, the
   * records that free space still fit. These records leave `keepBytes` of it unused (keptFor).
   */
  async makeRoom(bytes: number, keepBytes: number): Promise<void> {
    const needed = this.position + bytes;
    if (needed <= this.reservedEnd - keepBytes) return;
    const step = this.reserveBytes;
    const target = Math.ceil((needed + this.reserveBytes) / step) * step;
    try {
      const zeros = Buffer.alloc(step);
      for (let at = this.reservedEnd; at < target; at += step) {
        await this.current.writev([zeros.subarray(0, Math.min(step, target - at))], at);
        this.reservedEnd = Math.min(at + step, target);
      }
    } catch (error) {
      const failure = fromSystemError(error, { disk: this.diskName });
      if (failure.code !== ErrorCodes.NO_SPACE || needed > this.reservedEnd - keepBytes) throw failure;
    }
  }

  /** Writes records at the position (not synced); they count once advance() passes them. */
  write(records: Buffer[]): Promise<void> {
    return this.current.writev(records, this.position);
  }

  /** Counts the records written at the position: the next go after them. */
  advance(bytes: number): void {
    this.position += bytes;
  }

  /**
   * Erases `bytes` of records written at the position and not counted, durably: a crash that
   * loses the next records written there must not bring them back.
   */
  async erase(bytes: number): Promise<void> {
    await this.current.writev([Buffer.alloc(bytes)], this.position);
    await this.current.sync();
  }

  sync(): Promise<void> {
    return this.current.sync();
  }

  /** Rotation: appends a SYNC_MARK of `lsn` (everything up to it is synced; the caller made sure), as the journal's last record. */
  async appendSyncMark(lsn: number, timeMs: number): Promise<void> {
    const mark = encodeMarkRecord(RecordType.SYNC_MARK, lsn, timeMs);
    await this.makeRoom(mark.length, 0);
    await this.current.writev([mark], this.position);
    this.position += mark.length;
    this.syncMarkLsn = 0;
  }

  /** Rotation: ends the file at the position and syncs it (a journal that is not the last must end clean). */
  async seal(): Promise<void> {
    // A failed append may have left bytes past the position.
    await this.current.truncate(this.position);
    await this.current.sync();
  }

  /**
   * Rotation: creates the next generation's file with its header, synced (and the directory).
   * Appends stay here until switchTo(next).
   */
  async createNext(): Promise<JournalGeneration> {
    const generation = this.currentGeneration + 1;
    const file = await this.medium.open(journalFileName(generation), { create: true });
    const header = encodeHeaderRecord(generation, Date.now());
    await file.truncate(0);
    await file.writev([header], 0);
    await file.sync();
    await this.medium.syncDirectory();
    return { file, generation, positionBytes: header.length };
  }

  /**
   * Rotation: appends go to `next` (from createNext) from now on. Returns the previous file: the
   * caller retires it once a checkpoint names the new generation (until then, opening replays both).
   */
  switchTo(next: JournalGeneration): JournalGeneration {
    const previous = { file: this.current, generation: this.currentGeneration, positionBytes: this.position };
    this.current = next.file;
    this.currentGeneration = next.generation;
    this.position = next.positionBytes;
    this.reservedEnd = next.positionBytes;
    this.syncMarkLsn = 0;
    return previous;
  }

  /** Rotation: closes and removes a previous generation (a checkpoint now names a later one). */
  async retire(previous: JournalGeneration): Promise<void> {
    await previous.file.close();
    await this.medium.remove(journalFileName(previous.generation));
  }

  close(): Promise<void> {
    return this.current.close();
  }
}

/** Writes zeros over [startBytes, endBytes) of a file that already holds them (no allocation). */
async function zeroRange(file: MediumFile, startBytes: number, endBytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024);
  for (let at = startBytes; at < endBytes; at += chunk.length)
    await file.writev([chunk.subarray(0, Math.min(chunk.length, endBytes - at))], at);
}
