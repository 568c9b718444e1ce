import { SEGMENT_SIZE_BYTES, SLOT_COUNT_MAX, BLOCK_SIZE_BYTES_DEFAULT } from "../constants.js";
import { assert, SnaplogError, ErrorCodes } from "../../util/errors.js";

/** The log may grow to this many times its live slots before partly free segments are refilled. */
const GROWTH_FACTOR_MAX = 2;

/**
 * Hands out data slots so that writes stay sequential. Free slots are a bitmap with a free
 * count per segment. Slots are taken in ascending order from one "fill" segment at a time,
 * chosen at each segment boundary in this order of preference:
 *
 *   1. a wholly free segment (sequential writes over reused space; the page cache stays warm);
 *   2. fresh space at the high-water mark, while the log is under GROWTH_FACTOR_MAX × live;
 *   3. the segment with the most free slots (scattered reuse: bounded space over speed).
 *
 * Freed slots (a rolled-back batch, reclaimed versions) return to the bitmap.
 */
export class SlotAllocator {
  private highWater = 0;
  private free = new Uint32Array(0);
  private freeCountBySegment = new Int32Array(0);
  private freeTotal = 0;
  /** Segments that became wholly free (a hint list for chooseFill; entries may be stale). */
  private wholeFreeHints: number[] = [];
  /** Fill segment and next slot to try; fillSegment -1 = allocate at the high-water mark. */
  private fillSegment = -1;
  private fillNext = 0;

  constructor(readonly slotsPerSegment: number = SEGMENT_SIZE_BYTES / BLOCK_SIZE_BYTES_DEFAULT) {}

  /** Slots ever handed out (the extent of the segment files). */
  get slotLimit(): number {
    return this.highWater;
  }

  get freeSlotCount(): number {
    return this.freeTotal;
  }

  allocate(): number {
    if (this.fillSegment >= 0) {
      const slot = this.nextFreeInFill();
      if (slot >= 0) return this.take(slot);
      this.fillSegment = -1;
    }
    if (this.highWater % this.slotsPerSegment === 0) this.chooseFill();
    if (this.fillSegment >= 0) {
      const slot = this.nextFreeInFill();
      if (slot >= 0) return this.take(slot);
      this.fillSegment = -1;
    }
    if (this.highWater >= SLOT_COUNT_MAX) throw new SnaplogError(ErrorCodes.NO_SPACE, "the disk's log has no free slot left");
    const slot = this.highWater++;
    this.ensureCapacity(this.highWater);
    return slot;
  }

  release(slot: number): void {
    assert(slot < this.highWater, "release of a slot never allocated");
    const word = slot >>> 5;
    const bit = 1 << (slot & 31);
    assert((this.free[word] & bit) === 0, "double release of a slot");
    this.free[word] |= bit;
    this.freeTotal++;
    const segment = Math.floor(slot / this.slotsPerSegment);
    if (++this.freeCountBySegment[segment] === this.slotsPerSegment && segment !== this.fillSegment) this.wholeFreeHints.push(segment);
  }

  /** Free slots of one segment. */
  freeCountOf(segment: number): number {
    return this.freeCountBySegment[segment] ?? 0;
  }

  isFree(slot: number): boolean {
    return slot < this.highWater && (this.free[slot >>> 5] & (1 << (slot & 31))) !== 0;
  }

  /** Segments whose every slot is free (and that are not being filled). */
  wholeFreeSegments(): number[] {
    const segments: number[] = [];
    const segmentCount = Math.ceil(this.highWater / this.slotsPerSegment);
    for (let segment = 0; segment < segmentCount; segment++) if (this.isWholeFree(segment)) segments.push(segment);
    return segments;
  }

  isWholeFree(segment: number): boolean {
    return segment !== this.fillSegment && this.freeCountBySegment[segment] === this.slotsPerSegment;
  }

  releaseMany(slots: number[], count: number): void {
    for (let index = 0; index < count; index++) this.release(slots[index]);
  }

  /** Rebuilds the allocator after recovery from the slots live entries use (a bitmap). */
  static fromUsed(used: Uint8Array, highWater: number, slotsPerSegment: number): SlotAllocator {
    const allocator = new SlotAllocator(slotsPerSegment);
    allocator.highWater = highWater;
    allocator.ensureCapacity(highWater);
    for (let slot = 0; slot < highWater; slot++) {
      if ((used[slot >>> 3] & (1 << (slot & 7))) === 0) allocator.release(slot);
    }
    return allocator;
  }

  private chooseFill(): void {
    while (this.wholeFreeHints.length > 0) {
      const segment = this.wholeFreeHints.pop()!;
      if (this.freeCountBySegment[segment] === this.slotsPerSegment) return this.startFill(segment);
    }
    const live = this.highWater - this.freeTotal;
    if (this.highWater < GROWTH_FACTOR_MAX * Math.max(live, this.slotsPerSegment) || this.freeTotal === 0) return;
    let best = -1;
    for (let segment = 0; segment < this.freeCountBySegment.length; segment++) {
      if (this.freeCountBySegment[segment] > 0 && (best < 0 || this.freeCountBySegment[segment] > this.freeCountBySegment[best]))
        best = segment;
    }
    if (best >= 0) this.startFill(best);
  }

  private startFill(segment: number): void {
    this.fillSegment = segment;
    this.fillNext = segment * this.slotsPerSegment;
  }

  /** Next free slot of the fill segment at or after fillNext, or -1. */
  private nextFreeInFill(): number {
    const end = Math.min((this.fillSegment + 1) * this.slotsPerSegment, this.highWater);
    let slot = this.fillNext;
    while (slot < end) {
      const word = this.free[slot >>> 5] >>> (slot & 31);
      if (word === 0) {
        slot = ((slot >>> 5) + 1) << 5;
        continue;
      }
      slot += 31 - Math.clz32(word & -word);
      return slot < end ? slot : -1;
    }
    return -1;
  }

  private take(slot: number): number {
    this.free[slot >>> 5] &= ~(1 << (slot & 31));
    this.freeTotal--;
    this.freeCountBySegment[Math.floor(slot / this.slotsPerSegment)]--;
    this.fillNext = slot + 1;
    return slot;
  }

  private ensureCapacity(slotLimit: number): void {
    const words = (slotLimit + 31) >>> 5;
    if (words > this.free.length) {
      const grown = new Uint32Array(Math.max(words, this.free.length * 2, 64));
      grown.set(this.free);
      this.free = grown;
    }
    const segments = Math.ceil(slotLimit / this.slotsPerSegment);
    if (segments > this.freeCountBySegment.length) {
      const grown = new Int32Array(Math.max(segments, this.freeCountBySegment.length * 2, 4));
      grown.set(this.freeCountBySegment);
      this.freeCountBySegment = grown;
    }
  }
}
