import { assert, ErrorCodes, fromSystemError, notFound } from "../util/errors.js";
import { SerialQueue } from "../util/serial-queue.js";
import { blockCrcsOf } from "../util/crc32c.js";
import { Baseline, BASELINE_FILE, type FoldResult } from "./history/baseline-fold.js";
import { checkpointStateOf, encodeCheckpoint, writeCheckpoint, type SnapshotCut } from "./log/checkpoint.js";
import { noop, type Op, type RollbackOp } from "./write/commit-batch.js";
import { CommitPipeline } from "./write/commit-pipeline.js";
import { ByteRangeWriter } from "./write/byte-range-writer.js";
import { Compactor, type CompactionResult, type ProgressCallback } from "./history/compaction.js";
import { HistoryCap, type HistoryCapResult } from "./history/history-cap.js";
import { DiskState } from "./tables/disk-state.js";
import { blockCountOf, checkBlockRange, type DiskEngineEvents, type DiskEngineTuning, type DiskGeometry } from "./engine-options.js";
import { checkViewAvailable, historyWindow, viewAtTime, type HistoryWindow, type WindowInput } from "./history/history-window.js";
import { Inspections, type ScrubReport, type SpaceReport } from "./inspections.js";
import { JournalFile } from "./log/journal-file.js";
import { encodeHeaderRecord, encodeMarkRecord, encodeSnapshotRecord, journalFileName, RecordType } from "./log/journal-format.js";
import type { Medium, MediumFile } from "./medium.js";
import { ReadPath, type BlockRun } from "./read-path.js";
import type { EntriesData, EntriesDataOptions } from "./log/log-reader.js";
import type { LogFiles } from "./log/log-reader.js";
import { recoverDisk } from "./log/recovery.js";
import { RetiringSlots } from "./space/retiring-slots.js";
import { SegmentFiles } from "./space/segment-files.js";

export type { DiskEngineEvents, DiskEngineTuning, DiskGeometry, Sabotage } from "./engine-options.js";
export type { HistoryWindow } from "./history/history-window.js";
export type { BlockRun } from "./read-path.js";
export type { ScrubReport, SpaceReport } from "./inspections.js";

export { BASELINE_FILE } from "./history/baseline-fold.js";
export type { FoldResult } from "./history/baseline-fold.js";
export type { CompactionResult, ProgressCallback } from "./history/compaction.js";
export type { HistoryCapResult } from "./history/history-cap.js";

/** What compaction and folds did since a disk was opened (DiskEngine.maintenanceCounters). */
export interface MaintenanceCounters {
  compactions: number;
  compactionBytesFreed: number;
  folds: number;
  foldBytesMoved: number;
  foldBytesFreed: number;
}

export interface RollbackResult {
  /** The snapshot holding the state before the rollback. */
  cut: SnapshotCut;
  /** Blocks that got a new version (those written after the target). */
  blockCount: number;
}

/** A run of whole blocks an import applies (DiskEngine.importRuns). */
export interface ImportRun {
  lba: number;
  blockCount: number;
  kind: "write" | "zero" | "trim";
  /** Write runs: blockCount blocks. */
  data?: Buffer;
  /** Write runs, when the caller has them: each block's CRC32C, computed from `data` (the log keeps them). */
  blockCrcs?: Uint32Array;
}

/**
 * One disk's log engine, the facade over its parts: the write path (write/: byte ranges split
 * into block ops, group commit into data segments and the journal, checkpoints), the read path
 * (read-path.ts: the disk at any LSN), O(1) snapshot cuts, the history operations — delete,
 * compaction, fold into the baseline, rollback, points in time (history/, docs/history.md) —
 * the inspections (inspections.ts), and recovery at open (log/recovery.ts). This class holds the
 * lifecycle and the order of maintenance; each method delegates the work.
 *
 * Lifecycle: create() once → open() → (write/read/flush/cutSnapshot/...)* → close().
 * Maintenance (compaction, fold, rollback, delete, window changes, as-snapshot cuts, scrub) runs
 * one at a time, beside the write path; each puts its metadata records through the commit pipeline.
 */
