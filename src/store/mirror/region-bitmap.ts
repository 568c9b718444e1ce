/**
 * The mirror's write-intent bitmap (md-raid1's, docs/mirror.md): one bit per REGION_BYTES of the
 * disk, in `mirror.bitmap` in the disk's directory (through the disk's Medium). A region's bit
 * is set, and made durable, before any write to it reaches the mirror; it is cleared (lazily, on
 * disk at the next persist) only after both legs are durable with nothing in flight there. After
 * a crash every region whose legs may differ has its bit set.
 *
 * Per region in memory: in-flight writes, a write sequence (a flush clears only regions not
 * written since it began) and an age (md's counter: set to 2 by a write, one down per quiet
 * flush, cleared at 0), so a region written all the time is not persisted again at every write.
 */
import type { Medium, MediumFile } from "../../engine/index.js";

/** 1 MiB: a 1 TiB disk's bitmap is 128 KiB; a crash resyncs at most 1 MiB per region in flight. */
export const REGION_BYTES = 1024 * 1024;
export const BITMAP_FILE = "mirror.bitmap";

export class RegionBitmap {
  readonly regionCount: number;
  /** The bits now (in memory). */
  private readonly bits: Uint8Array;
  /** The bits as the file holds them (after the last persist). */
  private durable: Uint8Array;
  readonly inflight: Uint32Array;
  readonly sequence: Uint32Array;
  private readonly age: Uint8Array;
  private next: Promise<void> | undefined;
  private chain: Promise<void> = Promise.resolve();
  private staleOnFile = false;

  private constructor(
    private readonly file: MediumFile,
    sizeBytes: number,
    bits: Uint8Array,
  ) {
    this.regionCount = Math.ceil(sizeBytes / REGION_BYTES);
    this.bits = bits;
    this.durable = Uint8Array.from(bits);
    this.inflight = new Uint32Array(this.regionCount);
    this.sequence = new Uint32Array(this.regionCount);
    this.age = new Uint8Array(this.regionCount).fill(0);
    for (let region = 0; region < this.regionCount; region += 1) if (this.has(region)) this.age[region] = 2;
  }

  /** Opens (or creates, all clear) the bitmap of a disk of `sizeBytes`; `allDirty` sets every bit (a new leg). */
  static async open(medium: Medium, sizeBytes: number, allDirty: boolean): Promise<RegionBitmap> {
    const regionCount = Math.ceil(sizeBytes / REGION_BYTES);
    const byteCount = Math.ceil(regionCount / 8);
    const file = await medium.open(BITMAP_FILE, { create: true });
    const bits = new Uint8Array(byteCount);
    if (!allDirty && (await file.sizeBytes()) >= byteCount) await file.read(bits, 0);
    const bitmap = new RegionBitmap(file, sizeBytes, bits);
    if (allDirty) {
      for (let region = 0; region < regionCount; region += 1) bitmap.set(region);
      await bitmap.persist();
    }
    return bitmap;
  }

  has(region: number): boolean {
    return (this.bits[region >> 3] & (1 << (region & 7))) !== 0;
  }

  hasDurable(region: number): boolean {
    return (this.durable[region >> 3] & (1 << (region & 7))) !== 0;
  }

  set(region: number): void {
    this.bits[region >> 3] |= 1 << (region & 7);
    this.age[region] = 2;
  }

  /** The region changed outside the write path: set, and its sequence moved (a copy made before does not clear it). */
  touch(region: number): void {
    this.set(region);
    this.sequence[region] += 1;
  }

  private clear(region: number): void {
    this.bits[region >> 3] &= ~(1 << (region & 7));
    // No longer known to be set on file: the next write to it persists again.
    this.durable[region >> 3] &= ~(1 << (region & 7));
    this.age[region] = 0;
    this.staleOnFile = true;
  }

  get dirtyCount(): number {
    let count = 0;
    for (let region = 0; region < this.regionCount; region += 1) if (this.has(region)) count += 1;
    return count;
  }

  dirtyRegions(): number[] {
    const regions: number[] = [];
    for (let region = 0; region < this.regionCount; region += 1) if (this.has(region)) regions.push(region);
    return regions;
  }

  /** The regions a write of [start, end) touches: their bits set and sequences moved. Answers whether a persist is owed. */
  markWriting(start: number, end: number): boolean {
    let owed = false;
    for (let region = Math.floor(start / REGION_BYTES); region * REGION_BYTES < end; region += 1) {
      this.set(region);
      this.inflight[region] += 1;
      this.sequence[region] += 1;
      if (!this.hasDurable(region)) owed = true;
    }
    return owed;
  }

  doneWriting(start: number, end: number): void {
    for (let region = Math.floor(start / REGION_BYTES); region * REGION_BYTES < end; region += 1) this.inflight[region] -= 1;
  }

  /** What a flush may clear when it ends: each dirty region quiet now, with its sequence. */
  quietRegions(): Map<number, number> {
    const quiet = new Map<number, number>();
    for (let region = 0; region < this.regionCount; region += 1) {
      if (this.has(region) && this.inflight[region] === 0) quiet.set(region, this.sequence[region]);
    }
    return quiet;
  }

  /** Both legs are durable for what `quiet` saw: a region not written since ages, and is cleared at 0. */
  ageQuiet(quiet: Map<number, number>): void {
    for (const [region, sequence] of quiet) {
      if (this.inflight[region] !== 0 || this.sequence[region] !== sequence || !this.has(region)) continue;
      this.age[region] = Math.max(0, this.age[region] - 1);
      if (this.age[region] === 0) this.clear(region);
    }
  }

  /** Clears regions a resync copied (and synced) if no write came since `sequence`. */
  clearCopied(region: number, sequence: number): void {
    if (this.inflight[region] === 0 && this.sequence[region] === sequence) this.clear(region);
  }

  /** Writes the bits and syncs; writes waiting on the same persist share it (group commit). */
  persist(): Promise<void> {
    if (this.next !== undefined) return this.next;
    const run = this.chain.then(async () => {
      this.next = undefined;
      const snapshot = Uint8Array.from(this.bits);
      this.staleOnFile = false;
      await this.file.writev([snapshot], 0);
      await this.file.sync();
      this.durable = snapshot;
    });
    this.next = run;
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Persists cleared bits if any were cleared since the last persist (lazy clearing). */
  async persistIfStale(): Promise<void> {
    if (this.staleOnFile) await this.persist();
  }

  async close(): Promise<void> {
    await this.chain;
    await this.file.close();
  }
}
