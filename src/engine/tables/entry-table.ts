import { ENTRY_CHUNK_SIZE, ENTRY_COUNT_MAX } from "../constants.js";
import { assert, SnaplogError, ErrorCodes } from "../../util/errors.js";

const CHUNK_SHIFT = Math.log2(ENTRY_CHUNK_SIZE);
const CHUNK_MASK = ENTRY_CHUNK_SIZE - 1;
const TWO_32 = 2 ** 32;
/** lba and lsn columns hold 48 bits. */
const VALUE_LIMIT = 2 ** 48;

/**
 * Every live log entry of one disk, as columns of typed arrays in chunks of ENTRY_CHUNK_SIZE:
 * no JavaScript object per entry. 24 bytes per entry:
 *   lba  Uint32 + Uint16  block address (48 bits)
 *   lsn  Uint32 + Uint16  log sequence number (48 bits: 2.8e14, 9 years at a million writes/s)
 *   slot Uint32           data slot, or SLOT_ZERO / SLOT_TRIM
 *   crc  Uint32           CRC32C of the block's data (0 without data)
 *   prev Uint32           id of the next older entry of the same block, 0 = none
 *
 * Ids start at 1 (0 is "none"). Freed ids are reused (a stack), so the table grows only with
 * the number of live entries.
 */
export class EntryTable {
  private lbaLowChunks: Uint32Array[] = [];
  private lbaHighChunks: Uint16Array[] = [];
  private lsnLowChunks: Uint32Array[] = [];
  private lsnHighChunks: Uint16Array[] = [];
  private slotChunks: Uint32Array[] = [];
  private crcChunks: Uint32Array[] = [];
  private prevChunks: Uint32Array[] = [];
  /** Next never-used id. */
  private idNext = 1;
  private freeIds = new Uint32Array(1024);
  private freeIdCount = 0;
  private liveCount = 0;

  get count(): number {
    return this.liveCount;
  }

  /** Ids below this have been handed out at least once. */
  get idLimit(): number {
    return this.idNext;
  }

  allocate(lba: number, lsn: number, slot: number, crc: number, prev: number): number {
    let id: number;
    if (this.freeIdCount > 0) {
      id = this.freeIds[--this.freeIdCount];
    } else {
      if (this.idNext >= ENTRY_COUNT_MAX) {
        throw new SnaplogError(ErrorCodes.NO_SPACE, "the disk's entry table is full; compact or snapshot-delete to free entries");
      }
      id = this.idNext++;
      if (id >>> CHUNK_SHIFT >= this.slotChunks.length) this.addChunk();
    }
    assert(lba < VALUE_LIMIT && lsn < VALUE_LIMIT, "lba and lsn fit in 48 bits");
    const chunk = id >>> CHUNK_SHIFT;
    const index = id & CHUNK_MASK;
    this.lbaLowChunks[chunk][index] = lba >>> 0;
    this.lbaHighChunks[chunk][index] = Math.floor(lba / TWO_32);
    this.lsnLowChunks[chunk][index] = lsn >>> 0;
    this.lsnHighChunks[chunk][index] = Math.floor(lsn / TWO_32);
    this.slotChunks[chunk][index] = slot;
    this.crcChunks[chunk][index] = crc;
    this.prevChunks[chunk][index] = prev;
    this.liveCount++;
    return id;
  }

  /** Returns an id to the free stack. The caller has unlinked it from every chain. */
  release(id: number): void {
    assert(id > 0 && id < this.idNext, "release of an id never allocated");
    assert(this.lsn(id) !== 0, "double release of an entry id");
    this.lsnLowChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK] = 0;
    this.lsnHighChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK] = 0;
    if (id === this.idNext - 1) {
      this.idNext--;
    } else {
      if (this.freeIdCount === this.freeIds.length) {
        const grown = new Uint32Array(this.freeIds.length * 2);
        grown.set(this.freeIds);
        this.freeIds = grown;
      }
      this.freeIds[this.freeIdCount++] = id;
    }
    this.liveCount--;
  }

  lba(id: number): number {
    const chunk = id >>> CHUNK_SHIFT;
    const index = id & CHUNK_MASK;
    return this.lbaHighChunks[chunk][index] * TWO_32 + this.lbaLowChunks[chunk][index];
  }
  /** 0 for a free id. */
  lsn(id: number): number {
    const chunk = id >>> CHUNK_SHIFT;
    const index = id & CHUNK_MASK;
    return this.lsnHighChunks[chunk][index] * TWO_32 + this.lsnLowChunks[chunk][index];
  }
  slot(id: number): number {
    return this.slotChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK];
  }
  crc(id: number): number {
    return this.crcChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK];
  }
  prev(id: number): number {
    return this.prevChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK];
  }
  setPrev(id: number, prev: number): void {
    this.prevChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK] = prev;
  }

  /** Bytes held by the columns (for the memory-per-entry figure). */
  get memoryBytes(): number {
    return this.slotChunks.length * ENTRY_CHUNK_SIZE * (6 + 6 + 4 + 4 + 4) + this.freeIds.byteLength;
  }

  private addChunk(): void {
    this.lbaLowChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
    this.lbaHighChunks.push(new Uint16Array(ENTRY_CHUNK_SIZE));
    this.lsnLowChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
    this.lsnHighChunks.push(new Uint16Array(ENTRY_CHUNK_SIZE));
    this.slotChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
    this.crcChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
    this.prevChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
  }
}
