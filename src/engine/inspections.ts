import { crc32c } from "../util/crc32c.js";
import { fromSystemError } from "../util/errors.js";
import { isDataSlot } from "./constants.js";
import { blockCountOf, checkBlockRange } from "./engine-options.js";
import { BASELINE_FILE } from "./history/baseline-fold.js";
import type { ProgressCallback } from "./history/compaction.js";
import { noop } from "./write/commit-batch.js";
import type { ReadPathContext } from "./read-path.js";

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

/** What the inspections need from the engine around them. */
export interface InspectionsContext extends ReadPathContext {
  /** The history window now (0: none), and the first LSN it holds (HistoryWindow.lsnFirst). */
  historySeconds(): number;
  windowLsnFirst(): number;
}

/**
 * Looking at a disk without changing it: where a block's bytes lie, the scrub (every live
 * entry's data against its CRC32C), the whole-disk check of the tables, and the space report.
 * Nothing here repairs; a scrub reports damage as checksum errors, as a read would.
 */
export class Inspections {
  constructor(private readonly context: InspectionsContext) {}

  /**
   * Where the bytes of block `lba` at the view `lsnView` lie: a segment file and offset, the
   * baseline, or nowhere (zeros). For tools and tests that explain a failed read.
   */
  locateBlock(lba: number, lsnView: number): { file: string; offsetBytes: number; lsn: number } | undefined {
    const { geometry, state, segments, pipeline, baseline } = this.context;
    checkBlockRange(geometry, lba, 1, "locate");
    const id = state.entrySeenBy(lba, Math.min(lsnView, pipeline.lsnVisible));
    const blockSizeBytes = geometry.blockSizeBytes;
    if (id === 0) return baseline.file === undefined ? undefined : { file: BASELINE_FILE, offsetBytes: lba * blockSizeBytes, lsn: 0 };
    const slot = state.entries.slot(id);
    if (!isDataSlot(slot)) return undefined;
    return { ...segments.locate(slot), lsn: state.entries.lsn(id) };
  }

  /**
   * Reads every live entry's data and checks it against its CRC32C (`snaplog scrub`): the
   * entries whose data is damaged, with where it lies. Reads one index page of entries at a
   * time; stops at the next page when the disk closes. The caller runs it as maintenance.
   */
  async scrub(onProgress?: ProgressCallback): Promise<ScrubReport> {
    const { geometry, state, segments, retiring, pipeline } = this.context;
    const report: ScrubReport = { entriesChecked: 0, bytesChecked: 0, corrupt: [] };
    const blockSizeBytes = geometry.blockSizeBytes;
    const block = Buffer.alloc(blockSizeBytes);
    const pageLimit = state.latest.pageLimit;
    for (const page of state.latest.writtenPages()) {
      if (pipeline.closing) break;
      const found: { lba: number; lsn: number; slot: number; crc: number }[] = [];
      for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
        for (let id = state.latest.get(lba); id !== 0; id = state.entries.prev(id)) {
          const slot = state.entries.slot(id);
          if (isDataSlot(slot)) found.push({ lba, lsn: state.entries.lsn(id), slot, crc: state.entries.crc(id) });
        }
      }
      for (const entry of found) {
        // Still live now? A write may have freed it while this step awaited.
        if (state.findEntry(entry.lba, entry.lsn) === 0) continue;
        try {
          await retiring.guardRead([segments.readRun(entry.slot, block)]);
        } catch (error) {
          report.corrupt.push({
            lba: entry.lba,
            lsn: entry.lsn,
            ...segments.locate(entry.slot),
            reason: `unreadable: ${fromSystemError(error, {}).message}`,
          });
          continue;
        }
        report.entriesChecked++;
        report.bytesChecked += blockSizeBytes;
        if (crc32c(block) !== entry.crc) {
          report.corrupt.push({ lba: entry.lba, lsn: entry.lsn, ...segments.locate(entry.slot), reason: "checksum mismatch" });
          this.context.reportChecksumError(entry.lba, entry.lsn);
        }
      }
      onProgress?.(page.index + 1, pageLimit);
    }
    return report;
  }

  /** The whole-disk check (DiskState.checkIntegrity): problems found, empty when sound. */
  checkIntegrity(): string[] {
    return this.context.state.checkIntegrity(this.context.retiring.waiting);
  }

  /** Space of the log: live, dead (what compaction would free now) and free slots. */
  async space(): Promise<SpaceReport> {
    const { geometry, state, segments, retiring, baseline } = this.context;
    // A dry run of compaction with the horizon it would move to (Compactor.advanceHorizon).
    const lsnHorizon = this.context.historySeconds() > 0 ? this.context.windowLsnFirst() : state.lsnHorizon;
    const dead = state.scanBlocks(0, blockCountOf(geometry), { lsnMin: 0, lsnMax: Infinity, dryRun: true, lsnHorizon }, noop);
    const usedSlots = state.slots.slotLimit - state.slots.freeSlotCount;
    const deadSlots = dead.slotsFreed + retiring.count;
    // Free slots below the high-water mark, in segment files that exist (a released file holds none).
    let freeSlots = 0;
    const segmentCount = Math.ceil(state.slots.slotLimit / segments.slotsPerSegment);
    for (let segment = 0; segment < segmentCount; segment++) if (segments.exists(segment)) freeSlots += state.slots.freeCountOf(segment);
    return {
      liveSlots: usedSlots - deadSlots,
      deadSlots,
      freeSlots,
      segmentFileCount: segments.fileCount,
      segmentBytes: await segments.totalBytes(),
      baselineBytes: baseline.file === undefined ? 0 : await baseline.file.sizeBytes(),
      liveEntries: state.entries.count - dead.entriesFreed,
      deadEntries: dead.entriesFreed,
    };
  }
}
