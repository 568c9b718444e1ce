import { INDEX_PAGE_BLOCKS, isDataSlot, TIME_RESOLUTION_OUTSIDE_WINDOW_MS } from "../constants.js";
import { encodeMarkRecord, RecordType } from "../log/journal-format.js";
import type { DiskState } from "../tables/disk-state.js";
import type { CommitPipeline } from "../write/commit-pipeline.js";
import { SCAN_PAGES_PER_TURN, type Compactor } from "./compaction.js";

/** What capping the window did (`--history-max`, SPEC §4.1). */
export interface HistoryCapResult {
  /** The cap applied (bytes). */
  maxBytes: number;
  /** The log bytes held only for the window, before and after. */
  windowOnlyBytesBefore: number;
  windowOnlyBytesAfter: number;
  /** The window's first view before and after, with their times (ms; 0 before every entry). */
  lsnFirstBefore: number;
  timeMsFirstBefore: number;
  lsnFirstAfter: number;
  timeMsFirstAfter: number;
  /** Whether the cap moved the horizon (the window shrank). */
  shrank: boolean;
  entriesFreed: number;
  bytesFreed: number;
  segmentsReleased: number;
}

export interface HistoryCapContext {
  blockSizeBytes: number;
  segmentSizeBytes: number;
  state: DiskState;
  pipeline: CommitPipeline;
  compactor: Compactor;
  historySeconds(): number;
  /** The first LSN of the history window now (HistoryWindow.lsnFirst). */
  windowLsnFirst(): number;
}

/** The window-only versions: for each, the LSN of its next newer version (freeing it needs the horizon there), ascending. */
interface WindowOnly {
  lsnEnds: Float64Array;
  count: number;
}

/**
 * The space cap on history (`--history-max`). An entry p whose next newer version is q is seen
 * by the views in [lsn(p), lsn(q)); it is held *only for the window* when no snapshot cut or pin
 * lies there, q is published, and lsn(q) is past the window's first view: moving the horizon to
 * lsn(q) or beyond frees it. So the window-only bytes, as a function of the horizon H, are the
 * data blocks of those entries with lsn(q) > H, and the smallest H that brings them within the
 * cap is read off their lsn(q) values sorted. Capping records that horizon (a synced HORIZON
 * record, as compaction does) and frees what it made dead: the window's oldest part goes first,
 * snapshots and pins never.
 *
 * The full count walks every version chain; to stay off the write path, a running upper bound
 * (`boundBytes`) grows by one block per published entry whose older version just became
 * window-only (O(1) per entry, only while a cap is set) and is dropped (unknown) when a kept
 * view goes (a snapshot deleted, a pin released, the window changed), which can make more
 * entries window-only without a write. A cap is due when the bound is unknown or past the cap
 * by half a segment: one walk per half segment of overwrites at most, and the window-only bytes
 * stay within the cap plus one segment.
 */
export class HistoryCap {
  /** The cap (bytes), or null for none. */
  maxBytes: number | null = null;
  /** An upper bound of the window-only bytes now; undefined when unknown. */
  private boundBytes: number | undefined;
  /** Every block the write path added to the bound, ever (so a walk can add what arrived while it ran). */
  private grownBytes = 0;
  /** state.keptViewsDropped when the bound was last computed. */
  private viewsDroppedAt = -1;
  /** A "due" was reported and no cap has run since: report it once. */
  private dueReported = false;

  constructor(private readonly context: HistoryCapContext) {}

  /** Sets or clears the cap; the bound is recomputed at the next check. */
  setMax(maxBytes: number | null): void {
    this.maxBytes = maxBytes;
    this.forget();
  }

  /** What the bound knew no longer holds (the window changed). */
  forget(): void {
    this.boundBytes = undefined;
    this.dueReported = false;
  }

  /** Whether a cap should run now: a cap is set and the bound is unknown or past it by half a segment. */
  get due(): boolean {
    const { maxBytes } = this;
    if (maxBytes === null || this.context.historySeconds() === 0) return false;
    if (this.viewsDroppedAt !== this.context.state.keptViewsDropped) this.boundBytes = undefined;
    return this.boundBytes === undefined || this.boundBytes > maxBytes + this.context.segmentSizeBytes / 2;
  }

  /**
   * Called by the write path after a batch is published: each new entry's older version is now
   * window-only unless a cut or pin lies between them. Returns true once when the cap turns due.
   */
  notePublished(ids: Uint32Array, count: number): boolean {
    if (this.maxBytes === null || this.context.state.reclaimOverwritten) return false;
    const { state, blockSizeBytes } = this.context;
    const entries = state.entries;
    let grown = 0;
    for (let index = 0; index < count; index++) {
      const id = ids[index];
      const lsnEnd = entries.lsn(id);
      // Freed again within its own batch (not with a window, but a cheap guard).
      if (lsnEnd === 0) continue;
      const older = entries.prev(id);
      if (older !== 0 && isDataSlot(entries.slot(older)) && !state.isCutOrPinIn(entries.lsn(older), lsnEnd)) grown += blockSizeBytes;
    }
    this.grownBytes += grown;
    if (this.boundBytes !== undefined) this.boundBytes += grown;
    if (this.dueReported || !this.due) return false;
    this.dueReported = true;
    return true;
  }

