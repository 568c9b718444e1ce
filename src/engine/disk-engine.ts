import { crc32c } from "../util/crc32c.js";
import { assert, ErrorCodes, fromSystemError, SnaplogError } from "../util/errors.js";
import { CHECKPOINT_FILE, encodeCheckpoint, writeCheckpoint, type SnapshotCut } from "./checkpoint.js";
import {
  JOURNAL_CHECKPOINT_BYTES,
  JOURNAL_HEADER_BYTES,
  SLOT_TRIM,
  SLOT_ZERO,
  UNSYNCED_BYTES_MAX,
  UNSYNCED_MS_MAX,
} from "./constants.js";
import { BlockSource, DiskState } from "./disk-state.js";
import {
  encodeEntriesRecord,
  encodeHeaderRecord,
  encodeSnapshotRecord,
  encodeSyncMarkRecord,
  FLAG_SYNCED,
  journalFileName,
} from "./journal-format.js";
import type { Medium, MediumFile } from "./medium.js";
import { recoverDisk } from "./recovery.js";
import { SegmentFiles } from "./segment-files.js";

export const BASELINE_FILE = "baseline.img";

export interface DiskGeometry {
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  hasBaseline: boolean;
  /** Every-write history window; 0 lets overwritten versions go at once. */
  historySeconds: number;
}

export interface DiskEngineTuning {
  /** Rotate the journal and checkpoint past this size (tests make it small). */
  journalCheckpointBytes?: number;
  /** Data segment size; part of the format, so only tests that always pass the same value may set it. */
  segmentSizeBytes?: number;
}

export interface DiskEngineEvents {
  /** A stored block failed its checksum (answered with EIO). */
  onChecksumError?(info: { disk: string; lba: number; lsn: number }): void;
  /** Something went wrong in the background (a checkpoint write, a background sync). */
  onBackgroundError?(error: SnaplogError): void;
}

/** A block-status answer stops after this many runs (a shorter answer is allowed by NBD). */
const BLOCK_RUN_COUNT_MAX = 256;

/** Extents of a block-status answer at one view, in blocks. */
export interface BlockRun {
  blockCount: number;
  source: number;
}

type Settle = { resolve: () => void; reject: (error: SnaplogError) => void };
type WriteOp = Settle & { type: "write"; lbaFirst: number; blockCount: number; data: Buffer; crcs: Uint32Array };
type ZeroOp = Settle & { type: "zero" | "trim"; lbaFirst: number; blockCount: number; noHole: boolean };
type SnapshotOp = Settle & { type: "snapshot"; name: string; lun: number; timeMs: number; cut?: SnapshotCut };
type FlushOp = Settle & { type: "flush" };
/** Bytes inside one block: merged with the block's newest content at commit time. */
type PartialOp = Settle & { type: "partial"; lba: number; offsetBytes: number; data: Buffer };
/** An op that failed before assignment (already answered); it takes no part in the batch. */
type VoidOp = Settle & { type: "void" };
type Op = WriteOp | ZeroOp | SnapshotOp | FlushOp | PartialOp | VoidOp;

class Batch {
  readonly ops: Op[] = [];
  blockCount = 0;
  sync = false;
  hasPartial = false;
}

/** A contiguous run of slots in one segment and the buffers that fill it. */
interface SlotRun {
  slotFirst: number;
  slotCount: number;
  buffers: Buffer[];
}

/**
 * One disk's log engine: group commit of writes into data segments and the metadata
 * journal, reads of the disk at any LSN, O(1) snapshot cuts, checkpoints and recovery.
 *
 * Lifecycle: create() once → open() → (write/read/flush/cutSnapshot)* → close().
 * Write path: operations arriving in one turn of the event loop form a batch; one batch
 * commits at a time (data writev per segment run, one journal write, syncs when a FLUSH,
 * FUA or snapshot is in it), then becomes visible and its callers are answered. A batch
 * that fails before its journal record is written is rolled back; a failed sync leaves the
 * engine failed (every later call errors) until the disk is reopened, because the kernel
 * may have dropped the unsynced pages.
 */
