import { crc32c } from "../util/crc32c.js";
import { assert, ErrorCodes, fromSystemError, notFound, SnaplogError } from "../util/errors.js";
import { SerialQueue } from "../util/serial-queue.js";
import { copyViewIntoBaseline } from "./baseline-fold.js";
import { CHECKPOINT_FILE, encodeCheckpoint, readCheckpointHeader, writeCheckpoint, type SnapshotCut } from "./checkpoint.js";
import {
  Batch,
  EntryColumns,
  noop,
  type ControlOp,
  type Op,
  type OpRequest,
  type RollbackOp,
  type SlotRun,
  type SnapshotOp,
  type WriteOp,
  type ZeroOp,
} from "./commit-batch.js";
import {
  INDEX_PAGE_BLOCKS,
  JOURNAL_CHECKPOINT_BYTES,
  JOURNAL_HEADER_BYTES,
  SLOT_TRIM,
  SLOT_ZERO,
  UNSYNCED_BYTES_MAX,
  UNSYNCED_MS_MAX,
} from "./constants.js";
import { BlockSource, DiskState, isDataSlot } from "./disk-state.js";
import {
  encodeEntriesRecord,
  encodeFoldDoneRecord,
  encodeHeaderRecord,
  encodeMarkRecord,
  encodeSnapshotRecord,
  journalFileName,
  RecordType,
  withSyncedFlag,
} from "./journal-format.js";
import type { Medium, MediumFile } from "./medium.js";
import { recoverDisk } from "./recovery.js";
import { SegmentFiles } from "./segment-files.js";

export const BASELINE_FILE = "baseline.img";

export interface DiskGeometry {
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  /** Every-write history window at open; 0 lets overwritten versions go at once. See setHistory. */
  historySeconds: number;
}

export interface DiskEngineTuning {
  /** Rotate the journal and checkpoint past this size (tests make it small). */
  journalCheckpointBytes?: number;
  /** Data segment size; part of the format, so only tests that always pass the same value may set it. */
  segmentSizeBytes?: number;
  /** Wholly free segment files kept for reuse when compaction hands space back (default 2). */
  spareSegmentCount?: number;
  /** Wall clock for entry times and the history window (ms since the epoch); tests move it by hand. */
  clock?: () => number;
}

export interface DiskEngineEvents {
  /** A stored block failed its checksum (answered with EIO). */
  onChecksumError?(info: { disk: string; lba: number; lsn: number }): void;
  /** Something went wrong in the background (a checkpoint write, a background sync). */
  onBackgroundError?(error: SnaplogError): void;
}

/** A block-status answer stops after this many runs (a shorter answer is allowed by NBD). */
const BLOCK_RUN_COUNT_MAX = 256;
/** Blocks a rollback copies per step (bounds its buffers). */
const ROLLBACK_CHUNK_BLOCKS = 256;
/** Index pages a compaction or diff scans per turn of the event loop. */
const SCAN_PAGES_PER_TURN = 16;
/** Entry times outside the window are kept to this resolution (TimeIndex.thinBefore). */
const TIME_RESOLUTION_OUTSIDE_WINDOW_MS = 1000;
const SPARE_SEGMENT_COUNT_DEFAULT = 2;
/** Start a background sync once this many freed slots wait for durability before reuse. */
const RETIRING_SLOTS_SYNC = 8192;

/** Extents of a block-status answer at one view, in blocks. */
export interface BlockRun {
  blockCount: number;
  source: number;
}

/** Reports progress of long work: `done` of `total` units (index pages, or blocks). */
export type ProgressCallback = (done: number, total: number) => void;

export interface CompactionResult {
  /** Entries looked at, and the log bytes they stand for (scan throughput is bytes / duration). */
  entriesScanned: number;
  bytesScanned: number;
  entriesFreed: number;
  /** Data bytes whose slots went to the free list. */
  bytesFreed: number;
  /** Data bytes copied: always 0 for in-place compaction (the patent's Fig. 6). */
  bytesMoved: number;
  segmentsReleased: number;
  lsnHorizon: number;
  /** The scan alone (what the log-scanned throughput is measured on), and the whole compaction. */
  scanMs: number;
  durationMs: number;
}

export interface FoldResult {
  /** The view folded (0: nothing to fold). */
  lsnFold: number;
  /** Blocks copied into the baseline, and their bytes. */
  blockCount: number;
  bytesMoved: number;
  entriesFreed: number;
  /** Blocks whose data failed its checksum: left in the log. */
  corruptLbas: number[];
  durationMs: number;
}

export interface RollbackResult {
  /** The snapshot holding the state before the rollback. */
  cut: SnapshotCut;
  /** Blocks that got a new version (those written after the target). */
  blockCount: number;
}

export interface HistoryWindow {
  historySeconds: number;
  /** Oldest point-in-time view available, and its time (ms; 0 when before every entry). */
  lsnFirst: number;
  timeMsFirst: number;
  lsnLast: number;
}

export interface SpaceReport {
  /** Slots held by entries some kept view needs. */
  liveSlots: number;
  /** Slots held by entries compaction would free now (time-based window included). */
  deadSlots: number;
  /** Slots on the free list, in segment files that exist. */
  freeSlots: number;
  segmentFileCount: number;
  segmentBytes: number;
  baselineBytes: number;
  liveEntries: number;
  deadEntries: number;
}

/**
 * One disk's log engine: group commit of writes into data segments and the metadata
 * journal, reads of the disk at any LSN, O(1) snapshot cuts, and the history operations
 * (delete, compaction, fold into the baseline, rollback, point-in-time views), with
 * checkpoints and recovery.
 *
 * Lifecycle: create() once → open() → (write/read/flush/cutSnapshot/...)* → close().
 * Write path: operations arriving in one turn of the event loop form a batch; one batch
 * commits at a time (data writev per segment run, one journal write, syncs when a FLUSH,
 * FUA, snapshot or metadata record is in it), then becomes visible and its callers are
 * answered. A batch that fails before its journal record is written is rolled back; a failed
 * sync leaves the engine failed (every later call errors) until the disk is reopened,
 * because the kernel may have dropped the unsynced pages.
 * Maintenance (compaction, fold, rollback, delete, window changes) runs one at a time,
 * beside the write path; each puts its metadata records through the same commit pipeline.
 */
export class DiskEngine {
  /** Highest LSN whose batch completed: what readers of the current volume see. */
  private lsnVisible: number;
  /** The open batch (takes ops) and sealed batches waiting, in order. */
  private pending: Batch | undefined;
  private readonly sealed: Batch[] = [];
  private committing = false;
  private failure: SnaplogError | undefined;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  private unsyncedBytes = 0;
  private lastSyncMs = Date.now();
  private syncTimer: NodeJS.Timeout | undefined;
  private checkpointWrite: Promise<void> | undefined;
  /** The foreground part of a journal rotation (sync, switch to the next generation). */
  private rotation: Promise<void> | undefined;
  /** Every entry with LSN <= this is durable (synced data and journal). */
  private lsnDurable: number;
  private backgroundSyncRun: Promise<void> | undefined;
  /** Set by a finished background sync; the next journal write records it (shortens recovery). */
  private syncMarkLsn = 0;
  /**
   * Slots of freed entries wait here until (1) the entry or record that made them dead is
   * durable, so a crash cannot bring the old version back after its slot was rewritten, and
   * (2) every read that might have resolved the old version has finished. Parallel queues, FIFO.
   */
  private pendingSlots: number[] = [];
  private pendingLsns: number[] = [];
  private pendingEpochs: number[] = [];
  /** Reads in flight per epoch; the epoch advances whenever slots are freed. */
  private readEpoch = 0;
  private readsInFlight = new Map<number, number>();
  private readonly maintenance = new SerialQueue();
  /** While a fold writes the baseline, reads of views older than it wait (the baseline view changes at once). */
  private foldBarrier: { lsn: number; done: Promise<void> } | undefined;
  /** A fold between its FOLD_BEGIN and FOLD_DONE records (0: none), as checkpoints must carry it. */
  private foldLsnActive = 0;
  private historySecondsNow: number;
  private readonly clock: () => number;
  /** Log readers opening their files: journal rotation waits (see openLogFiles). */
  private logFilesOpening = 0;
  /** Time of the last write accepted (ms), for idle detection. */
  lastWriteMs = 0;
  checksumErrorCount = 0;

