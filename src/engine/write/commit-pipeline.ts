import { assert, ErrorCodes, fromSystemError, SnaplogError } from "../../util/errors.js";
import {
  CHECKPOINT_FILE,
  checkpointStateOf,
  encodeCheckpoint,
  readCheckpointHeader,
  writeCheckpoint,
  type SnapshotCut,
} from "../log/checkpoint.js";
import {
  Batch,
  EntryColumns,
  noop,
  type ControlOp,
  type Op,
  type RollbackOp,
  type SlotRun,
  type SnapshotOp,
  type WriteOp,
  type ZeroOp,
} from "./commit-batch.js";
import {
  JOURNAL_CHECKPOINT_BYTES,
  JOURNAL_HEADER_BYTES,
  SLOT_TRIM,
  SLOT_ZERO,
  TIME_POINTS_THIN_MIN,
  TIME_RESOLUTION_OUTSIDE_WINDOW_MS,
  UNSYNCED_BYTES_MAX,
  UNSYNCED_MS_MAX,
} from "../constants.js";
import type { CrashHook } from "../crash-points.js";
import type { DiskState } from "../tables/disk-state.js";
import type { DiskEngineEvents, DiskEngineTuning } from "../engine-options.js";
import type { JournalFile, ReserveUse } from "../log/journal-file.js";
import { mergePartials, type PartialMergeContext } from "./partial-merge.js";
import { encodeEntriesRecord, encodeSnapshotRecord, journalFileName, RecordType } from "../log/journal-format.js";
import type { JournalSeekPoint, LogFiles } from "../log/log-reader.js";
import type { Medium } from "../medium.js";
import type { RetiringSlots } from "../space/retiring-slots.js";
import { appendRestoredBlocks, blocksWrittenAfter, ROLLBACK_CHUNK_BLOCKS, type RestoreCopyContext } from "./rollback-copy.js";
import type { SegmentFiles } from "../space/segment-files.js";

/** A seek point per this much journal: 64 MiB of journal holds at most 1,024 (a log reader scans at most this much before its range). */
const JOURNAL_SEEK_POINT_BYTES = 64 * 1024;
/** Start a background sync once this many freed slots wait for durability before reuse. */
const RETIRING_SLOTS_SYNC = 8192;

/** What the pipeline needs from the engine around it. */
export interface PipelineContext {
  diskName: string;
  blockSizeBytes: number;
  blockCount: number;
  medium: Medium;
  state: DiskState;
  segments: SegmentFiles;
  retiring: RetiringSlots;
  events: DiskEngineEvents;
  tuning: DiskEngineTuning;
  clock: () => number;
  /** The journal file appends go to (opened where recovery ended). */
  journal: JournalFile;
  /** Reads the committed current volume (partial-block merges). */
  readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer>;
  /** What a rollback copies with. */
  restoreCopy(): RestoreCopyContext;
  /** The fold under way, which checkpoints must carry (0: none). */
  foldLsn(): number;
  /** The oldest view the history window holds now (entry times before it are kept coarsely). */
  windowLsnFirst(): number;
  /** A batch's entries became visible (the history cap counts what they made window-only). */
  onPublished?(ids: Uint32Array, count: number): void;
}

/**
 * The write path of one disk: group commit. Operations arriving together form a batch (those of
 * one synchronous run when the pipeline is idle, all that arrive during a commit otherwise); one
 * batch commits at a time: LSNs and slots assigned, data written per segment
 * run, one journal write, syncs when a FLUSH, FUA, snapshot or metadata record is in it; then
 * the batch becomes visible and its callers are answered. A batch that fails before its
 * journal record is written is rolled back; a failed sync leaves the pipeline failed (every
 * later call errors) until the disk is reopened, because the kernel may have dropped the
 * unsynced pages. Between batches the journal rotates into a checkpoint when it is long.
 * The journal file and its state (position, reserve, the sync mark owed, generations) are
 * log/journal-file.ts; this class decides when records are written and synced, in what order
 * with the data, and fires the crash points of those steps (crash-points.ts).
 *
 *   enqueue ─▶ pending batch ─(microtask when idle, else after the commit under way)─▶ commit ─▶ writeBatch ─▶ publish ─▶ answered
 *   exclusive op (rollback) ─▶ seals pending, takes a sealed batch of its own, in order
 */