export class DiskEngine {
  private readonly pipeline: CommitPipeline;
  private readonly retiring: RetiringSlots;
  private readonly maintenance = new SerialQueue();
  private readonly compactor: Compactor;
  private readonly historyCap: HistoryCap;
  private readonly baseline: Baseline;
  private readonly reads: ReadPath;
  private readonly writes: ByteRangeWriter;
  private readonly inspections: Inspections;
  private historySecondsNow: number;
  private readonly clock: () => number;
  checksumErrorCount = 0;
  /** What compaction and folds did since the disk was opened, by any caller (metrics). */
  readonly maintenanceCounters: MaintenanceCounters = {
    compactions: 0,
    compactionBytesFreed: 0,
    folds: 0,
    foldBytesMoved: 0,
    foldBytesFreed: 0,
  };

  private constructor(
    readonly geometry: DiskGeometry,
    medium: Medium,
    private readonly state: DiskState,
    private readonly segments: SegmentFiles,
    baselineFile: MediumFile | undefined,
    journal: JournalFile,
    private readonly events: DiskEngineEvents,
    tuning: DiskEngineTuning,
  ) {
    this.historySecondsNow = geometry.historySeconds;
    this.clock = tuning.clock ?? Date.now;
    const reportChecksumError = (lba: number, lsn: number) => this.reportChecksumError(lba, lsn);
    this.retiring = new RetiringSlots(() => this.pipeline.releaseRetired());
    this.pipeline = new CommitPipeline({
      diskName: geometry.name,
      blockSizeBytes: geometry.blockSizeBytes,
      blockCount: this.blockCount,
      medium,
      state,
      segments,
      retiring: this.retiring,
      events,
      tuning,
      clock: this.clock,
      journal,
      readBlocks: (lbaFirst, blockCount, lsnView) => this.reads.readBlocks(lbaFirst, blockCount, lsnView),
      restoreCopy: () => ({
        diskName: geometry.name,
        state,
        segments,
        blockSizeBytes: geometry.blockSizeBytes,
        readBaseline: this.baseline.file === undefined ? undefined : (lbaFirst, target) => this.baseline.read(lbaFirst, target),
        onChecksumError: reportChecksumError,
      }),
      foldLsn: () => this.baseline.foldLsn,
      windowLsnFirst: () => this.historyWindow().lsnFirst,
      onPublished: (ids, count) => {
        if (this.historyCap.notePublished(ids, count)) events.onHistoryCapDue?.({ disk: geometry.name });
      },
    });
    const common = {
      diskName: geometry.name,
      blockSizeBytes: geometry.blockSizeBytes,
      state,
      segments,
      pipeline: this.pipeline,
      retiring: this.retiring,
      tuning,
    };
    this.compactor = new Compactor({
      ...common,
      historySeconds: () => this.historySecondsNow,
      windowLsnFirst: () => this.historyWindow().lsnFirst,
    });
    this.historyCap = new HistoryCap({
      blockSizeBytes: geometry.blockSizeBytes,
      segmentSizeBytes: segments.segmentSizeBytes,
      state,
      pipeline: this.pipeline,
      compactor: this.compactor,
      historySeconds: () => this.historySecondsNow,
      windowLsnFirst: () => this.historyWindow().lsnFirst,
    });
    this.baseline = new Baseline(
      {
        ...common,
        sizeBytes: geometry.sizeBytes,
        medium,
        compactor: this.compactor,
        reportChecksumError,
      },
      baselineFile,
    );
    const parts = { geometry, state, segments, retiring: this.retiring, pipeline: this.pipeline, baseline: this.baseline };
    this.reads = new ReadPath({ ...parts, reportChecksumError });
    this.writes = new ByteRangeWriter(geometry, this.pipeline);
    this.inspections = new Inspections({
      ...parts,
      reportChecksumError,
      historySeconds: () => this.historySecondsNow,
      windowLsnFirst: () => this.historyWindow().lsnFirst,
    });
  }

