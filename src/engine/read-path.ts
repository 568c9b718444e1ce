import { crc32c, zeroBlockCrc } from "../util/crc32c.js";
import { timedBy } from "../util/loop-clock.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { INDEX_PAGE_BLOCKS, isDataSlot } from "./constants.js";
import { blockCountOf, checkBlockRange, type DiskGeometry } from "./engine-options.js";
import type { Baseline } from "./history/baseline-fold.js";
import { SCAN_PAGES_PER_TURN } from "./history/compaction.js";
import type { RetiringSlots } from "./space/retiring-slots.js";
import type { SegmentFiles } from "./space/segment-files.js";
import { BlockSource, type DiskState } from "./tables/disk-state.js";
import type { CommitPipeline } from "./write/commit-pipeline.js";
import type { EntriesData, EntriesDataOptions } from "./log/log-reader.js";

/** A block-status answer stops after this many runs (a shorter answer is allowed by the protocol). */
const BLOCK_RUN_COUNT_MAX = 256;

/** Extents of a block-status answer at one view, in blocks. */
export interface BlockRun {
  blockCount: number;
  source: number;
}

/** What the read path needs from the engine around it. */
export interface ReadPathContext {
  geometry: DiskGeometry;
  state: DiskState;
  segments: SegmentFiles;
  retiring: RetiringSlots;
  /** The current volume's LSN (lsnVisible) and a failure that took the disk offline. */
  pipeline: CommitPipeline;
  /** The baseline image, and the fold that may be rewriting it. */
  baseline: Baseline;
  reportChecksumError(lba: number, lsn: number): void;
}

/**
 * The read path of one disk: blocks of any view (the current volume, a snapshot, a point in
 * time), each resolved to the entry the view sees, read in one I/O per contiguous slot run and
 * checked against its CRC32C; block status (what each block is, without reading data); the data
 * of one entry (the log reader); and the blocks that differ between two views. Reads register
 * with the retiring slots, so no slot they use is reused while they are in flight.
 */
export class ReadPath {
  constructor(private readonly context: ReadPathContext) {}

  /** Reads whole blocks of the disk as it was at `lsnView` (Infinity: the current volume). */
  async readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer> {
    const { geometry, state, segments, retiring, pipeline, baseline } = this.context;
    checkBlockRange(geometry, lbaFirst, blockCount, "read");
    if (pipeline.failure !== undefined) throw pipeline.failure;
    // The baseline volume changes as a whole when a fold finishes: never show it half written.
    const foldCopying = baseline.copyingFor(lsnView);
    if (foldCopying !== undefined) await foldCopying;
    baseline.checkReadable(lsnView);
    const blockSizeBytes = geometry.blockSizeBytes;
    const view = Math.min(lsnView, pipeline.lsnVisible);
    const target = Buffer.allocUnsafe(blockCount * blockSizeBytes);
    const ids = new Uint32Array(blockCount);
    const expectedCrcs = new Uint32Array(blockCount);
    const lsns = new Float64Array(blockCount);
    const reads: Promise<void>[] = [];
    let runStart = 0;
    let runKind = -1;
    let runSlotFirst = 0;
    let badLba = -1;
    const finishRun = (end: number) => {
      if (end <= runStart) return;
      const piece = target.subarray(runStart * blockSizeBytes, end * blockSizeBytes);
      if (runKind === BlockSource.SLOT) reads.push(segments.readRun(runSlotFirst, piece));
      else if (runKind === BlockSource.BASELINE && baseline.file !== undefined) reads.push(baseline.read(lbaFirst + runStart, piece));
      else piece.fill(0);
    };
    for (let index = 0; index < blockCount; index++) {
      const id = state.entrySeenBy(lbaFirst + index, view);
      let kind = state.sourceOf(id);
      // Captured now: the entry may be reclaimed (and its id reused) while the read is in flight.
      if (kind === BlockSource.SLOT) {
        ids[index] = id;
        expectedCrcs[index] = state.entries.crc(id);
        lsns[index] = state.entries.lsn(id);
      }
      if (kind === BlockSource.TRIM) kind = BlockSource.ZERO;
      if (kind === BlockSource.BASELINE && baseline.file === undefined) kind = BlockSource.ZERO;
      if (kind === BlockSource.BASELINE && state.baselineBad.size > 0 && state.baselineBad.has(lbaFirst + index) && badLba < 0)
        badLba = lbaFirst + index;
      const slot = kind === BlockSource.SLOT ? state.entries.slot(id) : 0;
      const continues =
        kind === runKind &&
        (kind !== BlockSource.SLOT || (slot === runSlotFirst + (index - runStart) && slot % segments.slotsPerSegment !== 0));
      if (!continues) {
        finishRun(index);
        runStart = index;
        runKind = kind;
        runSlotFirst = slot;
      }
    }
    finishRun(blockCount);
    if (reads.length > 0) await retiring.guardRead(reads);
    if (badLba >= 0)
      throw new SnaplogError(
        ErrorCodes.CORRUPT,
        `disk ${geometry.name}: baseline block ${badLba} is unknown (a fold met its data damaged)`,
        { disk: geometry.name },
      );
    this.verifyBlocks(target, ids, expectedCrcs, lsns, (index) => lbaFirst + index);
    return target;
  }

