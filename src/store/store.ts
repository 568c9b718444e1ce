/**
 * The library's entry (`import { Store } from "snaplog"`, SPEC §3.4) and what the server and
 * the CLI open: a store directory owned by one process at a time (store-lock.ts). The Store is
 * a facade: it owns the catalog (catalog.ts) and the lock, opens and closes, and hands each
 * operation to the file of its job:
 *
 *   disk-lifecycle.ts      disks opened, created, deleted (through StoreOpenOptions.mediumFor)
 *   disk-info.ts           disks and snapshots described (list, show)
 *   snapshots.ts, luns.ts  snapshots cut, listed, deleted; the LUNs they take
 *   disk-policy.ts         policies shown and changed (disk.json)
 *   history/               compact, restore (and rollback), log, diff
 *   scrub.ts               the integrity check
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
import { diskDetail, diskInfo } from "./disk-info.js";
import { DiskLifecycle } from "./disk-lifecycle.js";
import { setPolicy, showPolicy } from "./disk-policy.js";
import { prunePolicy } from "./retention-prune.js";
import { EventLog } from "./event-log.js";
import { ExportResolver } from "./export-resolver.js";
import { compact } from "./history/compact.js";
import { diff } from "./history/diff.js";
import { readLog } from "./history/log.js";
import { restore } from "./history/restore.js";
import { endVolumes } from "./open-disk.js";
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
  SnapshotInfo,
  StoreEvent,
  StoreStatus,
} from "./operations/index.js";
import { checkIntegrity, scrub } from "./scrub.js";
import { createSnapshot, deleteSnapshot, listSnapshots } from "./snapshots.js";
import { createStoreFile, readStoreFile, storeFileExists } from "./store-file.js";
import { StoreLock } from "./store-lock.js";
import type { StoreLogger, StoreOpenOptions } from "./store-options.js";
import { storeStatus } from "./store-status.js";
import type { ExportInfo, Volume, VolumeResolver } from "./volume.js";

export { VERSION } from "../util/version.js";
export type { StoreOpenOptions } from "./store-options.js";

export class Store implements Operations, VolumeResolver {
  private readonly lifecycle: DiskLifecycle;
  private readonly exports: ExportResolver;
  private readonly openedAtMs = Date.now();
  private compactionScheduler: CompactionScheduler | undefined;

  private constructor(
    private readonly catalog: Catalog,
    private readonly lock: StoreLock,
    private readonly mode: "server" | "direct",
    private readonly logger: StoreLogger | undefined,
    mediumFor: StoreOpenOptions["mediumFor"],
  ) {
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
      events = await EventLog.open(absolute);
    } catch (error) {
      await lock.release();
      throw error;
    }
    const store = new Store(
      new Catalog(absolute, storeFile, events, options.logger),
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

  /** Starts background compaction (the server does; a CLI in direct mode does not). */
  startBackgroundCompaction(options: BackgroundCompactionOptions = {}): void {
    this.compactionScheduler ??= startBackgroundCompaction(this.catalog, this.logger, options);
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

  showDisk(name: string): Promise<DiskDetail> {
    return diskDetail(this.catalog.disk(name), this.catalog.storeFile);
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

  // ---- HistoryOperations -------------------------------------------------------------------

  compact(request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult> {
    return compact(this.catalog, request, onProgress);
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

  scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult> {
    return scrub(this.catalog, request, onProgress);
  }

  status(): Promise<StoreStatus> {
    return storeStatus(this.catalog, { mode: this.mode, openedAtMs: this.openedAtMs });
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
    await this.catalog.control.run(async () => undefined);
    const results = await Promise.allSettled([...this.catalog.disks.values()].map((disk) => disk.engine.close()));
    await compactionStopped;
    await this.lock.release();
    const failure = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failure !== undefined) throw fromSystemError(failure.reason, { path: this.path });
  }

  /** For crash tests: drop everything without a final checkpoint (as a kill would), keep the lock file. */
  async abandon(): Promise<void> {
    this.catalog.markClosed();
    this.endAllVolumes();
    const compactionStopped = this.compactionScheduler?.stop();
    await Promise.allSettled([...this.catalog.disks.values()].map((disk) => disk.engine.abandon()));
    await compactionStopped;
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
