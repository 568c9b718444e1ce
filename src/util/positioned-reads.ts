import { read as readCallback } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";

/**
 * Positioned reads of an open file, as cheap for the event loop as the kernel allows.
 *
 * 1. A read of up to NOWAIT_READ_BYTES_MAX is first tried on the calling thread with
 *    preadv2(RWF_NOWAIT) (snaplog-nowait-read, a small addon of ours built at install): data in
 *    the page cache comes back in one system call, and nothing ever waits for the disk there —
 *    the kernel answers EAGAIN instead. On this machine a 4 KiB read from the page cache cost the
 *    event loop 4–5 µs that way against 8–11 through the thread pool.
 * 2. What is left (not cached, larger, or no addon) goes through node:fs's callback `read` on
 *    the thread pool, not FileHandle.read, which costs the loop 15–19 µs per 4 KiB read.
 *
 * Both work on the bare descriptor, which FileHandle.close does not wait for, so the reads in
 * flight are counted here and the owner's close waits for `drained()` first: a descriptor is
 * never closed (and its number reused by another file) under a read.
 */
export class PositionedReads {
  private inFlight = 0;
  private whenDrained: Array<() => void> = [];
  private readonly cacheHits = new CacheHitRate();

  constructor(private readonly handle: FileHandle) {}

  /** Reads into `target` at `positionBytes` until it is full or the file ends; returns the bytes read. */
  async readAll(target: Uint8Array, positionBytes: number): Promise<number> {
    this.inFlight += 1;
    try {
      const fd = this.handle.fd;
      // A closed FileHandle's descriptor is -1, which fs.read refuses as an argument: say what it is.
      if (fd < 0) throw Object.assign(new Error("read of a closed file"), { code: "EBADF" });
      let doneBytes = 0;
      if (target.length <= NOWAIT_READ_BYTES_MAX && this.cacheHits.worthTrying()) {
        doneBytes = readCachedPart(fd, target, positionBytes);
        if (doneBytes < 0) return 0; // the end of the file
        this.cacheHits.record(doneBytes > 0);
      }
      while (doneBytes < target.length) {
        const bytesRead = await readThroughPool(fd, target, doneBytes, positionBytes + doneBytes);
        if (bytesRead === 0) break;
        doneBytes += bytesRead;
      }
      return doneBytes;
    } finally {
      this.inFlight -= 1;
      if (this.inFlight === 0) for (const wake of this.whenDrained.splice(0)) wake();
    }
  }

  /** Resolves once no read is in flight (call before closing the handle). */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenDrained.push(resolve));
  }
}

/**
 * Reads on the event loop's thread are limited to this size: a page-cache copy of a larger
 * range (a 1 MiB sequential read of contiguous data) is better made by a pool thread, on the
 * other core, while the loop checks and sends the previous one.
 */
export const NOWAIT_READ_BYTES_MAX = 128 * 1024;

/**
 * How often this file's nowait reads found their data cached, to skip them while they do not: a
 * miss costs the loop a system call for nothing (cold 4 KiB random reads went 10–15 % slower
 * when every one tried first). While the running rate is below HIT_RATE_MIN only one read in
 * PROBE_EVERY tries, so the rate still sees data becoming cached.
 */
class CacheHitRate {
  private rate = 1;
  private untried = 0;

  worthTrying(): boolean {
    if (this.rate >= HIT_RATE_MIN) return true;
    this.untried += 1;
    if (this.untried < PROBE_EVERY) return false;
    this.untried = 0;
    return true;
  }

  record(hit: boolean): void {
    this.rate += HIT_RATE_WEIGHT * ((hit ? 1 : 0) - this.rate);
  }
}

const HIT_RATE_MIN = 0.25;
/** Each outcome's weight in the running rate (about the last 30 tries count). */
const HIT_RATE_WEIGHT = 1 / 32;
const PROBE_EVERY = 16;

/** The shape of snaplog-nowait-read (native/nowait-read/nowait_read.c). */
export interface NowaitReadModule {
  /** Bytes read (0: end of file; fewer than asked: only part was cached), or minus the errno. */
  readNowait(fd: number, target: Uint8Array, offset: number, length: number, positionBytes: number): number;
}

/** The addon, or undefined when it did not build here or SNAPLOG_NOWAIT_READS=0 turns it off. */
export function loadNowaitRead(): NowaitReadModule | undefined {
  if (process.env.SNAPLOG_NOWAIT_READS === "0") return undefined; // comparison runs
  try {
    return createRequire(import.meta.url)("snaplog-nowait-read") as NowaitReadModule;
  } catch {
    return undefined; // not built here (no compiler at install, not Linux): every read goes through the pool
  }
}

let nowaitRead = loadNowaitRead();

/** Which way small reads go: "preadv2-nowait" (tried on the event loop first) or "thread-pool". */
export function smallReadPath(): "preadv2-nowait" | "thread-pool" {
  return nowaitRead === undefined ? "thread-pool" : "preadv2-nowait";
}

/**
 * Reads what the page cache holds of the start of `target`'s range without waiting: the bytes
 * read (0 when none was cached or nowait reads are unavailable), or -1 at the end of the file.
 */
function readCachedPart(fd: number, target: Uint8Array, positionBytes: number): number {
  if (nowaitRead === undefined || target.length === 0) return 0;
  const result = nowaitRead.readNowait(fd, target, 0, target.length, positionBytes);
  if (result > 0) return result;
  if (result === 0) return -1;
  if (result === -osConstants.errno.EAGAIN) return 0;
  // A kernel or file system without RWF_NOWAIT for buffered reads: the pool from now on.
  if (result === -osConstants.errno.EOPNOTSUPP || result === -osConstants.errno.EINVAL) {
    nowaitRead = undefined;
    return 0;
  }
  // Any other failure (EIO, ...) is the read's: the pool's read reports it with its usual error.
  return 0;
}

function readThroughPool(fd: number, target: Uint8Array, offset: number, positionBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    readCallback(fd, target, offset, target.length - offset, positionBytes, (error, bytesRead) => {
      if (error === null) resolve(bytesRead);
      else reject(error);
    });
  });
}