  // ---- lifecycle ------------------------------------------------------------------------

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
  static async open(
    medium: Medium,
    geometry: DiskGeometry,
    events: DiskEngineEvents = {},
    tuning: DiskEngineTuning = {},
  ): Promise<DiskEngine> {
    const segments = new SegmentFiles(medium, geometry.blockSizeBytes, tuning.segmentSizeBytes, (segment) =>
      events.onSegmentCreated?.({ disk: geometry.name, segment }),
    );
    await segments.discover();
    const hasBaseline = await medium.exists(BASELINE_FILE);
    const recovered = await recoverDisk({
      diskName: geometry.name,
      medium,
      segments,
      hasBaseline,
      reclaimOverwritten: geometry.historySeconds === 0,
      sabotage: tuning.sabotage,
    });
    // What follows the last valid record (a torn or unpromised tail, the zero reserve) is zeroed
    // in place, not cut: opening a disk on a full file system must not need space.
    const journal = await JournalFile.open({
      diskName: geometry.name,
      medium,
      generation: recovered.generation,
      endBytes: recovered.journalEndBytes,
      droppedTailBytes: recovered.droppedTailBytes,
      reserveBytes: tuning.journalReserveBytes,
    });
    for (const generation of recovered.staleGenerations) await medium.remove(journalFileName(generation));
    // Durably gone before the first append: a headerless newest journal (a rotation cut short)
    // that came back after the next crash would make the one appended to "not the last" again,
    // and its tail, torn by that crash, would read as corruption (simulator seed 710).
    if (recovered.staleGenerations.length > 0) await medium.syncDirectory();
    const baseline = hasBaseline ? await medium.open(BASELINE_FILE, { create: false }) : undefined;
    const engine = new DiskEngine(geometry, medium, recovered.state, segments, baseline, journal, events, tuning);
    if (recovered.foldLsn !== 0) {
      // Recovery pinned the fold's view; FOLD_DONE's apply drops the pin. A fold that cannot finish
      // for lack of space stays under way (the baseline volume refuses reads) and the disk opens.
      try {
        engine.baseline.foldLsn = recovered.foldLsn;
        await engine.baseline.finish(recovered.foldLsn, undefined);
      } catch (error) {
        const failure = fromSystemError(error, { disk: geometry.name });
        if (failure.code !== ErrorCodes.NO_SPACE) {
          await engine.abandon();
          throw failure;
        }
        events.onBackgroundError?.(failure);
      }
    }
    return engine;
  }

  /**
   * Finishes queued work, writes a final checkpoint (so the next open replays nothing), closes
   * files. Running maintenance stops at its next step (a fold resumes at the next open).
   */
  async close(): Promise<void> {
    if (this.pipeline.closing) return;
    await this.shutDown(true);
  }

  /** For tests: the engine as a crash would leave it (no final checkpoint), files closed. */
  async abandon(): Promise<void> {
    await this.shutDown(false);
  }

  private async shutDown(checkpoint: boolean): Promise<void> {
    this.pipeline.beginClose();
    await this.maintenance.run(async () => undefined);
    await this.pipeline.finish(checkpoint);
    await this.segments.close();
    await this.baseline.file?.close();
  }

  // ---- what the disk is now -------------------------------------------------------------

  get blockCount(): number {
    return blockCountOf(this.geometry);
  }

  get lsnLast(): number {
    return this.pipeline.lsnVisible;
  }

  /** Time of the last write accepted (ms), for idle detection. */
  get lastWriteMs(): number {
    return this.pipeline.lastWriteMs;
  }

  get snapshots(): readonly SnapshotCut[] {
    return this.state.snapshots;
  }

  findSnapshot(name: string): SnapshotCut | undefined {
    return this.state.findSnapshot(name);
  }

  /** The snapshots whose creation recorded `lun` (the journal keeps each snapshot's LUN as it was given). */
  snapshotsWithLun(lun: number): readonly SnapshotCut[] {
    return this.state.snapshotsWithLun(lun);
  }

  /** A snapshot's partition (DiskState.snapshotPartition); NOT_FOUND when there is no such snapshot. */
  snapshotPartition(name: string): { cut: SnapshotCut; lsnFirst: number; lsnLast: number } {
    const partition = this.state.snapshotPartition(name);
    if (partition === undefined)
      throw notFound(`disk ${this.geometry.name} has no snapshot named ${JSON.stringify(name)}`, { disk: this.geometry.name });
    return partition;
  }

  get hasBaseline(): boolean {
    return this.state.hasBaseline;
  }

  /** Baseline blocks the baseline volume answers EIO for (see DiskState.baselineBad). */
  get baselineBadBlocks(): readonly number[] {
    return [...this.state.baselineBad];
  }

