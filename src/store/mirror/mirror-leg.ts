/**
 * A disk's mirror leg (SPEC §6, docs/mirror.md): a plain image file or block device kept as a
 * full copy of the current volume. The current volume's writes go to the log (the engine) and
 * to the mirror, and are answered when both have them; FUA and FLUSH sync both. Before any write
 * reaches the mirror, the regions it touches are set in the write-intent bitmap, durably
 * (region-bitmap.ts), so a crash leaves every region whose legs may differ known; they are
 * resynced from the log at the next open.
 *
 * A mirror I/O error never fails the host's write: the leg becomes `degraded` (with the reason,
 * a `mirror-degraded` event), writes from then on only set bits, and `resync` copies the dirty
 * regions from the log (only those whose bytes differ are written), then the leg is `in-sync`.
 * Reads are served by the log (DiskVolume reads the engine), never the mirror.
 */
import type { DiskEngine, Medium } from "../../engine/index.js";
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import { readJsonOn, writeJsonOn } from "../medium-json.js";
import type { MirrorResyncResult, MirrorState, MirrorStatus, ProgressCallback } from "../operations/index.js";
import { MirrorFile, type LegFile } from "./mirror-file.js";
import { RangeLocks } from "./range-locks.js";
import { BITMAP_FILE, REGION_BYTES, RegionBitmap } from "./region-bitmap.js";

export const MIRROR_STATE_FILE = "mirror.json";

/** Byte ranges of the current volume changed outside the write path, or all of it. */
export type ChangedRanges = "all" | readonly { offsetBytes: number; lengthBytes: number }[];

/** How often a degraded leg is tried again (SPEC §6: "once the leg answers again"). */
export const MIRROR_RETRY_MS = 30_000;

/** mirror.json: which file the bitmap is about, and the leg's state when last written. */
interface MirrorStateFile {
  formatVersion: 1;
  path: string;
  regionBytes: number;
  sizeBytes: number;
  state: MirrorState;
  reason?: string;
  /** Written true by an orderly close (both legs synced, bits cleared); false while open. */
  clean: boolean;
}

/** What the leg says of itself (the operations add the disk's name). */
export type LegStatus = Omit<MirrorStatus, "disk">;
export type LegResyncResult = Omit<MirrorResyncResult, "disk">;

export interface MirrorLegOptions {
  medium: Medium;
  engine: DiskEngine;
  path: string;
  /** Records a mirror state change in the store's event log (never throws). */
  record: (type: string, message: string, details?: Record<string, string | number | boolean | null>) => void;
  /** Where background failures are told. */
  warn?: (message: string) => void;
  /** How often a degraded leg is tried again (default MIRROR_RETRY_MS). */
  retryMs?: number;
  /** Opens the leg's file (default MirrorFile.open; the simulator gives its own medium). */
  openFile?: (path: string, sizeBytes: number) => Promise<LegFile>;
  /** Runs work later, answering how to cancel it (default setTimeout, unref'd; the simulator runs it on its own clock). */
  schedule?: (run: () => void, delayMs: number) => () => void;
}

function scheduleOnTimer(run: () => void, delayMs: number): () => void {
  const timer = setTimeout(run, delayMs);
  timer.unref();
  return () => clearTimeout(timer);
}

const CLEAR_PERSIST_DELAY_MS = 1000;

export class MirrorLeg {
  private stateNow: MirrorState = "syncing";
  private reasonNow: string | undefined;
  private file: LegFile | undefined;
  private bytesCopiedNow = 0;
  private blocksRepairedNow = 0;
  private readonly locks = new RangeLocks();
  /** Moves at every degrade: a flush that straddles one clears nothing. */
  private epoch = 0;
  private running: Promise<LegResyncResult> | undefined;
  /** Changes outside the write path marked so far: a resync that saw one come is not the one that ends in sync. */
  private changesMarked = 0;
  private closed = false;
  private cancelClear: (() => void) | undefined;
  private cancelRetry: (() => void) | undefined;
  private readonly sizeBytes: number;
  private readonly blockSizeBytes: number;

  private constructor(
    private readonly options: MirrorLegOptions,
    private readonly bitmap: RegionBitmap,
  ) {
    this.sizeBytes = options.engine.geometry.sizeBytes;
    this.blockSizeBytes = options.engine.geometry.blockSizeBytes;
  }

