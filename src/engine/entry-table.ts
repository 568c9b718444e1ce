import { ENTRY_CHUNK_SIZE, ENTRY_COUNT_MAX } from "./constants.js";
import { assert, SnaplogError, ErrorCodes } from "../util/errors.js";

const CHUNK_SHIFT = Math.log2(ENTRY_CHUNK_SIZE);
const CHUNK_MASK = ENTRY_CHUNK_SIZE - 1;

/**
 * Every live log entry of one disk, as columns of typed arrays in chunks of ENTRY_CHUNK_SIZE:
 * no JavaScript object per entry. 28 bytes per entry:
 *   lba  Float64  block address
 *   lsn  Float64  log sequence number
 *   slot Uint32   data slot, or SLOT_ZERO / SLOT_TRIM
 *   crc  Uint32   CRC32C of the block's data (0 without data)
 *   prev Uint32   id of the next older entry of the same block, 0 = none
 *
 * Ids start at 1 (0 is "none"). Freed ids are reused (a stack), so the table grows only with
 * the number of live entries.
 */
export class EntryTable {
  private lbaChunks: Float64Array[] = [];
  private lsnChunks: Float64Array[] = [];
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
      if (id >>> CHUNK_SHIFT >= this.lbaChunks.length) this.addChunk();
    }
    const chunk = id >>> CHUNK_SHIFT;
    const index = id & CHUNK_MASK;
    this.lbaChunks[chunk][index] = lba;
    this.lsnChunks[chunk][index] = lsn;
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
    this.lsnChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK] = 0;
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
    return this.lbaChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK];
  }
  /** 0 for a free id. */
  lsn(id: number): number {
    return this.lsnChunks[id >>> CHUNK_SHIFT][id & CHUNK_MASK];
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
    return this.lbaChunks.length * ENTRY_CHUNK_SIZE * (8 + 8 + 4 + 4 + 4) + this.freeIds.byteLength;
  }

  private addChunk(): void {
    this.lbaChunks.push(new Float64Array(ENTRY_CHUNK_SIZE));
    this.lsnChunks.push(new Float64Array(ENTRY_CHUNK_SIZE));
    this.slotChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
    this.crcChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
    this.prevChunks.push(new Uint32Array(ENTRY_CHUNK_SIZE));
  }
}
