/**
 * The mirror leg's file (SPEC §6): a plain image file, created sparse if missing, or a block
 * device, opened with node:fs (it lives anywhere, not in the store). Positioned reads and writes
 * at byte offsets, fdatasync, and zeros written in 1 MiB pieces (Node's fs has no fallocate, so
 * WRITE_ZEROES and TRIM write zeros; a resync leaves regions that are zero on both legs as they are).
 */
import { writeAllInlineWhenSmall } from "../../util/write-all.js";
import { directWritable, openDirect, writeDirect } from "../../util/direct-write.js";
import { constants, promises as fs } from "node:fs";
import { PositionedReads } from "../../util/positioned-reads.js";

const ZERO_CHUNK_BYTES = 1024 * 1024;
let zeroChunk: Buffer | undefined;

/** What the leg needs of its file (MirrorFile here; the simulator's leg on a simulated medium). */
export interface LegFile {
  /** Made by this open: new and empty, every byte reads as zero. */
  readonly created: boolean;
  write(data: Uint8Array, positionBytes: number): Promise<void>;
  writeZeroes(positionBytes: number, lengthBytes: number): Promise<void>;
  read(target: Buffer, positionBytes: number): Promise<void>;
  sync(): Promise<void>;
  /** Whether the path still names the file held open. */
  stillAtPath(): Promise<boolean>;
  close(): Promise<void>;
}

export class MirrorFile implements LegFile {
  private constructor(
    readonly path: string,
    private readonly handle: fs.FileHandle,
    /** Whether the file was made by this open (new and sparse: every byte reads as zero). */
    readonly created: boolean,
    /**
     * The file opened O_DIRECT, for large writes (a resync, a host's 1 MiB writes): written
     * through the page cache they leave large folios behind, and Linux (6.16 and later) then
     * walks a whole folio's buffers on every later 4 KiB write into it — 45 % of the event loop
     * in `ext4_block_write_begin` under 4 KiB random writes (docs/performance.md).
     */
    private readonly direct: fs.FileHandle | undefined,
  ) {
    this.reads = new PositionedReads(handle);
  }

  private readonly reads: PositionedReads;

  /**
   * Opens (or creates sparse) `path` for a disk of `sizeBytes`: a regular file shorter than that
   * grows (sparse); a block device must be at least that large; anything else is refused.
   */
  static async open(path: string, sizeBytes: number): Promise<MirrorFile> {
    let created = false;
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(path, constants.O_RDWR);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      handle = await fs.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
      created = true;
    }
    try {
      const stat = await handle.stat();
      if (stat.isFile()) {
        if (stat.size < sizeBytes) await handle.truncate(sizeBytes);
      } else if (stat.isBlockDevice()) {
        const deviceBytes = await blockDeviceBytes(handle);
        if (deviceBytes < sizeBytes) throw new Error(`block device ${path} holds ${deviceBytes} bytes, fewer than the disk's ${sizeBytes}`);
      } else {
        throw new Error(`${path} is neither a regular file nor a block device`);
      }
      const direct = await openDirect(path);
      return new MirrorFile(path, handle, created, direct);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  async write(data: Uint8Array, positionBytes: number): Promise<void> {
    if (this.direct !== undefined && directWritable(positionBytes, data.length)) {
      if (await writeDirect(this.direct, [data], positionBytes)) return;
    }
    await writeAllInlineWhenSmall(this.handle, [data], positionBytes, data.length);
  }

  async writeZeroes(positionBytes: number, lengthBytes: number): Promise<void> {
    zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
    for (let done = 0; done < lengthBytes; done += ZERO_CHUNK_BYTES) {
      await this.write(zeroChunk.subarray(0, Math.min(ZERO_CHUNK_BYTES, lengthBytes - done)), positionBytes + done);
    }
  }

  /** Reads `target.length` bytes at `positionBytes` (past the end of the file: zeros). */
  async read(target: Buffer, positionBytes: number): Promise<void> {
    const bytesRead = await this.reads.readAll(target, positionBytes);
    if (bytesRead < target.length) target.fill(0, bytesRead);
  }

  sync(): Promise<void> {
    return this.handle.datasync();
  }

  /** Whether the path still names the file held open (not removed, or replaced by another). */
  async stillAtPath(): Promise<boolean> {
    try {
      const [held, named] = await Promise.all([this.handle.stat(), fs.stat(this.path)]);
      return held.dev === named.dev && held.ino === named.ino;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.reads.drained();
    await Promise.all([this.handle.close(), this.direct?.close()]);
  }
}

/** The size of a block device: the end of the file as lseek would see it, read by a 1-byte read probe. */
async function blockDeviceBytes(handle: fs.FileHandle): Promise<number> {
  // Node has no BLKGETSIZE64; a block device's size shows as where reads stop. Binary search.
  const probe = Buffer.alloc(1);
  let low = 0;
  let high = 1;
  while ((await handle.read(probe, 0, 1, high - 1)).bytesRead === 1) {
    low = high;
    high *= 2;
  }
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if ((await handle.read(probe, 0, 1, middle - 1)).bytesRead === 1) low = middle;
    else high = middle;
  }
  return low;
}