export class CommitPipeline {
  /** Highest LSN whose batch completed: what readers of the current volume see. */
  lsnVisible: number;
  /** Every entry with LSN <= this is durable (synced data and journal). */
  lsnDurable: number;
  failure: SnaplogError | undefined;
  closing = false;
  /** Time of the last write accepted (ms), for idle detection. */
  lastWriteMs = 0;
  private pending: Batch | undefined;
  private readonly sealed: Batch[] = [];
  private committing = false;
  private idleWaiters: (() => void)[] = [];
  private unsyncedBytes = 0;
  private lastSyncMs = Date.now();
  /** The time index is thinned when it reaches this many points (see TIME_POINTS_THIN_MIN). */
  private timePointsThinAt = TIME_POINTS_THIN_MIN;
  /** What partial ops merge with: the committed current volume, read through the engine's read path. */
  private readonly partialMerge: PartialMergeContext;
  /** The pump as a callback that holds no op: a queued setImmediate must not keep a batch's data alive. */
  private readonly pumpSoon = (): void => this.pump();
  private readonly syncTimer: NodeJS.Timeout | undefined;
  private checkpointWrite: Promise<void> | undefined;
  /** The foreground part of a journal rotation (sync, switch to the next generation). */
  private rotation: Promise<void> | undefined;
  private backgroundSyncRun: Promise<void> | undefined;
  /** Where recent batches begin in the current journal, every JOURNAL_SEEK_POINT_BYTES (log readers start there). */
  private seekPoints: JournalSeekPoint[] = [];
  private seekGeneration = 0;
  /** Log readers opening their files: journal rotation waits (see openLogFiles). */
  private logFilesOpening = 0;
  private readonly journal: JournalFile;
  private readonly diskName: string;
  private readonly blockSizeBytes: number;
  private readonly blockCount: number;
  private readonly medium: Medium;
  private readonly state: DiskState;
  private readonly segments: SegmentFiles;
  private readonly retiring: RetiringSlots;
  private readonly events: DiskEngineEvents;
  private readonly tuning: DiskEngineTuning;
  private readonly clock: () => number;
  private readonly crash: CrashHook | undefined;

  constructor(private readonly context: PipelineContext) {
    ({
      diskName: this.diskName,
      blockSizeBytes: this.blockSizeBytes,
      blockCount: this.blockCount,
      medium: this.medium,
      state: this.state,
    } = context);
    ({ segments: this.segments, retiring: this.retiring, events: this.events, tuning: this.tuning, clock: this.clock } = context);
    this.journal = context.journal;
    this.partialMerge = {
      diskName: context.diskName,
      blockSizeBytes: context.blockSizeBytes,
      readBlocks: (lbaFirst, blockCount, lsnView) => context.readBlocks(lbaFirst, blockCount, lsnView),
    };
    this.crash = context.tuning.crashHook;
    this.lsnVisible = context.state.lsnLast;
    this.lsnDurable = context.state.lsnLast;
    if (context.tuning.backgroundSyncTimer !== false) {
      this.syncTimer = setInterval(() => this.syncIfStale(), UNSYNCED_MS_MAX);
      this.syncTimer.unref();
    }
  }

  /** The current journal's length up to its last record (stats). */
  get journalBytes(): number {
    return this.journal.positionBytes;
  }

  /** A FLUSH: everything committed before it durable when it resolves. */
  flush(): Promise<void> {
    return this.enqueue({ type: "flush", resolve: noop, reject: noop }, 0, true);
  }

