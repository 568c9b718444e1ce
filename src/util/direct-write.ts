import { constants as fsConstants, promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { writeAll } from "./write-all.js";
import { allocateAligned, isPageAligned, PAGE_BYTES } from "./aligned-memory.js";

/**
 * Writes around the page cache (O_DIRECT) for the log's data files.
 *
 * Why: a buffered write costs a kernel copy into the page cache, and a stream of them past the
 * dirty limits is throttled to what the kernel's writeback achieves. On the reference machine
 * (BENCHMARKS.md, "Sequential writes"), 4 GiB written in 1 MiB pieces at QD 8 went at
 * 470–700 MB/s buffered for 10–16 CPU-seconds, and at 1.67–1.78 GB/s direct for 0.6–0.75.
 * Log data is written once, in new space, and read back rarely compared with how often it is
 * written, so it gains nothing from sitting dirty in the cache. Reads still go through the page
 * cache (a second, buffered descriptor): Linux writes back and invalidates cached pages of a
 * range around a direct write to it, so the two descriptors stay coherent.
 *
 * O_DIRECT wants the memory, the file offset and the length aligned. Buffers from an aligned
 * arena (util/aligned-memory.ts: large NBD payloads come from one) go to the kernel as they are;
 * others are copied into page-aligned staging chunks — one memcpy, cheaper than the kernel copy
 * it replaces. A write the kernel refuses for alignment (EINVAL) turns direct writes off for the
 * process and is written again buffered: never a failure a caller sees.
 */

/** File offsets and lengths written direct are multiples of this (the largest common logical block size). */
export const DIRECT_ALIGN_BYTES = PAGE_BYTES;
/**
 * Only runs of at least this many bytes go direct: a stream (an image copied in, a restore, a
 * guest writing sequentially) forms runs of 1 MiB and more, while 4 KiB random writes at QD 32
 * form runs of at most 128 KiB. Those stay buffered, so the blocks a random workload writes are
 * in the page cache when it reads them back (a direct write leaves nothing cached: 4 KiB random
 * reads of directly written data went at 0.66× of cached ones).
 */
export const DIRECT_RUN_MIN_BYTES = 256 * 1024;
const CHUNK_BYTES = 1024 * 1024;
const CHUNK_COUNT = 32;

/** A pool of page-aligned chunks, shared by every direct write of the process. */
class AlignedChunks {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<(chunk: Buffer) => void> = [];

  constructor() {
    const arena = allocateAligned(CHUNK_BYTES * CHUNK_COUNT);
    for (let index = 0; index < CHUNK_COUNT; index += 1) this.free.push(arena.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES));
  }

  take(): Promise<Buffer> | Buffer {
    const chunk = this.free.pop();
    if (chunk !== undefined) return chunk;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(chunk: Buffer): void {
    const waiter = this.waiting.shift();
    if (waiter !== undefined) waiter(chunk);
    else this.free.push(chunk);
  }
}

let chunks: AlignedChunks | undefined;
/** Set once the kernel refused a direct write for alignment: from then on every write is buffered. */
let directRefused = false;

export function directWritesRefused(): boolean {
  return directRefused;
}

/** Whether a write of `lengthBytes` at `positionBytes` may go direct. */
export function directWritable(positionBytes: number, lengthBytes: number): boolean {
  return (
    !directRefused &&
    lengthBytes >= DIRECT_RUN_MIN_BYTES &&
    positionBytes % DIRECT_ALIGN_BYTES === 0 &&
    lengthBytes % DIRECT_ALIGN_BYTES === 0
  );
}

/**
 * Writes `buffers` back to back at `positionBytes` through `direct` (a descriptor opened with
 * O_DIRECT), staged in aligned chunks of up to 1 MiB written in parallel. Returns false, having
 * written nothing that counts, when the kernel refused the alignment: the caller writes the same
 * bytes buffered. Other errors are thrown once every chunk in flight has finished.
 */
export async function writeDirect(direct: FileHandle, buffers: readonly Uint8Array[], positionBytes: number): Promise<boolean> {
  if (buffers.every((buffer) => buffer.length % DIRECT_ALIGN_BYTES === 0 && isPageAligned(buffer))) {
    return settleDirect([writeAll(direct, buffers, positionBytes).then(() => undefined)]);
  }
  chunks ??= new AlignedChunks();
  const pool = chunks;
  const writes: Promise<void>[] = [];
  let chunk = await pool.take();
  let filled = 0;
  let chunkPosition = positionBytes;
  const launch = (full: Buffer, length: number, position: number): void => {
    writes.push(
      writeAll(direct, full.subarray(0, length), position).then(
        () => pool.give(full),
        (error: unknown) => {
          pool.give(full);
          throw error;
        },
      ),
    );
  };
  for (const buffer of buffers) {
    let offset = 0;
    while (offset < buffer.length) {
      const copied = Math.min(buffer.length - offset, CHUNK_BYTES - filled);
      chunk.set(buffer.subarray(offset, offset + copied), filled);
      filled += copied;
      offset += copied;
      if (filled === CHUNK_BYTES) {
        launch(chunk, filled, chunkPosition);
        chunkPosition += filled;
        filled = 0;
        chunk = await pool.take();
      }
    }
  }
  if (filled > 0) launch(chunk, filled, chunkPosition);
  else pool.give(chunk);
  return settleDirect(writes);
}

/** Waits for every write; false when the kernel refused the alignment (direct writes stop), else the first error. */
async function settleDirect(writes: Promise<void>[]): Promise<boolean> {
  const results = await Promise.allSettled(writes);
  const failure = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
  if (failure === undefined) return true;
  if ((failure.reason as NodeJS.ErrnoException | undefined)?.code === "EINVAL") {
    directRefused = true;
    return false;
  }
  throw failure.reason;
}

/** `filePath` opened for direct writes, or undefined where the file system refuses O_DIRECT (writes then stay buffered). */
export async function openDirect(filePath: string): Promise<FileHandle | undefined> {
  try {
    return await fs.open(filePath, fsConstants.O_WRONLY | fsConstants.O_DIRECT);
  } catch {
    return undefined;
  }
}
