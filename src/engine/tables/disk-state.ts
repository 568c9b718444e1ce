import { EntryTable } from "./entry-table.js";
import { LatestIndex } from "./latest-index.js";
import { SlotAllocator } from "../space/slot-allocator.js";
import { TimeIndex } from "./time-index.js";
import { SLOT_TRIM, SLOT_ZERO, isDataSlot } from "../constants.js";
import type { SnapshotCut } from "./snapshot-cut.js";
import { assert } from "../../util/errors.js";

/** Where the content of one block of a volume comes from (sourceOf the entry the view sees). */
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

/** Called for each entry a scan frees: its data slot (or a marker) and the LSN of the version that made it dead. */
export type FreeEntryCallback = (slot: number, lsnSuperseding: number) => void;

/** What a compaction scan found (or, in a dry run, would free). */
export interface ScanCounts {
  entriesFreed: number;
  slotsFreed: number;
}

/**
 * The in-memory index of one disk, with no I/O: the entry table, latest[lba], the slot
 * allocator, entry times, snapshot cuts and the other kept views. Every volume is "the disk
 * at LSN X": entrySeenBy(lba, X) starts at latest[lba] and follows prev while the entry is newer.
 *
 * Liveness (ENGINE.md): entry p, whose next newer version is q, is seen by the views in
 * [lsn(p), lsn(q)); it is live iff a kept view lies there. Kept views are the current volume,
 * every snapshot cut, every pinned LSN (attached point-in-time volumes, a running fold) and,
 * with a history window, every view from lsnHorizon on. Deleting a snapshot, moving the
 * horizon and compacting are all "drop kept views, then free what became dead" (scanBlocks).
 */
export class DiskState {
  readonly entries = new EntryTable();
  readonly latest = new LatestIndex();
  slots = new SlotAllocator();
  readonly times = new TimeIndex();
  /** Snapshot cuts in LSN order (several may share an LSN). */
  readonly snapshots: SnapshotCut[] = [];
  /**
   * The same cuts by name (unique per disk) and by the LUN recorded at their creation, so that
   * finding one costs the same with 10,000 snapshots as with one (an NBD listing resolves every
   * export by name; the store asks who records a LUN at every create).
   */
  private readonly snapshotsByName = new Map<string, SnapshotCut>();
  private readonly snapshotsByLun = new Map<number, SnapshotCut[]>();
  /** Highest LSN assigned. */
  lsnLast = 0;
  /** With a history window: every view at or after this LSN is kept. Only moves forward. */
  lsnHorizon = 0;
  /**
   * Baseline blocks a fold could not write because the version it should have copied failed
   * its checksum: the baseline volume answers EIO for them (its content there is unknown), until
   * a later fold writes a good version.
   */
  readonly baselineBad = new Set<number>();
  /** Pinned views: LSN → number of holders. */
  private readonly pins = new Map<number, number>();
  /**
   * Counts every kept view dropped (a snapshot removed, a pin's last holder gone): what was held
   * by it may now be held by the window alone, so a running total of window-only bytes
   * (history/history-cap.ts) is stale once this moves.
   */
  keptViewsDropped = 0;

