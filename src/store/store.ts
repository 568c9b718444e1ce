/**
 * The library's entry (`import { Store } from "snaplog"`, SPEC §3.4) and what the server and
 * the CLI open: a store directory owned by one process at a time (store-lock.ts). The Store is
 * a facade: it owns the catalog (catalog.ts) and the lock, opens and closes, and hands each
 * operation to the file of its job:
 *
 *   disk-lifecycle.ts      disks opened, created, deleted (through StoreOpenOptions.mediumFor)
 *   disk-info.ts           disks and snapshots described (list, show)
 *   snapshots.ts, luns.ts  snapshots cut, listed, deleted; the LUNs they take
 *   disk-policy.ts         policies shown and changed (disk.json); what the policy runner reads
 *   retention-prune.ts     retention applied now (policy prune, and the runner after each slot)
 *   history/               compact, restore (and rollback), log, diff
 *   scrub.ts               the integrity check
 *   space-policy.ts        the space policy's checks and steps (the server's monitor calls them)
 *   history-cap-runner.ts  --history-max applied in the background
 *   merge-oldest.ts        --merge-oldest-into-baseline, in the snapshot delete
 *   store-status.ts        health and space
 *   export-resolver.ts     export names to volumes (the VolumeResolver the NBD server uses)
 *
 * A new capability gets its own file (or folder) and its own Operations interface; the facade
 * only gains the lines that hand its methods over.
 */
import * as path from "node:path";
import { BLOCK_SIZE_BYTES_DEFAULT, DirectoryMedium } from "../engine/index.js";
import { ErrorCodes, fromSystemError, SnaplogError, invalidArgument } from "../util/errors.js";
import { startBackgroundCompaction, type BackgroundCompactionOptions } from "./background-compaction.js";
import { Catalog } from "./catalog.js";
import type { CompactionScheduler } from "./compaction-scheduler.js";
import { diskCounters, diskDetail, diskInfo, type DiskCounters } from "./disk-info.js";
import type { VaultActivityFigures } from "./vault-activity.js";
import { DiskLifecycle } from "./disk-lifecycle.js";
import { exportStream, type ExportTuning } from "./archive/export-stream.js";
import { importStream } from "./archive/import-stream.js";
import { archiveToVault } from "./archive/archive-to-vault.js";
import { addVault, listVaults, removeVault } from "./archive/vault-registry.js";
import { listVaultChains, restoreFromVault } from "./archive/vault-restore.js";
import { promoteDisk, replicaBatch, replicaDeleteSnapshots, replicaHello, replicaResync } from "./replication/replica-receiver.js";
import { Relations } from "./replication/relations.js";
import type { StreamSink } from "../stream/index.js";
import { policyStateOf, recordScheduledSlot, setPolicy, showPolicy, type PolicyState } from "./disk-policy.js";
import { prunePolicy } from "./retention-prune.js";
import { EventLog } from "./event-log.js";
import { ExportResolver } from "./export-resolver.js";
import { HistoryCapRunner } from "./history-cap-runner.js";
import { compact } from "./history/compact.js";
import { diff } from "./history/diff.js";
import { readLog } from "./history/log.js";
import { restore } from "./history/restore.js";
import { endVolumes } from "./open-disk.js";
import { closeMirrors, mirrorStatus, resyncMirror } from "./mirror/disk-mirror.js";
import type {
  CompactRequest,
  CompactResult,
  CreateDiskRequest,
  CreateSnapshotRequest,
  DeleteSnapshotResult,
  DiffRequest,
  DiffRun,
  DiskDetail,
  DiskInfo,
  DiskPolicy,
  EventsRequest,
  LogEntry,
  LogRequest,
  Operations,
  PolicyUpdate,
  ProgressCallback,
  PruneRequest,
  PruneResult,
  RestoreRequest,
  RestoreResult,
  ScrubRequest,
  ScrubResult,
  MirrorResyncResult,
  MirrorStatus,
  SnapshotInfo,
  StoreEvent,
  StoreStatus,
  ExportRequest,
  ExportResult,
  ImportRequest,
  ImportResult,
  ArchiveRequest,
  ArchiveResult,
  VaultAddRequest,
  VaultChainInfo,
  VaultInfo,
  VaultRestoreRequest,
  VaultRestoreResult,
  RelationInfo,
  ReplicaAck,
  ReplicaHello,
  ReplicaState,
  ReplicateRequest,
} from "./operations/index.js";
import { checkIntegrity, scrub } from "./scrub.js";
import { scheduledSnapshotName } from "./policy/scheduled-name.js";
import { createScheduledSnapshot, createSnapshot, deleteSnapshot, listSnapshots } from "./snapshots.js";
import { createStoreFile, readStoreFile, storeFileExists } from "./store-file.js";
import { StoreLock } from "./store-lock.js";
import type { StoreLogger, StoreOpenOptions } from "./store-options.js";
import { SpaceGuard, statfsUse, type MeasureSpace, type SpaceCheckResult } from "./space-policy.js";
import { storeStatus } from "./store-status.js";
import type { ExportInfo, Volume, VolumeResolver } from "./volume.js";