  private constructor(
    readonly geometry: DiskGeometry,
    private readonly medium: Medium,
    private readonly state: DiskState,
    private readonly segments: SegmentFiles,
    private baseline: MediumFile | undefined,
    private journal: MediumFile,
    private journalGeneration: number,
    private journalPositionBytes: number,
    private readonly events: DiskEngineEvents,
    private readonly tuning: DiskEngineTuning,
  ) {
    this.lsnVisible = state.lsnLast;
    this.lsnDurable = state.lsnLast;
    this.historySecondsNow = geometry.historySeconds;
    this.clock = tuning.clock ?? Date.now;
    this.syncTimer = setInterval(() => this.syncIfStale(), UNSYNCED_MS_MAX);
    this.syncTimer.unref();
  }

  get blockCount(): number {
    return this.geometry.sizeBytes / this.geometry.blockSizeBytes;
  }

  /** Writes the files of a new, empty disk: journal 1 and an empty checkpoint naming it. */
  static async create(medium: Medium): Promise<void> {
    const journal = await medium.open(journalFileName(1), { create: true });
    try {
      await journal.writev([encodeHeaderRecord(1, Date.now())], 0);
      await journal.sync();
    } finally {
      await journal.close();
    }
    const empty = new DiskState(false, false);
    await writeCheckpoint(medium, encodeCheckpoint(checkpointStateOf(empty, 1)));
  }

  /**
   * Opens a disk: recovery (checkpoint, journal replay, freeing), then a fold that a crash
   * interrupted is finished before anything is served. The baseline is whatever
   * baseline.img holds, if it exists.
   */
  static async open(medium: Medium, geometry: DiskGeometry, events: DiskEngineEvents = {}, tuning: DiskEngineTuning = {}): Promise<DiskEngine> {
    const segments = new SegmentFiles(medium, geometry.blockSizeBytes, tuning.segmentSizeBytes);
    await segments.discover();
    const hasBaseline = await medium.exists(BASELINE_FILE);
    const recovered = await recoverDisk({
      diskName: geometry.name,
      medium,
      segments,
      hasBaseline,
      reclaimOverwritten: geometry.historySeconds === 0,
    });
    const journal = await medium.open(journalFileName(recovered.generation), { create: false });
    if (recovered.droppedTailBytes > 0) {
      await journal.truncate(recovered.journalEndBytes);
      await journal.sync();
    }
    for (const generation of recovered.staleGenerations) await medium.remove(journalFileName(generation));
    const baseline = hasBaseline ? await medium.open(BASELINE_FILE, { create: false }) : undefined;
    const engine = new DiskEngine(geometry, medium, recovered.state, segments, baseline, journal, recovered.generation, recovered.journalEndBytes, events, tuning);
    if (recovered.foldLsn !== 0) {
      // Recovery pinned the fold's view; FOLD_DONE's apply drops the pin.
      try {
        engine.foldLsnActive = recovered.foldLsn;
        await engine.ensureBaseline();
        await engine.finishFold(recovered.foldLsn, undefined);
      } catch (error) {
        await engine.abandon();
        throw fromSystemError(error, { disk: geometry.name });
      }
    }
    return engine;
  }

  // ---- queries -------------------------------------------------------------------------

  get lsnLast(): number {
    return this.lsnVisible;
  }

  get snapshots(): readonly SnapshotCut[] {
    return this.state.snapshots;
  }

  get hasBaseline(): boolean {
    return this.state.hasBaseline;
  }

  get historySeconds(): number {
    return this.historySecondsNow;
  }

  findSnapshot(name: string): SnapshotCut | undefined {
    return this.state.findSnapshot(name);
  }

  stats() {
    return {
      entryCount: this.state.entries.count,
      slotCount: this.state.slots.slotLimit - this.state.slots.freeSlotCount,
      segmentBytes: this.segments.fileCount * this.segments.segmentSizeBytes,
      journalBytes: this.journalPositionBytes,
      memoryBytes: this.state.memoryBytes,
      lsnLast: this.lsnVisible,
      lsnHorizon: this.state.lsnHorizon,
      timePointCount: this.state.times.count,
    };
  }

  /** Wall-clock time (ms) of the entry with this LSN. */
  timeOfLsn(lsn: number): number {
    return this.state.times.timeOf(lsn);
  }

  /** The LSN of the disk as it was at `timeMs` (no window check). */
  lsnAtTime(timeMs: number): number {
    return this.state.times.lsnAtTime(timeMs, this.lsnVisible);
  }

  /**
   * The history window now: every view from lsnFirst to the current one can be attached.
   * With a zero window only the current view is in it.
   */
  historyWindow(nowMs = this.clock()): HistoryWindow {
    const lsnLast = this.lsnVisible;
    let lsnFirst = lsnLast;
    if (this.historySecondsNow > 0) {
      lsnFirst = Math.max(this.state.lsnHorizon, Math.min(this.lsnAtTime(nowMs - this.historySecondsNow * 1000), lsnLast));
    }
    return { historySeconds: this.historySecondsNow, lsnFirst, timeMsFirst: lsnFirst === 0 ? 0 : this.timeOfLsn(lsnFirst), lsnLast };
  }