  /**
   * hasBaseline: the disk has a baseline image (from --from, or made by a fold).
   * reclaimOverwritten: a zero history window — an overwritten entry with no kept view in its
   * interval is seen by no view at all and is reclaimed at once (reclaimBelow).
   */
  constructor(
    public hasBaseline: boolean,
    public reclaimOverwritten = false,
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
      if (isDataSlot(slot)) this.slots.release(slot);
      this.entries.release(id);
    }
    this.lsnLast = lsnFirst - 1;
    this.times.truncateAfter(this.lsnLast);
  }

  /** Id of the entry a view at `lsnView` sees for `lba`, or 0 (baseline / zeros). */
  entrySeenBy(lba: number, lsnView: number): number {
    let id = this.latest.get(lba);
    while (id !== 0 && this.entries.lsn(id) > lsnView) id = this.entries.prev(id);
    return id;
  }

  /** Id of the live entry of `lba` with exactly this LSN, or 0 when there is none (never was, or freed). */
  findEntry(lba: number, lsn: number): number {
    const id = this.entrySeenBy(lba, lsn);
    return id !== 0 && this.entries.lsn(id) === lsn ? id : 0;
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

  // ---- kept views ----------------------------------------------------------------------

  pin(lsn: number): void {
    this.pins.set(lsn, (this.pins.get(lsn) ?? 0) + 1);
  }

  unpin(lsn: number): void {
    const holders = this.pins.get(lsn);
    assert(holders !== undefined, "unpin of an LSN that is not pinned");
    if (holders === 1) {
      this.pins.delete(lsn);
      this.keptViewsDropped++;
    } else this.pins.set(lsn, holders - 1);
  }

  /** Whether a kept view other than the current volume lies in [lsnFirst, lsnEnd) (with the window's horizon at `lsnHorizon`). */
  isKeptIn(lsnFirst: number, lsnEnd: number, lsnHorizon = this.lsnHorizon): boolean {
    if (!this.reclaimOverwritten && lsnEnd > lsnHorizon) return true;
    return this.isCutOrPinIn(lsnFirst, lsnEnd);
  }

  /** Whether a snapshot cut or a pin lies in [lsnFirst, lsnEnd): a kept view that is neither the window nor the current volume. */
  isCutOrPinIn(lsnFirst: number, lsnEnd: number): boolean {
    const index = this.snapshotIndexFrom(lsnFirst);
    if (index < this.snapshots.length && this.snapshots[index].lsn < lsnEnd) return true;
    for (const lsn of this.pins.keys()) if (lsn >= lsnFirst && lsn < lsnEnd) return true;
    return false;
  }

  /** Whether a snapshot cut or a pin holds exactly this LSN. */
  hasCutOrPinAt(lsn: number): boolean {
    if (this.pins.has(lsn)) return true;
    const index = this.snapshotIndexFrom(lsn);
    return index < this.snapshots.length && this.snapshots[index].lsn === lsn;
  }

  /** The oldest kept view other than the baseline (LSN 0): what a fold into the baseline may move it up to. */
  oldestKeptView(): number {
    let oldest = this.reclaimOverwritten ? this.lsnLast : Math.min(this.lsnHorizon, this.lsnLast);
    if (this.snapshots.length > 0) oldest = Math.min(oldest, this.snapshots[0].lsn);
    for (const lsn of this.pins.keys()) oldest = Math.min(oldest, lsn);
    return oldest;
  }

  insertSnapshot(cut: SnapshotCut): void {
    assert(!this.snapshotsByName.has(cut.name), "a snapshot name is unique per disk");
    let index = this.snapshots.length;
    while (index > 0 && this.snapshots[index - 1].lsn > cut.lsn) index--;
    this.snapshots.splice(index, 0, cut);
    this.snapshotsByName.set(cut.name, cut);
    const sameLun = this.snapshotsByLun.get(cut.lun);
    if (sameLun === undefined) this.snapshotsByLun.set(cut.lun, [cut]);
    else sameLun.push(cut);
  }

  removeSnapshot(name: string): SnapshotCut | undefined {
    const index = this.snapshotIndexOf(name);
    if (index < 0) return undefined;
    this.keptViewsDropped++;
    const cut = this.snapshots.splice(index, 1)[0];
    this.snapshotsByName.delete(name);
    const sameLun = this.snapshotsByLun.get(cut.lun) ?? [];
    if (sameLun.length <= 1) this.snapshotsByLun.delete(cut.lun);
    else sameLun.splice(sameLun.indexOf(cut), 1);
    return cut;
  }

  findSnapshot(name: string): SnapshotCut | undefined {
    return this.snapshotsByName.get(name);
  }

  /** The snapshots whose creation recorded `lun` (usually none or one; a constant LUN policy makes more). */
  snapshotsWithLun(lun: number): readonly SnapshotCut[] {
    return this.snapshotsByLun.get(lun) ?? [];
  }

  /** A snapshot's partition: the LSNs after the previous cut, up to and with its own. */
  snapshotPartition(name: string): { cut: SnapshotCut; lsnFirst: number; lsnLast: number } | undefined {
    const index = this.snapshotIndexOf(name);
    if (index < 0) return undefined;
    const cut = this.snapshots[index];
    return { cut, lsnFirst: index > 0 ? this.snapshots[index - 1].lsn + 1 : 0, lsnLast: cut.lsn };
  }

  /** Index of the named cut in `snapshots`, -1 without one: a binary search by its LSN, then the few cuts at that LSN. */
  private snapshotIndexOf(name: string): number {
    const cut = this.snapshotsByName.get(name);
    if (cut === undefined) return -1;
    let index = this.snapshotIndexFrom(cut.lsn);
    while (index < this.snapshots.length && this.snapshots[index] !== cut) index++;
    assert(index < this.snapshots.length, "a named snapshot is in the LSN-ordered list");
    return index;
  }

  /** Index of the first cut at or after `lsn` (the length when none is). */
  private snapshotIndexFrom(lsn: number): number {
    const snapshots = this.snapshots;
    let low = 0;
    let high = snapshots.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (snapshots[middle].lsn < lsn) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  // ---- freeing ---------------------------------------------------------------------------

  /**
   * After q was appended: unlinks every older version below q that no kept view sees any
   * more (zero history window only) and frees their ids.
   */
  reclaimBelow(q: number, freeEntry: FreeEntryCallback): void {
    if (!this.reclaimOverwritten) return;
    const lsnEnd = this.entries.lsn(q);
    for (let p = this.entries.prev(q); p !== 0; p = this.entries.prev(q)) {
      if (this.isKeptIn(this.entries.lsn(p), lsnEnd)) return;
      this.entries.setPrev(q, this.entries.prev(p));
      const slot = this.entries.slot(p);
      this.entries.release(p);
      freeEntry(slot, lsnEnd);
    }
  }

  /**
   * The compaction scan: for every block of [lbaFirst, lbaEnd), walks its versions newest to
   * oldest and frees each one no kept view sees (in place: unlinked, its slot handed to
   * `freeEntry`; no data moves). Only entries with LSN in [lsnMin, lsnMax] are candidates.
   * With `dryRun` it only counts, and `lsnHorizon` may say where the horizon would be. Unwritten
   * index pages are skipped whole.
   */
  scanBlocks(
    lbaFirst: number,
    lbaEnd: number,
    options: { lsnMin: number; lsnMax: number; dryRun: boolean; lsnHorizon?: number },
    freeEntry: FreeEntryCallback,
  ): ScanCounts {
    assert(options.lsnHorizon === undefined || options.dryRun, "only a dry run may assume another horizon");
    const lsnHorizon = options.lsnHorizon ?? this.lsnHorizon;
    const counts: ScanCounts = { entriesFreed: 0, slotsFreed: 0 };
    const entries = this.entries;
    for (const page of this.latest.writtenPages(lbaFirst, lbaEnd)) {
      for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
        let newer = 0;
        let lsnNewer = Infinity;
        let id = this.latest.get(lba);
        while (id !== 0) {
          const older = entries.prev(id);
          const lsn = entries.lsn(id);
          const dead = lsnNewer !== Infinity && lsn >= options.lsnMin && lsn <= options.lsnMax && !this.isKeptIn(lsn, lsnNewer, lsnHorizon);
          if (!dead) {
            newer = id;
            lsnNewer = lsn;
          } else {
            const slot = entries.slot(id);
            counts.entriesFreed++;
            if (isDataSlot(slot)) counts.slotsFreed++;
            if (!options.dryRun) {
              entries.setPrev(newer, older);
              entries.release(id);
              freeEntry(slot, lsnNewer);
            }
          }
          id = older;
        }
      }
    }
    return counts;
  }

  /**
   * Frees every version of `lba` that a fold at `lsnFold` made redundant: the version the
   * fold view sees, if it holds data (now in the baseline), and everything older. The
   * callback gets lsnFold as the superseding LSN: the fold's own record is what makes them dead.
   */
  dropFolded(lba: number, lsnFold: number, freeEntry: FreeEntryCallback): void {
    const entries = this.entries;
    let newer = 0;
    let id = this.latest.get(lba);
    while (id !== 0 && entries.lsn(id) > lsnFold) {
      newer = id;
      id = entries.prev(id);
    }
    if (id === 0) return;
    // A zero or trim version stays (as the oldest): no data to fold, and block status stays honest.
    if (!isDataSlot(entries.slot(id))) {
      newer = id;
      id = entries.prev(id);
    }
    if (newer === 0) this.latest.set(lba, 0);
    else entries.setPrev(newer, 0);
    while (id !== 0) {
      const older = entries.prev(id);
      const slot = entries.slot(id);
      entries.release(id);
      freeEntry(slot, lsnFold);
      id = older;
    }
  }

  /** dropFolded for every written block but `skipped` (blocks the fold could not copy). */
  dropFoldedAll(lsnFold: number, skipped: ReadonlySet<number>, freeEntry: FreeEntryCallback): void {
    for (const page of this.latest.writtenPages()) {
      for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
        if (this.entrySeenBy(lba, lsnFold) === 0) continue;
        if (skipped.has(lba)) {
          this.baselineBad.add(lba);
          continue;
        }
        this.baselineBad.delete(lba);
        this.dropFolded(lba, lsnFold, freeEntry);
      }
    }
  }

  /**
   * The whole-disk check (fsck): every version chain runs newest to oldest within its block,
   * every live entry is on exactly one chain, and every data slot below the high-water mark
   * is held by exactly one live entry, waits in `retiring` (freed, not yet reusable), or is
   * free — never two of these. Returns the problems found (empty when sound). O(entries).
   */
  checkIntegrity(retiring: readonly number[]): string[] {
    const problems: string[] = [];
    const entries = this.entries;
    const slots = this.slots;
    const owner = new Map<number, string>();
    const claim = (slot: number, who: string) => {
      const previous = owner.get(slot);
      if (previous !== undefined) problems.push(`slot ${slot} is held by ${previous} and by ${who}`);
      else owner.set(slot, who);
      if (slot >= slots.slotLimit) problems.push(`slot ${slot} (${who}) is past the high-water mark ${slots.slotLimit}`);
    };
    let chained = 0;
    for (const page of this.latest.writtenPages()) {
      for (let lba = page.lbaFirst; lba < page.lbaEnd; lba++) {
        let lsnNewer = Infinity;
        for (let id = this.latest.get(lba); id !== 0; id = entries.prev(id)) {
          const lsn = entries.lsn(id);
          if (lsn === 0) problems.push(`block ${lba}: chain reaches freed entry ${id}`);
          if (entries.lba(id) !== lba) problems.push(`block ${lba}: chain holds entry ${id} of block ${entries.lba(id)}`);
          if (lsn >= lsnNewer) problems.push(`block ${lba}: LSN ${lsn} is not older than ${lsnNewer}`);
          if (lsn > this.lsnLast) problems.push(`block ${lba}: LSN ${lsn} is past the log's end ${this.lsnLast}`);
          lsnNewer = lsn;
          chained++;
          if (chained > entries.count) return [...problems, "version chains hold more entries than the table (a cycle?)"];
          const slot = entries.slot(id);
          if (isDataSlot(slot)) {
            claim(slot, `entry LSN ${lsn} of block ${lba}`);
            if (slots.isFree(slot)) problems.push(`slot ${slot} of entry LSN ${lsn} is on the free list`);
          }
        }
      }
    }
    if (chained !== entries.count) problems.push(`${entries.count} live entries, but ${chained} on version chains`);
    for (const slot of retiring) {
      claim(slot, "the retiring queue");
      if (slots.isFree(slot)) problems.push(`retiring slot ${slot} is on the free list`);
    }
    const accounted = owner.size + slots.freeSlotCount;
    if (accounted !== slots.slotLimit) problems.push(`${slots.slotLimit} slots, but ${owner.size} held + ${slots.freeSlotCount} free`);
    return problems;
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
}