  /** The fold under way: its LSN between FOLD_BEGIN and FOLD_DONE (0: none); the next fold, or the next open, finishes it. */
  get foldLsn(): number {
    return this.baseline.foldLsn;
  }

  get historySeconds(): number {
    return this.historySecondsNow;
  }

  stats() {
    return {
      entryCount: this.state.entries.count,
      slotCount: this.state.slots.slotLimit - this.state.slots.freeSlotCount,
      segmentBytes: this.segments.fileCount * this.segments.segmentSizeBytes,
      journalBytes: this.pipeline.journalBytes,
      memoryBytes: this.state.memoryBytes,
      lsnLast: this.pipeline.lsnVisible,
      lsnHorizon: this.state.lsnHorizon,
      timePointCount: this.state.times.count,
    };
  }

  // ---- views: the window, points in time, pins ------------------------------------------

  /** Wall-clock time (ms) of the entry with this LSN. */
  timeOfLsn(lsn: number): number {
    return this.state.times.timeOf(lsn);
  }

  /** The LSN of the disk as it was at `timeMs` (no window check). */
  lsnAtTime(timeMs: number): number {
    return this.state.times.lsnAtTime(timeMs, this.pipeline.lsnVisible);
  }

  /** The history window now: every view from lsnFirst to the current one can be attached (history-window.ts). */
  historyWindow(nowMs = this.clock()): HistoryWindow {
    return historyWindow(this.windowInput(nowMs));
  }

  /** Throws OUTSIDE_WINDOW (naming the window) unless the view at `lsn` can be attached now (history-window.ts). */
  checkViewAvailable(lsn: number, asked = `LSN ${lsn}`): void {
    checkViewAvailable(this.windowInput(this.clock()), lsn, asked);
    // Views older than a fold under way see its half-written baseline: not until it is done.
    this.baseline.checkView(lsn, asked);
  }

  /** The LSN of the view at `timeMs`, which must lie inside the window (history-window.ts). */
  viewAtTime(timeMs: number): number {
    return viewAtTime(this.windowInput(this.clock()), timeMs);
  }