  /**
   * Attaches the leg: the bitmap kept for this path (a different or new path: every bit set, the
   * leg is rebuilt whole), the file opened (a failure: degraded), and a resync of the dirty
   * regions started in the background (after a crash: the regions that were in flight).
   */
  static async attach(options: MirrorLegOptions): Promise<MirrorLeg> {
    const { medium, engine, path } = options;
    const sizeBytes = engine.geometry.sizeBytes;
    let previous: MirrorStateFile | undefined;
    if (await medium.exists(MIRROR_STATE_FILE)) {
      previous = await readJsonOn<MirrorStateFile>(medium, MIRROR_STATE_FILE, MIRROR_STATE_FILE).catch(() => undefined);
    }
    const known =
      previous !== undefined && previous.path === path && previous.regionBytes === REGION_BYTES && previous.sizeBytes === sizeBytes;
    const bitmap = await RegionBitmap.open(medium, sizeBytes, !known);
    const leg = new MirrorLeg(options, bitmap);
    try {
      leg.file = await leg.openFile();
    } catch (error) {
      await leg.degrade(`cannot open ${path}: ${messageOf(error)}`);
      return leg;
    }
    try {
      if (bitmap.dirtyCount === 0) leg.stateNow = "in-sync";
      await leg.saveState(false);
    } catch (error) {
      // The disk opens whatever its leg's state file meets (SPEC §6: a leg never stops the disk).
      await leg.degrade(`cannot record the leg's state: ${messageOf(error)}`);
      return leg;
    }
    if (leg.stateNow !== "in-sync") leg.resync().catch(() => undefined);
    return leg;
  }

  get state(): MirrorState {
    return this.stateNow;
  }

  status(): LegStatus {
    const status: LegStatus = {
      path: this.options.path,
      state: this.stateNow,
      bytesCopied: this.bytesCopiedNow,
      blocksRepaired: this.blocksRepairedNow,
      dirtyBytes: Math.min(this.sizeBytes, this.bitmap.dirtyCount * REGION_BYTES),
      regionBytes: REGION_BYTES,
    };
    if (this.reasonNow !== undefined) status.reason = this.reasonNow;
    return status;
  }

  // ---- self-healing reads ------------------------------------------------------------------

  /**
   * The log's copy of a block in [offset, +length) failed its checksum (SPEC §6). Under the
   * range lock no write is in flight there, so an in-sync leg holds the current data: it is
   * read from the mirror, every block whose log copy fails is written again into the log from
   * it (`isBad` / `rewrite`), and the data is returned. Undefined when the leg cannot vouch for
   * the range (not in sync): the read fails as it would without a mirror.
   */
  async healRead(
    offsetBytes: number,
    lengthBytes: number,
    isBad: (lba: number) => Promise<boolean>,
    rewrite: (offsetBytes: number, data: Buffer) => Promise<void>,
  ): Promise<Buffer | undefined> {
    const release = await this.locks.acquire(offsetBytes, offsetBytes + lengthBytes);
    try {
      const file = this.file;
      if (file === undefined || this.stateNow !== "in-sync" || this.closed) return undefined;
      const data = Buffer.alloc(lengthBytes);
      await file.read(data, offsetBytes);
      const blockSize = this.blockSizeBytes;
      let repaired = 0;
      for (let lba = offsetBytes / blockSize; lba < (offsetBytes + lengthBytes) / blockSize; lba += 1) {
        if (!(await isBad(lba))) continue;
        const at = lba * blockSize - offsetBytes;
        await rewrite(lba * blockSize, data.subarray(at, at + blockSize));
        repaired += 1;
      }
      this.blocksRepairedNow += repaired;
      if (repaired > 0) {
        this.options.record(
          "mirror-repair",
          `${repaired} block(s) that failed their checksum in the log were served from mirror ${this.options.path} and written again`,
          {
            path: this.options.path,
            blocks: repaired,
            offsetBytes,
          },
        );
      }
      return data;
    } catch (error) {
      this.options.warn?.(`mirror: a self-healing read failed: ${messageOf(error)}`);
      return undefined;
    } finally {
      release();
    }
  }

