import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";
import type { DiskEngine } from "../engine/disk-engine.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../util/errors.js";
import type { ProgressCallback } from "./operations.js";

/** Bytes read from the engine and written to the image per step. */
const RESTORE_CHUNK_BYTES = 1024 * 1024;

/**
 * Materializes the disk at `lsn` as a raw image at `target` (restore --to). The image is
 * written to `target.partial` and renamed into place once complete and synced, so a failed or
 * interrupted restore never leaves a file that looks whole. All-zero chunks are skipped: the
 * image is sparse where the volume reads as zeros. The caller keeps `lsn` pinned.
 */
export async function restoreToFile(engine: DiskEngine, lsn: number, target: string, onProgress?: ProgressCallback): Promise<{ sizeBytes: number; bytesWritten: number }> {
  const sizeBytes = engine.geometry.sizeBytes;
  const blockSizeBytes = engine.geometry.blockSizeBytes;
  const partial = `${target}.partial`;
  try {
    await fs.access(target);
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `${target} already exists; restore writes a new file`, { path: target, hint: "remove it or choose another --to path" });
  } catch (error) {
    if (error instanceof SnaplogError) throw error;
  }
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(partial, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC, 0o644);
  } catch (error) {
    throw fromSystemError(error, { path: partial });
  }
  let bytesWritten = 0;
  try {
    await handle.truncate(sizeBytes);
    const chunkBlocks = RESTORE_CHUNK_BYTES / blockSizeBytes;
    const blockCount = sizeBytes / blockSizeBytes;
    for (let lba = 0; lba < blockCount; lba += chunkBlocks) {
      const count = Math.min(chunkBlocks, blockCount - lba);
      const data = await engine.readBlocks(lba, count, lsn);
      if (!isAllZero(data)) {
        await handle.write(data, 0, data.length, lba * blockSizeBytes);
        bytesWritten += data.length;
      }
      onProgress?.((lba + count) * blockSizeBytes, sizeBytes);
    }
    await handle.sync();
    await handle.close();
    await fs.rename(partial, target);
    const directory = await fs.open(path.dirname(path.resolve(target)), fsConstants.O_RDONLY);
    await directory.sync().finally(() => directory.close());
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(partial, { force: true });
    throw fromSystemError(error, { path: target, disk: engine.geometry.name });
  }
  return { sizeBytes, bytesWritten };
}

const ZERO_CHUNK = Buffer.alloc(RESTORE_CHUNK_BYTES);

function isAllZero(data: Buffer): boolean {
  return data.equals(ZERO_CHUNK.subarray(0, data.length));
}
