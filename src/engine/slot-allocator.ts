import { SLOT_COUNT_MAX } from "./constants.js";
import { assert, SnaplogError, ErrorCodes } from "../util/errors.js";

/**
 * Hands out data slots. Slots below the high-water mark are either used by a live entry or
 * free; free ones are kept in a stack and reused first (compaction, a later issue, frees
 * slots; so does a batch that failed and was rolled back). Fresh slots come from the
 * high-water mark, so a batch of writes gets one contiguous run: one syscall per batch.
 */
export class SlotAllocator {
  private highWater = 0;
  private free = new Uint32Array(256);
  private freeCount = 0;

  /** Slots ever handed out (the extent of the segment files). */
  get slotLimit(): number {
    return this.highWater;
  }

  get freeSlotCount(): number {
    return this.freeCount;
  }

  allocate(): number {
    if (this.freeCount > 0) return this.free[--this.freeCount];
    if (this.highWater >= SLOT_COUNT_MAX) {
      throw new SnaplogError(ErrorCodes.NO_SPACE, "the disk's log has no free slot left");
    }
    return this.highWater++;
  }

  release(slot: number): void {
    assert(slot < this.highWater, "release of a slot never allocated");
    if (slot === this.highWater - 1) {
      this.highWater--;
      return;
    }
    if (this.freeCount === this.free.length) {
      const grown = new Uint32Array(this.free.length * 2);
      grown.set(this.free);
      this.free = grown;
    }
    this.free[this.freeCount++] = slot;
  }

  /** Returns freed slots so that they are handed out again in the given order (keeps runs sequential). */
  releaseInOrder(slots: number[], count: number): void {
    for (let index = count - 1; index >= 0; index--) this.release(slots[index]);
  }

  /**
   * Rebuilds the allocator after recovery from the set of slots live entries use:
   * high water just past the highest, every unused slot below it free.
   */
  static fromUsed(used: Uint8Array, highWater: number): SlotAllocator {
    const allocator = new SlotAllocator();
    allocator.highWater = highWater;
    for (let slot = highWater - 1; slot >= 0; slot--) {
      if ((used[slot >>> 3] & (1 << (slot & 7))) === 0) allocator.pushFree(slot);
    }
    return allocator;
  }

  private pushFree(slot: number): void {
    if (this.freeCount === this.free.length) {
      const grown = new Uint32Array(this.free.length * 2);
      grown.set(this.free);
      this.free = grown;
    }
    this.free[this.freeCount++] = slot;
  }
}