  /**
   * healRead for the current volume of `engine`: a block is bad when its current version fails
   * its checksum, and is written again into the log (FUA; not to the mirror, which holds it).
   */
  healCurrent(engine: DiskEngine, offsetBytes: number, lengthBytes: number): Promise<Buffer | undefined> {
    return this.healRead(
      offsetBytes,
      lengthBytes,
      (lba) =>
        engine.readBlocks(lba, 1, Infinity).then(
          () => false,
          (failure: unknown) => failure instanceof SnaplogError && failure.code === ErrorCodes.CORRUPT,
        ),
      (at, data) => engine.writeBytes(at, data, true),
    );
  }

  // ---- the write path ----------------------------------------------------------------------

  /** A host write: bits durable first, then the log and the mirror together; FUA syncs the mirror too. */
  write(offsetBytes: number, data: Buffer, fua: boolean, toLog: () => Promise<void>): Promise<void> {
    return this.mirrored(offsetBytes, data.length, toLog, async (file) => {
      await file.write(data, offsetBytes);
      if (fua) await file.sync();
    });
  }

  /** WRITE_ZEROES and TRIM: zeros on the mirror (Node's fs cannot punch a hole). */
  writeZeroes(offsetBytes: number, lengthBytes: number, fua: boolean, toLog: () => Promise<void>): Promise<void> {
    return this.mirrored(offsetBytes, lengthBytes, toLog, async (file) => {
      await file.writeZeroes(offsetBytes, lengthBytes);
      if (fua) await file.sync();
    });
  }

  /** FLUSH: both legs synced; regions quiet since it began age towards clear (md's lazy clearing). */
  async flush(toLog: () => Promise<void>): Promise<void> {
    const epoch = this.epoch;
    const quiet = this.stateNow === "in-sync" ? this.bitmap.quietRegions() : undefined;
    const file = this.takesWrites() ? this.file : undefined;
    const mirrorDone = file === undefined ? Promise.resolve() : this.guard(() => file.sync());
    const [logResult] = await Promise.allSettled([toLog(), mirrorDone]);
    if (logResult.status === "rejected") throw logResult.reason;
    if (quiet !== undefined && file !== undefined && this.epoch === epoch && this.stateNow === "in-sync") {
      this.bitmap.ageQuiet(quiet);
      this.scheduleClearPersist();
    }
  }

  private async mirrored(
    offsetBytes: number,
    lengthBytes: number,
    toLog: () => Promise<void>,
    toMirror: (file: LegFile) => Promise<void>,
  ): Promise<void> {
    const end = offsetBytes + lengthBytes;
    const release = await this.locks.acquire(offsetBytes, end);
    const persistOwed = this.bitmap.markWriting(offsetBytes, end);
    // A failed host write leaves its range to copy back: the resync starts once the range lock is released.
    let copyBack = false;
    try {
      // The bit is on disk before the mirror (or the log) sees the write.
      if (persistOwed) await this.bitmap.persist();
      const file = this.takesWrites() ? this.file : undefined;
      const mirrorDone = file === undefined ? Promise.resolve() : this.guard(() => toMirror(file));
      const [logResult] = await Promise.allSettled([toLog(), mirrorDone]);
      if (logResult.status === "rejected") {
        // The host is told the write failed, yet the mirror may hold it: the range is copied back
        // from the log (a flush must not age its bit away). Found by the simulator with faults.
        if (file !== undefined) {
          await this.mark([{ offsetBytes, lengthBytes }]).catch(() => undefined);
          copyBack = true;
        }
        throw logResult.reason;
      }
    } finally {
      this.bitmap.doneWriting(offsetBytes, end);
      release();
      if (copyBack) this.resyncAfterChange();
    }
  }

  private takesWrites(): boolean {
    return this.file !== undefined && this.stateNow !== "degraded" && !this.closed;
  }

  /** Runs a mirror I/O; an error degrades the leg instead of reaching the host. */
  private async guard(io: () => Promise<void>): Promise<void> {
    try {
      await io();
    } catch (error) {
      await this.degrade(`mirror I/O failed: ${messageOf(error)}`);
    }
  }

