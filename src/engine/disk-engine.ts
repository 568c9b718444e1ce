import { assert, ErrorCodes, fromSystemError, notFound, SnaplogError } from "../util/errors.js";
import { crc32c } from "../util/crc32c.js";
import { SerialQueue } from "../util/serial-queue.js";
import { Baseline, BASELINE_FILE, type FoldResult } from "./history/baseline-fold.js";
import { checkpointStateOf, encodeCheckpoint, writeCheckpoint, type SnapshotCut } from "./log/checkpoint.js";
import { noop, type OpGroup, type RollbackOp } from "./write/commit-batch.js";
import { CommitPipeline } from "./write/commit-pipeline.js";
import { Compactor, SCAN_PAGES_PER_TURN, type CompactionResult, type ProgressCallback } from "./history/compaction.js";
import { INDEX_PAGE_BLOCKS } from "./constants.js";
import { BlockSource, DiskState, isDataSlot } from "./tables/disk-state.js";
import type { DiskEngineEvents, DiskEngineTuning, DiskGeometry } from "./engine-options.js";
import { checkViewAvailable, historyWindow, viewAtTime, type HistoryWindow, type WindowInput } from "./history/history-window.js";
import { encodeHeaderRecord, encodeMarkRecord, encodeSnapshotRecord, journalFileName, RecordType } from "./log/journal-format.js";
import type { Medium, MediumFile } from "./medium.js";
import { recoverDisk } from "./log/recovery.js";
import { RetiringSlots } from "./space/retiring-slots.js";
import { SegmentFiles } from "./space/segment-files.js";

export type { DiskEngineEvents, DiskEngineTuning, DiskGeometry, Sabotage } from "./engine-options.js";
export type { HistoryWindow } from "./history/history-window.js";

export { BASELINE_FILE } from "./history/baseline-fold.js";
export type { FoldResult } from "./history/baseline-fold.js";
export type { CompactionResult, ProgressCallback } from "./history/compaction.js";

/** A block-status answer stops after this many runs (a shorter answer is allowed by NBD). */
const BLOCK_RUN_COUNT_MAX = 256;

/** Extents of a block-status answer at one view, in blocks. */
export interface BlockRun {
  blockCount: number;
  source: number;
}

export interface RollbackResult {
  /** The snapshot holding the state before the rollback. */
  cut: SnapshotCut;
  /** Blocks that got a new version (those written after the target). */
  blockCount: number;
}

export interface ScrubReport {
  entriesChecked: number;
  bytesChecked: number;
  /** Entries whose data failed its checksum or could not be read. */
  corrupt: { lba: number; lsn: number; file: string; offsetBytes: number; reason: string }[];
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
 * One disk's log engine: the write path (commit-pipeline.ts: group commit into data segments and
 * the metadata journal, checkpoints), reads of the disk at any LSN, O(1) snapshot cuts, and the
 * history operations — delete, compaction, fold into the baseline, rollback, points in time
 * (docs/history.md) — with recovery at open (recovery.ts).
 *
 * Lifecycle: create() once → open() → (write/read/flush/cutSnapshot/...)* → close().
 * Maintenance (compaction, fold, rollback, delete, window changes, as-snapshot cuts) runs one at
 * a time, beside the write path; each puts its metadata records through the commit pipeline.
 */
export class DiskEngine {
  private readonly pipeline: CommitPipeline;
  private readonly retiring: RetiringSlots;
  private readonly maintenance = new SerialQueue();
  private readonly compactor: Compactor;
  private readonly baseline: Baseline;
  private historySecondsNow: number;
  private readonly clock: () => number;
  checksumErrorCount = 0;

