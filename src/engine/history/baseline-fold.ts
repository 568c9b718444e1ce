import { crc32c } from "../../util/crc32c.js";
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { CommitPipeline } from "../write/commit-pipeline.js";
import type { Compactor, ProgressCallback } from "./compaction.js";
import { isDataSlot } from "../constants.js";
import { BlockSource, type DiskState } from "../tables/disk-state.js";
import type { DiskEngineTuning } from "../engine-options.js";
import { encodeFoldDoneRecord, encodeMarkRecord, RecordType } from "../log/journal-format.js";
import type { Medium, MediumFile } from "../medium.js";
import type { RetiringSlots } from "../space/retiring-slots.js";
import type { SegmentFiles } from "../space/segment-files.js";

export const BASELINE_FILE = "baseline.img";

/** Blocks copied per baseline write. */
const FOLD_RUN_BLOCKS_MAX = 256;
/** In a run's slot list: a zero or trim version (zeros go to the baseline). */
const ZEROS = -1;

export interface FoldCopyResult {
  /** Blocks written into the baseline (data, or zeros for zero/trim versions). */
  blockCount: number;
  /** Blocks whose data failed its checksum: not copied, and left in the log by the fold. */
  corruptLbas: number[];
}

export interface FoldCopyOptions {
  state: DiskState;
  segments: SegmentFiles;
  baseline: MediumFile;
  blockSizeBytes: number;
  /** The view copied; the caller has pinned it, so nothing it sees is freed meanwhile. */
  lsnFold: number;
  onProgress?(done: number, total: number): void;
}

/**
 * The copy phase of a fold: writes the view at lsnFold into the baseline image, for every
 * written block that has a version at lsnFold — its data, or zeros for a zero or trim
 * version (which also stays in the log, so block status still reports it as zeros).
 * Idempotent: a fold that a crash interrupted runs this again from the start. The caller
 * syncs the baseline.
 */
export async function copyViewIntoBaseline(options: FoldCopyOptions): Promise<FoldCopyResult> {
  const { state, lsnFold } = options;
  const result: FoldCopyResult = { blockCount: 0, corruptLbas: [] };
  const pageLimit = state.latest.pageLimit;
  let runLbaFirst = 0;
  const runSlots: number[] = [];
  const runCrcs: number[] = [];
  const flush = async () => {
    if (runSlots.length === 0) return;
    await copyRun(options, runLbaFirst, runSlots, runCrcs, result);
    runSlots.length = 0;
    runCrcs.length = 0;
  };
  for (const page of state.latest.writtenPages()) {
    for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
      const id = state.entrySeenBy(lba, lsnFold);
      if (id === 0) continue;
      if (runSlots.length === FOLD_RUN_BLOCKS_MAX || (runSlots.length > 0 && lba !== runLbaFirst + runSlots.length)) await flush();
      if (runSlots.length === 0) runLbaFirst = lba;
      runSlots.push(state.sourceOf(id) === BlockSource.SLOT ? state.entries.slot(id) : ZEROS);
      runCrcs.push(state.entries.crc(id));
    }
    await flush();
    options.onProgress?.(page.index + 1, pageLimit);
  }
  return result;
}

async function copyRun(options: FoldCopyOptions, lbaFirst: number, slots: number[], crcs: number[], result: FoldCopyResult): Promise<void> {
  const blockSizeBytes = options.blockSizeBytes;
  const buffer = Buffer.alloc(slots.length * blockSizeBytes);
  await Promise.all(
    slots.map((slot, index) =>
      slot === ZEROS ? undefined : options.segments.readRun(slot, buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)),
    ),
  );
  let pieceFirst = 0;
  for (let index = 0; index <= slots.length; index++) {
    const bad =
      index < slots.length &&
      slots[index] !== ZEROS &&
      crc32c(buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)) !== crcs[index];
    if (!bad && index < slots.length) continue;
    if (index > pieceFirst) {
      await options.baseline.writev(
        [buffer.subarray(pieceFirst * blockSizeBytes, index * blockSizeBytes)],
        (lbaFirst + pieceFirst) * blockSizeBytes,
      );
      result.blockCount += index - pieceFirst;
    }
    if (bad) result.corruptLbas.push(lbaFirst + index);
    pieceFirst = index + 1;
  }
}