  /** Cuts the log at its end (or at `lsn`, an earlier view the caller checked and pinned). */
  async commitSnapshot(name: string, lun: number, lsn: number | undefined, timeMs = this.clock()): Promise<SnapshotCut> {
    const op: SnapshotOp = { type: "snapshot", name, lun, timeMs, lsn, resolve: noop, reject: noop };
    await this.enqueueOp(op, 0, true);
    assert(op.cut !== undefined, "snapshot committed without a cut");
    return op.cut;
  }

  /**
   * Queues ops as one batch of their own whose entries carry `timeMs` (an import: the source's
   * time). Ops queued before commit before them; the batch takes no other op.
   */
  enqueueBatchAt(ops: Op[], timeMs: number, sync: boolean): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing)
      return Promise.reject(new SnaplogError(ErrorCodes.CLOSED, `disk ${this.diskName} is closing`, { disk: this.diskName }));
    this.sealPending();
    const batch = new Batch();
    batch.timeMs = timeMs;
    batch.sync = sync;
    batch.sealed = true;
    // One promise for the batch, not one per op (an import batch holds thousands): it resolves
    // when every op has, and rejects with the first failure, as Promise.all would.
    const settled = new Promise<void>((resolve, reject) => {
      let unsettled = ops.length;
      const settleOne = (): void => {
        if (--unsettled === 0) resolve();
      };
      for (const op of ops) {
        op.resolve = settleOne;
        op.reject = reject;
        batch.ops.push(op);
        if (op.type === "write" || op.type === "zero" || op.type === "trim") batch.blockCount += op.blockCount;
      }
      if (unsettled === 0) resolve();
    });
    if (batch.blockCount > 0) this.lastWriteMs = Date.now();
    this.sealed.push(batch);
    setImmediate(this.pumpSoon);
    return settled;
  }

  /** Queues an exclusive op (a rollback): it commits alone, after everything queued before it. */
  enqueueExclusive(op: RollbackOp): Promise<void> {
    return this.enqueueOp(op, 0, true, true);
  }

  /** Stops taking ops; the timer stops. Then finish(). */
  beginClose(): void {
    this.closing = true;
    clearInterval(this.syncTimer);
  }

  /**
   * Finishes queued work; with `checkpoint`, writes a final one (so the next open replays
   * nothing) unless the journal holds only its header; closes the journal.
   */
  async finish(checkpoint: boolean): Promise<void> {
    await this.idle();
    await this.backgroundSyncRun;
    if (this.checkpointWrite !== undefined) await this.checkpointWrite;
    if (checkpoint && this.failure === undefined && this.journal.positionBytes > JOURNAL_HEADER_BYTES) {
      try {
        await this.maybeRotateJournal(true);
        if (this.checkpointWrite !== undefined) await this.checkpointWrite;
      } catch (error) {
        this.events.onBackgroundError?.(fromSystemError(error, { disk: this.diskName }));
      }
    }
    await this.journal.close();
  }

  /** Queues `op` (built whole by the caller: commit-batch.ts) into the open batch. */
  enqueue(op: Op, blockCount: number, sync: boolean): Promise<void> {
    return this.enqueueOp(op, blockCount, sync);
  }

  /**
   * Queues an op. Ops queued in one synchronous run share a batch; an exclusive op
   * (a rollback) seals the open batch and takes a batch of its own, so every op queued before
   * it commits before it and every op after it, after.
   */
  private enqueueOp(op: Op, blockCount: number, sync: boolean, exclusive = false): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing)
      return Promise.reject(new SnaplogError(ErrorCodes.CLOSED, `disk ${this.diskName} is closing`, { disk: this.diskName }));
    if (blockCount > 0) this.lastWriteMs = Date.now();
    return new Promise<void>((resolve, reject) => {
      op.resolve = resolve;
      op.reject = reject;
      if (exclusive) {
        this.sealPending();
        const batch = new Batch();
        batch.ops.push(op);
        batch.sync = true;
        batch.sealed = true;
        this.sealed.push(batch);
        setImmediate(this.pumpSoon);
        return;
      }
      let batch = this.pending;
      if (batch === undefined) {
        batch = new Batch();
        this.pending = batch;
        // Everything that arrives in this turn of the event loop joins the batch. When nothing
        // is committing, the batch goes once the current task's synchronous work is done (all
        // requests parsed from one socket read have joined it by then); else it waits for the
        // commit under way, gathering what arrives meanwhile.
        if (this.committing) setImmediate(this.pumpSoon);
        else queueMicrotask(this.pumpSoon);
      }
      batch.ops.push(op);
      batch.blockCount += blockCount;
      if (sync) batch.sync = true;
      if (op.type === "partial") batch.hasPartial = true;
    });
  }

  private sealPending(): void {
    if (this.pending === undefined) return;
    this.pending.sealed = true;
    this.sealed.push(this.pending);
    this.pending = undefined;
  }

  /** Writes one metadata record through the commit pipeline (synced); `apply` runs once it is durable. */
  commitControl(encode: (timeMs: number) => Buffer, apply: () => void = noop): Promise<void> {
    const op: ControlOp = { type: "control", encode, apply, resolve: noop, reject: noop };
    return this.enqueueOp(op, 0, true);
  }

  private pump(): void {
    if (this.committing) return;
    const batch = this.sealed.shift() ?? this.pending;
    if (batch === undefined) {
      this.wakeIdle();
      return;
    }
    if (batch === this.pending) this.pending = undefined;
    this.committing = true;
    this.commit(batch)
      .then(() => this.maybeRotateJournal())
      .catch((error: unknown) => this.events.onBackgroundError?.(fromSystemError(error, { disk: this.diskName })))
      .finally(() => {
        this.committing = false;
        this.pump();
      });
  }

  /** Assigns LSNs and slots, writes data then the journal records, syncs if asked, publishes. */
  private async commit(batch: Batch): Promise<void> {
    if (this.failure !== undefined) return this.settle(batch, this.failure);
    const first = batch.ops[0];
    if (first !== undefined && first.type === "rollback") return this.commitRollback(batch, first);
    if (batch.hasPartial) await mergePartials(batch, this.partialMerge);
    const state = this.state;
    const lsnFirst = state.lsnLast + 1;
    const timeMs = batch.timeMs ?? this.clock();
    const columns = new EntryColumns(batch.blockCount);
    const runs: SlotRun[] = [];
    const tail: Buffer[] = [];
    try {
      for (const op of batch.ops) {
        if (op.type === "write") this.assignWrite(op, columns, runs);
        else if (op.type === "zero" || op.type === "trim") this.assignZero(op, columns);
        else if (op.type === "snapshot") this.assignSnapshot(op, batch, tail);
        else if (op.type === "control") tail.push(op.encode(timeMs));
      }
    } catch (error) {
      state.rollback(columns.ids, columns.count, lsnFirst);
      return this.settle(batch, fromSystemError(error, { disk: this.diskName }));
    }
    const entriesRecord = columns.count > 0 || (batch.sync && tail.length === 0);
    const records = this.journal.recordsOf(
      timeMs,
      entriesRecord ? encodeEntriesRecord(lsnFirst, timeMs, 0, columns) : undefined,
      tail,
      batch.sync,
    );
    this.noteSeekPoint(lsnFirst, columns.count);
    if (!(await this.writeBatch(batch, runs, records, columns, lsnFirst))) return;
    const dataBytes = runs.reduce((sum, run) => sum + run.slotCount, 0) * this.blockSizeBytes;
    this.publish(batch, columns, lsnFirst, timeMs, dataBytes);
  }

  /**
   * Writes a batch's data runs and records. Without a sync, data and journal record go out
   * together: recovery checks the data of every record past the last sync point, so their
   * order on disk does not matter. A sync batch writes its records only after its data (and
   * all before) is synced. Returns false when the batch failed (and was settled).
   */
  private async writeBatch(batch: Batch, runs: SlotRun[], records: Buffer[], columns: EntryColumns, lsnFirst: number): Promise<boolean> {
    const recordBytes = records.reduce((sum, record) => sum + record.length, 0);
    try {
      await this.journal.makeRoom(recordBytes, this.journal.keptFor(reserveUseOf(batch, columns)));
    } catch (error) {
      this.state.rollback(columns.ids, columns.count, lsnFirst);
      this.settle(batch, fromSystemError(error, { disk: this.diskName }));
      return false;
    }
    const writes: Promise<void>[] = runs.map((run) => this.segments.writeRun(run.slotFirst, run.buffers));
    const journalWritten = !batch.sync && records.length > 0;
    if (journalWritten) writes.push(this.journal.write(records));
    const written = await Promise.allSettled(writes);
    const writeFailure = written.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (writeFailure !== undefined) {
      // Nothing of this batch counts: the journal position stays, the next record overwrites.
      this.state.rollback(columns.ids, columns.count, lsnFirst);
      if (journalWritten && written[written.length - 1].status === "fulfilled") {
        // Its record did reach the journal: erase it durably, or a crash that loses the next
        // record at this position would bring back a write its caller was told failed.
        try {
          await this.journal.erase(recordBytes);
        } catch (error) {
          this.failBatch(batch, error);
          return false;
        }
      }
      this.settle(batch, fromSystemError(writeFailure.reason, { disk: this.diskName }));
      return false;
    }
    this.crash?.("batch:data-written");
    if (!batch.sync) {
      this.journal.advance(recordBytes);
      return true;
    }
    try {
      if (this.tuning.sabotage !== "skip-data-sync") await this.segments.syncDirty();
      this.crash?.("batch:data-synced");
    } catch (error) {
      this.failBatch(batch, error);
      return false;
    }
    try {
      if (records.length > 0) await this.journal.write(records);
      this.crash?.("batch:journal-written");
    } catch (error) {
      this.state.rollback(columns.ids, columns.count, lsnFirst);
      this.settle(batch, fromSystemError(error, { disk: this.diskName }));
      return false;
    }
    this.journal.advance(recordBytes);
    try {
      await this.journal.sync();
      this.crash?.("batch:journal-synced");
    } catch (error) {
      this.failBatch(batch, error);
      return false;
    }
    return true;
  }

  /** Makes a written batch visible: times, cuts, control records' effects, reclaim; answers it. */
  private publish(batch: Batch, columns: EntryColumns, lsnFirst: number, timeMs: number, dataBytes: number): void {
    const state = this.state;
    this.unsyncedBytes = batch.sync ? 0 : this.unsyncedBytes + dataBytes;
    if (batch.sync) {
      this.lastSyncMs = Date.now();
      this.lsnDurable = state.lsnLast;
    }
    if (columns.count > 0) state.times.add(lsnFirst, timeMs);
    if (state.times.count >= this.timePointsThinAt) {
      state.times.thinBefore(this.context.windowLsnFirst(), TIME_RESOLUTION_OUTSIDE_WINDOW_MS);
      this.timePointsThinAt = Math.max(TIME_POINTS_THIN_MIN, state.times.count * 2);
    }
    for (const op of batch.ops) {
      if (op.type === "snapshot" && op.cut !== undefined) state.insertSnapshot(op.cut);
      else if (op.type === "control") op.apply();
    }
    this.lsnVisible = state.lsnLast;
    if (columns.count > 0) this.context.onPublished?.(columns.ids, columns.count);
    if (state.reclaimOverwritten) this.reclaimBatch(columns);
    this.settle(batch, undefined);
    // Reclaimed slots wait for durability: sync early when many wait, or the log grows past need.
    if (this.unsyncedBytes >= UNSYNCED_BYTES_MAX || this.retiring.count >= RETIRING_SLOTS_SYNC) this.startBackgroundSync();
  }

  /** A sync failed: the kernel may have dropped the pages; only a reopen knows what is on disk. */
  private failBatch(batch: Batch, error: unknown): void {
    this.failure = this.offlineAfterSyncFailure(error);
    this.settle(batch, this.failure);
  }

  private offlineAfterSyncFailure(error: unknown): SnaplogError {
    const cause = fromSystemError(error, { disk: this.diskName });
    return new SnaplogError(
      ErrorCodes.IO,
      `disk ${this.diskName} failed a sync and is offline until the store is reopened: ${cause.message}`,
      { disk: this.diskName, cause: error },
    );
  }

  /** Frees the versions this batch's entries made dead (zero window); their slots retire. */
  private reclaimBatch(columns: EntryColumns): void {
    for (let index = 0; index < columns.count; index++) {
      const id = columns.ids[index];
      // An entry of this batch may itself have been reclaimed by a later one of the batch.
      if (this.state.entries.lsn(id) === 0) continue;
      this.state.reclaimBelow(id, this.retiring.retire);
    }
    this.retiring.closeEpoch();
    this.releaseRetired();
  }

  /** Retired slots whose superseding entries are durable (and unread) go back to the allocator. */
  releaseRetired(): void {
    this.retiring.release(this.state.slots, this.tuning.sabotage === "reuse-slots-early" ? Infinity : this.lsnDurable);
  }

  /**
   * Syncs data and journal without holding up the commit pipeline. It bounds how much
   * recovery must verify and lets reclaimed slots be reused. FLUSH/FUA never rely on it.
   */
  private startBackgroundSync(): void {
    if (this.backgroundSyncRun !== undefined || this.failure !== undefined) return;
    const lsnCovered = this.lsnVisible;
    // The file appends go to now: a rotation may switch to the next one meanwhile.
    const journal = this.journal.file;
    this.unsyncedBytes = 0;
    this.backgroundSyncRun = (async () => {
      await this.segments.syncDirty();
      this.crash?.("background-sync:data-synced");
      await journal.sync();
      this.crash?.("background-sync:journal-synced");
      this.lastSyncMs = Date.now();
      if (lsnCovered > this.lsnDurable) {
        this.lsnDurable = lsnCovered;
        this.journal.noteSynced(lsnCovered);
      }
      this.releaseRetired();
    })()
      .catch((error: unknown) => {
        this.failure = this.offlineAfterSyncFailure(error);
        this.events.onBackgroundError?.(this.failure);
      })
      .finally(() => {
        this.backgroundSyncRun = undefined;
      });
  }

  private assignWrite(op: WriteOp, columns: EntryColumns, runs: SlotRun[]): void {
    const blockSizeBytes = this.blockSizeBytes;
    const slotsPerSegment = this.segments.slotsPerSegment;
    let run = runs[runs.length - 1];
    let pieceStart = 0;
    for (let index = 0; index < op.blockCount; index++) {
      const lba = op.lbaFirst + index;
      const slot = this.state.slots.allocate();
      const extends_ = run !== undefined && slot === run.slotFirst + run.slotCount && slot % slotsPerSegment !== 0;
      if (!extends_) {
        if (run !== undefined && index > pieceStart)
          run.buffers.push(op.data.subarray(pieceStart * blockSizeBytes, index * blockSizeBytes));
        pieceStart = index;
        run = { slotFirst: slot, slotCount: 0, buffers: [] };
        runs.push(run);
      }
      run!.slotCount++;
      columns.push(this.state.append(lba, slot, op.crcs[index]), lba, slot, op.crcs[index]);
    }
    if (op.blockCount > pieceStart) run!.buffers.push(op.data.subarray(pieceStart * blockSizeBytes, op.blockCount * blockSizeBytes));
  }

  private assignZero(op: ZeroOp, columns: EntryColumns): void {
    const marker = op.type === "zero" ? SLOT_ZERO : SLOT_TRIM;
    for (let index = 0; index < op.blockCount; index++) {
      const lba = op.lbaFirst + index;
      // Zeros over zeros change no volume: no entry (keeps mkfs-style full-disk discards cheap).
      if (this.state.isRedundantZero(lba, marker, op.noHole)) continue;
      columns.push(this.state.append(lba, marker, 0), lba, marker, 0);
    }
  }

  private assignSnapshot(op: SnapshotOp, batch: Batch, records: Buffer[]): void {
    const taken =
      this.state.findSnapshot(op.name) ??
      batch.ops.find((other) => other !== op && other.type === "snapshot" && other.cut?.name === op.name);
    if (taken !== undefined) {
      // Settled with the rest of the batch; marked by leaving `cut` undefined.
      op.reject(this.snapshotExists(op.name));
      op.resolve = noop;
      op.reject = noop;
      return;
    }
    op.cut = { name: op.name, lun: op.lun, lsn: op.lsn ?? this.state.lsnLast, timeMs: op.timeMs };
    records.push(encodeSnapshotRecord(RecordType.SNAPSHOT, op.cut.lsn, op.timeMs, op.lun, op.name));
  }

  private snapshotExists(name: string): SnaplogError {
    return new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${this.diskName} already has a snapshot named ${name}`, {
      disk: this.diskName,
    });
  }

  private settle(batch: Batch, error: SnaplogError | undefined): void {
    for (const op of batch.ops) {
      if (error === undefined) op.resolve();
      else op.reject(error);
    }
  }

  private syncIfStale(): void {
    const stale = Date.now() - this.lastSyncMs >= UNSYNCED_MS_MAX;
    if (stale && (this.unsyncedBytes > 0 || this.retiring.count > 0) && !this.closing) this.startBackgroundSync();
  }

  private async commitRollback(batch: Batch, op: RollbackOp): Promise<void> {
    const state = this.state;
    if (state.findSnapshot(op.name) !== undefined) {
      return this.settle(batch, this.snapshotExists(op.name));
    }
    const lsnBefore = state.lsnLast;
    const lsnFirst = lsnBefore + 1;
    const timeMs = this.clock();
    const changed = blocksWrittenAfter(state, op.lsnTarget, this.blockCount);
    const columns = new EntryColumns(changed.length);
    try {
      for (let start = 0; start < changed.length; start += ROLLBACK_CHUNK_BLOCKS) {
        await appendRestoredBlocks(this.context.restoreCopy(), changed.slice(start, start + ROLLBACK_CHUNK_BLOCKS), op.lsnTarget, columns);
      }
    } catch (error) {
      state.rollback(columns.ids, columns.count, lsnFirst);
      return this.settle(batch, fromSystemError(error, { disk: this.diskName }));
    }
    const cut: SnapshotCut = { name: op.name, lun: op.lun, lsn: lsnBefore, timeMs };
    const snapshotRecord = encodeSnapshotRecord(RecordType.SNAPSHOT, lsnBefore, timeMs, op.lun, op.name);
    const entries = columns.count > 0 ? encodeEntriesRecord(lsnFirst, timeMs, 0, columns) : undefined;
    this.crash?.("rollback:data-written");
    const records = this.journal.recordsOf(timeMs, undefined, entries === undefined ? [snapshotRecord] : [snapshotRecord, entries], true);
    if (!(await this.writeBatch(batch, [], records, columns, lsnFirst))) return;
    op.result = { cut, blockCount: columns.count };
    state.insertSnapshot(cut);
    this.publish(batch, columns, lsnFirst, timeMs, 0);
  }

  /**
   * Between batches, when the journal is long: make everything durable, capture the tables,
   * switch appends to a new journal generation, then write the checkpoint in the background.
   * Until the checkpoint's rename, opening replays the old journal and then the new one.
   */
  private async maybeRotateJournal(force = false): Promise<void> {
    if (this.failure !== undefined || this.checkpointWrite !== undefined || this.rotation !== undefined) return;
    if (
      !force &&
      (this.journal.positionBytes < (this.tuning.journalCheckpointBytes ?? JOURNAL_CHECKPOINT_BYTES) || this.logFilesOpening > 0)
    )
      return;
    this.rotation = this.rotateJournal().finally(() => (this.rotation = undefined));
    await this.rotation;
  }

  private async rotateJournal(): Promise<void> {
    await this.backgroundSyncRun;
    await this.segments.syncDirty();
    // The journal ends with a sync mark: if the rotation stops after this (a full disk, a crash
    // before the checkpoint), recovery knows all of it was synced and reports damaged data as
    // EIO instead of cutting the log there as an unpromised tail.
    if (this.lsnVisible > 0) await this.journal.appendSyncMark(this.lsnVisible, this.clock());
    await this.journal.seal();
    this.crash?.("rotation:synced");
    const buffers = encodeCheckpoint(checkpointStateOf(this.state, this.journal.generation + 1, this.context.foldLsn()));
    const next = await this.journal.createNext();
    this.crash?.("rotation:journal-created");
    const previous = this.journal.switchTo(next);
    this.unsyncedBytes = 0;
    this.lsnDurable = this.lsnVisible;
    this.releaseRetired();
    this.checkpointWrite = (async () => {
      await writeCheckpoint(this.medium, buffers, this.crash);
      // A background sync that began before the switch may still hold the old journal.
      await this.backgroundSyncRun;
      await this.journal.retire(previous);
    })()
      .catch((error: unknown) => this.events.onBackgroundError?.(fromSystemError(error, { disk: this.diskName, path: CHECKPOINT_FILE })))
      .finally(() => {
        this.checkpointWrite = undefined;
      });
  }

  /**
   * Opens the files that hold the log in LSN order — the checkpoint, then each journal after
   * it, up to where appends stand now — for a streaming reader (log-reader.ts). Journal
   * rotation waits while they open; open handles stay valid after a later rotation removes
   * or replaces the files.
   */
  async openLogFiles(): Promise<LogFiles> {
    this.logFilesOpening++;
    try {
      // A rotation under way finishes first (and none starts while logFilesOpening > 0).
      while (this.rotation !== undefined || this.checkpointWrite !== undefined) await (this.rotation ?? this.checkpointWrite);
      const generation = this.journal.generation;
      const endBytes = this.journal.positionBytes;
      const lsnLast = this.lsnVisible;
      const checkpoint = await this.medium.open(CHECKPOINT_FILE, { create: false });
      const journals: LogFiles["journals"] = [];
      try {
        for (let current = (await readCheckpointHeader(checkpoint)).generation; current <= generation; current++) {
          const file = await this.medium.open(journalFileName(current), { create: false });
          const isCurrent = current === generation;
          journals.push({
            file,
            endBytes: isCurrent ? endBytes : await file.sizeBytes(),
            seekPoints: isCurrent && this.seekGeneration === generation ? this.seekPoints.slice() : undefined,
          });
        }
      } catch (error) {
        await checkpoint.close();
        for (const journal of journals) await journal.file.close();
        throw error;
      }
      return { checkpoint, journals, lsnLast };
    } finally {
      this.logFilesOpening--;
    }
  }

  /** A batch's records are about to be appended: note where, at most every JOURNAL_SEEK_POINT_BYTES of journal. */
  private noteSeekPoint(lsnFirst: number, entryCount: number): void {
    if (entryCount === 0) return;
    if (this.seekGeneration !== this.journal.generation) {
      this.seekGeneration = this.journal.generation;
      this.seekPoints = [];
    }
    const bytes = this.journal.positionBytes;
    const last = this.seekPoints[this.seekPoints.length - 1];
    if (last === undefined || bytes - last.bytes >= JOURNAL_SEEK_POINT_BYTES) this.seekPoints.push({ lsn: lsnFirst, bytes });
  }

  /** Resolves once nothing is queued or committing. */
  private idle(): Promise<void> {
    if (!this.committing && this.pending === undefined && this.sealed.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** Which part of the journal reserve a batch's records may use (ReserveUse): space-freeing records all of it, entries none. */
function reserveUseOf(batch: Batch, columns: EntryColumns): ReserveUse {
  if (columns.count > 0) return "entries";
  if (batch.ops.every((op) => op.type === "control" || op.type === "void")) return "freeing";
  return "records";
}
