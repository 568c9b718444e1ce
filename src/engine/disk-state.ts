import { EntryTable } from "./entry-table.js";
import { LatestIndex } from "./latest-index.js";
import { SlotAllocator } from "./slot-allocator.js";
import { TimeIndex } from "./time-index.js";
import { SLOT_TRIM, SLOT_ZERO, INDEX_PAGE_BLOCKS } from "./constants.js";
import type { SnapshotCut } from "./checkpoint.js";
import { assert } from "../util/errors.js";

/** What one block of a volume resolves to. */
export const BlockSource = {
  /** Read data from the entry's slot. */
  SLOT: 0,
  /** Never written at or before the view: the baseline (or zeros without one). */
  BASELINE: 1,
  /** A WRITE_ZEROES entry. */
  ZERO: 2,
  /** A TRIM entry: zeros, and a hole for block status. */
  TRIM: 3,
} as const;

/**
 * The in-memory index of one disk, with no I/O: the entry table, latest[lba], the slot
 * allocator, entry times and snapshot cuts. Every volume is "the disk at LSN X":
 * resolve(lba, X) starts at latest[lba] and follows prev while the entry is newer than X.
 */
export class DiskState {
  readonly entries = new EntryTable();
  readonly latest = new LatestIndex();
  slots = new SlotAllocator();
  readonly times = new TimeIndex();
  readonly snapshots: SnapshotCut[] = [];
  /** Highest LSN assigned. */
  lsnLast = 0;

  /**
   * With a zero history window, an entry overwritten with no snapshot cut between the two
   * versions is seen by no view at all and is reclaimed at once (see supersededIsDead).
   * With a window, reclaim waits for compaction (a later issue).
   */
  constructor(
    readonly hasBaseline: boolean,
    readonly reclaimOverwritten = false,
  ) {}

  /** Appends an entry as the newest version of its block; returns its id. */
  append(lba: number, slot: number, crc: number): number {
    const lsn = ++this.lsnLast;
    const id = this.entries.allocate(lba, lsn, slot, crc, this.latest.get(lba));
    this.latest.set(lba, id);
    return id;
  }

  /** Appends an entry read back from the journal or a checkpoint, with its LSN. */
  appendRecovered(lba: number, lsn: number, slot: number, crc: number): number {
    assert(lsn > this.lsnLast, "recovered entries must come in LSN order");
    this.lsnLast = lsn;
    const id = this.entries.allocate(lba, lsn, slot, crc, this.latest.get(lba));
    this.latest.set(lba, id);
    return id;
  }

  /**
   * Undoes appends, newest first: the ids must be the newest entries of their blocks.
   * Used when a batch failed before it was made visible.
   */
  rollback(ids: Uint32Array, count: number, lsnFirst: number): void {
    for (let index = count - 1; index >= 0; index--) {
      const id = ids[index];
      const lba = this.entries.lba(id);
      assert(this.latest.get(lba) === id, "rollback of an entry that is not the newest of its block");
      this.latest.set(lba, this.entries.prev(id));
      const slot = this.entries.slot(id);
      if (slot !== SLOT_ZERO && slot !== SLOT_TRIM) this.slots.release(slot);
      this.entries.release(id);
    }
    this.lsnLast = lsnFirst - 1;
    this.times.truncateAfter(this.lsnLast);
  }

  /** Id of the entry a view at `lsnView` sees for `lba`, or 0 (baseline / zeros). */
  resolve(lba: number, lsnView: number): number {
    let id = this.latest.get(lba);
    while (id !== 0 && this.entries.lsn(id) > lsnView) id = this.entries.prev(id);
    return id;
  }

  sourceOf(id: number): number {
    if (id === 0) return BlockSource.BASELINE;
    const slot = this.entries.slot(id);
    if (slot === SLOT_ZERO) return BlockSource.ZERO;
    if (slot === SLOT_TRIM) return BlockSource.TRIM;
    return BlockSource.SLOT;
  }

  /**
   * True when a zero/trim entry of `marker` at the newest position would change nothing
   * at any volume: the block already reads as that kind of zeros. A never-written block
   * (without a baseline) is a hole already, unless the caller wants it allocated (NO_HOLE).
   */
  isRedundantZero(lba: number, marker: number, allocate: boolean): boolean {
    const id = this.latest.get(lba);
    if (id === 0) return !this.hasBaseline && !allocate;
    return this.entries.slot(id) === marker;
  }

  /** True when no block of the index page holding `lba` has an entry. */
  pageIsEmpty(lba: number): boolean {
    return this.latest.pageIsEmpty(lba);
  }

  /**
   * The liveness rule (ENGINE.md): entry p, overwritten by q, is seen by the views in
   * [lsn(p), lsn(q)). With no history window the only kept views there are snapshot cuts,
   * so p is dead when no cut falls in that interval. Cuts are kept in LSN order.
   */
  supersededIsDead(q: number): boolean {
    const p = this.entries.prev(q);
    if (p === 0 || !this.reclaimOverwritten) return false;
    const lsnFirst = this.entries.lsn(p);
    const lsnEnd = this.entries.lsn(q);
    const snapshots = this.snapshots;
    let low = 0;
    let high = snapshots.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (snapshots[middle].lsn < lsnFirst) low = middle + 1;
      else high = middle;
    }
    return low === snapshots.length || snapshots[low].lsn >= lsnEnd;
  }

  /**
   * Unlinks every dead older version below entry q and frees their ids; calls back with
   * each freed slot (data slots only) so the caller can decide when it may be reused.
   */
  reclaimBelow(q: number, freeSlot: (slot: number) => void): void {
    while (this.supersededIsDead(q)) {
      const p = this.entries.prev(q);
      this.entries.setPrev(q, this.entries.prev(p));
      const slot = this.entries.slot(p);
      this.entries.release(p);
      if (slot !== SLOT_ZERO && slot !== SLOT_TRIM) freeSlot(slot);
    }
  }

  findSnapshot(name: string): SnapshotCut | undefined {
    return this.snapshots.find((snapshot) => snapshot.name === name);
  }

  /** Calls back with every live entry in LSN order (for checkpoints). */
  forEachEntryInLsnOrder(visit: (lba: number, lsn: number, slot: number, crc: number) => void): void {
    const ids: number[] = [];
    for (let id = 1; id < this.entries.idLimit; id++) if (this.entries.lsn(id) !== 0) ids.push(id);
    // Ids are in LSN order unless freed ids were reused; sort only then.
    let ordered = true;
    for (let index = 1; index < ids.length && ordered; index++) {
      ordered = this.entries.lsn(ids[index - 1]) < this.entries.lsn(ids[index]);
    }
    if (!ordered) ids.sort((a, b) => this.entries.lsn(a) - this.entries.lsn(b));
    for (const id of ids) visit(this.entries.lba(id), this.entries.lsn(id), this.entries.slot(id), this.entries.crc(id));
  }

  /** Bytes of every in-memory table of this disk. */
  get memoryBytes(): number {
    return this.entries.memoryBytes + this.latest.memoryBytes + this.times.memoryBytes;
  }

  static readonly pageBlocks = INDEX_PAGE_BLOCKS;
}