export { VERSION } from "../util/version.js";
export type { StoreOpenOptions } from "./store-options.js";
export type { FileSystemUse, MeasureSpace, SpaceCheckResult } from "./space-policy.js";
export type { PolicyState } from "./disk-policy.js";

export class Store implements Operations, VolumeResolver {
  private readonly lifecycle: DiskLifecycle;
  private readonly relations: Relations;
  private readonly exports: ExportResolver;
  private readonly openedAtMs = Date.now();
  private compactionScheduler: CompactionScheduler | undefined;
  private historyCapRunner: HistoryCapRunner | undefined;
  private spaceGuard: SpaceGuard | undefined;

  private constructor(
    private readonly catalog: Catalog,
    private readonly lock: StoreLock,
    private readonly mode: "server" | "direct",
    private readonly logger: StoreLogger | undefined,
    mediumFor: StoreOpenOptions["mediumFor"],
  ) {
    this.relations = new Relations(catalog);
    this.lifecycle = new DiskLifecycle(catalog, mediumFor ?? ((directory) => new DirectoryMedium(directory)), logger);
    this.exports = new ExportResolver(catalog);
  }

  /** Absolute path of the store directory. */
  get path(): string {
    return this.catalog.path;
  }

  get defaultBlockSizeBytes(): number {
    return this.catalog.storeFile.blockSizeBytes;
  }

  /** Creates an empty store at `storePath` (the directory may exist, empty or not, but hold no store). */
  static async init(storePath: string, options: { blockSizeBytes?: number } = {}): Promise<void> {
    await createStoreFile(storePath, options.blockSizeBytes ?? BLOCK_SIZE_BYTES_DEFAULT);
  }

  static exists(storePath: string): Promise<boolean> {
    return storeFileExists(storePath);
  }

