import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { CommitPipeline } from "../write/commit-pipeline.js";
import { INDEX_PAGE_BLOCKS, TIME_RESOLUTION_OUTSIDE_WINDOW_MS } from "../constants.js";
import type { DiskState } from "../tables/disk-state.js";
import type { DiskEngineTuning } from "../engine-options.js";
import { encodeMarkRecord, RecordType } from "../log/journal-format.js";
import type { RetiringSlots } from "../space/retiring-slots.js";
import type { SegmentFiles } from "../space/segment-files.js";

/** Index pages a compaction scans per turn of the event loop. */
export const SCAN_PAGES_PER_TURN = 16;
const SPARE_SEGMENT_COUNT_DEFAULT = 2;

/** Reports progress of long work: `done` of `total` units (index pages, or blocks). */
export type ProgressCallback = (done: number, total: number) => void;

export interface CompactionResult {
  /** Entries looked at, and the log bytes they stand for (scan throughput is bytes / scanMs). */
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

export interface CompactionContext {
  diskName: string;
  blockSizeBytes: number;
  state: DiskState;
  segments: SegmentFiles;
  pipeline: CommitPipeline;
  retiring: RetiringSlots;
  tuning: DiskEngineTuning;
  historySeconds(): number;
  /** The first LSN of the history window now (HistoryWindow.lsnFirst). */
  windowLsnFirst(): number;
}

/**
 * In-place compaction (the patent's Fig. 6): frees every entry no kept view sees — unlinked,
 * its slot to the free list for later writes; no data moves — and hands wholly free segment
 * files back to the file system. The caller (DiskEngine) runs it in its maintenance queue.
 */
export class Compactor {
  constructor(private readonly context: CompactionContext) {}

  /**
   * A FLUSH, the window's horizon moved to now − window (a synced HORIZON record), the scan,
   * then wholly free segment files released but for `spareSegmentCount`. With `partition` (a
   * snapshot's), only those LSNs are scanned. Stops early (with what it freed so far) when the disk
   * closes.
   */
  async compact(options: {
    partition?: { lsnFirst: number; lsnLast: number };
    onProgress?: ProgressCallback;
    spareSegmentCount?: number;
  }): Promise<CompactionResult> {
    const { state, pipeline, blockSizeBytes } = this.context;
    const startedMs = performance.now();
    await this.flushUnlessFull();
    await this.advanceHorizon();
    const lsnMin = options.partition?.lsnFirst ?? 0;
    const lsnMax = options.partition?.lsnLast ?? Infinity;
    const entriesBefore = state.entries.count;
    const scanStartedMs = performance.now();
    const counts = await this.scanAndFree(lsnMin, lsnMax, options.onProgress);
    const scanMs = performance.now() - scanStartedMs;
    state.times.thinBefore(this.context.historySeconds() > 0 ? state.lsnHorizon : pipeline.lsnVisible, TIME_RESOLUTION_OUTSIDE_WINDOW_MS);
    const segmentsReleased = await this.releaseFreeSegments(options.spareSegmentCount);
    return {
      entriesScanned: entriesBefore,
      bytesScanned: entriesBefore * blockSizeBytes,
      entriesFreed: counts.entriesFreed,
      bytesFreed: counts.slotsFreed * blockSizeBytes,
      bytesMoved: 0,
      segmentsReleased,
      lsnHorizon: state.lsnHorizon,
      scanMs,
      durationMs: performance.now() - startedMs,
    };
  }

  /**
   * A FLUSH before maintenance, so retiring slots become reusable; on a full file system it is
   * skipped rather than keep the maintenance that frees space from running.
   */
  async flushUnlessFull(): Promise<void> {
    try {
      await this.context.pipeline.flush();
    } catch (error) {
      if (!(error instanceof SnaplogError && error.code === ErrorCodes.NO_SPACE)) throw error;
    }
    this.context.pipeline.releaseRetired();
  }

  /** Records the horizon of the time window (now − window) when it moved. */
  async advanceHorizon(): Promise<void> {
    const { state } = this.context;
    if (this.context.historySeconds() === 0) return;
    const lsn = this.context.windowLsnFirst();
    if (lsn <= state.lsnHorizon) return;
    await this.context.pipeline.commitControl(
      (timeMs) => encodeMarkRecord(RecordType.HORIZON, lsn, timeMs),
      () => {
        state.lsnHorizon = Math.max(state.lsnHorizon, lsn);
      },
    );
  }

  /** The compaction scan over every written block, a few index pages per turn of the event loop. */
  async scanAndFree(
    lsnMin: number,
    lsnMax: number,
    onProgress: ProgressCallback | undefined,
  ): Promise<{ entriesFreed: number; slotsFreed: number }> {
    const { state, pipeline, retiring, tuning } = this.context;
    const total = { entriesFreed: 0, slotsFreed: 0 };
    const pageLimit = state.latest.pageLimit;
    for (let page = 0; page < pageLimit && !pipeline.closing; page += SCAN_PAGES_PER_TURN) {
      const pageEnd = Math.min(page + SCAN_PAGES_PER_TURN, pageLimit);
      const counts = state.scanBlocks(
        page * INDEX_PAGE_BLOCKS,
        pageEnd * INDEX_PAGE_BLOCKS,
        { lsnMin, lsnMax, dryRun: false },
        retiring.retire,
      );
      total.entriesFreed += counts.entriesFreed;
      total.slotsFreed += counts.slotsFreed;
      if (counts.entriesFreed > 0) {
        retiring.closeEpoch();
        pipeline.releaseRetired();
        tuning.crashHook?.("compaction:step");
      }
      onProgress?.(pageEnd, pageLimit);
      await new Promise((resolve) => setImmediate(resolve));
    }
    return total;
  }

  /** Deletes wholly free segment files beyond `spare` of them (default: the tuning's); returns how many. */
  async releaseFreeSegments(spare?: number): Promise<number> {
    const { state, segments, tuning } = this.context;
    spare ??= tuning.spareSegmentCount ?? SPARE_SEGMENT_COUNT_DEFAULT;
    const candidates = state.slots.wholeFreeSegments().filter((segment) => segments.exists(segment));
    // Keep the lowest ones: reused first, so the log stays at the front of its slot space.
    candidates.sort((a, b) => a - b);
    let released = 0;
    for (const segment of candidates.slice(spare)) {
      if (!state.slots.isWholeFree(segment)) continue;
      tuning.crashHook?.("segment-release:before-remove");
      await segments.release(segment);
      released++;
    }
    return released;
  }
}