export class DiskEngine {
  /** Highest LSN whose batch completed: what readers of the current volume see. */
  private lsnVisible: number;
  private pending: Batch | undefined;
  private committing = false;
  private failure: SnaplogError | undefined;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  private unsyncedBytes = 0;
  private lastSyncMs = Date.now();
  private syncTimer: NodeJS.Timeout | undefined;
  private checkpointWrite: Promise<void> | undefined;
  /** Ids appended by the batch being committed, for rollback. */
  private batchIds = new Uint32Array(1024);
  /** Every entry with LSN <= this is durable (synced data and journal). */
  private lsnDurable: number;
  private backgroundSyncRun: Promise<void> | undefined;
  /** Set by a finished background sync; the next journal write records it (shortens recovery). */
  private syncMarkLsn = 0;
  /**
   * Slots of reclaimed entries wait here until (1) the entry that made them dead is durable,
   * so a crash cannot bring the old version back after its slot was rewritten, and (2) every
   * read that might have resolved the old version has finished. Parallel queues, FIFO.
   */
  private pendingSlots: number[] = [];
  private pendingLsns: number[] = [];
  private pendingEpochs: number[] = [];
  /** Reads in flight per epoch; the epoch advances whenever slots are reclaimed. */
  private readEpoch = 0;
  private readsInFlight = new Map<number, number>();
  checksumErrorCount = 0;

  private constructor(
    readonly geometry: DiskGeometry,
    private readonly medium: Medium,
    private readonly state: DiskState,
    private readonly segments: SegmentFiles,
    private readonly baseline: MediumFile | undefined,
    private journal: MediumFile,
    private journalGeneration: number,
    private journalPositionBytes: number,
    private readonly events: DiskEngineEvents,
    private readonly journalCheckpointBytes: number,
  ) {
    this.lsnVisible = state.lsnLast;
    this.lsnDurable = state.lsnLast;
    this.syncTimer = setInterval(() => this.syncIfStale(), UNSYNCED_MS_MAX);
    this.syncTimer.unref();
  }

  get blockCount(): number {
    return this.geometry.sizeBytes / this.geometry.blockSizeBytes;
  }

  /** Writes the files of a new, empty disk: journal 1 and an empty checkpoint naming it. */
  static async create(medium: Medium): Promise<void> {
    const journal = await medium.open(journalFileName(1), { create: true });
    try {
      await journal.writev([encodeHeaderRecord(1, Date.now())], 0);
      await journal.sync();
    } finally {
      await journal.close();
    }
    const empty = new DiskState(false, false);
    await writeCheckpoint(medium, encodeCheckpoint(checkpointStateOf(empty, 1)));
  }

  static async open(medium: Medium, geometry: DiskGeometry, events: DiskEngineEvents = {}, tuning: DiskEngineTuning = {}): Promise<DiskEngine> {
    const segments = new SegmentFiles(medium, geometry.blockSizeBytes, tuning.segmentSizeBytes);
    const recovered = await recoverDisk({
      diskName: geometry.name,
      medium,
      segments,
      hasBaseline: geometry.hasBaseline,
      reclaimOverwritten: geometry.historySeconds === 0,
    });
    const journal = await medium.open(journalFileName(recovered.generation), { create: false });
    if (recovered.droppedTailBytes > 0) {
      await journal.truncate(recovered.journalEndBytes);
      await journal.sync();
    }
    for (const generation of recovered.staleGenerations) await medium.remove(journalFileName(generation));
    const baseline = geometry.hasBaseline ? await medium.open(BASELINE_FILE, { create: false }) : undefined;
    return new DiskEngine(geometry, medium, recovered.state, segments, baseline, journal, recovered.generation, recovered.journalEndBytes, events, tuning.journalCheckpointBytes ?? JOURNAL_CHECKPOINT_BYTES);
  }

  // ---- queries -------------------------------------------------------------------------

  get lsnLast(): number {
    return this.lsnVisible;
  }

  get snapshots(): readonly SnapshotCut[] {
    return this.state.snapshots;
  }

  findSnapshot(name: string): SnapshotCut | undefined {
    return this.state.findSnapshot(name);
  }

  stats() {
    return {
      entryCount: this.state.entries.count,
      slotCount: this.state.slots.slotLimit - this.state.slots.freeSlotCount,
      segmentBytes: this.state.slots.slotLimit * this.geometry.blockSizeBytes,
      journalBytes: this.journalPositionBytes,
      memoryBytes: this.state.memoryBytes,
      lsnLast: this.lsnVisible,
      timePointCount: this.state.times.count,
    };
  }

  /** Wall-clock time (ms) of the entry with this LSN. */
  timeOfLsn(lsn: number): number {
    return this.state.times.timeOf(lsn);
  }