  static async open(storePath: string, options: StoreOpenOptions = {}): Promise<Store> {
    const absolute = path.resolve(storePath);
    const storeFile = await readStoreFile(absolute);
    const lock = await StoreLock.acquire(absolute, options.mode === "server" ? "snaplog serve" : "snaplog cli");
    let events: EventLog;
    try {
      events = await EventLog.open(absolute, options.nowMs);
    } catch (error) {
      await lock.release();
      throw error;
    }
    const store = new Store(
      new Catalog(absolute, storeFile, events, options.logger, options.nowMs),
      lock,
      options.mode ?? "direct",
      options.logger,
      options.mediumFor,
    );
    try {
      await store.lifecycle.openAll();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  /**
   * Starts the background maintenance (the server does; a CLI in direct mode does not):
   * compaction, and the history cap of disks with --history-max.
   */
  startBackgroundCompaction(options: BackgroundCompactionOptions = {}): void {
    this.compactionScheduler ??= startBackgroundCompaction(this.catalog, this.logger, options);
    if (this.historyCapRunner === undefined) {
      this.historyCapRunner = new HistoryCapRunner(this.catalog, this.logger);
      this.historyCapRunner.start();
    }
  }

  // ---- the space policy (SPEC §4.2), for the server's space monitor ----------------------

  /**
   * One space check (space-policy.ts): measures the store's file system (`measure`, df's view by
   * default), records `space-high` for each disk whose mark use passed, and runs the disks'
   * space actions until use is 5 points below their marks or nothing is left to act on.
   */
  checkSpace(measure: MeasureSpace = statfsUse): Promise<SpaceCheckResult> {
    this.catalog.checkOpen();
    this.spaceGuard ??= new SpaceGuard(this.catalog);
    return this.spaceGuard.check(measure);
  }

  /** Calls `listener` with the disk's name whenever a write takes a new segment file; returns the unsubscribe. */
  onSegmentCreated(listener: (disk: string) => void): () => void {
    return this.catalog.signals.on("segment-created", listener);
  }

  /** The whole-disk check of every open disk (fsck): problems per disk, empty lists when sound. */
  checkIntegrity(): Record<string, string[]> {
    return checkIntegrity(this.catalog);
  }

  // ---- DiskOperations ----------------------------------------------------------------------

  async listDisks(): Promise<DiskInfo[]> {
    this.catalog.checkOpen();
    return this.catalog.disksByName().map(diskInfo);
  }

  /** Checksum errors and maintenance per open disk, since it was opened (the server's metrics). */
  diskCounters(): DiskCounters[] {
    return this.catalog.disksByName().map(diskCounters);
  }

  /** Archives per vault since the store was opened (the server's metrics). */
  vaultActivity(): VaultActivityFigures[] {
    return this.catalog.vaultActivity.list();
  }

  showDisk(name: string): Promise<DiskDetail> {
    return diskDetail(this.catalog.disk(name), this.catalog.nowMs(), this.catalog.storeFile);
  }

  createDisk(request: CreateDiskRequest): Promise<DiskInfo> {
    return this.lifecycle.create(request);
  }

  deleteDisk(name: string): Promise<void> {
    return this.lifecycle.delete(name);
  }

  // ---- SnapshotOperations ------------------------------------------------------------------

  createSnapshot(request: CreateSnapshotRequest): Promise<SnapshotInfo> {
    return createSnapshot(this.catalog, request);
  }

  listSnapshots(disk: string): Promise<SnapshotInfo[]> {
    return listSnapshots(this.catalog, disk);
  }

  deleteSnapshot(disk: string, name: string): Promise<DeleteSnapshotResult> {
    return deleteSnapshot(this.catalog, disk, name);
  }

  // ---- PolicyOperations --------------------------------------------------------------------

  showPolicy(disk: string): Promise<DiskPolicy> {
    return showPolicy(this.catalog, disk);
  }

  prunePolicy(request: PruneRequest): Promise<PruneResult> {
    return prunePolicy(this.catalog, request);
  }

  readEvents(request: EventsRequest, signal?: AbortSignal): AsyncIterable<StoreEvent> {
    const sinceMs = request.since === undefined ? undefined : parseEventTime(request.since);
    if (request.disk !== undefined) this.catalog.disk(request.disk);
    return this.catalog.events.read({ disk: request.disk, sinceMs, follow: request.follow, signal });
  }

  /** The event log itself, for the server's policy runner (it records and follows events). */
  get events(): EventLog {
    return this.catalog.events;
  }

  setPolicy(update: PolicyUpdate): Promise<DiskPolicy> {
    return setPolicy(this.catalog, update);
  }

  // ---- The policy runner's way in (src/policy/: the server's, not the API's) ----------------

  /** The store's clock (StoreOpenOptions.nowMs). */
  nowMs(): number {
    return this.catalog.nowMs();
  }

  /** A disk's settings, schedule and last slot run, now (NOT_FOUND when the disk is gone). */
  policyState(disk: string): PolicyState {
    return policyStateOf(this.catalog, disk);
  }

  /**
   * The scheduled snapshot of `slotMs` (auto-YYYYMMDDTHHMMSSZ); undefined when the disk has it
   * already. `catchUp`: the slot passed while nothing ran it (its event says so).
   */
  createScheduledSnapshot(disk: string, slotMs: number, run: { catchUp: boolean } = { catchUp: false }): Promise<SnapshotInfo | undefined> {
    return createScheduledSnapshot(this.catalog, disk, scheduledSnapshotName(slotMs), run);
  }

  /** Persists `slotMs` as the last slot the disk's schedule ran (after its snapshot exists). */
  recordScheduledSlot(disk: string, slotMs: number): Promise<void> {
    return recordScheduledSlot(this.catalog, disk, slotMs);
  }

  // ---- HistoryOperations -------------------------------------------------------------------

  compact(request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult> {
    return compact(this.catalog, request, onProgress);
  }

  exportStream(request: ExportRequest, sink: StreamSink, onProgress?: ProgressCallback, tuning?: ExportTuning): Promise<ExportResult> {
    return exportStream(this.catalog, request, sink, onProgress, tuning);
  }

  importStream(request: ImportRequest, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<ImportResult> {
    return importStream(this.catalog, this.lifecycle, request, source);
  }

  addVault(request: VaultAddRequest): Promise<VaultInfo> {
    return this.catalog.control.run(() => addVault(this.catalog, request));
  }

  listVaults(): Promise<VaultInfo[]> {
    return listVaults(this.catalog);
  }

  removeVault(name: string): Promise<void> {
    return this.catalog.control.run(() => removeVault(this.catalog, name));
  }

  listVaultChains(vault: string, disk?: string): Promise<VaultChainInfo[]> {
    return listVaultChains(this.catalog, vault, disk);
  }

  archive(request: ArchiveRequest, onProgress?: ProgressCallback): Promise<ArchiveResult> {
    return archiveToVault(this.catalog, request, onProgress);
  }

  restoreFromVault(request: VaultRestoreRequest, onProgress?: ProgressCallback): Promise<VaultRestoreResult> {
    return restoreFromVault(this.catalog, this.lifecycle, request, onProgress);
  }

  replicaHello(hello: ReplicaHello): Promise<ReplicaState> {
    return replicaHello(this.catalog, hello);
  }

  replicaBatch(disk: string, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<ReplicaAck> {
    return replicaBatch(this.catalog, this.lifecycle, disk, source);
  }

  replicaResync(disk: string, source: ReplicaHello["source"], commonSnapshotId: string, sourceLsn: number): Promise<ReplicaState> {
    return replicaResync(this.catalog, disk, source, commonSnapshotId, sourceLsn);
  }

  replicaDeleteSnapshots(disk: string, sourceDiskId: string, ids: string[]): Promise<string[]> {
    return replicaDeleteSnapshots(this.catalog, disk, sourceDiskId, ids);
  }

  promoteDisk(disk: string): Promise<{ disk: string; promotedAt: string }> {
    return promoteDisk(this.catalog, disk);
  }

  replicate(request: ReplicateRequest): Promise<RelationInfo> {
    return this.relations.replicate(request);
  }

  stopReplication(disk: string): Promise<void> {
    return this.relations.stop(disk);
  }

  listRelations(): Promise<RelationInfo[]> {
    return this.relations.list();
  }

  /** The server runs the replication relations of this store (sender side). */
  startReplication(): Promise<void> {
    return this.relations.start();
  }

  restore(request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult> {
    return restore(this.catalog, request, onProgress);
  }

  readLog(request: LogRequest): AsyncIterable<LogEntry> {
    return readLog(this.catalog, request);
  }

  diff(request: DiffRequest): AsyncIterable<DiffRun> {
    return diff(this.catalog, request);
  }

  // ---- ScrubOperations, StatusOperations ---------------------------------------------------

  // ---- mirror (SPEC §6) ----------------------------------------------------------------------

  async mirrorStatus(disk: string): Promise<MirrorStatus> {
    return mirrorStatus(this.catalog, disk);
  }

  resyncMirror(disk: string, onProgress?: ProgressCallback): Promise<MirrorResyncResult> {
    return resyncMirror(this.catalog, disk, onProgress);
  }

  scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult> {
    return scrub(this.catalog, request, onProgress);
  }

  async status(): Promise<StoreStatus> {
    const status = await storeStatus(this.catalog, { mode: this.mode, openedAtMs: this.openedAtMs });
    const mirrors = this.catalog
      .disksByName()
      .flatMap((disk) => (disk.mirror === undefined ? [] : [{ disk: disk.meta.name, ...disk.mirror.status() }]));
    return { ...status, replication: await this.relations.list(), mirrors };
  }

  // ---- VolumeResolver ----------------------------------------------------------------------

  resolve(exportName: string): Volume {
    return this.exports.resolve(exportName);
  }

  list(): ExportInfo[] {
    return this.exports.list();
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Flushes and checkpoints every disk, releases the lock. */
  async close(): Promise<void> {
    if (this.catalog.closed) return;
    this.catalog.markClosed();
    this.endAllVolumes();
    // A pass under way ends at its next step once the engines close.
    const compactionStopped = this.compactionScheduler?.stop();
    const capsStopped = this.historyCapRunner?.stop();
    await this.relations.close();
    await this.catalog.control.run(async () => undefined);
    const results = await Promise.allSettled([...this.catalog.disks.values()].map((disk) => disk.engine.close()));
    // After the engines synced: an in-sync leg is synced too and its bits cleared.
    await closeMirrors(this.catalog, false);
    await compactionStopped;
    await capsStopped;
    await this.lock.release();
    const failure = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failure !== undefined) throw fromSystemError(failure.reason, { path: this.path });
  }

  /** For crash tests: drop everything without a final checkpoint (as a kill would), keep the lock file. */
  async abandon(): Promise<void> {
    this.catalog.markClosed();
    this.endAllVolumes();
    const compactionStopped = this.compactionScheduler?.stop();
    const capsStopped = this.historyCapRunner?.stop();
    await Promise.allSettled([...this.catalog.disks.values()].map((disk) => disk.engine.abandon()));
    await closeMirrors(this.catalog, true);
    await compactionStopped;
    await capsStopped;
    this.lock.abandon();
  }

  private endAllVolumes(): void {
    for (const disk of this.catalog.disks.values()) {
      const closing = new SnaplogError(ErrorCodes.CLOSED, `the store is closing: disk ${disk.meta.name} is no longer served`, {
        disk: disk.meta.name,
      });
      endVolumes(disk, closing);
    }
  }
}

/** A `since` time for the event log: ISO 8601 with Z or an offset. */
function parseEventTime(text: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw invalidArgument(`--since "${text}": give an ISO 8601 time with Z or an offset, e.g. 2026-11-25T10:00:00Z`);
  return ms;
}
