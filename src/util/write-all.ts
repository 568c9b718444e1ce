/**
 * Positioned writes that land whole: a write may land in part (a file system that fills returns
 * a short count first and ENOSPC only on the next call), so the rest is written until all of it
 * is there or an error says why. Every file snaplog writes goes through this.
 */
import { writevSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";

/** Writes `buffers` at `positionBytes`, all of them; returns the position after them. */
export async function writeAll(handle: FileHandle, buffers: Uint8Array | readonly Uint8Array[], positionBytes: number): Promise<number> {
  let remaining = buffers instanceof Uint8Array ? [buffers] : buffers.slice();
  let position = positionBytes;
  while (remaining.length > 0) {
    const { bytesWritten } =
      remaining.length === 1
        ? await handle.write(remaining[0], 0, remaining[0].length, position)
        : await handle.writev(remaining, position);
    // Nothing written and no error: never loop on it.
    if (bytesWritten === 0) throw Object.assign(new Error(`no byte of a write at ${position} landed`), { code: "EIO" });
    position += bytesWritten;
    remaining = afterBytes(remaining, bytesWritten);
  }
  return position;
}

/**
 * Small buffered writes (a journal record, a batch of a few 4 KiB blocks, a mirror leg's copy of
 * one) are made on the event loop's thread: a write into the page cache takes microseconds, a
 * thread-pool round trip two thread wake-ups more, which halved 4 KiB QD 1 write rates
 * (docs/performance.md). A write that blocks (the kernel throttling a writer past its dirty
 * limits) would stall every connection, so one that takes longer than INLINE_WRITE_SLOW_MS
 * sends every write of the process to the thread pool for the next second.
 */
const INLINE_WRITE_BYTES_MAX = 64 * 1024;
const INLINE_WRITE_SLOW_MS = 2;
const INLINE_WRITE_BACKOFF_MS = 1000;
let inlineWritesResumeAtMs = 0;

/** writeAll, made on the calling thread when it is small and recent inline writes did not block. */
export async function writeAllInlineWhenSmall(
  handle: FileHandle,
  buffers: readonly Uint8Array[],
  positionBytes: number,
  lengthBytes: number,
): Promise<void> {
  if (lengthBytes > INLINE_WRITE_BYTES_MAX || performance.now() < inlineWritesResumeAtMs) {
    await writeAll(handle, buffers, positionBytes);
    return;
  }
  const startedMs = performance.now();
  writeAllSync(handle.fd, buffers, positionBytes);
  const tookMs = performance.now() - startedMs;
  if (tookMs > INLINE_WRITE_SLOW_MS) inlineWritesResumeAtMs = startedMs + tookMs + INLINE_WRITE_BACKOFF_MS;
}

/** writeAll on the calling thread (a blocking pwritev). */
function writeAllSync(fd: number, buffers: readonly Uint8Array[], positionBytes: number): number {
  let remaining = buffers.slice();
  let position = positionBytes;
  while (remaining.length > 0) {
    const bytesWritten = writevSync(fd, remaining, position);
    if (bytesWritten === 0) throw Object.assign(new Error(`no byte of a write at ${position} landed`), { code: "EIO" });
    position += bytesWritten;
    remaining = afterBytes(remaining, bytesWritten);
  }
  return position;
}

/** What is left of `buffers` once their first `bytes` are written. */
function afterBytes(buffers: Uint8Array[], bytes: number): Uint8Array[] {
  let skip = bytes;
  let index = 0;
  while (index < buffers.length && skip >= buffers[index].length) {
    skip -= buffers[index].length;
    index += 1;
  }
  const rest = buffers.slice(index);
  if (skip > 0) rest[0] = rest[0].subarray(skip);
  return rest;
}
