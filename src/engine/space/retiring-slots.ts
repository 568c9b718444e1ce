import type { SlotAllocator } from "./slot-allocator.js";
import { isDataSlot } from "../constants.js";

/**
 * Slots of freed entries on their way back to the allocator. A slot is reusable once
 *  (1) the entry or record that made it dead is durable (lsnSuperseding ≤ the durable LSN),
 *      so a crash cannot bring the old version back after its slot was rewritten, and
 *  (2) every read that might have seen the old version (its slot looked up) has finished.
 * For (2), reads register the epoch they started in; a step that frees slots closes the epoch,
 * and a slot freed in epoch e waits until no read of epoch ≤ e is in flight.
 *
 * Lifecycle of a slot: live → retire() → (durable, no reader) → release() → free in the allocator.
 */
export class RetiringSlots {
  private readonly slots: number[] = [];
  private readonly lsns: number[] = [];
  private readonly epochs: number[] = [];
  private epoch = 0;
  private retiredThisEpoch = false;
  private readonly readsInFlight = new Map<number, number>();

  /** `onReadsDone` runs when the last read of an epoch ends (a release may now be possible). */
  constructor(private readonly onReadsDone: () => void) {}

  get count(): number {
    return this.slots.length;
  }

  /** The slots waiting (for the whole-disk check). */
  get waiting(): readonly number[] {
    return this.slots;
  }

  /** A freed entry's slot (markers have none). */
  readonly retire = (slot: number, lsnSuperseding: number): void => {
    if (!isDataSlot(slot)) return;
    this.slots.push(slot);
    this.lsns.push(lsnSuperseding);
    this.epochs.push(this.epoch);
    this.retiredThisEpoch = true;
  };

  /** A step that freed entries is complete: reads that start from now on cannot see them. */
  closeEpoch(): void {
    if (!this.retiredThisEpoch) return;
    this.epoch++;
    this.retiredThisEpoch = false;
  }

  /** Waits for a read's I/O while holding its epoch, so no slot it reads is reused under it. */
  async guardRead(reads: Promise<unknown>[]): Promise<void> {
    const epoch = this.epoch;
    this.readsInFlight.set(epoch, (this.readsInFlight.get(epoch) ?? 0) + 1);
    try {
      await Promise.all(reads);
    } finally {
      const left = this.readsInFlight.get(epoch)! - 1;
      if (left === 0) {
        this.readsInFlight.delete(epoch);
        if (this.slots.length > 0) this.onReadsDone();
      } else {
        this.readsInFlight.set(epoch, left);
      }
    }
  }

  /** Moves the slots whose conditions hold to the allocator, oldest first. */
  release(allocator: SlotAllocator, lsnDurable: number): void {
    let oldestReadEpoch = Infinity;
    for (const epoch of this.readsInFlight.keys()) if (epoch < oldestReadEpoch) oldestReadEpoch = epoch;
    let ready = 0;
    while (ready < this.slots.length && this.lsns[ready] <= lsnDurable && this.epochs[ready] < oldestReadEpoch) ready++;
    if (ready === 0) return;
    allocator.releaseMany(this.slots, ready);
    this.slots.splice(0, ready);
    this.lsns.splice(0, ready);
    this.epochs.splice(0, ready);
  }
}