  /**
   * The data of each entry (block lbas[i] at exactly LSN lsns[i]), checksum-checked, in one
   * buffer: entry i's bytes at i × the block size, zeros for a zero or trim entry; live[i] is 0
   * for an entry no longer live (never was, or freed). Entries whose slots are consecutive are
   * read in one I/O: the log's entries in LSN order mostly are, so an export reads the log back
   * in large reads rather than one per block. With `shared` memory the data is in a
   * SharedArrayBuffer, which a worker thread can read without a copy (util/stream-hash.ts).
   */
  async readEntriesData(lbas: ArrayLike<number>, lsns: ArrayLike<number>, options: EntriesDataOptions = {}): Promise<EntriesData> {
    const memory = options.memory ?? "private";
    const { geometry, state, segments, retiring } = this.context;
    const blockSizeBytes = geometry.blockSizeBytes;
    const count = lbas.length;
    // Private memory is not zero-filled: the blocks read are overwritten, the others zeroed below
    // (an export passes over every byte it ships; a fill first was one pass more).
    const data =
      memory === "shared" ? Buffer.from(new SharedArrayBuffer(count * blockSizeBytes)) : Buffer.allocUnsafe(count * blockSizeBytes);
    const live = new Uint8Array(count);
    const ids = new Uint32Array(count);
    const expectedCrcs = new Uint32Array(count);
    const reads: Promise<void>[] = [];
    let runStart = 0;
    let runLength = 0;
    let runSlotFirst = 0;
    const finishRun = () => {
      if (runLength > 0)
        reads.push(segments.readRun(runSlotFirst, data.subarray(runStart * blockSizeBytes, (runStart + runLength) * blockSizeBytes)));
      runLength = 0;
    };
    for (let index = 0; index < count; index++) {
      const id = state.findEntry(lbas[index], lsns[index]);
      const slot = id === 0 ? 0 : state.entries.slot(id);
      if (id !== 0) live[index] = 1;
      if (id === 0 || !isDataSlot(slot)) {
        finishRun();
        data.fill(0, index * blockSizeBytes, (index + 1) * blockSizeBytes);
        continue;
      }
      // Captured now: the entry may be reclaimed (and its id reused) while the read is in flight.
      ids[index] = id;
      expectedCrcs[index] = state.entries.crc(id);
      const continues =
        runLength > 0 && runStart + runLength === index && slot === runSlotFirst + runLength && slot % segments.slotsPerSegment !== 0;
      if (!continues) {
        finishRun();
        runStart = index;
        runSlotFirst = slot;
      }
      runLength++;
    }
    finishRun();
    if (reads.length > 0) await retiring.guardRead(reads);
    const check = () => {
      this.verifyBlocks(data, ids, expectedCrcs, lsns, (index) => lbas[index]);
      // Checked: now the checksums of what data holds (a block not read is zeros).
      const zerosCrc = zeroBlockCrc(blockSizeBytes);
      for (let index = 0; index < count; index++) if (ids[index] === 0) expectedCrcs[index] = zerosCrc;
    };
    timedBy(options.clock, check);
    return { data, live, crcs: expectedCrcs };
  }

  /** Throws CORRUPT (and reports it) for the first block read for entry ids[index] whose data fails its checksum. */
  private verifyBlocks(
    target: Buffer,
    ids: Uint32Array,
    expectedCrcs: Uint32Array,
    lsns: ArrayLike<number>,
    lbaOf: (index: number) => number,
  ): void {
    const { geometry } = this.context;
    const blockSizeBytes = geometry.blockSizeBytes;
    for (let index = 0; index < ids.length; index++) {
      if (ids[index] === 0) continue;
      if (crc32c(target.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)) === expectedCrcs[index]) continue;
      const lba = lbaOf(index);
      const lsn = lsns[index];
      this.context.reportChecksumError(lba, lsn);
      throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${geometry.name}: block ${lba} (LSN ${lsn}) failed its checksum`, {
        disk: geometry.name,
        lsn,
      });
    }
  }

  /**
   * What each block of [lbaFirst, +blockCount) is at `lsnView`, as runs (data, zero, trim,
   * baseline). Skips unwritten index pages whole, so mapping a large empty disk is cheap.
   */
  blockRuns(lbaFirst: number, blockCount: number, lsnView: number, runCountMax = BLOCK_RUN_COUNT_MAX): BlockRun[] {
    const { geometry, state, pipeline } = this.context;
    checkBlockRange(geometry, lbaFirst, blockCount, "block status");
    const view = Math.min(lsnView, pipeline.lsnVisible);
    const runs: BlockRun[] = [];
    let lba = lbaFirst;
    const end = lbaFirst + blockCount;
    // Answers a prefix once runCountMax runs are complete: clients ask again from there.
    while (lba < end) {
      let source: number;
      let count: number;
      if (state.pageIsEmpty(lba)) {
        source = BlockSource.BASELINE;
        count = Math.min(end, (Math.floor(lba / INDEX_PAGE_BLOCKS) + 1) * INDEX_PAGE_BLOCKS) - lba;
      } else {
        source = state.sourceOf(state.entrySeenBy(lba, view));
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
   * The blocks that some entry with LSN in (lsnLow, lsnHigh] changed, as runs in block order:
   * what differs between the views at lsnLow and lsnHigh. The caller keeps both views pinned
   * while it iterates. Yields to the event loop every few index pages.
   */
  async *changedRuns(lsnLow: number, lsnHigh: number): AsyncGenerator<{ lbaFirst: number; blockCount: number }> {
    const { geometry, state } = this.context;
    let runFirst = -1;
    let runCount = 0;
    for (const page of state.latest.writtenPages(0, blockCountOf(geometry))) {
      const found: { lbaFirst: number; blockCount: number }[] = [];
      for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
        const id = state.entrySeenBy(lba, lsnHigh);
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
      if (page.index % SCAN_PAGES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    if (runCount > 0) yield { lbaFirst: runFirst, blockCount: runCount };
  }
}