  /** The leg is degraded: persisted, recorded, and from now on writes only set bits. */
  private async degrade(reason: string): Promise<void> {
    if (this.stateNow === "degraded" || this.closed) return;
    this.stateNow = "degraded";
    this.reasonNow = reason;
    this.epoch += 1;
    this.options.record("mirror-degraded", `mirror ${this.options.path} degraded: ${reason}`, { path: this.options.path, reason });
    await this.saveState(false).catch((error: unknown) => this.options.warn?.(`mirror: could not record its state: ${messageOf(error)}`));
    this.scheduleRetry();
  }

  /** A degraded leg is tried again every MIRROR_RETRY_MS (a resync: the file opened again, what differs copied) until it answers. */
  private scheduleRetry(): void {
    if (this.cancelRetry !== undefined || this.closed) return;
    this.cancelRetry = this.later(() => {
      this.cancelRetry = undefined;
      if (this.closed || this.stateNow !== "degraded") return;
      this.resync().then(
        () =>
          this.options.record("mirror-restored", `mirror ${this.options.path} answers again and is in sync`, { path: this.options.path }),
        () => this.scheduleRetry(),
      );
    }, this.options.retryMs ?? MIRROR_RETRY_MS);
  }

  private scheduleClearPersist(): void {
    if (this.cancelClear !== undefined || this.closed) return;
    this.cancelClear = this.later(() => {
      this.cancelClear = undefined;
      this.bitmap
        .persistIfStale()
        .catch((error: unknown) => this.options.warn?.(`mirror: could not persist its bitmap: ${messageOf(error)}`));
    }, CLEAR_PERSIST_DELAY_MS);
  }

  private later(run: () => void, delayMs: number): () => void {
    return (this.options.schedule ?? scheduleOnTimer)(run, delayMs);
  }

  private stopTimers(): void {
    this.cancelClear?.();
    this.cancelRetry?.();
    this.cancelClear = undefined;
    this.cancelRetry = undefined;
  }

  // ---- resync ------------------------------------------------------------------------------

  /**
   * The current volume is about to change without the write path (a rollback, an import, a
   * replica's batch): the regions are marked first, durably — a crash during the change then
   * leaves them dirty, to be resynced at open — the change runs, and a resync of them follows
   * in the background, whether the change worked or not; the leg is `syncing` until it is done.
   * Found by the simulator (`npm run sim -- --mirror`, seed 1699): marked after the change, a
   * crash in between left the mirror stale with its regions clear.
   */
  async aroundChange<T>(ranges: ChangedRanges, change: () => Promise<T>): Promise<T> {
    if (this.closed) return change();
    // The span held while the change runs: a resync's copy of a region must not read it half
    // changed and then count it clean (found by the simulator, seed 1121). One span, not a lock
    // per range: two changes taking several locks each could wait for each other forever.
    let start = this.sizeBytes;
    let end = 0;
    for (const range of ranges === "all" ? [{ offsetBytes: 0, lengthBytes: this.sizeBytes }] : ranges) {
      start = Math.min(start, range.offsetBytes);
      end = Math.max(end, range.offsetBytes + range.lengthBytes);
    }
    const release = end > start ? await this.locks.acquire(start, end) : () => undefined;
    try {
      await this.mark(ranges);
      return await change();
    } finally {
      release();
      this.resyncAfterChange();
    }
  }

  /** The current volume changed without the write path and without aroundChange (found at open: an interrupted import undone). */
  async changedRanges(ranges: ChangedRanges): Promise<void> {
    if (this.closed) return;
    await this.mark(ranges);
    this.resyncAfterChange();
  }

  private async mark(ranges: ChangedRanges): Promise<void> {
    this.changesMarked += 1;
    const all = ranges === "all" ? [{ offsetBytes: 0, lengthBytes: this.sizeBytes }] : ranges;
    for (const { offsetBytes, lengthBytes } of all) {
      for (let region = Math.floor(offsetBytes / REGION_BYTES); region * REGION_BYTES < offsetBytes + lengthBytes; region += 1)
        this.bitmap.touch(region);
    }
    await this.bitmap.persist();
    if (this.stateNow === "in-sync") this.stateNow = "syncing";
  }