export interface FoldResult {
  /** The view folded (0: nothing to fold). */
  lsnFold: number;
  /** Blocks copied into the baseline, and their bytes. */
  blockCount: number;
  bytesMoved: number;
  entriesFreed: number;
  /** Data bytes whose slots the fold freed (older versions and the folded ones). */
  bytesFreed: number;
  /** Blocks whose data failed its checksum: left in the log. */
  corruptLbas: number[];
  durationMs: number;
}

export interface BaselineContext {
  diskName: string;
  sizeBytes: number;
  blockSizeBytes: number;
  medium: Medium;
  state: DiskState;
  segments: SegmentFiles;
  pipeline: CommitPipeline;
  retiring: RetiringSlots;
  compactor: Compactor;
  tuning: DiskEngineTuning;
  reportChecksumError(lba: number, lsn: number): void;
}

/**
 * The baseline image (baseline.img) and folds into it. A fold copies the oldest kept view K
 * into the image and frees what that made redundant: FOLD_BEGIN (synced) → copy → image synced
 * → FOLD_DONE (synced) → free. K stays pinned from before FOLD_BEGIN to FOLD_DONE's apply, across
 * failures, so a fold that stopped (a crash, a full disk) can always be finished: by the next
 * fold, or at the next open. Meanwhile the image is half old, half new: views older than K are
 * refused (reads wait while a fold is copying).
 */
export class Baseline {
  /** The image, when the disk has one (made by --from, or by the first fold). */
  file: MediumFile | undefined;
  /**
   * The fold under way: its LSN from FOLD_BEGIN's apply to FOLD_DONE's (0: none), as checkpoints
   * carry it (CheckpointState.foldLsn). Not the same as a fold's `lsnFold`, the view it copies.
   */
  foldLsn = 0;
  /** A fold copying into the image now (reads of older views wait for `done`). */
  private foldRunning: { lsn: number; done: Promise<void> } | undefined;

  constructor(
    private readonly context: BaselineContext,
    file: MediumFile | undefined,
  ) {
    this.file = file;
  }

  /** Reads baseline bytes of blocks [lbaFirst, …) into `target` (zeros past the image's end). */
  async read(lbaFirst: number, target: Buffer): Promise<void> {
    const readBytes = await this.file!.read(target, lbaFirst * this.context.blockSizeBytes);
    if (readBytes < target.length) target.fill(0, readBytes);
  }

  /** A fold copying into the image that a read of the view at `lsnView` waits for (undefined: none). */
  copyingFor(lsnView: number): Promise<void> | undefined {
    return this.foldRunning !== undefined && lsnView < this.foldRunning.lsn ? this.foldRunning.done : undefined;
  }

  /** Throws CONFLICT when the view at `lsnView` would read an image a stopped fold left half written. */
  checkReadable(lsnView: number): void {
    if (this.foldLsn !== 0 && lsnView < this.foldLsn) {
      throw new SnaplogError(
        ErrorCodes.CONFLICT,
        `the baseline of disk ${this.context.diskName} is half folded (the fold at LSN ${this.foldLsn} stopped); run compact --into-baseline to finish it`,
        { disk: this.context.diskName },
      );
    }
  }

