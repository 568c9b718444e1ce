import { crc32c } from "../../util/crc32c.js";
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { EntryColumns, SlotRun } from "./commit-batch.js";
import { SLOT_TRIM, SLOT_ZERO } from "../constants.js";
import { BlockSource, type DiskState } from "../tables/disk-state.js";
import type { SegmentFiles } from "../space/segment-files.js";

/** Blocks a rollback copies per step (bounds its buffers). */
export const ROLLBACK_CHUNK_BLOCKS = 256;

/** Blocks whose newest version is younger than `lsn`, in block order: what a rollback to `lsn` must rewrite. */
export function blocksWrittenAfter(state: DiskState, lsn: number, blockCount: number): number[] {
  const lbas: number[] = [];
  for (const page of state.latest.writtenPages(0, blockCount)) {
    for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
      const id = state.latest.get(lba);
      if (id !== 0 && state.entries.lsn(id) > lsn) lbas.push(lba);
    }
  }
  return lbas;
}

export interface RestoreCopyContext {
  diskName: string;
  state: DiskState;
  segments: SegmentFiles;
  blockSizeBytes: number;
  /** Reads baseline blocks; undefined when the disk has no baseline (it reads as zeros). */
  readBaseline: ((lbaFirst: number, target: Buffer) => Promise<void>) | undefined;
  onChecksumError(lba: number, lsn: number): void;
}

/**
 * Appends, for each block, a new version holding its content at `lsnTarget` — the data copied
 * into a new slot (a slot never has two owners), or a zero/trim marker — and writes the data.
 * The caller has pinned `lsnTarget`, so nothing read here is freed meanwhile. A source block
 * that fails its checksum aborts the rollback (CORRUPT) before anything is recorded.
 */
export async function appendRestoredBlocks(
  context: RestoreCopyContext,
  lbas: number[],
  lsnTarget: number,
  columns: EntryColumns,
): Promise<void> {
  const { state, blockSizeBytes } = context;
  const buffer = Buffer.allocUnsafe(lbas.length * blockSizeBytes);
  const sources = lbas.map((lba) => state.entrySeenBy(lba, lsnTarget));
  const pieceOf = (index: number) => buffer.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes);
  // Checked before any read starts: a throw after some reads began would leave them unawaited.
  lbas.forEach((lba, index) => {
    if (state.sourceOf(sources[index]) === BlockSource.BASELINE && state.baselineBad.has(lba)) {
      throw new SnaplogError(
        ErrorCodes.CORRUPT,
        `disk ${context.diskName}: baseline block ${lba} is unknown (a fold met its data damaged); nothing was rolled back`,
        { disk: context.diskName },
      );
    }
  });
  const reads: Promise<void>[] = [];
  lbas.forEach((lba, index) => {
    const kind = state.sourceOf(sources[index]);
    if (kind === BlockSource.SLOT) reads.push(context.segments.readRun(state.entries.slot(sources[index]), pieceOf(index)));
    else if (kind === BlockSource.BASELINE && context.readBaseline !== undefined) reads.push(context.readBaseline(lba, pieceOf(index)));
  });
  await Promise.all(reads);
  const runs: SlotRun[] = [];
  lbas.forEach((lba, index) => {
    const id = sources[index];
    const kind = state.sourceOf(id);
    if (kind === BlockSource.ZERO || kind === BlockSource.TRIM || (kind === BlockSource.BASELINE && context.readBaseline === undefined)) {
      const marker = kind === BlockSource.ZERO ? SLOT_ZERO : SLOT_TRIM;
      columns.push(state.append(lba, marker, 0), lba, marker, 0);
      return;
    }
    const piece = pieceOf(index);
    const crc = crc32c(piece);
    if (kind === BlockSource.SLOT && crc !== state.entries.crc(id)) {
      context.onChecksumError(lba, state.entries.lsn(id));
      throw new SnaplogError(
        ErrorCodes.CORRUPT,
        `disk ${context.diskName}: block ${lba} (LSN ${state.entries.lsn(id)}) failed its checksum; nothing was rolled back`,
        { disk: context.diskName },
      );
    }
    const slot = state.slots.allocate();
    const run = runs[runs.length - 1];
    if (run !== undefined && slot === run.slotFirst + run.slotCount && slot % context.segments.slotsPerSegment !== 0) {
      run.slotCount++;
      run.buffers.push(piece);
    } else {
      runs.push({ slotFirst: slot, slotCount: 1, buffers: [piece] });
    }
    columns.push(state.append(lba, slot, crc), lba, slot, crc);
  });
  await Promise.all(runs.map((run) => context.segments.writeRun(run.slotFirst, run.buffers)));
}