  /**
   * Checks that the view at `lsn` can be attached now: the baseline (LSN 0), inside the
   * history window, or a snapshot's cut or a pinned view. Throws OUTSIDE_WINDOW (naming the
   * window) otherwise.
   */
  checkViewAvailable(lsn: number, asked = `LSN ${lsn}`): void {
    if (!Number.isSafeInteger(lsn) || lsn < 0) throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `${asked} is not a valid LSN`, { disk: this.geometry.name });
    const window = this.historyWindow();
    if (lsn > window.lsnLast) {
      throw new SnaplogError(ErrorCodes.OUTSIDE_WINDOW, `${asked} of disk ${this.geometry.name} is in the future: its newest LSN is ${window.lsnLast}`, { disk: this.geometry.name, lsn });
    }
    if (lsn === 0 || lsn >= window.lsnFirst || this.state.hasCutOrPinAt(lsn)) return;
    throw this.outsideWindow(asked, window, lsn);
  }

  /**
   * The LSN of the view at `timeMs`: the time must lie inside the window (the last
   * `historySeconds`, up to now) and so must its view. Older times are refused even where a
   * snapshot holds the same state: a snapshot is addressed by its name.
   */
  viewAtTime(timeMs: number): number {
    const asked = new Date(timeMs).toISOString();
    const nowMs = this.clock();
    if (timeMs > nowMs) {
      throw new SnaplogError(ErrorCodes.OUTSIDE_WINDOW, `${asked} is in the future for disk ${this.geometry.name}`, { disk: this.geometry.name });
    }
    const lsn = this.lsnAtTime(timeMs);
    const window = this.historyWindow(nowMs);
    // Only the window: entry times before its horizon are kept coarsely, so an older time could name the wrong view.
    if (timeMs < nowMs - this.historySecondsNow * 1000 || lsn < window.lsnFirst) throw this.outsideWindow(asked, window, lsn);
    return lsn;
  }

  private outsideWindow(asked: string, window: HistoryWindow, lsn: number): SnaplogError {
    return new SnaplogError(ErrorCodes.OUTSIDE_WINDOW, `${asked} is outside the history window of disk ${this.geometry.name}: ${describeWindow(window)}`, {
      disk: this.geometry.name,
      lsn,
      hint: "attach a snapshot instead (snaplog snapshot list), or keep more history (snaplog policy set DISK --history 24h)",
    });
  }

  /**
   * Keeps the view at `lsn` (a point-in-time volume while attached): nothing it sees is freed
   * until the returned release is called (once; later calls do nothing).
   */
  pinView(lsn: number): () => void {
    this.checkViewAvailable(lsn);
    this.state.pin(lsn);
    let pinned = true;
    return () => {
      if (!pinned) return;
      pinned = false;
      this.state.unpin(lsn);
    };
  }

  /** The whole-disk check (DiskState.checkIntegrity): problems found, empty when sound. */
  checkIntegrity(): string[] {
    return this.state.checkIntegrity(this.pendingSlots);
  }

  /** Space of the log: live, dead (what compaction would free now) and free slots. */
  async space(): Promise<SpaceReport> {
    const state = this.state;
    const window = this.historyWindow();
    // A dry run of compaction with the horizon it would move to (synchronous: no write interleaves).
    const horizon = state.lsnHorizon;
    if (this.historySecondsNow > 0) state.lsnHorizon = Math.max(horizon, window.lsnFirst);
    let dead;
    try {
      dead = state.scanBlocks(0, this.blockCount, { lsnMin: 0, lsnMax: Infinity, dryRun: true }, noop);
    } finally {
      state.lsnHorizon = horizon;
    }
    const usedSlots = state.slots.slotLimit - state.slots.freeSlotCount;
    const deadSlots = dead.slotsFreed + this.pendingSlots.length;
    const slotsPerSegment = this.segments.slotsPerSegment;
    const freeSlots = Math.max(0, this.segments.fileCount * slotsPerSegment - usedSlots);
    return {
      liveSlots: usedSlots - deadSlots,
      deadSlots,
      freeSlots,
      segmentFileCount: this.segments.fileCount,
      segmentBytes: await this.segments.totalBytes(),
      baselineBytes: this.baseline === undefined ? 0 : await this.baseline.sizeBytes(),
      liveEntries: state.entries.count - dead.entriesFreed,
      deadEntries: dead.entriesFreed,
    };
  }

  // ---- writes --------------------------------------------------------------------------

  /** Writes whole blocks; `data.length` is a multiple of the block size. */
  writeBlocks(lbaFirst: number, data: Buffer, fua: boolean): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    assert(data.length % blockSizeBytes === 0, "writeBlocks takes whole blocks");
    const blockCount = data.length / blockSizeBytes;
    this.checkBlockRange(lbaFirst, blockCount, "write");
    const crcs = new Uint32Array(blockCount);
    for (let index = 0; index < blockCount; index++) {
      crcs[index] = crc32c(data.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes));
    }
    return this.enqueue({ type: "write", lbaFirst, blockCount, data, crcs }, blockCount, fua);
  }

  /** Records WRITE_ZEROES (`zero`) or TRIM (`trim`) of whole blocks. */
  zeroBlocks(lbaFirst: number, blockCount: number, kind: "zero" | "trim", options: { fua: boolean; noHole: boolean }): Promise<void> {
    this.checkBlockRange(lbaFirst, blockCount, kind);
    return this.enqueue({ type: kind, lbaFirst, blockCount, noHole: options.noHole }, blockCount, options.fua);
  }

  flush(): Promise<void> {
    return this.enqueue({ type: "flush" }, 0, true);
  }

  /**
   * Writes `data` at `offsetBytes` inside block `lba`. The rest of the block keeps its newest
   * content, decided at commit time in queue order: a read-modify-write no concurrent write
   * to the same block can interleave with.
   */
  writePartial(lba: number, offsetBytes: number, data: Buffer, fua: boolean): Promise<void> {
    this.checkBlockRange(lba, 1, "write");
    assert(offsetBytes >= 0 && offsetBytes + data.length <= this.geometry.blockSizeBytes, "partial write stays inside its block");
    return this.enqueue({ type: "partial", lba, offsetBytes, data }, 1, fua);
  }

  /**
   * Cuts the log: O(1), durable when it resolves, atomic with respect to writes. Without
   * `lsn` the cut is at the log's end; with it, at that earlier view (restore --as-snapshot),
   * which must be available (checkViewAvailable).
   */
  async cutSnapshot(name: string, lun: number, lsn?: number): Promise<SnapshotCut> {
    const cut = async () => {
      const op: SnapshotOp = { type: "snapshot", name, lun, timeMs: this.clock(), lsn, resolve: noop, reject: noop };
      await this.enqueueOp(op, 0, true);
      assert(op.cut !== undefined, "snapshot committed without a cut");
      return op.cut;
    };
    if (lsn === undefined) return cut();
    // An earlier view: checked and pinned inside maintenance, so no compaction frees it meanwhile.
    return this.maintenance.run(async () => {
      const release = this.pinView(lsn);
      try {
        return await cut();
      } finally {
        release();
      }
    });
  }

  private checkBlockRange(lbaFirst: number, blockCount: number, what: string): void {
    if (!Number.isInteger(lbaFirst) || !Number.isInteger(blockCount) || lbaFirst < 0 || blockCount < 0 || lbaFirst + blockCount > this.blockCount) {
      throw new SnaplogError(ErrorCodes.OUT_OF_RANGE, `${what} of blocks [${lbaFirst}, +${blockCount}) is outside disk ${this.geometry.name} (${this.blockCount} blocks)`, { disk: this.geometry.name });
    }
  }

  private enqueue(request: OpRequest, blockCount: number, sync: boolean): Promise<void> {
    return this.enqueueOp({ ...request, resolve: noop, reject: noop } as Op, blockCount, sync);
  }

  /**
   * Queues an op. Ops arriving in one turn of the event loop share a batch; an exclusive op
   * (a rollback) seals the open batch and takes a batch of its own, so every op queued before
   * it commits before it and every op after it, after.
   */
  private enqueueOp(op: Op, blockCount: number, sync: boolean, exclusive = false): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new SnaplogError(ErrorCodes.CLOSED, `disk ${this.geometry.name} is closing`, { disk: this.geometry.name }));
    if (blockCount > 0) this.lastWriteMs = Date.now();
    return new Promise<void>((resolve, reject) => {
      op.resolve = resolve;
      op.reject = reject;
      if (exclusive) {
        this.sealPending();
        const batch = new Batch();
        batch.ops.push(op);
        batch.sync = true;
        batch.sealed = true;
        this.sealed.push(batch);
        setImmediate(() => this.pump());
        return;
      }
      let batch = this.pending;
      if (batch === undefined) {
        batch = new Batch();
        this.pending = batch;
        // Everything that arrives in this turn of the event loop joins the batch.
        setImmediate(() => this.pump());
      }
      batch.ops.push(op);
      batch.blockCount += blockCount;
      if (sync) batch.sync = true;
      if (op.type === "partial") batch.hasPartial = true;
    });
  }

  private sealPending(): void {
    if (this.pending === undefined) return;
    this.pending.sealed = true;
    this.sealed.push(this.pending);
    this.pending = undefined;
  }

  /** Writes one metadata record through the commit pipeline (synced); `apply` runs once it is durable. */
  private commitControl(encode: (timeMs: number) => Buffer, apply: () => void = noop): Promise<void> {
    const op: ControlOp = { type: "control", encode, apply, resolve: noop, reject: noop };
    return this.enqueueOp(op, 0, true);
  }

  private pump(): void {
    if (this.committing) return;
    const batch = this.sealed.shift() ?? this.pending;
    if (batch === undefined) {
      this.wakeIdle();
      return;
    }
    if (batch === this.pending) this.pending = undefined;
    this.committing = true;
    this.commit(batch)
      .then(() => this.maybeRotateJournal())
      .catch((error: unknown) => this.events.onBackgroundError?.(fromSystemError(error, { disk: this.geometry.name })))
      .finally(() => {
        this.committing = false;
        this.pump();
      });
  }

  /** Assigns LSNs and slots, writes data then the journal records, syncs if asked, publishes. */
  private async commit(batch: Batch): Promise<void> {
    if (this.failure !== undefined) return this.settle(batch, this.failure);
    const first = batch.ops[0];
    if (first !== undefined && first.type === "rollback") return this.commitRollback(batch, first);
    if (batch.hasPartial) await this.mergePartials(batch);
    const state = this.state;
    const lsnFirst = state.lsnLast + 1;
    const timeMs = this.clock();
    const columns = new EntryColumns(batch.blockCount);
    const runs: SlotRun[] = [];
    const tail: Buffer[] = [];
    try {
      for (const op of batch.ops) {
        if (op.type === "write") this.assignWrite(op, columns, runs);
        else if (op.type === "zero" || op.type === "trim") this.assignZero(op, columns);
        else if (op.type === "snapshot") this.assignSnapshot(op, batch, tail);
        else if (op.type === "control") tail.push(op.encode(timeMs));
      }
    } catch (error) {
      state.rollback(columns.ids, columns.count, lsnFirst);
      return this.settle(batch, fromSystemError(error, { disk: this.geometry.name }));
    }
    const entriesRecord = columns.count > 0 || (batch.sync && tail.length === 0);
    const records = this.batchRecords(timeMs, entriesRecord ? encodeEntriesRecord(lsnFirst, timeMs, 0, columns) : undefined, tail, batch.sync);
    if (!(await this.writeBatch(batch, runs, records, columns, lsnFirst))) return;
    const dataBytes = runs.reduce((sum, run) => sum + run.slotCount, 0) * this.geometry.blockSizeBytes;
    this.publish(batch, columns, lsnFirst, timeMs, dataBytes);
  }

  /** The journal records of a batch: a pending sync mark, its entries, then snapshot/control records; the last carries SYNCED. */
  private batchRecords(timeMs: number, entries: Buffer | undefined, tail: Buffer[], sync: boolean): Buffer[] {
    const records: Buffer[] = [];
    if (this.syncMarkLsn > 0) {
      records.push(encodeMarkRecord(RecordType.SYNC_MARK, this.syncMarkLsn, timeMs));
      this.syncMarkLsn = 0;
    }
    if (entries !== undefined) records.push(entries);
    records.push(...tail);
    if (sync && records.length > 0) records[records.length - 1] = withSyncedFlag(records[records.length - 1]);
    return records;
  }

  /**
   * Writes a batch's data runs and records. Without a sync, data and journal record go out
   * together: recovery checks the data of every record past the last sync point, so their
   * order on disk does not matter. A sync batch writes its records only after its data (and
   * all before) is synced. Returns false when the batch failed (and was settled).
   */
  private async writeBatch(batch: Batch, runs: SlotRun[], records: Buffer[], columns: EntryColumns, lsnFirst: number): Promise<boolean> {
    const recordBytes = records.reduce((sum, record) => sum + record.length, 0);
    const writes: Promise<void>[] = runs.map((run) => this.segments.writeRun(run.slotFirst, run.buffers));
    if (!batch.sync && records.length > 0) writes.push(this.journal.writev(records, this.journalPositionBytes));
    const written = await Promise.allSettled(writes);
    const writeFailure = written.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (writeFailure !== undefined) {
      // Nothing of this batch counts: the journal position stays, the next record overwrites.
      this.state.rollback(columns.ids, columns.count, lsnFirst);
      this.settle(batch, fromSystemError(writeFailure.reason, { disk: this.geometry.name }));
      return false;
    }
    if (!batch.sync) {
      this.journalPositionBytes += recordBytes;
      return true;
    }
    try {
      await this.segments.syncDirty();
    } catch (error) {
      this.failBatch(batch, error);
      return false;
    }
    try {
      if (records.length > 0) await this.journal.writev(records, this.journalPositionBytes);
    } catch (error) {
      this.state.rollback(columns.ids, columns.count, lsnFirst);
      this.settle(batch, fromSystemError(error, { disk: this.geometry.name }));
      return false;
    }
    this.journalPositionBytes += recordBytes;
    try {
      await this.journal.sync();
    } catch (error) {
      this.failBatch(batch, error);
      return false;
    }
    return true;
  }

  /** Makes a written batch visible: times, cuts, control records' effects, reclaim; answers it. */
  private publish(batch: Batch, columns: EntryColumns, lsnFirst: number, timeMs: number, dataBytes: number): void {
    const state = this.state;
    this.unsyncedBytes = batch.sync ? 0 : this.unsyncedBytes + dataBytes;
    if (batch.sync) {
      this.lastSyncMs = Date.now();
      this.lsnDurable = state.lsnLast;
    }
    if (columns.count > 0) state.times.add(lsnFirst, timeMs);
    for (const op of batch.ops) {
      if (op.type === "snapshot" && op.cut !== undefined) state.insertSnapshot(op.cut);
      else if (op.type === "control") op.apply();
    }
    this.lsnVisible = state.lsnLast;
    if (state.reclaimOverwritten) this.reclaimBatch(columns);
    this.settle(batch, undefined);
    // Reclaimed slots wait for durability: sync early when many wait, or the log grows past need.
    if (this.unsyncedBytes >= UNSYNCED_BYTES_MAX || this.pendingSlots.length >= RETIRING_SLOTS_SYNC) this.startBackgroundSync();
  }

  /** A sync failed: the kernel may have dropped the pages; only a reopen knows what is on disk. */
  private failBatch(batch: Batch, error: unknown): void {
    const cause = fromSystemError(error, { disk: this.geometry.name });
    this.failure = new SnaplogError(ErrorCodes.IO, `disk ${this.geometry.name} failed a sync and is offline until the store is reopened: ${cause.message}`, { disk: this.geometry.name, cause: error });
    this.settle(batch, this.failure);
  }

  /** Frees the versions this batch's entries made dead (zero window); their slots wait in the pending queue. */
  private reclaimBatch(columns: EntryColumns): void {
    const before = this.pendingSlots.length;
    for (let index = 0; index < columns.count; index++) {
      const id = columns.ids[index];
      // An entry of this batch may itself have been reclaimed by a later one of the batch.
      if (this.state.entries.lsn(id) === 0) continue;
      this.state.reclaimBelow(id, this.retireSlot);
    }
    if (this.pendingSlots.length > before) this.readEpoch++;
    this.releasePendingSlots();
  }

  /** A freed entry's slot: reusable once `lsnSuperseding` is durable and no read can still see it. */
  private readonly retireSlot = (slot: number, lsnSuperseding: number): void => {
    if (!isDataSlot(slot)) return;
    this.pendingSlots.push(slot);
    this.pendingLsns.push(lsnSuperseding);
    this.pendingEpochs.push(this.readEpoch);
  };

  /** Moves pending slots whose release conditions hold to the allocator, oldest first. */
  private releasePendingSlots(): void {
    let oldestReadEpoch = Infinity;
    for (const epoch of this.readsInFlight.keys()) if (epoch < oldestReadEpoch) oldestReadEpoch = epoch;
    let ready = 0;
    while (ready < this.pendingSlots.length && this.pendingLsns[ready] <= this.lsnDurable && this.pendingEpochs[ready] < oldestReadEpoch) ready++;
    if (ready === 0) return;
    this.state.slots.releaseMany(this.pendingSlots, ready);
    this.pendingSlots.splice(0, ready);
    this.pendingLsns.splice(0, ready);
    this.pendingEpochs.splice(0, ready);
  }

  /**
   * Syncs data and journal without holding up the commit pipeline. It bounds how much
   * recovery must verify and lets reclaimed slots be reused. FLUSH/FUA never rely on it.
   */
  private startBackgroundSync(): void {
    if (this.backgroundSyncRun !== undefined || this.failure !== undefined) return;
    const lsnCovered = this.lsnVisible;
    const journal = this.journal;
    this.unsyncedBytes = 0;
    this.backgroundSyncRun = (async () => {
      await this.segments.syncDirty();
      await journal.sync();
      this.lastSyncMs = Date.now();
      if (lsnCovered > this.lsnDurable) {
        this.lsnDurable = lsnCovered;
        this.syncMarkLsn = lsnCovered;
      }
      this.releasePendingSlots();
    })()
      .catch((error: unknown) => {
        this.failure = new SnaplogError(ErrorCodes.IO, `disk ${this.geometry.name} failed a sync and is offline until the store is reopened`, { disk: this.geometry.name, cause: error });
        this.events.onBackgroundError?.(this.failure);
      })
      .finally(() => {
        this.backgroundSyncRun = undefined;
      });
  }

  /**
   * Turns each partial op into a whole-block write: the block's newest content is the last
   * earlier op of this batch that wrote it, else what the committed log holds (every earlier
   * batch is complete, and this one is the only batch committing).
   */
  private async mergePartials(batch: Batch): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const written = new Map<number, Buffer | null>(); // null: zeros
    for (let index = 0; index < batch.ops.length; index++) {
      const op = batch.ops[index];
      if (op.type === "write") {
        for (let block = 0; block < op.blockCount; block++) written.set(op.lbaFirst + block, op.data.subarray(block * blockSizeBytes, (block + 1) * blockSizeBytes));
      } else if (op.type === "zero" || op.type === "trim") {
        for (let block = 0; block < op.blockCount; block++) written.set(op.lbaFirst + block, null);
      } else if (op.type === "partial") {
        const merged = Buffer.alloc(blockSizeBytes);
        const newest = written.get(op.lba);
        try {
          if (newest === undefined) (await this.readBlocks(op.lba, 1, Infinity)).copy(merged);
          else if (newest !== null) newest.copy(merged);
        } catch (error) {
          op.reject(fromSystemError(error, { disk: this.geometry.name }));
          batch.ops[index] = { type: "void", resolve: noop, reject: noop };
          continue;
        }
        op.data.copy(merged, op.offsetBytes);
        const crcs = new Uint32Array([crc32c(merged)]);
        batch.ops[index] = { type: "write", lbaFirst: op.lba, blockCount: 1, data: merged, crcs, resolve: op.resolve, reject: op.reject };
        written.set(op.lba, merged);
      }
    }
  }

  private assignWrite(op: WriteOp, columns: EntryColumns, runs: SlotRun[]): void {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const slotsPerSegment = this.segments.slotsPerSegment;
    let run = runs[runs.length - 1];
    let pieceStart = 0;
    for (let index = 0; index < op.blockCount; index++) {
      const lba = op.lbaFirst + index;
      const slot = this.state.slots.allocate();
      const extends_ = run !== undefined && slot === run.slotFirst + run.slotCount && slot % slotsPerSegment !== 0;
      if (!extends_) {
        if (run !== undefined && index > pieceStart) run.buffers.push(op.data.subarray(pieceStart * blockSizeBytes, index * blockSizeBytes));
        pieceStart = index;
        run = { slotFirst: slot, slotCount: 0, buffers: [] };
        runs.push(run);
      }
      run!.slotCount++;
      columns.push(this.state.append(lba, slot, op.crcs[index]), lba, slot, op.crcs[index]);
    }
    if (op.blockCount > pieceStart) run!.buffers.push(op.data.subarray(pieceStart * blockSizeBytes, op.blockCount * blockSizeBytes));
  }

  private assignZero(op: ZeroOp, columns: EntryColumns): void {
    const marker = op.type === "zero" ? SLOT_ZERO : SLOT_TRIM;
    for (let index = 0; index < op.blockCount; index++) {
      const lba = op.lbaFirst + index;
      // Zeros over zeros change no volume: no entry (keeps mkfs-style full-disk discards cheap).
      if (this.state.isRedundantZero(lba, marker, op.noHole)) continue;
      columns.push(this.state.append(lba, marker, 0), lba, marker, 0);
    }
  }

  private assignSnapshot(op: SnapshotOp, batch: Batch, records: Buffer[]): void {
    const taken = this.state.findSnapshot(op.name) ?? batch.ops.find((other) => other !== op && other.type === "snapshot" && other.cut?.name === op.name);
    if (taken !== undefined) {
      // Settled with the rest of the batch; marked by leaving `cut` undefined.
      op.reject(new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${this.geometry.name} already has a snapshot named ${op.name}`, { disk: this.geometry.name }));
      op.resolve = noop;
      op.reject = noop;
      return;
    }
    op.cut = { name: op.name, lun: op.lun, lsn: op.lsn ?? this.state.lsnLast, timeMs: op.timeMs };
    records.push(encodeSnapshotRecord(RecordType.SNAPSHOT, op.cut.lsn, op.timeMs, op.lun, op.name));
  }

  private settle(batch: Batch, error: SnaplogError | undefined): void {
    for (const op of batch.ops) {
      if (error === undefined) op.resolve();
      else op.reject(error);
    }
  }

  private syncIfStale(): void {
    const stale = Date.now() - this.lastSyncMs >= UNSYNCED_MS_MAX;
    if (stale && (this.unsyncedBytes > 0 || this.pendingSlots.length > 0) && !this.closing) this.startBackgroundSync();
  }

  // ---- history: rollback, delete, window, compaction, fold ----------------------------

  /**
   * Rolls the current volume back to the view at `lsnTarget`. First the state before is cut
   * as snapshot `name` (LUN `lun`); then every block written after the target gets a new
   * version with its content at the target (data copied to new slots: no slot has two
   * owners). One synced journal write holds the cut and all new versions: a crash leaves
   * either the old current volume or the rolled-back one, never a mix. Writes queued before
   * the call commit before the rollback (and are in the snapshot); writes after, after it.
   */
  rollback(lsnTarget: number, name: string, lun: number): Promise<RollbackResult> {
    return this.maintenance.run(async () => {
      const release = this.pinView(lsnTarget);
      try {
        const op: RollbackOp = { type: "rollback", lsnTarget, name, lun, resolve: noop, reject: noop };
        await this.enqueueOp(op, 0, true, true);
        assert(op.result !== undefined, "rollback committed without a result");
        return op.result;
      } finally {
        release();
      }
    });
  }

  private async commitRollback(batch: Batch, op: RollbackOp): Promise<void> {
    const state = this.state;
    if (state.findSnapshot(op.name) !== undefined) {
      return this.settle(batch, new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${this.geometry.name} already has a snapshot named ${op.name}`, { disk: this.geometry.name }));
    }
    const lsnBefore = state.lsnLast;
    const lsnFirst = lsnBefore + 1;
    const timeMs = this.clock();
    const changed = this.blocksWrittenAfter(op.lsnTarget);
    const columns = new EntryColumns(changed.length);
    try {
      for (let start = 0; start < changed.length; start += ROLLBACK_CHUNK_BLOCKS) {
        await this.appendRestoredBlocks(changed.slice(start, start + ROLLBACK_CHUNK_BLOCKS), op.lsnTarget, columns);
      }
    } catch (error) {
      state.rollback(columns.ids, columns.count, lsnFirst);
      return this.settle(batch, fromSystemError(error, { disk: this.geometry.name }));
    }
    const cut: SnapshotCut = { name: op.name, lun: op.lun, lsn: lsnBefore, timeMs };
    const snapshotRecord = encodeSnapshotRecord(RecordType.SNAPSHOT, lsnBefore, timeMs, op.lun, op.name);
    const entries = columns.count > 0 ? encodeEntriesRecord(lsnFirst, timeMs, 0, columns) : undefined;
    const records = this.batchRecords(timeMs, undefined, entries === undefined ? [snapshotRecord] : [snapshotRecord, entries], true);
    if (!(await this.writeBatch(batch, [], records, columns, lsnFirst))) return;
    op.result = { cut, blockCount: columns.count };
    state.insertSnapshot(cut);
    this.publish(batch, columns, lsnFirst, timeMs, 0);
  }

  /** Blocks whose newest version is younger than `lsn`, in block order. */
  private blocksWrittenAfter(lsn: number): number[] {
    const state = this.state;
    const lbas: number[] = [];
    const lbaEnd = this.blockCount;
    for (let page = 0; page < state.latest.pageLimit; page++) {
      const pageLba = page * INDEX_PAGE_BLOCKS;
      if (state.pageIsEmpty(pageLba)) continue;
      for (let lba = pageLba; lba < Math.min(pageLba + INDEX_PAGE_BLOCKS, lbaEnd); lba++) {
        const id = state.latest.get(lba);
        if (id !== 0 && state.entries.lsn(id) > lsn) lbas.push(lba);
      }
    }
    return lbas;
  }

  /** Appends, for each block, a new version with its content at `lsnTarget`; writes the data. */
  private async appendRestoredBlocks(lbas: number[], lsnTarget: number, columns: EntryColumns): Promise<void> {
    const state = this.state;
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const buffer = Buffer.allocUnsafe(lbas.length * blockSizeBytes);
    const sources = lbas.map((lba) => state.resolve(lba, lsnTarget));
    const reads: Promise<void>[] = [];
    lbas.forEach((lba, index) => {
      const piece = buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes);
      const kind = state.sourceOf(sources[index]);
      if (kind === BlockSource.SLOT) reads.push(this.segments.readRun(state.entries.slot(sources[index]), piece));
      else if (kind === BlockSource.BASELINE && this.baseline !== undefined) reads.push(this.readBaseline(lba, piece));
    });
    await Promise.all(reads);
    const runs: SlotRun[] = [];
    lbas.forEach((lba, index) => {
      const id = sources[index];
      const kind = state.sourceOf(id);
      if (kind === BlockSource.ZERO || kind === BlockSource.TRIM || (kind === BlockSource.BASELINE && this.baseline === undefined)) {
        const marker = kind === BlockSource.ZERO ? SLOT_ZERO : SLOT_TRIM;
        columns.push(state.append(lba, marker, 0), lba, marker, 0);
        return;
      }
      const piece = buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes);
      const crc = crc32c(piece);
      if (kind === BlockSource.SLOT && crc !== state.entries.crc(id)) {
        this.checksumErrorCount++;
        this.events.onChecksumError?.({ disk: this.geometry.name, lba, lsn: state.entries.lsn(id) });
        throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${this.geometry.name}: block ${lba} (LSN ${state.entries.lsn(id)}) failed its checksum; nothing was rolled back`, { disk: this.geometry.name });
      }
      const slot = state.slots.allocate();
      const run = runs[runs.length - 1];
      if (run !== undefined && slot === run.slotFirst + run.slotCount && slot % this.segments.slotsPerSegment !== 0) {
        run.slotCount++;
        run.buffers.push(piece);
      } else {
        runs.push({ slotFirst: slot, slotCount: 1, buffers: [piece] });
      }
      columns.push(state.append(lba, slot, crc), lba, slot, crc);
    });
    await Promise.all(runs.map((run) => this.segments.writeRun(run.slotFirst, run.buffers)));
  }

  /**
   * Deletes a snapshot: a synced SNAPSHOT_DELETE record, after which the cut is no kept view.
   * With `free`, its partition merges into the next at once: every entry of the partition
   * that no other kept view sees is freed (in place). Returns the deleted cut.
   */
  deleteSnapshot(name: string, options: { free: boolean } = { free: true }): Promise<{ cut: SnapshotCut; entriesFreed: number; bytesFreed: number }> {
    return this.maintenance.run(async () => {
      const cut = this.state.findSnapshot(name);
      if (cut === undefined) throw notFound(`disk ${this.geometry.name} has no snapshot named ${JSON.stringify(name)}`, { disk: this.geometry.name });
      const index = this.state.snapshots.indexOf(cut);
      const lsnMin = index > 0 ? this.state.snapshots[index - 1].lsn + 1 : 0;
      await this.commitControl(
        (timeMs) => encodeSnapshotRecord(RecordType.SNAPSHOT_DELETE, cut.lsn, timeMs, cut.lun, cut.name),
        () => this.state.removeSnapshot(name),
      );
      if (!options.free) return { cut, entriesFreed: 0, bytesFreed: 0 };
      const counts = await this.scanAndFree(lsnMin, cut.lsn, undefined);
      return { cut, entriesFreed: counts.entriesFreed, bytesFreed: counts.slotsFreed * this.geometry.blockSizeBytes };
    });
  }

  /**
   * Changes the history window. From zero to a window, the horizon is first recorded at the
   * current LSN (versions reclaimed while it was zero stay gone, also after a crash), so the
   * caller persists the new window only after this resolves; to zero, the caller persists
   * it first (a replay with a zero window frees at least what the engine frees).
   */
  setHistory(seconds: number): Promise<void> {
    return this.maintenance.run(async () => {
      assert(Number.isSafeInteger(seconds) && seconds >= 0, "history window is whole seconds >= 0");
      if (this.state.reclaimOverwritten && seconds > 0) {
        const lsn = this.lsnVisible;
        await this.commitControl(
          (timeMs) => encodeMarkRecord(RecordType.HORIZON, lsn, timeMs),
          () => {
            this.state.lsnHorizon = Math.max(this.state.lsnHorizon, lsn);
          },
        );
        this.state.reclaimOverwritten = false;
      } else if (seconds === 0) {
        this.state.reclaimOverwritten = true;
      }
      this.historySecondsNow = seconds;
    });
  }

  /**
   * In-place compaction (the patent's Fig. 6): moves the window's horizon to now − window
   * (a synced HORIZON record), then frees every entry no kept view sees: unlinked, its slot
   * to the free list for later writes; no data moves. With `snapshot`, only that snapshot's
   * partition is scanned. Wholly free segment files go back to the file system but for
   * `spareSegmentCount` of them (default: the tuning's, 2), kept to take the next writes.
   * Stops early (with what it freed so far) when the disk closes.
   */
  compact(options: { snapshot?: string; onProgress?: ProgressCallback; spareSegmentCount?: number } = {}): Promise<CompactionResult> {
    return this.maintenance.run(async () => {
      const startedMs = performance.now();
      // Everything written so far durable: slots freed earlier that wait for it can be reused now.
      await this.flush();
      this.releasePendingSlots();
      await this.advanceHorizon();
      let lsnMin = 0;
      let lsnMax = Infinity;
      if (options.snapshot !== undefined) {
        const cut = this.state.findSnapshot(options.snapshot);
        if (cut === undefined) throw notFound(`disk ${this.geometry.name} has no snapshot named ${JSON.stringify(options.snapshot)}`, { disk: this.geometry.name });
        const index = this.state.snapshots.indexOf(cut);
        lsnMin = index > 0 ? this.state.snapshots[index - 1].lsn + 1 : 0;
        lsnMax = cut.lsn;
      }
      const entriesBefore = this.state.entries.count;
      const scanStartedMs = performance.now();
      const counts = await this.scanAndFree(lsnMin, lsnMax, options.onProgress);
      const scanMs = performance.now() - scanStartedMs;
      this.state.times.thinBefore(this.historySecondsNow > 0 ? this.state.lsnHorizon : this.lsnVisible, TIME_RESOLUTION_OUTSIDE_WINDOW_MS);
      const segmentsReleased = await this.releaseFreeSegments(options.spareSegmentCount ?? this.tuning.spareSegmentCount ?? SPARE_SEGMENT_COUNT_DEFAULT);
      return {
        entriesScanned: entriesBefore,
        bytesScanned: entriesBefore * this.geometry.blockSizeBytes,
        entriesFreed: counts.entriesFreed,
        bytesFreed: counts.slotsFreed * this.geometry.blockSizeBytes,
        bytesMoved: 0,
        segmentsReleased,
        lsnHorizon: this.state.lsnHorizon,
        scanMs,
        durationMs: performance.now() - startedMs,
      };
    });
  }

  /** Records the horizon of the time window (now − window) when it moved. */
  private async advanceHorizon(): Promise<void> {
    if (this.historySecondsNow === 0) return;
    const lsn = this.historyWindow().lsnFirst;
    if (lsn <= this.state.lsnHorizon) return;
    await this.commitControl(
      (timeMs) => encodeMarkRecord(RecordType.HORIZON, lsn, timeMs),
      () => {
        this.state.lsnHorizon = Math.max(this.state.lsnHorizon, lsn);
      },
    );
  }

  /** The compaction scan over every written block, a few index pages per turn of the event loop. */
  private async scanAndFree(lsnMin: number, lsnMax: number, onProgress: ProgressCallback | undefined): Promise<{ entriesFreed: number; slotsFreed: number }> {
    const total = { entriesFreed: 0, slotsFreed: 0 };
    const pageLimit = this.state.latest.pageLimit;
    for (let page = 0; page < pageLimit && !this.closing; page += SCAN_PAGES_PER_TURN) {
      const pageEnd = Math.min(page + SCAN_PAGES_PER_TURN, pageLimit);
      const counts = this.state.scanBlocks(page * INDEX_PAGE_BLOCKS, pageEnd * INDEX_PAGE_BLOCKS, { lsnMin, lsnMax, dryRun: false }, this.retireSlot);
      total.entriesFreed += counts.entriesFreed;
      total.slotsFreed += counts.slotsFreed;
      if (counts.entriesFreed > 0) {
        this.readEpoch++;
        this.releasePendingSlots();
      }
      onProgress?.(pageEnd, pageLimit);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return total;
  }

  /** Deletes wholly free segment files beyond `spare` of them; returns how many. */
  private async releaseFreeSegments(spare: number): Promise<number> {
    const candidates = this.state.slots.wholeFreeSegments().filter((segment) => this.segments.exists(segment));
    // Keep the lowest ones: reused first, so the log stays at the front of its slot space.
    candidates.sort((a, b) => a - b);
    let released = 0;
    for (const segment of candidates.slice(spare)) {
      if (!this.state.slots.isWholeFree(segment)) continue;
      await this.segments.release(segment);
      released++;
    }
    return released;
  }

  /**
   * Folds the oldest kept view into the baseline (compact --into-baseline): with K the oldest
   * view any snapshot, pin or the window needs, the data every block has at K is written into
   * the baseline image, then that version and all older ones are freed. Views at K or later
   * read the same bytes as before; the baseline volume becomes the disk at K.
   * Durability: FOLD_BEGIN (synced) → baseline writes → baseline sync → FOLD_DONE (synced) →
   * free. A crash in between resumes the fold at the next open.
   */
  foldIntoBaseline(options: { onProgress?: ProgressCallback } = {}): Promise<FoldResult> {
    return this.maintenance.run(async () => {
      const startedMs = performance.now();
      // A fold that failed after FOLD_BEGIN is still under way (its view still pinned): finish it first.
      if (this.foldLsnActive !== 0) {
        const resumed = await this.finishFold(this.foldLsnActive, options.onProgress);
        return { ...resumed, durationMs: performance.now() - startedMs };
      }
      await this.advanceHorizon();
      const lsnFold = Math.min(this.state.oldestKeptView(), this.lsnVisible);
      if (lsnFold === 0) return { lsnFold: 0, blockCount: 0, bytesMoved: 0, entriesFreed: 0, corruptLbas: [], durationMs: performance.now() - startedMs };
      // The pin belongs to the fold from here to FOLD_DONE (whose apply drops it), across failures.
      this.state.pin(lsnFold);
      try {
        await this.ensureBaseline();
        await this.commitControl(
          (timeMs) => encodeMarkRecord(RecordType.FOLD_BEGIN, lsnFold, timeMs),
          () => {
            this.foldLsnActive = lsnFold;
          },
        );
      } catch (error) {
        this.state.unpin(lsnFold);
        throw error;
      }
      const result = await this.finishFold(lsnFold, options.onProgress);
      return { ...result, durationMs: performance.now() - startedMs };
    });
  }

  /** The part of a fold after FOLD_BEGIN (also run at open when a crash interrupted one). */
  private async finishFold(lsnFold: number, onProgress: ProgressCallback | undefined): Promise<Omit<FoldResult, "durationMs">> {
    let done = noop;
    this.foldBarrier = { lsn: lsnFold, done: new Promise<void>((resolve) => (done = resolve)) };
    try {
      const copy = await copyViewIntoBaseline({
        state: this.state,
        segments: this.segments,
        baseline: this.baseline!,
        blockSizeBytes: this.geometry.blockSizeBytes,
        lsnFold,
        onProgress,
      });
      for (const lba of copy.corruptLbas) {
        this.checksumErrorCount++;
        this.events.onChecksumError?.({ disk: this.geometry.name, lba, lsn: lsnFold });
      }
      await this.baseline!.sync();
      let entriesFreed = 0;
      await this.commitControl(
        (timeMs) => encodeFoldDoneRecord(lsnFold, timeMs, copy.corruptLbas),
        () => {
          this.state.dropFoldedAll(lsnFold, new Set(copy.corruptLbas), (slot, lsn) => {
            entriesFreed++;
            this.retireSlot(slot, lsn);
          });
          this.readEpoch++;
          this.foldLsnActive = 0;
          this.state.unpin(lsnFold);
        },
      );
      this.releasePendingSlots();
      return { lsnFold, blockCount: copy.blockCount, bytesMoved: copy.blockCount * this.geometry.blockSizeBytes, entriesFreed, corruptLbas: copy.corruptLbas };
    } finally {
      this.foldBarrier = undefined;
      done();
    }
  }

  /** Makes sure baseline.img exists (sparse, the disk's size) before a fold writes into it. */
  private async ensureBaseline(): Promise<void> {
    if (this.baseline !== undefined) return;
    const file = await this.medium.open(BASELINE_FILE, { create: true });
    await file.truncate(this.geometry.sizeBytes);
    await file.sync();
    await this.medium.syncDirectory();
    this.baseline = file;
    this.state.hasBaseline = true;
  }

  /**
   * The blocks that differ between the views at lsnFrom and lsnTo (both available), as runs in
   * block order. A block differs when some entry of it lies between the two LSNs.
   */
  async *diffRuns(lsnFrom: number, lsnTo: number): AsyncGenerator<{ lbaFirst: number; blockCount: number }> {
    const releaseFrom = this.pinView(lsnFrom);
    let releaseTo = noop;
    try {
      releaseTo = this.pinView(lsnTo);
      const lsnLow = Math.min(lsnFrom, lsnTo);
      const lsnHigh = Math.max(lsnFrom, lsnTo);
      const state = this.state;
      let runFirst = -1;
      let runCount = 0;
      const lbaEnd = this.blockCount;
      for (let page = 0; page < state.latest.pageLimit; page++) {
        const pageLba = page * INDEX_PAGE_BLOCKS;
        if (state.pageIsEmpty(pageLba)) continue;
        const found: { lbaFirst: number; blockCount: number }[] = [];
        for (let lba = pageLba; lba < Math.min(pageLba + INDEX_PAGE_BLOCKS, lbaEnd); lba++) {
          const id = state.resolve(lba, lsnHigh);
          if (id === 0 || state.entries.lsn(id) <= lsnLow) continue;
          if (runCount > 0 && lba === runFirst + runCount) {
            runCount++;
            continue;
          }
          if (runCount > 0) found.push({ lbaFirst: runFirst, blockCount: runCount });
          runFirst = lba;
          runCount = 1;
        }
        for (const run of found) yield run;
        if (page % SCAN_PAGES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      if (runCount > 0) yield { lbaFirst: runFirst, blockCount: runCount };
    } finally {
      releaseFrom();
      releaseTo();
    }
  }

  /**
   * The data of the entry of `lba` with exactly this LSN (checksum-checked), zeros for a zero
   * or trim entry, or undefined when no such entry is live (never was, or freed).
   */
  async readEntryData(lba: number, lsn: number): Promise<Buffer | undefined> {
    const state = this.state;
    const id = state.findEntry(lba, lsn);
    if (id === 0) return undefined;
    const data = Buffer.alloc(this.geometry.blockSizeBytes);
    const slot = state.entries.slot(id);
    if (!isDataSlot(slot)) return data;
    const crc = state.entries.crc(id);
    await this.awaitReads([this.segments.readRun(slot, data)]);
    const ids = new Uint32Array([id]);
    this.verifyBlocks(data, ids, new Uint32Array([crc]), new Float64Array([lsn]), lba);
    return data;
  }

  /**
   * Opens the files that hold the log in LSN order — the checkpoint, then each journal after
   * it, up to where appends stand now — for a streaming reader (log-reader.ts). Journal
   * rotation waits while they open; open handles stay valid after a later rotation removes
   * or replaces the files.
   */
  async openLogFiles(): Promise<{ checkpoint: MediumFile; journals: { file: MediumFile; endBytes: number }[]; lsnLast: number }> {
    this.logFilesOpening++;
    try {
      // A rotation under way finishes first (and none starts while logFilesOpening > 0).
      while (this.rotation !== undefined || this.checkpointWrite !== undefined) await (this.rotation ?? this.checkpointWrite);
      const generation = this.journalGeneration;
      const endBytes = this.journalPositionBytes;
      const lsnLast = this.lsnVisible;
      const checkpoint = await this.medium.open(CHECKPOINT_FILE, { create: false });
      const journals: { file: MediumFile; endBytes: number }[] = [];
      try {
        for (let current = (await readCheckpointHeader(checkpoint)).generation; current <= generation; current++) {
          const file = await this.medium.open(journalFileName(current), { create: false });
          journals.push({ file, endBytes: current === generation ? endBytes : await file.sizeBytes() });
        }
      } catch (error) {
        await checkpoint.close();
        for (const journal of journals) await journal.file.close();
        throw error;
      }
      return { checkpoint, journals, lsnLast };
    } finally {
      this.logFilesOpening--;
    }
  }

  /** Time-ordered facts the log reader needs from memory. */
  logView() {
    return {
      isLive: (lba: number, lsn: number) => this.state.findEntry(lba, lsn) !== 0,
      timeOf: (lsn: number) => this.state.times.timeOf(lsn),
      snapshots: this.state.snapshots,
      blockSizeBytes: this.geometry.blockSizeBytes,
    };
  }

  // ---- checkpoints ---------------------------------------------------------------------

  /**
   * Between batches, when the journal is long: make everything durable, capture the tables,
   * switch appends to a new journal generation, then write the checkpoint in the background.
   * Until the checkpoint's rename, opening replays the old journal and then the new one.
   */
  private async maybeRotateJournal(force = false): Promise<void> {
    if (this.failure !== undefined || this.checkpointWrite !== undefined || this.rotation !== undefined) return;
    if (!force && (this.journalPositionBytes < (this.tuning.journalCheckpointBytes ?? JOURNAL_CHECKPOINT_BYTES) || this.logFilesOpening > 0)) return;
    this.rotation = this.rotateJournal().finally(() => (this.rotation = undefined));
    await this.rotation;
  }

  private async rotateJournal(): Promise<void> {
    await this.backgroundSyncRun;
    await this.segments.syncDirty();
    // A failed append may have left bytes past the position; a journal that is not the last must end clean.
    await this.journal.truncate(this.journalPositionBytes);
    await this.journal.sync();
    const generation = this.journalGeneration + 1;
    const buffers = encodeCheckpoint(checkpointStateOf(this.state, generation, this.foldLsnActive));
    const journal = await this.medium.open(journalFileName(generation), { create: true });
    const header = encodeHeaderRecord(generation, Date.now());
    await journal.truncate(0);
    await journal.writev([header], 0);
    await journal.sync();
    await this.medium.syncDirectory();
    const previous = this.journal;
    const previousGeneration = this.journalGeneration;
    this.journal = journal;
    this.journalGeneration = generation;
    this.journalPositionBytes = header.length;
    this.unsyncedBytes = 0;
    this.syncMarkLsn = 0;
    this.lsnDurable = this.lsnVisible;
    this.releasePendingSlots();
    this.checkpointWrite = (async () => {
      await writeCheckpoint(this.medium, buffers);
      // A background sync that began before the switch may still hold the old journal.
      await this.backgroundSyncRun;
      await previous.close();
      await this.medium.remove(journalFileName(previousGeneration));
    })()
      .catch((error: unknown) => this.events.onBackgroundError?.(fromSystemError(error, { disk: this.geometry.name, path: CHECKPOINT_FILE })))
      .finally(() => {
        this.checkpointWrite = undefined;
      });
  }

  // ---- reads ---------------------------------------------------------------------------

  /** Reads whole blocks of the disk as it was at `lsnView` (Infinity: the current volume). */
  async readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer> {
    this.checkBlockRange(lbaFirst, blockCount, "read");
    if (this.failure !== undefined) throw this.failure;
    // The baseline volume changes as a whole when a fold finishes: never show it half written.
    if (this.foldBarrier !== undefined && lsnView < this.foldBarrier.lsn) await this.foldBarrier.done;
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const view = Math.min(lsnView, this.lsnVisible);
    const target = Buffer.allocUnsafe(blockCount * blockSizeBytes);
    const ids = new Uint32Array(blockCount);
    const expectedCrcs = new Uint32Array(blockCount);
    const lsns = new Float64Array(blockCount);
    const reads: Promise<void>[] = [];
    const state = this.state;
    let runStart = 0;
    let runKind = -1;
    let runSlotFirst = 0;
    const finishRun = (end: number) => {
      if (end <= runStart) return;
      const piece = target.subarray(runStart * blockSizeBytes, end * blockSizeBytes);
      if (runKind === BlockSource.SLOT) reads.push(this.segments.readRun(runSlotFirst, piece));
      else if (runKind === BlockSource.BASELINE && this.baseline !== undefined) reads.push(this.readBaseline(lbaFirst + runStart, piece));
      else piece.fill(0);
    };
    for (let index = 0; index < blockCount; index++) {
      const id = state.resolve(lbaFirst + index, view);
      let kind = state.sourceOf(id);
      // Captured now: the entry may be reclaimed (and its id reused) while the read is in flight.
      if (kind === BlockSource.SLOT) {
        ids[index] = id;
        expectedCrcs[index] = state.entries.crc(id);
        lsns[index] = state.entries.lsn(id);
      }
      if (kind === BlockSource.TRIM) kind = BlockSource.ZERO;
      if (kind === BlockSource.BASELINE && this.baseline === undefined) kind = BlockSource.ZERO;
      const slot = kind === BlockSource.SLOT ? state.entries.slot(id) : 0;
      const continues =
        kind === runKind &&
        (kind !== BlockSource.SLOT || (slot === runSlotFirst + (index - runStart) && slot % this.segments.slotsPerSegment !== 0));
      if (!continues) {
        finishRun(index);
        runStart = index;
        runKind = kind;
        runSlotFirst = slot;
      }
    }
    finishRun(blockCount);
    if (reads.length > 0) await this.awaitReads(reads);
    this.verifyBlocks(target, ids, expectedCrcs, lsns, lbaFirst);
    return target;
  }

  /** Waits for a read's I/O while holding its epoch, so its slots are not reused under it. */
  private async awaitReads(reads: Promise<void>[]): Promise<void> {
    const epoch = this.readEpoch;
    this.readsInFlight.set(epoch, (this.readsInFlight.get(epoch) ?? 0) + 1);
    try {
      await Promise.all(reads);
    } finally {
      const left = this.readsInFlight.get(epoch)! - 1;
      if (left === 0) {
        this.readsInFlight.delete(epoch);
        if (this.pendingSlots.length > 0) this.releasePendingSlots();
      } else {
        this.readsInFlight.set(epoch, left);
      }
    }
  }

  private async readBaseline(lbaFirst: number, target: Buffer): Promise<void> {
    const readBytes = await this.baseline!.read(target, lbaFirst * this.geometry.blockSizeBytes);
    if (readBytes < target.length) target.fill(0, readBytes);
  }

  private verifyBlocks(target: Buffer, ids: Uint32Array, expectedCrcs: Uint32Array, lsns: Float64Array, lbaFirst: number): void {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    for (let index = 0; index < ids.length; index++) {
      if (ids[index] === 0) continue;
      if (crc32c(target.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)) === expectedCrcs[index]) continue;
      this.checksumErrorCount++;
      const lba = lbaFirst + index;
      const lsn = lsns[index];
      this.events.onChecksumError?.({ disk: this.geometry.name, lba, lsn });
      throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${this.geometry.name}: block ${lba} (LSN ${lsn}) failed its checksum`, { disk: this.geometry.name, lsn });
    }
  }

  /**
   * What each block of [lbaFirst, +blockCount) is at `lsnView`, as runs (data, zero, trim,
   * baseline). Skips unwritten index pages whole, so mapping a large empty disk is cheap.
   */
  blockRuns(lbaFirst: number, blockCount: number, lsnView: number, runCountMax = BLOCK_RUN_COUNT_MAX): BlockRun[] {
    this.checkBlockRange(lbaFirst, blockCount, "block status");
    const view = Math.min(lsnView, this.lsnVisible);
    const runs: BlockRun[] = [];
    const pageBlocks = DiskState.pageBlocks;
    let lba = lbaFirst;
    const end = lbaFirst + blockCount;
    // Answers a prefix once runCountMax runs are complete: clients ask again from there.
    while (lba < end) {
      let source: number;
      let count: number;
      if (this.state.pageIsEmpty(lba)) {
        source = BlockSource.BASELINE;
        count = Math.min(end, (Math.floor(lba / pageBlocks) + 1) * pageBlocks) - lba;
      } else {
        source = this.state.sourceOf(this.state.resolve(lba, view));
        count = 1;
      }
      const last = runs[runs.length - 1];
      if (last !== undefined && last.source === source) {
        last.blockCount += count;
      } else {
        if (runs.length === runCountMax) break;
        runs.push({ blockCount: count, source });
      }
      lba += count;
    }
    return runs;
  }

  // ---- lifecycle -----------------------------------------------------------------------

  /** Resolves once nothing is queued or committing. */
  private idle(): Promise<void> {
    if (!this.committing && this.pending === undefined && this.sealed.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Finishes queued work, writes a final checkpoint (so the next open replays nothing), closes
   * files. Running maintenance stops at its next step (a fold resumes at the next open).
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.syncTimer);
    await this.maintenance.run(async () => undefined);
    await this.idle();
    await this.backgroundSyncRun;
    if (this.checkpointWrite !== undefined) await this.checkpointWrite;
    // A journal holding only its header adds nothing to the checkpoint: leave the files as they are.
    if (this.failure === undefined && this.journalPositionBytes > JOURNAL_HEADER_BYTES) {
      try {
        await this.maybeRotateJournal(true);
        if (this.checkpointWrite !== undefined) await this.checkpointWrite;
      } catch (error) {
        this.events.onBackgroundError?.(fromSystemError(error, { disk: this.geometry.name }));
      }
    }
    await this.closeFiles();
  }

  /** For tests: the engine as a crash would leave it (no final checkpoint), files closed. */
  async abandon(): Promise<void> {
    this.closing = true;
    clearInterval(this.syncTimer);
    await this.maintenance.run(async () => undefined);
    await this.idle();
    await this.backgroundSyncRun;
    if (this.checkpointWrite !== undefined) await this.checkpointWrite;
    await this.closeFiles();
  }

  private async closeFiles(): Promise<void> {
    await this.journal.close();
    await this.segments.close();
    await this.baseline?.close();
  }
}

function describeWindow(window: HistoryWindow): string {
  if (window.historySeconds === 0) return `its history window is 0 (only the current volume, LSN ${window.lsnLast}, and its snapshots)`;
  const since = window.timeMsFirst === 0 ? "its creation" : new Date(window.timeMsFirst).toISOString();
  return `it keeps every write from ${since} (LSN ${window.lsnFirst}) to now (LSN ${window.lsnLast}), a ${window.historySeconds} s window; older views are its snapshots`;
}

function checkpointStateOf(state: DiskState, generation: number, foldLsn = 0) {
  const timePoints: { lsn: number; timeMs: number }[] = [];
  for (let index = 0; index < state.times.count; index++) timePoints.push(state.times.pointAt(index));
  return {
    generation,
    lsnLast: state.lsnLast,
    entryCount: state.entries.count,
    forEachEntry: (visit: (lba: number, lsn: number, slot: number, crc: number) => void) => state.forEachEntryInLsnOrder(visit),
    snapshots: [...state.snapshots],
    timePoints,
    lsnHorizon: state.lsnHorizon,
    foldLsn,
  };
}
