import { crc32c } from "../util/crc32c.js";
import { INDEX_PAGE_BLOCKS } from "./constants.js";
import { BlockSource, type DiskState } from "./disk-state.js";
import type { MediumFile } from "./medium.js";
import type { SegmentFiles } from "./segment-files.js";

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
  for (let page = 0; page < pageLimit; page++) {
    const pageLba = page * INDEX_PAGE_BLOCKS;
    if (state.pageIsEmpty(pageLba)) continue;
    for (let lba = pageLba; lba < pageLba + INDEX_PAGE_BLOCKS; lba++) {
      const id = state.resolve(lba, lsnFold);
      if (id === 0) continue;
      if (runSlots.length === FOLD_RUN_BLOCKS_MAX || (runSlots.length > 0 && lba !== runLbaFirst + runSlots.length)) await flush();
      if (runSlots.length === 0) runLbaFirst = lba;
      runSlots.push(state.sourceOf(id) === BlockSource.SLOT ? state.entries.slot(id) : ZEROS);
      runCrcs.push(state.entries.crc(id));
    }
    await flush();
    options.onProgress?.(page + 1, pageLimit);
  }
  return result;
}

async function copyRun(options: FoldCopyOptions, lbaFirst: number, slots: number[], crcs: number[], result: FoldCopyResult): Promise<void> {
  const blockSizeBytes = options.blockSizeBytes;
  const buffer = Buffer.alloc(slots.length * blockSizeBytes);
  await Promise.all(slots.map((slot, index) => (slot === ZEROS ? undefined : options.segments.readRun(slot, buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)))));
  let pieceFirst = 0;
  for (let index = 0; index <= slots.length; index++) {
    const bad = index < slots.length && slots[index] !== ZEROS && crc32c(buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)) !== crcs[index];
    if (!bad && index < slots.length) continue;
    if (index > pieceFirst) {
      await options.baseline.writev([buffer.subarray(pieceFirst * blockSizeBytes, index * blockSizeBytes)], (lbaFirst + pieceFirst) * blockSizeBytes);
      result.blockCount += index - pieceFirst;
    }
    if (bad) result.corruptLbas.push(lbaFirst + index);
    pieceFirst = index + 1;
  }
}