  /**
   * A resync under way may have copied the regions before the change: a new pass follows it
   * (touch moved their sequences, so that one does not clear them). Found by the simulator
   * (seed 120: two rollbacks in a row left the mirror stale, "in sync").
   */
  private resyncAfterChange(): void {
    if (this.closed) return;
    const running = this.running;
    (running === undefined ? this.resync() : running.catch(() => undefined).then(() => this.resync())).catch((error: unknown) =>
      this.options.warn?.(`mirror: resync after a change outside the write path failed: ${messageOf(error)}`),
    );
  }

  /**
   * Copies the dirty regions from the log (the current volume) to the mirror, writing only the
   * regions whose bytes differ, then syncs, clears their bits and reports `in-sync` (both legs synced first). A resync
   * under way is joined. A degraded leg's file is opened again first.
   */
  resync(onProgress?: ProgressCallback): Promise<LegResyncResult> {
    if (this.running !== undefined) {
      const joined = this.running;
      if (onProgress === undefined) return joined;
      return joined.then(() => this.resync(onProgress));
    }
    const run = this.runResync(onProgress).finally(() => {
      this.running = undefined;
    });
    this.running = run;
    return run;
  }

  private async runResync(onProgress: ProgressCallback | undefined): Promise<LegResyncResult> {
    if (this.closed) throw new SnaplogError(ErrorCodes.CLOSED, "the mirror leg is detached");
    const path = this.options.path;
    // A degraded leg, or a file removed or replaced under the leg (writes went on to the unlinked one): opened anew.
    const held = this.file === undefined || this.stateNow === "degraded" ? false : await this.file.stillAtPath().catch(() => false);
    if (!held) {
      const old = this.file;
      this.file = undefined;
      await old?.close().catch(() => undefined);
      try {
        this.file = await this.openFile();
      } catch (error) {
        const reason = `cannot open ${path}: ${messageOf(error)}`;
        this.reasonNow = reason;
        throw new SnaplogError(ErrorCodes.IO, `mirror ${path} is degraded: ${reason}`);
      }
    }
    const file = this.file;
    // Set above when it was not (the compiler cannot follow `held`).
    if (file === undefined) throw new SnaplogError(ErrorCodes.IO, `mirror ${path} has no file open`);
    const epoch = ++this.epoch;
    const wasDegraded = this.stateNow === "degraded";
    this.stateNow = "syncing";
    this.reasonNow = undefined;
    this.bytesCopiedNow = 0;
    await this.saveState(false);
    if (wasDegraded) this.options.record("mirror-syncing", `mirror ${path} is being resynced`, { path });
    const changesAtStart = this.changesMarked;
    const regions = this.bitmap.dirtyRegions();
    const copied = new Map<number, number>();
    onProgress?.(0, regions.length);
    for (let index = 0; index < regions.length; index += 1) {
      if (this.closed || this.epoch !== epoch) break;
      const region = regions[index];
      const sequence = await this.copyRegion(file, region);
      if (sequence === undefined) break;
      copied.set(region, sequence);
      onProgress?.(index + 1, regions.length);
    }
    if (this.closed || this.epoch !== epoch || this.stateNow !== "syncing") {
      throw new SnaplogError(
        ErrorCodes.IO,
        `mirror ${path} resync stopped: ${this.reasonNow ?? (this.closed ? "detached" : "interrupted")}`,
      );
    }
    // Both legs durable before a bit is cleared: what was copied may be log data not yet synced
    // (written since the last flush), and a crash must not leave the mirror ahead of the log with
    // its region clear (found by the simulator, `npm run sim -- --mirror`, seed 51).
    await Promise.all([this.options.engine.flush(), this.guard(() => file.sync())]);
    if (this.epoch !== epoch) throw new SnaplogError(ErrorCodes.IO, `mirror ${path} resync stopped: ${this.reasonNow ?? "interrupted"}`);
    for (const [region, sequence] of copied) this.bitmap.clearCopied(region, sequence);
    await this.bitmap.persist();
    if (this.changesMarked !== changesAtStart) {
      // A change outside the write path came during this pass: its regions wait for the pass
      // that follows (resyncAfterChange); until then the leg is not in sync (and a close now
      // must not clear their bits). Found by the simulator (seed 1121).
      return { path, state: this.stateNow, bytesCopied: this.bytesCopiedNow, regionsChecked: copied.size };
    }
    this.stateNow = "in-sync";
    await this.saveState(false);
    this.options.record("mirror-in-sync", `mirror ${path} is in sync (${this.bytesCopiedNow} bytes copied)`, {
      path,
      bytesCopied: this.bytesCopiedNow,
    });
    return { path, state: this.stateNow, bytesCopied: this.bytesCopiedNow, regionsChecked: copied.size };
  }

