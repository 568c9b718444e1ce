import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";
import { type DiskEngine, BlockSource } from "../../engine/index.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../../util/errors.js";
import type { ProgressCallback } from "../operations/index.js";

/** Bytes read from the engine and written to the image per step. */
const RESTORE_CHUNK_BYTES = 1024 * 1024;
/** Blocks mapped (engine.blockRuns) per step: bounds the synchronous work between awaits. */
const RESTORE_MAP_BLOCKS = 1 << 16;

/**
 * Materializes the disk at `lsn` as a raw image at `target` (restore --to). The caller keeps
 * `lsn` pinned.
 *
 * Nothing that exists is ever overwritten or removed: the image is written to
 * `<target>.partial`, created exclusively (ALREADY_EXISTS when a file of that name exists: it
 * may be the user's), and put in place with link(), which fails when `target` exists, also
 * when it appeared while the restore ran. Only a partial file this call created is removed on
 * failure, so a failed or interrupted restore never leaves a file that looks whole.
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
  const partial = `${target}.partial`;
  // Checked now as well as by link() at the end, so a long restore does not run only to fail.
  if (await exists(target)) throw targetExists(target);
  const handle = await createExclusive(partial);
  let bytesWritten: number;
  try {
    await handle.truncate(sizeBytes);
    bytesWritten = await writeData(engine, lsn, handle, onProgress);
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(partial, { force: true });
    throw fromSystemError(error, { path: target, disk: engine.geometry.name });
  }
  await linkIntoPlace(partial, target);
  return { sizeBytes, bytesWritten };
}

async function exists(filePath: string): Promise<boolean> {
  try {
    await fs.lstat(filePath);
    return true;
  } catch {
    return false;
  }
}

function targetExists(target: string): SnaplogError {
  return new SnaplogError(ErrorCodes.ALREADY_EXISTS, `${target} already exists; restore writes a new file`, {
    path: target,
    hint: "remove it or choose another path to restore to",
  });
}

async function createExclusive(partial: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(partial, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new SnaplogError(
        ErrorCodes.ALREADY_EXISTS,
        `${partial} already exists; restore writes its image there first and never overwrites a file`,
        {
          path: partial,
          hint: "remove it if an interrupted restore left it, or choose another path to restore to",
        },
      );
    }
    throw fromSystemError(error, { path: partial });
  }
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
      await handle.write(data, 0, data.length, lba * blockSizeBytes);
      bytesWritten += data.length;
    }
    onProgress?.(lba * blockSizeBytes + data.length, sizeBytes);
  }
  return bytesWritten;
}

/**
 * link() puts the image in place only if `target` does not exist (EEXIST: ALREADY_EXISTS, the
 * file there is left alone); then the partial name goes. Both are made durable.
 */
async function linkIntoPlace(partial: string, target: string): Promise<void> {
  try {
    await fs.link(partial, target);
  } catch (error) {
    await fs.rm(partial, { force: true });
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw targetExists(target);
    throw fromSystemError(error, { path: target });
  }
  try {
    await fs.unlink(partial);
    const directory = await fs.open(path.dirname(path.resolve(target)), fsConstants.O_RDONLY);
    await directory.sync().finally(() => directory.close());
  } catch (error) {
    throw new SnaplogError(
      ErrorCodes.IO,
      `restored to ${target}, but could not then remove ${partial} and sync the directory: ${fromSystemError(error, {}).message}`,
      {
        path: partial,
        cause: error,
        hint: `${target} is complete; remove ${partial} by hand`,
      },
    );
  }
}

const ZERO_CHUNK = Buffer.alloc(RESTORE_CHUNK_BYTES);

function isAllZero(data: Buffer): boolean {
  return data.equals(ZERO_CHUNK.subarray(0, data.length));
}