  private windowInput(nowMs: number): WindowInput {
    return {
      diskName: this.geometry.name,
      state: this.state,
      lsnVisible: this.pipeline.lsnVisible,
      historySeconds: this.historySecondsNow,
      nowMs,
    };
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

  // ---- the write path (write/) ----------------------------------------------------------

  /**
   * Writes bytes at any offset, all of them or none: whole blocks as they are, a partial block
   * at either edge merged with that block's newest content at commit time (ByteRangeWriter).
   */
  writeBytes(offsetBytes: number, data: Buffer, fua: boolean): Promise<void> {
    return this.writes.writeBytes(offsetBytes, data, fua);
  }

  /**
   * WRITE_ZEROES (`zero`) or TRIM (`trim`) of any byte range, all of it or none: whole blocks
   * as zero/trim entries, the partial edges as zero bytes merged into their blocks.
   */
  zeroBytes(offsetBytes: number, lengthBytes: number, kind: "zero" | "trim", options: { fua: boolean; noHole: boolean }): Promise<void> {
    return this.writes.zeroBytes(offsetBytes, lengthBytes, kind, options);
  }

  flush(): Promise<void> {
    return this.pipeline.flush();
  }

  /**
   * Cuts the log: O(1), durable when it resolves, atomic with respect to writes. Without
   * `lsn` the cut is at the log's end; with it, at that earlier view (restore --as-snapshot),
   * which must be available (checkViewAvailable).
   */
  async cutSnapshot(name: string, lun: number, lsn?: number, timeMs?: number): Promise<SnapshotCut> {
    const cut = () => this.pipeline.commitSnapshot(name, lun, lsn, timeMs);
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

  /**
   * Applies runs of whole blocks as one batch whose entries carry `timeMs` (an import keeps
   * each entry's source time, so the receiver can attach the points in time a stream covers).
   * Durable when it resolves with `sync`.
   */
  importRuns(runs: readonly ImportRun[], timeMs: number, sync: boolean): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const ops: Op[] = runs.map((run): Op => {
      checkBlockRange(this.geometry, run.lba, run.blockCount, "import");
      if (run.kind !== "write")
        return {
          type: run.kind,
          lbaFirst: run.lba,
          blockCount: run.blockCount,
          noHole: run.kind === "zero",
          group: undefined,
          resolve: noop,
          reject: noop,
        };
      const data = run.data;
      assert(data !== undefined && data.length === run.blockCount * blockSizeBytes, "an import write run carries its blocks");
      const crcs = run.blockCrcs ?? blockCrcsOf(data, blockSizeBytes);
      assert(crcs.length === run.blockCount, "an import run's checksums are one per block");
      return { type: "write", lbaFirst: run.lba, blockCount: run.blockCount, data, crcs, group: undefined, resolve: noop, reject: noop };
    });
    return this.pipeline.enqueueBatchAt(ops, timeMs, sync);
  }

  // ---- the read path (read-path.ts) -----------------------------------------------------

  /** Reads whole blocks of the disk as it was at `lsnView` (Infinity: the current volume). */
  readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer> {
    return this.reads.readBlocks(lbaFirst, blockCount, lsnView);
  }

  /**
   * What each block of [lbaFirst, +blockCount) is at `lsnView`, as runs (data, zero, trim,
   * baseline), at most `runCountMax` of them (a prefix; the caller asks again from its end).
   */
  blockRuns(lbaFirst: number, blockCount: number, lsnView: number, runCountMax?: number): BlockRun[] {
    return this.reads.blockRuns(lbaFirst, blockCount, lsnView, runCountMax);
  }

  /**
   * The blocks that differ between the views at lsnFrom and lsnTo (both available), as runs in
   * block order. A block differs when some entry of it lies between the two LSNs. Both views
   * stay pinned until the iteration ends.
   */
  async *diffRuns(lsnFrom: number, lsnTo: number): AsyncGenerator<{ lbaFirst: number; blockCount: number }> {
    const releaseFrom = this.pinView(lsnFrom);
    let releaseTo = noop;
    try {
      releaseTo = this.pinView(lsnTo);
      yield* this.reads.changedRuns(Math.min(lsnFrom, lsnTo), Math.max(lsnFrom, lsnTo));
    } finally {
      releaseFrom();
      releaseTo();
    }
  }

  /** The data of entries (block lbas[i] at LSN lsns[i]) in one buffer, checksum-checked; consecutive slots are read in one I/O (ReadPath). */
  readEntriesData(lbas: ArrayLike<number>, lsns: ArrayLike<number>, options: EntriesDataOptions = {}): Promise<EntriesData> {
    return this.reads.readEntriesData(lbas, lsns, options);
  }

  /** The files that hold the log in LSN order, for a streaming reader (CommitPipeline.openLogFiles). */
  openLogFiles(): Promise<LogFiles> {
    return this.pipeline.openLogFiles();
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

  // ---- history (history/, docs/history.md): maintenance, one at a time ------------------

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
        await this.pipeline.enqueueExclusive(op);
        assert(op.result !== undefined, "rollback committed without a result");
        return op.result;
      } finally {
        release();
      }
    });
  }

  /**
   * Deletes a snapshot: a synced SNAPSHOT_DELETE record, after which the cut is no kept view.
   * With `free`, its partition merges into the next at once: every entry of the partition
   * that no other kept view sees is freed (in place). Returns the deleted cut.
   */
  deleteSnapshot(
    name: string,
    options: { free: boolean } = { free: true },
  ): Promise<{ cut: SnapshotCut; entriesFreed: number; bytesFreed: number }> {
    return this.maintenance.run(async () => {
      const { cut, lsnFirst } = this.snapshotPartition(name);
      await this.pipeline.commitControl(
        (timeMs) => encodeSnapshotRecord(RecordType.SNAPSHOT_DELETE, cut.lsn, timeMs, cut.lun, cut.name),
        () => this.state.removeSnapshot(name),
      );
      if (!options.free) return { cut, entriesFreed: 0, bytesFreed: 0 };
      const counts = await this.compactor.scanAndFree(lsnFirst, cut.lsn, undefined);
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
      // A window change is a durability point, whatever it records.
      await this.pipeline.flush();
      if (this.state.reclaimOverwritten && seconds > 0) {
        const lsn = this.pipeline.lsnVisible;
        await this.pipeline.commitControl(
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
      // A longer window can hold more than the cap's running count knew.
      this.historyCap.forget();
    });
  }

  /** The space cap on the window's history (`--history-max`; null: none). Applied by capHistory. */
  get historyMaxBytes(): number | null {
    return this.historyCap.maxBytes;
  }

  /**
   * Sets the space cap on the log bytes held only for the window (null: none). Nothing is
   * recorded: the cap is the store's policy; each capHistory records the horizon it moves.
   * onHistoryCapDue tells when the write path may have passed it.
   */
  setHistoryMax(maxBytes: number | null): void {
    assert(maxBytes === null || (Number.isSafeInteger(maxBytes) && maxBytes > 0), "history cap is bytes > 0");
    this.historyCap.setMax(maxBytes);
  }

  /** Whether capHistory may find the cap passed (cheap: a running bound, no walk). */
  get historyCapDue(): boolean {
    return this.historyCap.due;
  }

  /**
   * Caps the window by space (history/history-cap.ts): when the log bytes held only for the
   * window pass the cap, the horizon moves to the smallest LSN that brings them within it (a
   * synced HORIZON record), and what became dead is freed. Snapshots and pins are never touched.
   * Undefined without a cap or a window.
   */
  capHistory(): Promise<HistoryCapResult | undefined> {
    return this.maintenance.run(() => this.historyCap.cap());
  }

  /** The log bytes held only for the window now (a walk of every version chain). */
  windowOnlyBytes(): Promise<number> {
    return this.maintenance.run(() => this.historyCap.windowOnlyBytes());
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
      const partition = options.snapshot === undefined ? undefined : this.snapshotPartition(options.snapshot);
      const result = await this.compactor.compact({ ...options, partition });
      this.maintenanceCounters.compactions++;
      this.maintenanceCounters.compactionBytesFreed += result.bytesFreed;
      return result;
    });
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
      const result = await this.baseline.fold(options.onProgress);
      this.maintenanceCounters.folds++;
      this.maintenanceCounters.foldBytesMoved += result.bytesMoved;
      this.maintenanceCounters.foldBytesFreed += result.bytesFreed;
      return result;
    });
  }

  // ---- inspections (inspections.ts) -----------------------------------------------------

  /**
   * Where the bytes of block `lba` at the view `lsnView` lie: a segment file and offset, the
   * baseline, or nowhere (zeros). For tools and tests that explain a failed read.
   */
  /**
   * For each block of [lbaFirst, +blockCount): the LSN of the version the view at `lsnView`
   * sees (0: the baseline, or zeros without one) and its BlockSource. An export of a compacted
   * stream asks this per partition.
   */
  versionsSeenBy(lbaFirst: number, blockCount: number, lsnView: number): { lsns: Float64Array; sources: Uint8Array } {
    checkBlockRange(this.geometry, lbaFirst, blockCount, "versions");
    const lsns = new Float64Array(blockCount);
    const sources = new Uint8Array(blockCount);
    const view = Math.min(lsnView, this.pipeline.lsnVisible);
    for (let index = 0; index < blockCount; index++) {
      const id = this.state.entrySeenBy(lbaFirst + index, view);
      lsns[index] = id === 0 ? 0 : this.state.entries.lsn(id);
      sources[index] = this.state.sourceOf(id);
    }
    return { lsns, sources };
  }

  locateBlock(lba: number, lsnView: number): { file: string; offsetBytes: number; lsn: number } | undefined {
    return this.inspections.locateBlock(lba, lsnView);
  }

  /**
   * Reads every live entry's data and checks it against its CRC32C (`snaplog scrub`): the
   * entries whose data is damaged, with where it lies. Runs as maintenance; nothing is repaired.
   */
  async scrub(onProgress?: ProgressCallback): Promise<ScrubReport> {
    return this.maintenance.run(() => this.inspections.scrub(onProgress));
  }

  /** The whole-disk check (DiskState.checkIntegrity): problems found, empty when sound. */
  checkIntegrity(): string[] {
    return this.inspections.checkIntegrity();
  }

  /** Space of the log: live, dead (what compaction would free now) and free slots. */
  space(): Promise<SpaceReport> {
    return this.inspections.space();
  }

  /** A stored block failed its checksum (a read, the scrub, a fold, a rollback): counted, and told to the events. */
  private reportChecksumError(lba: number, lsn: number): void {
    this.checksumErrorCount++;
    this.events.onChecksumError?.({ disk: this.geometry.name, lba, lsn });
  }
}