  /** Throws CONFLICT when a view older than a fold under way is asked for (it would read its half-written image). */
  checkView(lsn: number, asked: string): void {
    if (this.foldLsn === 0 || lsn >= this.foldLsn) return;
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `${asked} of disk ${this.context.diskName} reads the baseline, which a fold at LSN ${this.foldLsn} is rewriting; run compact --into-baseline to finish it`,
      { disk: this.context.diskName },
    );
  }

  /**
   * Folds the oldest kept view into the image (compact --into-baseline). Views at K or later
   * read the same bytes as before; the baseline volume becomes the disk at K.
   */
  async fold(onProgress: ProgressCallback | undefined): Promise<FoldResult> {
    const { state, pipeline, compactor } = this.context;
    const startedMs = performance.now();
    await compactor.flushUnlessFull();
    if (this.foldLsn !== 0) return { ...(await this.finish(this.foldLsn, onProgress)), durationMs: performance.now() - startedMs };
    await compactor.advanceHorizon();
    const lsnFold = Math.min(state.oldestKeptView(), pipeline.lsnVisible);
    if (lsnFold === 0)
      return {
        lsnFold: 0,
        blockCount: 0,
        bytesMoved: 0,
        entriesFreed: 0,
        bytesFreed: 0,
        corruptLbas: [],
        durationMs: performance.now() - startedMs,
      };
    state.pin(lsnFold);
    try {
      await this.ensureFile();
      await pipeline.commitControl(
        (timeMs) => encodeMarkRecord(RecordType.FOLD_BEGIN, lsnFold, timeMs),
        () => {
          this.foldLsn = lsnFold;
        },
      );
    } catch (error) {
      state.unpin(lsnFold);
      throw error;
    }
    return { ...(await this.finish(lsnFold, onProgress)), durationMs: performance.now() - startedMs };
  }

  /** The part of a fold after FOLD_BEGIN (also run at open when a crash interrupted one). */
  async finish(lsnFold: number, onProgress: ProgressCallback | undefined): Promise<Omit<FoldResult, "durationMs">> {
    const { state, pipeline, retiring, tuning, blockSizeBytes } = this.context;
    await this.ensureFile();
    let done = (): void => undefined;
    this.foldRunning = { lsn: lsnFold, done: new Promise<void>((resolve) => (done = resolve)) };
    try {
      const copy = await copyViewIntoBaseline({
        state,
        segments: this.context.segments,
        baseline: this.file!,
        blockSizeBytes,
        lsnFold,
        onProgress,
      });
      for (const lba of copy.corruptLbas) this.context.reportChecksumError(lba, lsnFold);
      tuning.crashHook?.("fold:copied");
      await this.file!.sync();
      tuning.crashHook?.("fold:baseline-synced");
      let entriesFreed = 0;
      let slotsFreed = 0;
      await pipeline.commitControl(
        (timeMs) => encodeFoldDoneRecord(lsnFold, timeMs, copy.corruptLbas),
        () => {
          state.dropFoldedAll(lsnFold, new Set(copy.corruptLbas), (slot, lsn) => {
            entriesFreed++;
            if (isDataSlot(slot)) slotsFreed++;
            retiring.retire(slot, lsn);
          });
          retiring.closeEpoch();
          this.foldLsn = 0;
          state.unpin(lsnFold);
        },
      );
      pipeline.releaseRetired();
      return {
        lsnFold,
        blockCount: copy.blockCount,
        bytesMoved: copy.blockCount * blockSizeBytes,
        entriesFreed,
        bytesFreed: slotsFreed * blockSizeBytes,
        corruptLbas: copy.corruptLbas,
      };
    } finally {
      this.foldRunning = undefined;
      done();
    }
  }

  /** Makes sure baseline.img exists (sparse, the disk's size) before a fold writes into it. */
  private async ensureFile(): Promise<void> {
    if (this.file !== undefined) return;
    const { medium } = this.context;
    const file = await medium.open(BASELINE_FILE, { create: true });
    await file.truncate(this.context.sizeBytes);
    await file.sync();
    await medium.syncDirectory();
    this.file = file;
    this.context.state.hasBaseline = true;
  }
}