  /** The window-only bytes now (a full walk; for inspections and tests). */
  async windowOnlyBytes(): Promise<number> {
    const found = await this.collect(this.context.windowLsnFirst());
    return found.count * this.context.blockSizeBytes;
  }

  /**
   * Caps the window: when the window-only bytes pass `maxBytes`, the horizon moves to the
   * smallest LSN that brings them within it (a synced HORIZON record first), and what that made
   * dead is freed; wholly free segment files go back but for the spares. Run as maintenance.
   */
  async cap(): Promise<HistoryCapResult | undefined> {
    const { state, pipeline, compactor, blockSizeBytes } = this.context;
    const maxBytes = this.maxBytes;
    if (maxBytes === null || this.context.historySeconds() === 0) return undefined;
    await compactor.flushUnlessFull();
    const grownAtStart = this.grownBytes;
    const droppedAtStart = state.keptViewsDropped;
    const lsnFirstBefore = this.context.windowLsnFirst();
    const timeMsFirstBefore = timeOf(state, lsnFirstBefore);
    const found = await this.collect(lsnFirstBefore);
    const keepCount = Math.floor(maxBytes / blockSizeBytes);
    let lsnHorizon = lsnFirstBefore;
    if (found.count > keepCount) lsnHorizon = Math.max(lsnHorizon, found.lsnEnds[found.count - keepCount - 1]);
    let freed = { entriesFreed: 0, slotsFreed: 0 };
    let segmentsReleased = 0;
    if (lsnHorizon > state.lsnHorizon && lsnHorizon > lsnFirstBefore) {
      await pipeline.commitControl(
        (timeMs) => encodeMarkRecord(RecordType.HORIZON, lsnHorizon, timeMs),
        () => {
          state.lsnHorizon = Math.max(state.lsnHorizon, lsnHorizon);
        },
      );
      // Only versions that ended at or before the new horizon can have died.
      freed = await compactor.scanAndFree(0, lsnHorizon, undefined);
      state.times.thinBefore(state.lsnHorizon, TIME_RESOLUTION_OUTSIDE_WINDOW_MS);
      segmentsReleased = await compactor.releaseFreeSegments();
    }
    const remaining = found.count - countAtOrBelow(found, lsnHorizon);
    const windowOnlyBytesAfter = remaining * blockSizeBytes;
    // Writes published during the walk may have been missed by it: the bound adds them all.
    this.boundBytes = windowOnlyBytesAfter + (this.grownBytes - grownAtStart);
    this.viewsDroppedAt = droppedAtStart;
    // Not before: the bound stays high while the walk runs, and one cap answers it.
    this.dueReported = false;
    const lsnFirstAfter = this.context.windowLsnFirst();
    return {
      maxBytes,
      windowOnlyBytesBefore: found.count * blockSizeBytes,
      windowOnlyBytesAfter,
      lsnFirstBefore,
      timeMsFirstBefore,
      lsnFirstAfter,
      timeMsFirstAfter: timeOf(state, lsnFirstAfter),
      shrank: lsnHorizon > lsnFirstBefore,
      entriesFreed: freed.entriesFreed,
      bytesFreed: freed.slotsFreed * blockSizeBytes,
      segmentsReleased,
    };
  }

  /**
   * Walks every version chain, a few index pages per turn of the event loop, and collects the
   * window-only data versions with the window starting at `lsnFirst`: the LSN each one's next
   * newer version has, sorted.
   */
  private async collect(lsnFirst: number): Promise<WindowOnly> {
    const { state, pipeline } = this.context;
    const entries = state.entries;
    let lsnEnds = new Float64Array(1024);
    let count = 0;
    const pageLimit = state.latest.pageLimit;
    for (let page = 0; page < pageLimit && !pipeline.closing; page += SCAN_PAGES_PER_TURN) {
      const lsnVisible = pipeline.lsnVisible;
      const lbaEnd = Math.min(page + SCAN_PAGES_PER_TURN, pageLimit) * INDEX_PAGE_BLOCKS;
      for (const written of state.latest.writtenPages(page * INDEX_PAGE_BLOCKS, lbaEnd)) {
        for (let lba = written.lbaFirst; lba < written.lbaEnd; lba++) {
          let lsnNewer = Infinity;
          for (let id = state.latest.get(lba); id !== 0; id = entries.prev(id)) {
            const lsn = entries.lsn(id);
            // An unpublished newer version does not count: the older one is still the current volume's.
            const windowOnly =
              lsnNewer <= lsnVisible && lsnNewer > lsnFirst && isDataSlot(entries.slot(id)) && !state.isCutOrPinIn(lsn, lsnNewer);
            if (windowOnly) {
              if (count === lsnEnds.length) {
                const grown = new Float64Array(count * 2);
                grown.set(lsnEnds);
                lsnEnds = grown;
              }
              lsnEnds[count++] = lsnNewer;
            }
            lsnNewer = lsn;
          }
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const sorted = lsnEnds.subarray(0, count).sort();
    return { lsnEnds: sorted, count };
  }
}

/** How many of the sorted LSNs are <= `lsn`. */
function countAtOrBelow(found: WindowOnly, lsn: number): number {
  let low = 0;
  let high = found.count;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (found.lsnEnds[middle] <= lsn) low = middle + 1;
    else high = middle;
  }
  return low;
}

function timeOf(state: DiskState, lsn: number): number {
  return lsn === 0 ? 0 : state.times.timeOf(lsn);
}