  // ---- writes --------------------------------------------------------------------------

  /** Writes whole blocks; `data.length` is a multiple of the block size. */
  writeBlocks(lbaFirst: number, data: Buffer, fua: boolean): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    assert(data.length % blockSizeBytes === 0, "writeBlocks takes whole blocks");
    const blockCount = data.length / blockSizeBytes;
    this.checkBlockRange(lbaFirst, blockCount, "write");
    const crcs = new Uint32Array(blockCount);
    for (let index = 0; index < blockCount; index++) {
      crcs[index] = crc32c(data.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes));
    }
    return this.enqueue({ type: "write", lbaFirst, blockCount, data, crcs }, blockCount, fua);
  }

  /** Records WRITE_ZEROES (`zero`) or TRIM (`trim`) of whole blocks. */
  zeroBlocks(lbaFirst: number, blockCount: number, kind: "zero" | "trim", options: { fua: boolean; noHole: boolean }): Promise<void> {
    this.checkBlockRange(lbaFirst, blockCount, kind);
    return this.enqueue({ type: kind, lbaFirst, blockCount, noHole: options.noHole }, blockCount, options.fua);
  }

  flush(): Promise<void> {
    return this.enqueue({ type: "flush" }, 0, true);
  }

  /**
   * Writes `data` at `offsetBytes` inside block `lba`. The rest of the block keeps its newest
   * content, decided at commit time in queue order: a read-modify-write no concurrent write
   * to the same block can interleave with.
   */
  writePartial(lba: number, offsetBytes: number, data: Buffer, fua: boolean): Promise<void> {
    this.checkBlockRange(lba, 1, "write");
    assert(offsetBytes >= 0 && offsetBytes + data.length <= this.geometry.blockSizeBytes, "partial write stays inside its block");
    return this.enqueue({ type: "partial", lba, offsetBytes, data }, 1, fua);
  }

  /** Cuts the log: O(1), durable when it resolves, atomic with respect to writes. */
  async cutSnapshot(name: string, lun: number): Promise<SnapshotCut> {
    const op: SnapshotOp = { type: "snapshot", name, lun, timeMs: Date.now(), resolve: noop, reject: noop };
    await this.enqueueOp(op, 0, true);
    assert(op.cut !== undefined, "snapshot committed without a cut");
    return op.cut;
  }

  private checkBlockRange(lbaFirst: number, blockCount: number, what: string): void {
    if (!Number.isInteger(lbaFirst) || !Number.isInteger(blockCount) || lbaFirst < 0 || blockCount < 0 || lbaFirst + blockCount > this.blockCount) {
      throw new SnaplogError(ErrorCodes.OUT_OF_RANGE, `${what} of blocks [${lbaFirst}, +${blockCount}) is outside disk ${this.geometry.name} (${this.blockCount} blocks)`, { disk: this.geometry.name });
    }
  }

  private enqueue(
    partial: Omit<WriteOp, keyof Settle> | Omit<ZeroOp, keyof Settle> | Omit<FlushOp, keyof Settle> | Omit<PartialOp, keyof Settle>,
    blockCount: number,
    sync: boolean,
  ): Promise<void> {
    return this.enqueueOp({ ...partial, resolve: noop, reject: noop } as Op, blockCount, sync);
  }

  private enqueueOp(op: Op, blockCount: number, sync: boolean): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new SnaplogError(ErrorCodes.CLOSED, `disk ${this.geometry.name} is closing`, { disk: this.geometry.name }));
    return new Promise<void>((resolve, reject) => {
      op.resolve = resolve;
      op.reject = reject;
      let batch = this.pending;
      if (batch === undefined) {
        batch = new Batch();
        this.pending = batch;
        // Everything that arrives in this turn of the event loop joins the batch.
        setImmediate(() => this.pump());
      }
      batch.ops.push(op);
      batch.blockCount += blockCount;
      if (sync) batch.sync = true;
      if (op.type === "partial") batch.hasPartial = true;
    });
  }

  private pump(): void {
    if (this.committing || this.pending === undefined) {
      if (!this.committing && this.pending === undefined) this.wakeIdle();
      return;
    }
    const batch = this.pending;
    this.pending = undefined;
    this.committing = true;
    this.commit(batch)
      .then(() => this.maybeRotateJournal())
      .catch((error: unknown) => this.events.onBackgroundError?.(fromSystemError(error, { disk: this.geometry.name })))
      .finally(() => {
        this.committing = false;
        this.pump();
      });
  }

  /** Assigns LSNs and slots, writes data then the journal record, syncs if asked, publishes. */
  private async commit(batch: Batch): Promise<void> {
    if (this.failure !== undefined) return this.settle(batch, this.failure);
    if (batch.hasPartial) await this.mergePartials(batch);
    const state = this.state;
    const lsnFirst = state.lsnLast + 1;
    const timeMs = Date.now();
    if (this.batchIds.length < batch.blockCount) this.batchIds = new Uint32Array(batch.blockCount * 2);
    const lbas = new Float64Array(batch.blockCount);
    const slots = new Uint32Array(batch.blockCount);
    const crcs = new Uint32Array(batch.blockCount);
    const runs: SlotRun[] = [];
    const snapshotRecords: Buffer[] = [];
    let count = 0;
    try {
      for (const op of batch.ops) {
        if (op.type === "write") count = this.assignWrite(op, count, lbas, slots, crcs, runs);
        else if (op.type === "zero" || op.type === "trim") count = this.assignZero(op, count, lbas, slots, crcs);
        else if (op.type === "snapshot") this.assignSnapshot(op, batch, snapshotRecords);
      }
    } catch (error) {
      state.rollback(this.batchIds, count, lsnFirst);
      return this.settle(batch, fromSystemError(error, { disk: this.geometry.name }));
    }

    const dataBytes = runs.reduce((sum, run) => sum + run.slotCount, 0) * this.geometry.blockSizeBytes;
    const sync = batch.sync;
    const records: Buffer[] = [];
    if (this.syncMarkLsn > 0) {
      records.push(encodeSyncMarkRecord(this.syncMarkLsn, timeMs));
      this.syncMarkLsn = 0;
    }
    if (count > 0 || (sync && snapshotRecords.length === 0)) {
      records.push(encodeEntriesRecord(lsnFirst, timeMs, sync && snapshotRecords.length === 0 ? FLAG_SYNCED : 0, { lbas, slots, crcs, count }));
    }
    if (snapshotRecords.length > 0) {
      // Snapshot records were encoded unsynced; the last record carries the synced flag.
      const last = snapshotRecords[snapshotRecords.length - 1];
      snapshotRecords[snapshotRecords.length - 1] = withSyncedFlag(last);
      records.push(...snapshotRecords);
    }

    const recordBytes = records.reduce((sum, record) => sum + record.length, 0);
    // Without a sync, data and journal record go out together: recovery checks the data of
    // every record past the last sync point, so their order on disk does not matter.
    // A sync batch writes its record only after its data (and all before) is synced.
    const writes: Promise<void>[] = runs.map((run) => this.segments.writeRun(run.slotFirst, run.buffers));
    if (!sync && records.length > 0) writes.push(this.journal.writev(records, this.journalPositionBytes));
    const written = await Promise.allSettled(writes);
    const writeFailure = written.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (writeFailure === undefined && sync) {
      try {
        await this.segments.syncDirty();
      } catch (error) {
        return this.failBatch(batch, error);
      }
      try {
        if (records.length > 0) await this.journal.writev(records, this.journalPositionBytes);
      } catch (error) {
        state.rollback(this.batchIds, count, lsnFirst);
        return this.settle(batch, fromSystemError(error, { disk: this.geometry.name }));
      }
      this.journalPositionBytes += recordBytes;
      try {
        await this.journal.sync();
      } catch (error) {
        return this.failBatch(batch, error);
      }
    } else if (writeFailure !== undefined) {
      // Nothing of this batch counts: the journal position stays, the next record overwrites.
      state.rollback(this.batchIds, count, lsnFirst);
      return this.settle(batch, fromSystemError(writeFailure.reason, { disk: this.geometry.name }));
    } else {
      this.journalPositionBytes += recordBytes;
    }

    this.unsyncedBytes = sync ? 0 : this.unsyncedBytes + dataBytes;
    if (sync) {
      this.lastSyncMs = Date.now();
      this.lsnDurable = state.lsnLast;
    }
    if (count > 0) state.times.add(lsnFirst, timeMs);
    for (const op of batch.ops) if (op.type === "snapshot" && op.cut !== undefined) state.snapshots.push(op.cut);
    this.lsnVisible = state.lsnLast;
    if (state.reclaimOverwritten) this.reclaimBatch(count);
    this.settle(batch, undefined);
    if (this.unsyncedBytes >= UNSYNCED_BYTES_MAX) this.startBackgroundSync();
  }

  /** A sync failed: the kernel may have dropped the pages; only a reopen knows what is on disk. */
  private failBatch(batch: Batch, error: unknown): void {
    const cause = fromSystemError(error, { disk: this.geometry.name });
    this.failure = new SnaplogError(ErrorCodes.IO, `disk ${this.geometry.name} failed a sync and is offline until the store is reopened: ${cause.message}`, { disk: this.geometry.name, cause: error });
    this.settle(batch, this.failure);
  }

  /** Frees the versions this batch's entries made dead; their slots wait in the pending queue. */
  private reclaimBatch(count: number): void {
    const epoch = this.readEpoch;
    const before = this.pendingSlots.length;
    for (let index = 0; index < count; index++) {
      const id = this.batchIds[index];
      // An entry of this batch may itself have been reclaimed by a later one of the batch.
      if (this.state.entries.lsn(id) === 0) continue;
      const lsn = this.state.entries.lsn(id);
      this.state.reclaimBelow(id, (slot) => {
        this.pendingSlots.push(slot);
        this.pendingLsns.push(lsn);
        this.pendingEpochs.push(epoch);
      });
    }
    if (this.pendingSlots.length > before) this.readEpoch++;
    this.releasePendingSlots();
  }

  /** Moves pending slots whose release conditions hold to the allocator, oldest first. */
  private releasePendingSlots(): void {
    let oldestReadEpoch = Infinity;
    for (const epoch of this.readsInFlight.keys()) if (epoch < oldestReadEpoch) oldestReadEpoch = epoch;
    let ready = 0;
    while (ready < this.pendingSlots.length && this.pendingLsns[ready] <= this.lsnDurable && this.pendingEpochs[ready] < oldestReadEpoch) ready++;
    if (ready === 0) return;
    this.state.slots.releaseMany(this.pendingSlots, ready);
    this.pendingSlots.splice(0, ready);
    this.pendingLsns.splice(0, ready);
    this.pendingEpochs.splice(0, ready);
  }

  /**
   * Syncs data and journal without holding up the commit pipeline. It bounds how much
   * recovery must verify and lets reclaimed slots be reused. FLUSH/FUA never rely on it.
   */
  private startBackgroundSync(): void {
    if (this.backgroundSyncRun !== undefined || this.failure !== undefined) return;
    const lsnCovered = this.lsnVisible;
    const journal = this.journal;
    this.unsyncedBytes = 0;
    this.backgroundSyncRun = (async () => {
      await this.segments.syncDirty();
      await journal.sync();
      this.lastSyncMs = Date.now();
      if (lsnCovered > this.lsnDurable) {
        this.lsnDurable = lsnCovered;
        this.syncMarkLsn = lsnCovered;
      }
      this.releasePendingSlots();
    })()
      .catch((error: unknown) => {
        this.failure = new SnaplogError(ErrorCodes.IO, `disk ${this.geometry.name} failed a sync and is offline until the store is reopened`, { disk: this.geometry.name, cause: error });
        this.events.onBackgroundError?.(this.failure);
      })
      .finally(() => {
        this.backgroundSyncRun = undefined;
      });
  }

  /**
   * Turns each partial op into a whole-block write: the block's newest content is the last
   * earlier op of this batch that wrote it, else what the committed log holds (every earlier
   * batch is complete, and this one is the only batch committing).
   */
  private async mergePartials(batch: Batch): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const written = new Map<number, Buffer | null>(); // null: zeros
    for (let index = 0; index < batch.ops.length; index++) {
      const op = batch.ops[index];
      if (op.type === "write") {
        for (let block = 0; block < op.blockCount; block++) written.set(op.lbaFirst + block, op.data.subarray(block * blockSizeBytes, (block + 1) * blockSizeBytes));
      } else if (op.type === "zero" || op.type === "trim") {
        for (let block = 0; block < op.blockCount; block++) written.set(op.lbaFirst + block, null);
      } else if (op.type === "partial") {
        const merged = Buffer.alloc(blockSizeBytes);
        const newest = written.get(op.lba);
        try {
          if (newest === undefined) (await this.readBlocks(op.lba, 1, Infinity)).copy(merged);
          else if (newest !== null) newest.copy(merged);
        } catch (error) {
          op.reject(fromSystemError(error, { disk: this.geometry.name }));
          batch.ops[index] = { type: "void", resolve: noop, reject: noop };
          continue;
        }
        op.data.copy(merged, op.offsetBytes);
        const crcs = new Uint32Array([crc32c(merged)]);
        batch.ops[index] = { type: "write", lbaFirst: op.lba, blockCount: 1, data: merged, crcs, resolve: op.resolve, reject: op.reject };
        written.set(op.lba, merged);
      }
    }
  }

  private assignWrite(op: WriteOp, count: number, lbas: Float64Array, slots: Uint32Array, crcs: Uint32Array, runs: SlotRun[]): number {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const slotsPerSegment = this.segments.slotsPerSegment;
    let run = runs[runs.length - 1];
    let pieceStart = 0;
    for (let index = 0; index < op.blockCount; index++) {
      const lba = op.lbaFirst + index;
      const slot = this.state.slots.allocate();
      const extends_ = run !== undefined && slot === run.slotFirst + run.slotCount && slot % slotsPerSegment !== 0;
      if (!extends_) {
        if (run !== undefined && index > pieceStart) run.buffers.push(op.data.subarray(pieceStart * blockSizeBytes, index * blockSizeBytes));
        pieceStart = index;
        run = { slotFirst: slot, slotCount: 0, buffers: [] };
        runs.push(run);
      }
      run!.slotCount++;
      this.batchIds[count] = this.state.append(lba, slot, op.crcs[index]);
      lbas[count] = lba;
      slots[count] = slot;
      crcs[count] = op.crcs[index];
      count++;
    }
    if (op.blockCount > pieceStart) run!.buffers.push(op.data.subarray(pieceStart * blockSizeBytes, op.blockCount * blockSizeBytes));
    return count;
  }

  private assignZero(op: ZeroOp, count: number, lbas: Float64Array, slots: Uint32Array, crcs: Uint32Array): number {
    const marker = op.type === "zero" ? SLOT_ZERO : SLOT_TRIM;
    for (let index = 0; index < op.blockCount; index++) {
      const lba = op.lbaFirst + index;
      // Zeros over zeros change no volume: no entry (keeps mkfs-style full-disk discards cheap).
      if (this.state.isRedundantZero(lba, marker, op.noHole)) continue;
      this.batchIds[count] = this.state.append(lba, marker, 0);
      lbas[count] = lba;
      slots[count] = marker;
      crcs[count] = 0;
      count++;
    }
    return count;
  }

  private assignSnapshot(op: SnapshotOp, batch: Batch, records: Buffer[]): void {
    const taken = this.state.findSnapshot(op.name) ?? batch.ops.find((other) => other !== op && other.type === "snapshot" && other.cut?.name === op.name);
    if (taken !== undefined) {
      // Settled with the rest of the batch; marked by leaving `cut` undefined.
      op.reject(new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${this.geometry.name} already has a snapshot named ${op.name}`, { disk: this.geometry.name }));
      op.resolve = noop;
      op.reject = noop;
      return;
    }
    op.cut = { name: op.name, lun: op.lun, lsn: this.state.lsnLast, timeMs: op.timeMs };
    records.push(encodeSnapshotRecord(op.cut.lsn, op.timeMs, 0, op.lun, op.name));
  }

  private settle(batch: Batch, error: SnaplogError | undefined): void {
    for (const op of batch.ops) {
      if (error === undefined) op.resolve();
      else op.reject(error);
    }
  }

  private syncIfStale(): void {
    const stale = Date.now() - this.lastSyncMs >= UNSYNCED_MS_MAX;
    if (stale && (this.unsyncedBytes > 0 || this.pendingSlots.length > 0) && !this.closing) this.startBackgroundSync();
  }

  // ---- checkpoints ---------------------------------------------------------------------

  /**
   * Between batches, when the journal is long: make everything durable, capture the tables,
   * switch appends to a new journal generation, then write the checkpoint in the background.
   * Until the checkpoint's rename, opening replays the old journal and then the new one.
   */
  private async maybeRotateJournal(force = false): Promise<void> {
    if (this.failure !== undefined || this.checkpointWrite !== undefined) return;
    if (!force && this.journalPositionBytes < this.journalCheckpointBytes) return;
    await this.backgroundSyncRun;
    await this.segments.syncDirty();
    // A failed append may have left bytes past the position; a journal that is not the last must end clean.
    await this.journal.truncate(this.journalPositionBytes);
    await this.journal.sync();
    const generation = this.journalGeneration + 1;
    const buffers = encodeCheckpoint(checkpointStateOf(this.state, generation));
    const journal = await this.medium.open(journalFileName(generation), { create: true });
    const header = encodeHeaderRecord(generation, Date.now());
    await journal.truncate(0);
    await journal.writev([header], 0);
    await journal.sync();
    await this.medium.syncDirectory();
    const previous = this.journal;
    const previousGeneration = this.journalGeneration;
    this.journal = journal;
    this.journalGeneration = generation;
    this.journalPositionBytes = header.length;
    this.unsyncedBytes = 0;
    this.syncMarkLsn = 0;
    this.lsnDurable = this.lsnVisible;
    this.releasePendingSlots();
    this.checkpointWrite = (async () => {
      await writeCheckpoint(this.medium, buffers);
      // A background sync that began before the switch may still hold the old journal.
      await this.backgroundSyncRun;
      await previous.close();
      await this.medium.remove(journalFileName(previousGeneration));
    })()
      .catch((error: unknown) => this.events.onBackgroundError?.(fromSystemError(error, { disk: this.geometry.name, path: CHECKPOINT_FILE })))
      .finally(() => {
        this.checkpointWrite = undefined;
      });
  }

  // ---- reads ---------------------------------------------------------------------------

  /** Reads whole blocks of the disk as it was at `lsnView` (Infinity: the current volume). */
  async readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer> {
    this.checkBlockRange(lbaFirst, blockCount, "read");
    if (this.failure !== undefined) throw this.failure;
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const view = Math.min(lsnView, this.lsnVisible);
    const target = Buffer.allocUnsafe(blockCount * blockSizeBytes);
    const ids = new Uint32Array(blockCount);
    const expectedCrcs = new Uint32Array(blockCount);
    const lsns = new Float64Array(blockCount);
    const reads: Promise<void>[] = [];
    const state = this.state;
    let runStart = 0;
    let runKind = -1;
    let runSlotFirst = 0;
    const finishRun = (end: number) => {
      if (end <= runStart) return;
      const piece = target.subarray(runStart * blockSizeBytes, end * blockSizeBytes);
      if (runKind === BlockSource.SLOT) reads.push(this.segments.readRun(runSlotFirst, piece));
      else if (runKind === BlockSource.BASELINE && this.baseline !== undefined) reads.push(this.readBaseline(lbaFirst + runStart, piece));
      else piece.fill(0);
    };
    for (let index = 0; index < blockCount; index++) {
      const id = state.resolve(lbaFirst + index, view);
      let kind = state.sourceOf(id);
      // Captured now: the entry may be reclaimed (and its id reused) while the read is in flight.
      if (kind === BlockSource.SLOT) {
        ids[index] = id;
        expectedCrcs[index] = state.entries.crc(id);
        lsns[index] = state.entries.lsn(id);
      }
      if (kind === BlockSource.TRIM) kind = BlockSource.ZERO;
      if (kind === BlockSource.BASELINE && this.baseline === undefined) kind = BlockSource.ZERO;
      const slot = kind === BlockSource.SLOT ? state.entries.slot(id) : 0;
      const continues =
        kind === runKind &&
        (kind !== BlockSource.SLOT || (slot === runSlotFirst + (index - runStart) && slot % this.segments.slotsPerSegment !== 0));
      if (!continues) {
        finishRun(index);
        runStart = index;
        runKind = kind;
        runSlotFirst = slot;
      }
    }
    finishRun(blockCount);
    if (reads.length > 0) await this.awaitReads(reads);
    this.verifyBlocks(target, ids, expectedCrcs, lsns, lbaFirst);
    return target;
  }

  /** Waits for a read's I/O while holding its epoch, so its slots are not reused under it. */
  private async awaitReads(reads: Promise<void>[]): Promise<void> {
    const epoch = this.readEpoch;
    this.readsInFlight.set(epoch, (this.readsInFlight.get(epoch) ?? 0) + 1);
    try {
      await Promise.all(reads);
    } finally {
      const left = this.readsInFlight.get(epoch)! - 1;
      if (left === 0) {
        this.readsInFlight.delete(epoch);
        if (this.pendingSlots.length > 0) this.releasePendingSlots();
      } else {
        this.readsInFlight.set(epoch, left);
      }
    }
  }

  private async readBaseline(lbaFirst: number, target: Buffer): Promise<void> {
    const readBytes = await this.baseline!.read(target, lbaFirst * this.geometry.blockSizeBytes);
    if (readBytes < target.length) target.fill(0, readBytes);
  }

  private verifyBlocks(target: Buffer, ids: Uint32Array, expectedCrcs: Uint32Array, lsns: Float64Array, lbaFirst: number): void {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    for (let index = 0; index < ids.length; index++) {
      if (ids[index] === 0) continue;
      if (crc32c(target.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes)) === expectedCrcs[index]) continue;
      this.checksumErrorCount++;
      const lba = lbaFirst + index;
      const lsn = lsns[index];
      this.events.onChecksumError?.({ disk: this.geometry.name, lba, lsn });
      throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${this.geometry.name}: block ${lba} (LSN ${lsn}) failed its checksum`, { disk: this.geometry.name, lsn });
    }
  }

  /**
   * What each block of [lbaFirst, +blockCount) is at `lsnView`, as runs (data, zero, trim,
   * baseline). Skips unwritten index pages whole, so mapping a large empty disk is cheap.
   */
  blockRuns(lbaFirst: number, blockCount: number, lsnView: number, runCountMax = BLOCK_RUN_COUNT_MAX): BlockRun[] {
    this.checkBlockRange(lbaFirst, blockCount, "block status");
    const view = Math.min(lsnView, this.lsnVisible);
    const runs: BlockRun[] = [];
    const pageBlocks = DiskState.pageBlocks;
    let lba = lbaFirst;
    const end = lbaFirst + blockCount;
    // Answers a prefix once runCountMax runs are complete: clients ask again from there.
    while (lba < end) {
      let source: number;
      let count: number;
      if (this.state.pageIsEmpty(lba)) {
        source = BlockSource.BASELINE;
        count = Math.min(end, (Math.floor(lba / pageBlocks) + 1) * pageBlocks) - lba;
      } else {
        source = this.state.sourceOf(this.state.resolve(lba, view));
        count = 1;
      }
      const last = runs[runs.length - 1];
      if (last !== undefined && last.source === source) {
        last.blockCount += count;
      } else {
        if (runs.length === runCountMax) break;
        runs.push({ blockCount: count, source });
      }
      lba += count;
    }
    return runs;
  }

  // ---- lifecycle -----------------------------------------------------------------------

  /** Resolves once nothing is queued or committing. */
  private idle(): Promise<void> {
    if (!this.committing && this.pending === undefined) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Finishes queued work, writes a final checkpoint (so the next open replays nothing), closes files. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.syncTimer);
    await this.idle();
    await this.backgroundSyncRun;
    if (this.checkpointWrite !== undefined) await this.checkpointWrite;
    // A journal holding only its header adds nothing to the checkpoint: leave the files as they are.
    if (this.failure === undefined && this.journalPositionBytes > JOURNAL_HEADER_BYTES) {
      try {
        await this.maybeRotateJournal(true);
        if (this.checkpointWrite !== undefined) await this.checkpointWrite;
      } catch (error) {
        this.events.onBackgroundError?.(fromSystemError(error, { disk: this.geometry.name }));
      }
    }
    await this.journal.close();
    await this.segments.close();
    await this.baseline?.close();
  }

  /** For tests: the engine as a crash would leave it (no final checkpoint), files closed. */
  async abandon(): Promise<void> {
    this.closing = true;
    clearInterval(this.syncTimer);
    await this.idle();
    await this.backgroundSyncRun;
    if (this.checkpointWrite !== undefined) await this.checkpointWrite;
    await this.journal.close();
    await this.segments.close();
    await this.baseline?.close();
  }
}

function noop(): void {}

function withSyncedFlag(record: Buffer): Buffer {
  record.writeUInt8(record.readUInt8(13) | FLAG_SYNCED, 13);
  record.writeUInt32LE(crc32c(record.subarray(8)), 4);
  return record;
}

function checkpointStateOf(state: DiskState, generation: number) {
  const timePoints: { lsn: number; timeMs: number }[] = [];
  for (let index = 0; index < state.times.count; index++) timePoints.push(state.times.pointAt(index));
  return {
    generation,
    lsnLast: state.lsnLast,
    entryCount: state.entries.count,
    forEachEntry: (visit: (lba: number, lsn: number, slot: number, crc: number) => void) => state.forEachEntryInLsnOrder(visit),
    snapshots: [...state.snapshots],
    timePoints,
  };
}