  /** One region: under its range lock (no host write interleaves), log bytes compared with the mirror's, written if they differ. */
  private async copyRegion(file: LegFile, region: number): Promise<number | undefined> {
    const start = region * REGION_BYTES;
    const end = Math.min(this.sizeBytes, start + REGION_BYTES);
    const release = await this.locks.acquire(start, end);
    try {
      let want: Buffer;
      try {
        want = await this.options.engine.readBlocks(start / this.blockSizeBytes, (end - start) / this.blockSizeBytes, Infinity);
      } catch (error) {
        await this.degrade(`resync could not read the log at byte ${start}: ${messageOf(error)}`);
        return undefined;
      }
      let ok = true;
      await this.guard(async () => {
        const have = Buffer.alloc(end - start);
        await file.read(have, start);
        if (!have.equals(want)) {
          await file.write(want, start);
          this.bytesCopiedNow += end - start;
        }
      });
      if (this.stateNow === "degraded") ok = false;
      return ok ? this.bitmap.sequence[region] : undefined;
    } finally {
      release();
    }
  }

  /**
   * Opens the leg's file. One this open had to make is empty: whatever the bitmap says, the leg
   * holds nothing, so every region is marked (durably) and the resync rebuilds it whole.
   */
  private async openFile(): Promise<LegFile> {
    const file = await (this.options.openFile ?? MirrorFile.open)(this.options.path, this.sizeBytes);
    if (file.created) {
      try {
        for (let region = 0; region * REGION_BYTES < this.sizeBytes; region += 1) this.bitmap.set(region);
        await this.bitmap.persist();
      } catch (error) {
        await file.close().catch(() => undefined);
        throw error;
      }
    }
    return file;
  }

  // ---- state and lifecycle -----------------------------------------------------------------

  private saveState(clean: boolean): Promise<void> {
    const body: MirrorStateFile = {
      formatVersion: 1,
      path: this.options.path,
      regionBytes: REGION_BYTES,
      sizeBytes: this.sizeBytes,
      state: this.stateNow,
      clean,
    };
    if (this.reasonNow !== undefined) body.reason = this.reasonNow;
    return writeJsonOn(this.options.medium, MIRROR_STATE_FILE, body);
  }

  /**
   * An orderly close, after the engine has synced: an in-sync leg synced, its bits cleared and
   * mirror.json marked clean; otherwise the bits stay for the next open.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    await this.running?.catch(() => undefined);
    let clean = false;
    if (this.file !== undefined && this.stateNow === "in-sync") {
      try {
        await this.file.sync();
        const quiet = this.bitmap.quietRegions();
        this.bitmap.ageQuiet(quiet);
        this.bitmap.ageQuiet(quiet);
        clean = this.bitmap.dirtyCount === 0;
      } catch (error) {
        this.options.warn?.(`mirror ${this.options.path}: sync at close failed: ${messageOf(error)}`);
      }
    }
    try {
      await this.bitmap.persist();
      await this.saveState(clean);
    } finally {
      await this.bitmap.close().catch(() => undefined);
      await this.file?.close().catch(() => undefined);
    }
  }

  /** As a crash would: handles closed, nothing written. */
  async abandon(): Promise<void> {
    this.closed = true;
    this.stopTimers();
    await this.bitmap.close().catch(() => undefined);
    await this.file?.close().catch(() => undefined);
  }

  /** `--mirror off`: closed in order, and its bitmap and state removed (the mirror file stays). */
  async detach(): Promise<void> {
    await this.close();
    const medium = this.options.medium;
    for (const name of [MIRROR_STATE_FILE, BITMAP_FILE]) if (await medium.exists(name)) await medium.remove(name);
    await medium.syncDirectory();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