  private constructor(
    readonly geometry: DiskGeometry,
    medium: Medium,
    private readonly state: DiskState,
    private readonly segments: SegmentFiles,
    baselineFile: MediumFile | undefined,
    journal: { journal: MediumFile; generation: number; positionBytes: number; sizeBytes: number },
    private readonly events: DiskEngineEvents,
    tuning: DiskEngineTuning,
  ) {
    this.historySecondsNow = geometry.historySeconds;
    this.clock = tuning.clock ?? Date.now;
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
      journal: journal.journal,
      journalGeneration: journal.generation,
      journalPositionBytes: journal.positionBytes,
      journalSizeBytes: journal.sizeBytes,
      readBlocks: (lbaFirst, blockCount, lsnView) => this.readBlocks(lbaFirst, blockCount, lsnView),
      restoreCopy: () => ({
        diskName: geometry.name,
        state,
        segments,
        blockSizeBytes: geometry.blockSizeBytes,
        readBaseline: this.baseline.file === undefined ? undefined : (lbaFirst, target) => this.baseline.read(lbaFirst, target),
        onChecksumError: (lba, lsn) => this.reportChecksumError(lba, lsn),
      }),
      foldLsnActive: () => this.baseline.foldLsnActive,
      windowLsnFirst: () => this.historyWindow().lsnFirst,
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
      windowFirst: () => this.historyWindow().lsnFirst,
    });
    this.baseline = new Baseline(
      {
        ...common,
        sizeBytes: geometry.sizeBytes,
        medium,
        compactor: this.compactor,
        reportChecksumError: (lba, lsn) => this.reportChecksumError(lba, lsn),
      },
      baselineFile,
    );
  }

  /** Time of the last write accepted (ms), for idle detection. */
  get lastWriteMs(): number {
    return this.pipeline.lastWriteMs;
  }

  private reportChecksumError(lba: number, lsn: number): void {
    this.checksumErrorCount++;
    this.events.onChecksumError?.({ disk: this.geometry.name, lba, lsn });
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
  static async open(
    medium: Medium,
    geometry: DiskGeometry,
    events: DiskEngineEvents = {},
    tuning: DiskEngineTuning = {},
  ): Promise<DiskEngine> {
    const segments = new SegmentFiles(medium, geometry.blockSizeBytes, tuning.segmentSizeBytes);
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
    const journal = await medium.open(journalFileName(recovered.generation), { create: false });
    // What follows the last valid record (a torn or unpromised tail, the zero reserve) is zeroed
    // in place, not cut: opening a disk on a full file system must not need space.
    const journalSizeBytes = await journal.sizeBytes();
    if (recovered.droppedTailBytes > 0) {
      await zeroRange(journal, recovered.journalEndBytes, journalSizeBytes);
      await journal.sync();
    }
    for (const generation of recovered.staleGenerations) await medium.remove(journalFileName(generation));
    const baseline = hasBaseline ? await medium.open(BASELINE_FILE, { create: false }) : undefined;
    const engine = new DiskEngine(
      geometry,
      medium,
      recovered.state,
      segments,
      baseline,
      { journal, generation: recovered.generation, positionBytes: recovered.journalEndBytes, sizeBytes: journalSizeBytes },
      events,
      tuning,
    );
    if (recovered.foldLsn !== 0) {
      // Recovery pinned the fold's view; FOLD_DONE's apply drops the pin. A fold that cannot finish
      // for lack of space stays under way (the baseline volume refuses reads) and the disk opens.
      try {
        engine.baseline.foldLsnActive = recovered.foldLsn;
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

  get lsnLast(): number {
    return this.pipeline.lsnVisible;
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

  /** A snapshot's partition (DiskState.snapshotPartition); NOT_FOUND when there is no such snapshot. */
  snapshotPartition(name: string): { cut: SnapshotCut; lsnFirst: number; lsnLast: number } {
    const partition = this.state.snapshotPartition(name);
    if (partition === undefined)
      throw notFound(`disk ${this.geometry.name} has no snapshot named ${JSON.stringify(name)}`, { disk: this.geometry.name });
    return partition;
  }

  /** A fold between FOLD_BEGIN and FOLD_DONE (0: none): the next fold, or the next open, finishes it. */
  get foldPending(): number {
    return this.baseline.foldLsnActive;
  }

  /** Baseline blocks the baseline volume answers EIO for (see DiskState.baselineBad). */
  get baselineBadBlocks(): readonly number[] {
    return [...this.state.baselineBad];
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

  /**
   * Where the bytes of block `lba` at the view `lsnView` lie: a segment file and offset, the
   * baseline, or nowhere (zeros). For tools and tests that explain a failed read.
   */
  locateBlock(lba: number, lsnView: number): { file: string; offsetBytes: number; lsn: number } | undefined {
    this.checkBlockRange(lba, 1, "locate");
    const id = this.state.resolve(lba, Math.min(lsnView, this.pipeline.lsnVisible));
    const blockSizeBytes = this.geometry.blockSizeBytes;
    if (id === 0) return this.baseline.file === undefined ? undefined : { file: BASELINE_FILE, offsetBytes: lba * blockSizeBytes, lsn: 0 };
    const slot = this.state.entries.slot(id);
    if (!isDataSlot(slot)) return undefined;
    return { ...this.segments.locate(slot), lsn: this.state.entries.lsn(id) };
  }

  /**
   * Reads every live entry's data and checks it against its CRC32C (`snaplog scrub`): the
   * entries whose data is damaged, with where it lies. Runs a few thousand entries per turn of
   * the event loop; nothing is repaired.
   */
  async scrub(onProgress?: ProgressCallback): Promise<ScrubReport> {
    return this.maintenance.run(async () => {
      const state = this.state;
      const report: ScrubReport = { entriesChecked: 0, bytesChecked: 0, corrupt: [] };
      const blockSizeBytes = this.geometry.blockSizeBytes;
      const block = Buffer.alloc(blockSizeBytes);
      const pageLimit = state.latest.pageLimit;
      for (let page = 0; page < pageLimit && !this.pipeline.closing; page++) {
        const pageLba = page * INDEX_PAGE_BLOCKS;
        if (state.pageIsEmpty(pageLba)) continue;
        const found: { lba: number; lsn: number; slot: number; crc: number }[] = [];
        for (let lba = pageLba; lba < pageLba + INDEX_PAGE_BLOCKS; lba++) {
          for (let id = state.latest.get(lba); id !== 0; id = state.entries.prev(id)) {
            const slot = state.entries.slot(id);
            if (isDataSlot(slot)) found.push({ lba, lsn: state.entries.lsn(id), slot, crc: state.entries.crc(id) });
          }
        }
        for (const entry of found) {
          // Still live now? A write may have freed it while this step awaited.
          if (state.findEntry(entry.lba, entry.lsn) === 0) continue;
          try {
            await this.retiring.guardRead([this.segments.readRun(entry.slot, block)]);
          } catch (error) {
            report.corrupt.push({
              lba: entry.lba,
              lsn: entry.lsn,
              ...this.segments.locate(entry.slot),
              reason: `unreadable: ${fromSystemError(error, {}).message}`,
            });
            continue;
          }
          report.entriesChecked++;
          report.bytesChecked += blockSizeBytes;
          if (crc32c(block) !== entry.crc) {
            report.corrupt.push({ lba: entry.lba, lsn: entry.lsn, ...this.segments.locate(entry.slot), reason: "checksum mismatch" });
            this.reportChecksumError(entry.lba, entry.lsn);
          }
        }
        onProgress?.(page + 1, pageLimit);
      }
      return report;
    });
  }

  /** The whole-disk check (DiskState.checkIntegrity): problems found, empty when sound. */
  checkIntegrity(): string[] {
    return this.state.checkIntegrity(this.retiring.waiting);
  }

  /** Space of the log: live, dead (what compaction would free now) and free slots. */
  async space(): Promise<SpaceReport> {
    const state = this.state;
    // A dry run of compaction with the horizon it would move to (advanceHorizon).
    const lsnHorizon = this.historySecondsNow > 0 ? this.historyWindow().lsnFirst : state.lsnHorizon;
    const dead = state.scanBlocks(0, this.blockCount, { lsnMin: 0, lsnMax: Infinity, dryRun: true, lsnHorizon }, noop);
    const usedSlots = state.slots.slotLimit - state.slots.freeSlotCount;
    const deadSlots = dead.slotsFreed + this.retiring.count;
    // Free slots below the high-water mark, in segment files that exist (a released file holds none).
    let freeSlots = 0;
    const segmentCount = Math.ceil(state.slots.slotLimit / this.segments.slotsPerSegment);
    for (let segment = 0; segment < segmentCount; segment++)
      if (this.segments.exists(segment)) freeSlots += state.slots.freeCountOf(segment);
    return {
      liveSlots: usedSlots - deadSlots,
      deadSlots,
      freeSlots,
      segmentFileCount: this.segments.fileCount,
      segmentBytes: await this.segments.totalBytes(),
      baselineBytes: this.baseline.file === undefined ? 0 : await this.baseline.file.sizeBytes(),
      liveEntries: state.entries.count - dead.entriesFreed,
      deadEntries: dead.entriesFreed,
    };
  }

  /** Writes whole blocks; `data.length` is a multiple of the block size. */
  writeBlocks(lbaFirst: number, data: Buffer, fua: boolean): Promise<void> {
    return this.queueBlocks(lbaFirst, data, fua, undefined);
  }

  private queueBlocks(lbaFirst: number, data: Buffer, fua: boolean, group: OpGroup | undefined): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    assert(data.length % blockSizeBytes === 0, "writeBlocks takes whole blocks");
    const blockCount = data.length / blockSizeBytes;
    this.checkBlockRange(lbaFirst, blockCount, "write");
    const crcs = new Uint32Array(blockCount);
    for (let index = 0; index < blockCount; index++) {
      crcs[index] = crc32c(data.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes));
    }
    return this.pipeline.enqueue({ type: "write", lbaFirst, blockCount, data, crcs, group }, blockCount, fua);
  }

  /** Records WRITE_ZEROES (`zero`) or TRIM (`trim`) of whole blocks. */
  zeroBlocks(lbaFirst: number, blockCount: number, kind: "zero" | "trim", options: { fua: boolean; noHole: boolean }): Promise<void> {
    this.checkBlockRange(lbaFirst, blockCount, kind);
    return this.pipeline.enqueue({ type: kind, lbaFirst, blockCount, noHole: options.noHole }, blockCount, options.fua);
  }

  flush(): Promise<void> {
    return this.pipeline.flush();
  }

  /**
   * Writes bytes at any offset, all of them or none: whole blocks as they are, a partial block
   * at either edge merged with that block's newest content at commit time (in queue order: a
   * read-modify-write no concurrent write to the block can interleave with). Every part is
   * queued in this one turn, so all of them share one batch; if an edge's read fails, nothing
   * of the request is written.
   */
  writeBytes(offsetBytes: number, data: Buffer, fua: boolean): Promise<void> {
    const group: OpGroup = { failure: undefined };
    return this.queueBytes(offsetBytes, data, fua, group);
  }

  /**
   * WRITE_ZEROES (`zero`) or TRIM (`trim`) of any byte range, all of it or none: whole blocks
   * as zero/trim entries, the partial edges as zero bytes merged into their blocks.
   */
  zeroBytes(offsetBytes: number, lengthBytes: number, kind: "zero" | "trim", options: { fua: boolean; noHole: boolean }): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const end = offsetBytes + lengthBytes;
    const wholeFirst = Math.ceil(offsetBytes / blockSizeBytes);
    const wholeEnd = Math.floor(end / blockSizeBytes);
    const group: OpGroup = { failure: undefined };
    if (wholeEnd <= wholeFirst) return this.queueBytes(offsetBytes, Buffer.alloc(lengthBytes), options.fua, group);
    this.checkBlockRange(wholeFirst, wholeEnd - wholeFirst, kind);
    const work: Promise<void>[] = [];
    if (offsetBytes < wholeFirst * blockSizeBytes)
      work.push(this.queueBytes(offsetBytes, Buffer.alloc(wholeFirst * blockSizeBytes - offsetBytes), options.fua, group));
    work.push(
      this.pipeline.enqueue(
        { type: kind, lbaFirst: wholeFirst, blockCount: wholeEnd - wholeFirst, noHole: options.noHole, group },
        wholeEnd - wholeFirst,
        options.fua,
      ),
    );
    if (end > wholeEnd * blockSizeBytes)
      work.push(this.queueBytes(wholeEnd * blockSizeBytes, Buffer.alloc(end - wholeEnd * blockSizeBytes), options.fua, group));
    return Promise.all(work).then(noop);
  }

  /** Queues the parts of a byte-range write into `group`: partial edges, whole blocks. */
  private queueBytes(offsetBytes: number, data: Buffer, fua: boolean, group: OpGroup): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const end = offsetBytes + data.length;
    const wholeFirst = Math.ceil(offsetBytes / blockSizeBytes);
    const wholeEnd = Math.floor(end / blockSizeBytes);
    const partial = (lba: number, offsetInBlock: number, bytes: Buffer) => {
      this.checkBlockRange(lba, 1, "write");
      return this.pipeline.enqueue({ type: "partial", lba, offsetBytes: offsetInBlock, data: bytes, group }, 1, fua);
    };
    if (wholeEnd < wholeFirst) return partial(wholeEnd, offsetBytes - wholeEnd * blockSizeBytes, data);
    const work: Promise<void>[] = [];
    const headBytes = wholeFirst * blockSizeBytes - offsetBytes;
    if (headBytes > 0) work.push(partial(wholeFirst - 1, blockSizeBytes - headBytes, data.subarray(0, headBytes)));
    if (wholeEnd > wholeFirst)
      work.push(this.queueBlocks(wholeFirst, data.subarray(headBytes, headBytes + (wholeEnd - wholeFirst) * blockSizeBytes), fua, group));
    const tailBytes = end - wholeEnd * blockSizeBytes;
    if (tailBytes > 0) work.push(partial(wholeEnd, 0, data.subarray(data.length - tailBytes)));
    return Promise.all(work).then(noop);
  }

  /**
   * Cuts the log: O(1), durable when it resolves, atomic with respect to writes. Without
   * `lsn` the cut is at the log's end; with it, at that earlier view (restore --as-snapshot),
   * which must be available (checkViewAvailable).
   */
  async cutSnapshot(name: string, lun: number, lsn?: number): Promise<SnapshotCut> {
    const cut = () => this.pipeline.commitSnapshot(name, lun, lsn);
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
    if (
      !Number.isInteger(lbaFirst) ||
      !Number.isInteger(blockCount) ||
      lbaFirst < 0 ||
      blockCount < 0 ||
      lbaFirst + blockCount > this.blockCount
    ) {
      throw new SnaplogError(
        ErrorCodes.OUT_OF_RANGE,
        `${what} of blocks [${lbaFirst}, +${blockCount}) is outside disk ${this.geometry.name} (${this.blockCount} blocks)`,
        { disk: this.geometry.name },
      );
    }
  }

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
    return this.maintenance.run(() => {
      const partition = options.snapshot === undefined ? undefined : this.snapshotPartition(options.snapshot);
      return this.compactor.compact({ ...options, partition });
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
    return this.maintenance.run(() => this.baseline.fold(options.onProgress));
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
    await this.retiring.guardRead([this.segments.readRun(slot, data)]);
    const ids = new Uint32Array([id]);
    this.verifyBlocks(data, ids, new Uint32Array([crc]), new Float64Array([lsn]), lba);
    return data;
  }

  /** The files that hold the log in LSN order, for a streaming reader (CommitPipeline.openLogFiles). */
  openLogFiles(): ReturnType<CommitPipeline["openLogFiles"]> {
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

  /** Reads whole blocks of the disk as it was at `lsnView` (Infinity: the current volume). */
  async readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer> {
    this.checkBlockRange(lbaFirst, blockCount, "read");
    if (this.pipeline.failure !== undefined) throw this.pipeline.failure;
    // The baseline volume changes as a whole when a fold finishes: never show it half written.
    const foldCopying = this.baseline.copyingFor(lsnView);
    if (foldCopying !== undefined) await foldCopying;
    this.baseline.checkReadable(lsnView);
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const view = Math.min(lsnView, this.pipeline.lsnVisible);
    const target = Buffer.allocUnsafe(blockCount * blockSizeBytes);
    const ids = new Uint32Array(blockCount);
    const expectedCrcs = new Uint32Array(blockCount);
    const lsns = new Float64Array(blockCount);
    const reads: Promise<void>[] = [];
    const state = this.state;
    let runStart = 0;
    let runKind = -1;
    let runSlotFirst = 0;
    let badLba = -1;
    const finishRun = (end: number) => {
      if (end <= runStart) return;
      const piece = target.subarray(runStart * blockSizeBytes, end * blockSizeBytes);
      if (runKind === BlockSource.SLOT) reads.push(this.segments.readRun(runSlotFirst, piece));
      else if (runKind === BlockSource.BASELINE && this.baseline.file !== undefined)
        reads.push(this.baseline.read(lbaFirst + runStart, piece));
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
      if (kind === BlockSource.BASELINE && this.baseline.file === undefined) kind = BlockSource.ZERO;
      if (kind === BlockSource.BASELINE && state.baselineBad.size > 0 && state.baselineBad.has(lbaFirst + index) && badLba < 0)
        badLba = lbaFirst + index;
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
    if (reads.length > 0) await this.retiring.guardRead(reads);
    if (badLba >= 0)
      throw new SnaplogError(
        ErrorCodes.CORRUPT,
        `disk ${this.geometry.name}: baseline block ${badLba} is unknown (a fold met its data damaged)`,
        { disk: this.geometry.name },
      );
    this.verifyBlocks(target, ids, expectedCrcs, lsns, lbaFirst);
    return target;
  }

  private verifyBlocks(target: Buffer, ids: Uint32Array, expectedCrcs: Uint32Array, lsns: Float64Array, lbaFirst: number): void {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    for (let index = 0; index < ids.length; index++) {
      if (ids[index] === 0) continue;
      if (crc32c(target.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)) === expectedCrcs[index]) continue;
      const lba = lbaFirst + index;
      const lsn = lsns[index];
      this.reportChecksumError(lba, lsn);
      throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${this.geometry.name}: block ${lba} (LSN ${lsn}) failed its checksum`, {
        disk: this.geometry.name,
        lsn,
      });
    }
  }

  /**
   * What each block of [lbaFirst, +blockCount) is at `lsnView`, as runs (data, zero, trim,
   * baseline). Skips unwritten index pages whole, so mapping a large empty disk is cheap.
   */
  blockRuns(lbaFirst: number, blockCount: number, lsnView: number, runCountMax = BLOCK_RUN_COUNT_MAX): BlockRun[] {
    this.checkBlockRange(lbaFirst, blockCount, "block status");
    const view = Math.min(lsnView, this.pipeline.lsnVisible);
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
}

/** Writes zeros over [startBytes, endBytes) of a file that already holds them (no allocation). */
async function zeroRange(file: MediumFile, startBytes: number, endBytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024);
  for (let at = startBytes; at < endBytes; at += chunk.length)
    await file.writev([chunk.subarray(0, Math.min(chunk.length, endBytes - at))], at);
}
