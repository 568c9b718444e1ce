import { promises as fs } from "node:fs";
import { type DiskEngine, BlockSource } from "../../engine/index.js";
import { isAllZero } from "../../util/all-zero.js";
import { writeNewFile } from "../../util/new-file.js";
import { writeAll } from "../../util/write-all.js";
import type { ProgressCallback } from "../operations/index.js";

/** Bytes read from the engine and written to the image per step. */
const RESTORE_CHUNK_BYTES = 1024 * 1024;
/** Blocks mapped (engine.blockRuns) per step: bounds the synchronous work between awaits. */
const RESTORE_MAP_BLOCKS = 1 << 16;

/**
 * Materializes the disk at `lsn` as a raw image at `target` (restore --to). The caller keeps
 * `lsn` pinned.
 *
 * Nothing that exists is ever overwritten: the image is a new file written whole or not at all
 * (util/new-file.ts: `<target>.partial`, then link()).
 *
 * Only data is read: the disk is mapped as the NBD block status maps it (engine.blockRuns),
 * and blocks that read as zeros (never written without a baseline, zeroed, trimmed) are
 * neither read nor written. Data chunks that happen to be all zeros are skipped too, so the
 * image is sparse wherever the volume reads as zeros.
 */
export async function restoreToFile(
  engine: DiskEngine,
  lsn: number,
  target: string,
  onProgress?: ProgressCallback,
): Promise<{ sizeBytes: number; bytesWritten: number }> {
  const sizeBytes = engine.geometry.sizeBytes;
  const bytesWritten = await writeNewFile(
    target,
    "restore",
    async (handle) => {
      await handle.truncate(sizeBytes);
      return writeData(engine, lsn, handle, onProgress);
    },
    { disk: engine.geometry.name },
  );
  return { sizeBytes, bytesWritten };
}

/** Copies every data run of the view at `lsn` into the (sparse, full-size) image; returns the bytes written. */
async function writeData(
  engine: DiskEngine,
  lsn: number,
  handle: fs.FileHandle,
  onProgress: ProgressCallback | undefined,
): Promise<number> {
  const { sizeBytes, blockSizeBytes } = engine.geometry;
  const blockCount = sizeBytes / blockSizeBytes;
  // Without a baseline image, blocks never written read as zeros: holes, like zero and trim entries.
  const baselineIsData = engine.hasBaseline;
  let bytesWritten = 0;
  let lba = 0;
  while (lba < blockCount) {
    // blockRuns may answer a prefix of what was asked; the next step starts where it stopped.
    for (const run of engine.blockRuns(lba, Math.min(RESTORE_MAP_BLOCKS, blockCount - lba), lsn)) {
      if (run.source === BlockSource.SLOT || (run.source === BlockSource.BASELINE && baselineIsData)) {
        bytesWritten += await copyRun(engine, lsn, handle, { lbaFirst: lba, blockCount: run.blockCount }, onProgress);
      }
      lba += run.blockCount;
      onProgress?.(lba * blockSizeBytes, sizeBytes);
    }
  }
  return bytesWritten;
}

/** Reads one data run in chunks and writes the chunks that are not all zeros; returns the bytes written. */
async function copyRun(
  engine: DiskEngine,
  lsn: number,
  handle: fs.FileHandle,
  run: { lbaFirst: number; blockCount: number },
  onProgress: ProgressCallback | undefined,
): Promise<number> {
  const { sizeBytes, blockSizeBytes } = engine.geometry;
  const chunkBlocks = RESTORE_CHUNK_BYTES / blockSizeBytes;
  const lbaEnd = run.lbaFirst + run.blockCount;
  let bytesWritten = 0;
  for (let lba = run.lbaFirst; lba < lbaEnd; lba += chunkBlocks) {
    const data = await engine.readBlocks(lba, Math.min(chunkBlocks, lbaEnd - lba), lsn);
    if (!isAllZero(data)) {
      await writeAll(handle, data, lba * blockSizeBytes);
      bytesWritten += data.length;
    }
    onProgress?.(lba * blockSizeBytes + data.length, sizeBytes);
  }
  return bytesWritten;
}
