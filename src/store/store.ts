import { promises as fs } from "node:fs";
import * as path from "node:path";
import { BLOCK_SIZE_BYTES_DEFAULT, DISK_BLOCK_COUNT_MAX, FORMAT_VERSION, INDEX_PAGE_BLOCKS, isValidBlockSize } from "../engine/constants.js";
import { BASELINE_FILE, DiskEngine } from "../engine/disk-engine.js";
import { DirectoryMedium, type Medium } from "../engine/medium.js";
import { ErrorCodes, fromSystemError, invalidArgument, notFound, SnaplogError } from "../util/errors.js";
import { readJsonFile, writeJsonFile } from "../util/json-file.js";
import { checkName, parseExportName } from "./export-name.js";
import { DiskVolume } from "./disk-volume.js";
import { readLog } from "../engine/log-reader.js";
import { parsePoint, resolvePointLsn } from "./point-spec.js";
import { restoreToFile } from "./restore-to-file.js";
import { CompactionScheduler } from "./compaction-scheduler.js";
import { DISK_FILE, diskPath, disksPath, STORE_FILE } from "./paths.js";
import { StoreLock } from "./store-lock.js";
import { SerialQueue } from "../util/serial-queue.js";
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
  DiskSpace,
  LogEntry,
  LogRequest,
  Operations,
  PolicyUpdate,
  ProgressCallback,
  RestoreRequest,
  RestoreResult,
  ScrubDiskResult,
  ScrubRequest,
  ScrubResult,
  SnapshotInfo,
  StoreStatus,
} from "./operations.js";
import type { ExportInfo, Volume, VolumeResolver } from "./volume.js";

export const VERSION = "0.1.0";
const HISTORY_SECONDS_DEFAULT = 3600;

interface StoreFile {
  formatVersion: number;
  blockSizeBytes: number;
  createdAt: string;
  /** Next LUN to hand out (sequential policy: never reused). */
  lunNext: number;
}

interface DiskFile {
  formatVersion: number;
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  lun: number;
  historySeconds: number;
  createdAt: string;
  /** Whether the disk was created --from an image (the engine knows whether a baseline exists now). */
  hasBaseline: boolean;
  /** Policies (absent in disks made before they existed: defaults apply). */
  autoCompact?: boolean;
  compactOnDelete?: boolean;
}

interface OpenDisk {
  meta: DiskFile;
  engine: DiskEngine;
  deleted: boolean;
  /** Bumped by a rollback: connections to the current volume made before it fail from then on. */
  generation: number;
  /** A rollback is under way: no new connection to the current volume until it is done. */
  rollingBack: boolean;
}

export interface StoreOpenOptions {
  mode?: "server" | "direct";
  /**
   * The medium each disk's engine runs on, given the disk's directory (default: the directory
   * itself). Tests put a quota or a fault-injecting medium here.
   */
  mediumFor?: (directory: string) => Medium;
  logger?: { info?(message: string): void; warn(message: string): void; error(message: string): void };
}

/** Background compaction: look every 10 s; a disk is idle after 5 s without writes; space is short under 10 % free. */
const COMPACTION_INTERVAL_MS = 10_000;
const COMPACTION_IDLE_MS = 5_000;
const COMPACTION_FREE_FRACTION_MIN = 0.1;

/**
 * A store: a directory holding disks, owned by one process at a time. Implements the
 * control-plane Operations and resolves NBD export names to volumes.
 */
export class Store implements Operations, VolumeResolver {
  private readonly disks = new Map<string, OpenDisk>();
  /** Disks that failed to open, with why: listed in status, not served. */
  private readonly failedDisks = new Map<string, string>();
  private readonly control = new SerialQueue();
  private nbdEndpoints: string[] = [];
  private readonly openedAtMs = Date.now();
  private closed = false;
  private compactionScheduler: CompactionScheduler | undefined;

  private readonly mediumFor: (directory: string) => Medium;

  private constructor(
    readonly path: string,
    private storeFile: StoreFile,
    private readonly lock: StoreLock,
    private readonly mode: "server" | "direct",
    private readonly logger: StoreOpenOptions["logger"],
    mediumFor: StoreOpenOptions["mediumFor"],
  ) {
    this.mediumFor = mediumFor ?? ((directory) => new DirectoryMedium(directory));
  }

  get defaultBlockSizeBytes(): number {
    return this.storeFile.blockSizeBytes;
  }

  /** Creates an empty store at `storePath` (the directory may exist, empty or not, but hold no store). */
  static async init(storePath: string, options: { blockSizeBytes?: number } = {}): Promise<void> {
    const blockSizeBytes = options.blockSizeBytes ?? BLOCK_SIZE_BYTES_DEFAULT;
    if (!isValidBlockSize(blockSizeBytes)) {
      throw invalidArgument(`block size ${blockSizeBytes} is not a power of two between 512 and 65536`);
    }
    try {
      await fs.access(path.join(storePath, STORE_FILE));
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a store already exists at ${storePath}`, { path: storePath });
    } catch (error) {
      if (error instanceof SnaplogError) throw error;
    }
    try {
      await fs.mkdir(disksPath(storePath), { recursive: true });
    } catch (error) {
      throw fromSystemError(error, { path: storePath });
    }
    const storeFile: StoreFile = { formatVersion: FORMAT_VERSION, blockSizeBytes, createdAt: new Date().toISOString(), lunNext: 1 };
    await writeJsonFile(path.join(storePath, STORE_FILE), storeFile);
  }

  static async exists(storePath: string): Promise<boolean> {
    try {
      await fs.access(path.join(storePath, STORE_FILE));
      return true;
    } catch {
      return false;
    }
  }

  static async open(storePath: string, options: StoreOpenOptions = {}): Promise<Store> {
    const absolute = path.resolve(storePath);
    if (!(await Store.exists(absolute))) {
      throw new SnaplogError(ErrorCodes.NO_STORE, `no store at ${absolute}`, { path: absolute, hint: "create one with: snaplog init" });
    }
    const storeFile = await readJsonFile<StoreFile>(path.join(absolute, STORE_FILE));
    if (storeFile.formatVersion !== FORMAT_VERSION) {
      throw new SnaplogError(ErrorCodes.UNSUPPORTED, `store format ${storeFile.formatVersion} is not supported by this version`, { path: absolute });
    }
    const lock = await StoreLock.acquire(absolute, options.mode === "server" ? "snaplog serve" : "snaplog cli");
    const store = new Store(absolute, storeFile, lock, options.mode ?? "direct", options.logger, options.mediumFor);
    try {
      await store.openDisks();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  private async openDisks(): Promise<void> {
    const directory = disksPath(this.path);
    await fs.mkdir(directory, { recursive: true });
    for (const name of await fs.readdir(directory)) {
      if (name.startsWith(".")) {
        // A create or delete that a crash interrupted: never visible, safe to remove.
        await fs.rm(path.join(directory, name), { recursive: true, force: true });
        continue;
      }
      try {
        const meta = await readJsonFile<DiskFile>(path.join(directory, name, DISK_FILE));
        const engine = await this.openEngine(meta);
        this.disks.set(name, { meta, engine, deleted: false, generation: 0, rollingBack: false });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.failedDisks.set(name, message);
        this.logger?.error(`disk ${name} is offline: ${message}`);
      }
    }
    const lunHighest = Math.max(0, ...this.allLuns());
    if (lunHighest >= this.storeFile.lunNext) await this.saveStoreFile({ ...this.storeFile, lunNext: lunHighest + 1 });
  }

  private openEngine(meta: DiskFile): Promise<DiskEngine> {
    return DiskEngine.open(
      this.mediumFor(diskPath(this.path, meta.name)),
      { name: meta.name, sizeBytes: meta.sizeBytes, blockSizeBytes: meta.blockSizeBytes, historySeconds: meta.historySeconds },
      {
        onChecksumError: (info) => this.logger?.error(`checksum error on disk ${info.disk}, block ${info.lba}, LSN ${info.lsn}`),
        onBackgroundError: (error) => this.logger?.error(error.message),
      },
    );
  }

  private *allLuns(): Iterable<number> {
    for (const disk of this.disks.values()) {
      yield disk.meta.lun;
      for (const snapshot of disk.engine.snapshots) yield snapshot.lun;
    }
  }

  private async saveStoreFile(next: StoreFile): Promise<void> {
    await writeJsonFile(path.join(this.path, STORE_FILE), next);
    this.storeFile = next;
  }

  /** Takes a LUN: the requested one if free, else the next never used. Persisted before use. */
  private async assignLun(requested: number | undefined): Promise<number> {
    const used = new Set(this.allLuns());
    if (requested !== undefined) {
      if (!Number.isInteger(requested) || requested < 1 || requested > 0xffff_ffff) throw invalidArgument(`LUN ${requested} is not an integer from 1 to 4294967295`);
      if (used.has(requested)) throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `LUN ${requested} is already assigned`);
      if (requested >= this.storeFile.lunNext) await this.saveStoreFile({ ...this.storeFile, lunNext: requested + 1 });
      return requested;
    }
    const lun = this.storeFile.lunNext;
    await this.saveStoreFile({ ...this.storeFile, lunNext: lun + 1 });
    return lun;
  }

  /** Starts background compaction (the server does; a CLI in direct mode does not). */
  startBackgroundCompaction(options: { intervalMs?: number; idleMs?: number; freeFractionMin?: number } = {}): void {
    if (this.compactionScheduler !== undefined) return;
    this.compactionScheduler = new CompactionScheduler(
      () => [...this.disks.values()].map((disk) => ({ name: disk.meta.name, engine: disk.engine, autoCompact: policyOf(disk.meta).autoCompact })),
      {
        intervalMs: options.intervalMs ?? COMPACTION_INTERVAL_MS,
        idleMs: options.idleMs ?? COMPACTION_IDLE_MS,
        freeFractionMin: options.freeFractionMin ?? COMPACTION_FREE_FRACTION_MIN,
        space: async () => {
          const stat = await fs.statfs(this.path);
          return { freeBytes: stat.bavail * stat.bsize, totalBytes: stat.blocks * stat.bsize };
        },
        onCompacted: (disk, result) =>
          this.logger?.info?.(`compacted disk ${disk} (${result.reason}): ${result.entriesFreed} entries, ${result.bytesFreed} bytes freed, ${result.segmentsReleased} segment files released`),
        onError: (disk, error) => this.logger?.error(`background compaction of disk ${disk} failed: ${error instanceof Error ? error.message : String(error)}`),
      },
    );
    this.compactionScheduler.start();
  }

  setNbdEndpoints(endpoints: string[]): void {
    this.nbdEndpoints = [...endpoints];
  }

  private disk(name: string): OpenDisk {
    this.checkOpen();
    const disk = this.disks.get(name);
    if (disk === undefined) {
      const failure = this.failedDisks.get(name);
      if (failure !== undefined) throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${name} is offline: ${failure}`, { disk: name });
      throw notFound(`no disk named ${JSON.stringify(name)}`, { disk: name });
    }
    return disk;
  }

  private checkOpen(): void {
    if (this.closed) throw new SnaplogError(ErrorCodes.CLOSED, "the store is closed");
  }

  // ---- Operations ----------------------------------------------------------------------

  async listDisks(): Promise<DiskInfo[]> {
    this.checkOpen();
    return [...this.disks.values()].sort((a, b) => a.meta.name.localeCompare(b.meta.name)).map((disk) => this.diskInfo(disk));
  }

  async showDisk(name: string): Promise<DiskDetail> {
    const disk = this.disk(name);
    return { ...this.diskInfo(disk), snapshots: this.snapshotInfos(disk), space: await this.diskSpace(disk), policy: policyOf(disk.meta) };
  }

  private async diskSpace(disk: OpenDisk): Promise<DiskSpace> {
    const engine = disk.engine;
    const space = await engine.space();
    const stats = engine.stats();
    const blockSizeBytes = disk.meta.blockSizeBytes;
    const window = engine.historyWindow();
    return {
      logicalBytes: disk.meta.sizeBytes,
      baselineBytes: space.baselineBytes,
      logLiveBytes: space.liveSlots * blockSizeBytes,
      logDeadBytes: space.deadSlots * blockSizeBytes,
      logFreeBytes: space.freeSlots * blockSizeBytes,
      segmentBytes: space.segmentBytes,
      journalBytes: stats.journalBytes,
      liveEntries: space.liveEntries,
      deadEntries: space.deadEntries,
      window: { historySeconds: window.historySeconds, lsnFirst: window.lsnFirst, timeFirst: isoOrNull(window.timeMsFirst), lsnLast: window.lsnLast },
    };
  }

  async listSnapshots(diskName: string): Promise<SnapshotInfo[]> {
    return this.snapshotInfos(this.disk(diskName));
  }

  createDisk(request: CreateDiskRequest): Promise<DiskInfo> {
    return this.control.run(() => this.createDiskNow(request));
  }

  private async createDiskNow(request: CreateDiskRequest): Promise<DiskInfo> {
    this.checkOpen();
    checkName("disk", request.name);
    if (this.disks.has(request.name) || this.failedDisks.has(request.name)) {
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a disk named ${request.name} already exists`, { disk: request.name });
    }
    const blockSizeBytes = request.blockSizeBytes ?? this.storeFile.blockSizeBytes;
    if (!isValidBlockSize(blockSizeBytes)) throw invalidArgument(`block size ${blockSizeBytes} is not a power of two between 512 and 65536`);
    const sizeBytes = request.sizeBytes;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw invalidArgument(`disk size ${sizeBytes} must be a positive number of bytes`);
    if (sizeBytes % blockSizeBytes !== 0) throw invalidArgument(`disk size ${sizeBytes} is not a multiple of the block size ${blockSizeBytes}`);
    if (sizeBytes / blockSizeBytes > DISK_BLOCK_COUNT_MAX) throw invalidArgument(`disk size ${sizeBytes} is too large`);
    const historySeconds = request.historySeconds ?? HISTORY_SECONDS_DEFAULT;
    if (!Number.isInteger(historySeconds) || historySeconds < 0) throw invalidArgument(`history window ${historySeconds} must be a whole number of seconds >= 0`);
    if (request.fromImage !== undefined) await this.checkImage(request.fromImage, sizeBytes);

    const lun = await this.assignLun(undefined);
    const meta: DiskFile = {
      formatVersion: FORMAT_VERSION,
      name: request.name,
      sizeBytes,
      blockSizeBytes,
      lun,
      historySeconds,
      createdAt: new Date().toISOString(),
      hasBaseline: request.fromImage !== undefined,
    };
    // Built in a hidden directory and renamed into place: a crash leaves no half disk.
    const building = path.join(disksPath(this.path), `.creating-${request.name}-${process.pid}`);
    await fs.rm(building, { recursive: true, force: true });
    await fs.mkdir(building);
    try {
      const medium = new DirectoryMedium(building);
      if (request.fromImage !== undefined) {
        await medium.copyIn(request.fromImage, BASELINE_FILE);
        const baseline = await medium.open(BASELINE_FILE, { create: false });
        try {
          await baseline.truncate(sizeBytes);
          await baseline.sync();
        } finally {
          await baseline.close();
        }
      }
      await DiskEngine.create(medium);
      await writeJsonFile(path.join(building, DISK_FILE), meta);
      await fs.rename(building, diskPath(this.path, request.name));
      await new DirectoryMedium(disksPath(this.path)).syncDirectory();
    } catch (error) {
      await fs.rm(building, { recursive: true, force: true });
      throw fromSystemError(error, { disk: request.name });
    }
    const engine = await this.openEngine(meta);
    const disk: OpenDisk = { meta, engine, deleted: false, generation: 0, rollingBack: false };
    this.disks.set(meta.name, disk);
    return this.diskInfo(disk);
  }

  private async checkImage(imagePath: string, sizeBytes: number): Promise<void> {
    let stat;
    try {
      stat = await fs.stat(imagePath);
    } catch {
      throw invalidArgument(`cannot read image ${imagePath}`, { path: imagePath });
    }
    if (!stat.isFile()) throw invalidArgument(`${imagePath} is not a regular file (a raw image is needed)`, { path: imagePath });
    if (stat.size > sizeBytes) throw invalidArgument(`image ${imagePath} (${stat.size} bytes) is larger than the disk (${sizeBytes} bytes)`, { path: imagePath });
  }

  deleteDisk(name: string): Promise<void> {
    return this.control.run(async () => {
      const disk = this.disk(name);
      disk.deleted = true;
      this.disks.delete(name);
      const doomed = path.join(disksPath(this.path), `.deleting-${name}-${Date.now()}`);
      await fs.rename(diskPath(this.path, name), doomed);
      await new DirectoryMedium(disksPath(this.path)).syncDirectory();
      await disk.engine.close().catch(() => undefined);
      await fs.rm(doomed, { recursive: true, force: true });
    });
  }

  createSnapshot(request: CreateSnapshotRequest): Promise<SnapshotInfo> {
    return this.control.run(async () => {
      const disk = this.disk(request.disk);
      return this.cutSnapshotOf(disk, request.name ?? this.defaultSnapshotName(disk), request.lun, undefined);
    });
  }

  /** A new snapshot (at the log's end, or at an earlier LSN): name checked, LUN assigned. Inside control. */
  private async cutSnapshotOf(disk: OpenDisk, name: string, lun: number | undefined, lsn: number | undefined): Promise<SnapshotInfo> {
    this.checkNewSnapshotName(disk, name);
    const cut = await disk.engine.cutSnapshot(name, await this.assignLun(lun), lsn);
    return snapshotInfo(disk.meta.name, cut);
  }

  private checkNewSnapshotName(disk: OpenDisk, name: string): void {
    checkName("snapshot", name);
    if (disk.engine.findSnapshot(name) !== undefined) {
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${disk.meta.name} already has a snapshot named ${name}`, { disk: disk.meta.name });
    }
  }

  private defaultSnapshotName(disk: OpenDisk, prefix = "snap"): string {
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    let name = `${prefix}-${stamp}`;
    for (let suffix = 2; disk.engine.findSnapshot(name) !== undefined; suffix++) name = `${prefix}-${stamp}-${suffix}`;
    return name;
  }

  deleteSnapshot(diskName: string, name: string): Promise<DeleteSnapshotResult> {
    return this.control.run(async () => {
      const disk = this.disk(diskName);
      const result = await disk.engine.deleteSnapshot(name, { free: policyOf(disk.meta).compactOnDelete });
      return { ...snapshotInfo(disk.meta.name, result.cut), entriesFreed: result.entriesFreed, bytesFreed: result.bytesFreed };
    });
  }

  async showPolicy(diskName: string): Promise<DiskPolicy> {
    return policyOf(this.disk(diskName).meta);
  }

  /**
   * Changes a disk's policies. The window is persisted in an order that keeps replay safe:
   * to zero, disk.json first (a replay with a zero window frees at least what the engine
   * frees); from zero, the engine first records its horizon (versions reclaimed meanwhile stay
   * gone), then disk.json.
   */
  setPolicy(update: PolicyUpdate): Promise<DiskPolicy> {
    return this.control.run(async () => {
      const disk = this.disk(update.disk);
      const seconds = update.historySeconds;
      if (seconds !== undefined && (!Number.isSafeInteger(seconds) || seconds < 0)) throw invalidArgument(`history window ${seconds} must be a whole number of seconds >= 0`);
      const next: DiskFile = { ...disk.meta };
      if (seconds !== undefined) next.historySeconds = seconds;
      if (update.autoCompact !== undefined) next.autoCompact = update.autoCompact;
      if (update.compactOnDelete !== undefined) next.compactOnDelete = update.compactOnDelete;
      const windowChanges = seconds !== undefined && seconds !== disk.engine.historySeconds;
      if (windowChanges && seconds === 0) {
        await this.saveDiskFile(disk, next);
        await disk.engine.setHistory(0);
      } else {
        if (windowChanges) await disk.engine.setHistory(seconds);
        await this.saveDiskFile(disk, next);
      }
      return policyOf(disk.meta);
    });
  }

  private async saveDiskFile(disk: OpenDisk, next: DiskFile): Promise<void> {
    await writeJsonFile(path.join(diskPath(this.path, disk.meta.name), DISK_FILE), next);
    disk.meta = next;
  }

  async compact(request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult> {
    const disk = this.disk(request.disk);
    const name = disk.meta.name;
    if (request.intoBaseline === true) {
      if (request.snapshot !== undefined) throw invalidArgument("--into-baseline folds the oldest kept view into the baseline; it takes no --snapshot");
      return disk.engine.foldIntoBaseline({ onProgress }).then((fold) => ({
        disk: name,
        mode: "into-baseline",
        entriesFreed: fold.entriesFreed,
        bytesFreed: fold.entriesFreed === 0 ? 0 : fold.bytesMoved,
        bytesMoved: fold.bytesMoved,
        entriesScanned: 0,
        bytesScanned: 0,
        segmentsReleased: 0,
        lsnFold: fold.lsnFold,
        scanMs: 0,
        durationMs: fold.durationMs,
      }));
    }
    // Asked for by a user: every wholly free segment goes back (background passes keep spares).
    return disk.engine.compact({ snapshot: request.snapshot, onProgress, spareSegmentCount: 0 }).then((result) => ({
      disk: name,
      mode: "in-place",
      entriesFreed: result.entriesFreed,
      bytesFreed: result.bytesFreed,
      bytesMoved: result.bytesMoved,
      entriesScanned: result.entriesScanned,
      bytesScanned: result.bytesScanned,
      segmentsReleased: result.segmentsReleased,
      lsnFold: 0,
      scanMs: result.scanMs,
      durationMs: result.durationMs,
    }));
  }

  async restore(request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult> {
    const disk = this.disk(request.disk);
    const engine = disk.engine;
    const targets = [request.to !== undefined, request.asSnapshot !== undefined, request.rollback === true].filter(Boolean).length;
    if (targets !== 1) throw invalidArgument("restore needs exactly one of --to FILE, --as-snapshot NAME, --rollback");
    if (request.name !== undefined && request.rollback !== true) throw invalidArgument("--name names the snapshot a rollback keeps; it goes with --rollback");
    const lsn = resolvePointLsn(engine, request.at, "--at");
    const base = { disk: disk.meta.name, lsn, time: lsn === 0 ? null : isoOrNull(engine.timeOfLsn(lsn)) };
    if (request.to !== undefined) {
      if (!path.isAbsolute(request.to)) throw invalidArgument(`--to ${request.to} must be an absolute path (the server writes it)`);
      const release = engine.pinView(lsn);
      try {
        const file = await restoreToFile(engine, lsn, request.to, onProgress);
        return { ...base, mode: "file", file: { path: request.to, ...file } };
      } finally {
        release();
      }
    }
    if (request.asSnapshot !== undefined) {
      const snapshot = await this.createSnapshotAt(disk, request.asSnapshot, request.lun, lsn);
      return { ...base, mode: "snapshot", snapshot };
    }
    return this.rollback(disk, lsn, request, base);
  }

  private createSnapshotAt(disk: OpenDisk, name: string, lun: number | undefined, lsn: number): Promise<SnapshotInfo> {
    return this.control.run(() => this.cutSnapshotOf(disk, name, lun, lsn));
  }

  /**
   * Rolls the current volume back. Connections to it made before fail from now on (CONFLICT:
   * EIO over NBD), and none can be made until it is done: no host sees the switch silently.
   */
  private rollback(disk: OpenDisk, lsn: number, request: RestoreRequest, base: { disk: string; lsn: number; time: string | null }): Promise<RestoreResult> {
    return this.control.run(async () => {
      const name = request.name ?? this.defaultSnapshotName(disk, "before-rollback");
      this.checkNewSnapshotName(disk, name);
      disk.engine.checkViewAvailable(lsn);
      const lun = await this.assignLun(request.lun);
      disk.generation++;
      disk.rollingBack = true;
      try {
        const result = await disk.engine.rollback(lsn, name, lun);
        return { ...base, mode: "rollback" as const, before: snapshotInfo(disk.meta.name, result.cut), blocksRestored: result.blockCount };
      } finally {
        disk.rollingBack = false;
      }
    });
  }

  async scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult> {
    const startedMs = performance.now();
    const targets = this.scrubTargets(request.disk);
    const progress = new ScrubProgress(targets.map((target) => (target.disk === undefined ? 0 : indexPageCount(target.disk.meta))), onProgress);
    const disks: ScrubDiskResult[] = [];
    for (const target of targets) {
      disks.push(target.disk === undefined ? offlineScrubResult(target.name, target.offlineReason) : await this.scrubDisk(target.disk, progress));
      progress.diskDone();
    }
    return { disks, ok: disks.every((disk) => disk.ok), durationMs: performance.now() - startedMs };
  }

  /** The disk asked for, or every disk by name; disks that failed to open come with their reason. */
  private scrubTargets(name: string | undefined): ScrubTarget[] {
    this.checkOpen();
    if (name !== undefined) {
      const failure = this.failedDisks.get(name);
      return [failure === undefined ? { name, disk: this.disk(name) } : { name, disk: undefined, offlineReason: failure }];
    }
    const open: ScrubTarget[] = [...this.disks.values()].map((disk) => ({ name: disk.meta.name, disk }));
    const offline: ScrubTarget[] = [...this.failedDisks].map(([failedName, reason]) => ({ name: failedName, disk: undefined, offlineReason: reason }));
    return [...open, ...offline].sort((a, b) => a.name.localeCompare(b.name));
  }

  private async scrubDisk(disk: OpenDisk, progress: ScrubProgress): Promise<ScrubDiskResult> {
    const name = disk.meta.name;
    const report = await disk.engine.scrub(progress.onDiskProgress);
    // The engine stops early, with what it saw so far, when it closes: that is no clean bill of health.
    if (this.closed || disk.deleted) {
      throw new SnaplogError(ErrorCodes.CLOSED, `the scrub of disk ${name} was cut short: the disk was deleted or the store is closing`, { disk: name });
    }
    const blockSizeBytes = disk.meta.blockSizeBytes;
    const directory = path.relative(this.path, diskPath(this.path, name));
    const corrupt = report.corrupt
      .map((entry) => ({
        block: entry.lba,
        lsn: entry.lsn,
        offsetBytes: entry.lba * blockSizeBytes,
        file: path.join(directory, entry.file),
        fileOffsetBytes: entry.offsetBytes,
        reason: entry.reason,
      }))
      .sort((a, b) => a.block - b.block || a.lsn - b.lsn);
    const baselineUnknownBlocks = [...disk.engine.baselineBadBlocks].sort((a, b) => a - b);
    return {
      disk: name,
      entriesChecked: report.entriesChecked,
      bytesChecked: report.bytesChecked,
      corrupt,
      baselineUnknownBlocks,
      ok: corrupt.length === 0 && baselineUnknownBlocks.length === 0,
    };
  }

  async *readLog(request: LogRequest): AsyncIterable<LogEntry> {
    const disk = this.disk(request.disk);
    const engine = disk.engine;
    let lsnFirst = 0;
    let lsnLast = engine.lsnLast;
    if (request.snapshot !== undefined) {
      ({ lsnFirst, lsnLast } = engine.snapshotPartition(request.snapshot));
    }
    if (request.since !== undefined) lsnFirst = Math.max(lsnFirst, boundLsn(engine, request.since, "--since", "first"));
    if (request.until !== undefined) lsnLast = Math.min(lsnLast, boundLsn(engine, request.until, "--until", "last"));
    const blockSizeBytes = disk.meta.blockSizeBytes;
    for await (const row of readLog(engine, { lsnFirst, lsnLast, withData: request.data === true })) {
      const entry: LogEntry = {
        kind: row.kind,
        lsnFirst: row.lsnFirst,
        lsnLast: row.lsnLast,
        time: new Date(row.timeMs).toISOString(),
        block: row.lba,
        blockCount: row.blockCount,
        offsetBytes: row.lba * blockSizeBytes,
        lengthBytes: row.blockCount * blockSizeBytes,
      };
      if (row.snapshot !== undefined) entry.snapshot = row.snapshot;
      if (row.data !== undefined) entry.data = row.data.toString("base64");
      yield entry;
    }
  }

  async *diff(request: DiffRequest): AsyncIterable<DiffRun> {
    const disk = this.disk(request.disk);
    const lsnFrom = resolvePointLsn(disk.engine, request.from, "FROM");
    const lsnTo = resolvePointLsn(disk.engine, request.to, "TO");
    const blockSizeBytes = disk.meta.blockSizeBytes;
    for await (const run of disk.engine.diffRuns(lsnFrom, lsnTo)) {
      yield { block: run.lbaFirst, blockCount: run.blockCount, offsetBytes: run.lbaFirst * blockSizeBytes, lengthBytes: run.blockCount * blockSizeBytes };
    }
  }

  async status(): Promise<StoreStatus> {
    this.checkOpen();
    const disks = await this.listDisks();
    let freeBytes = 0;
    try {
      const stat = await fs.statfs(this.path);
      freeBytes = stat.bavail * stat.bsize;
    } catch {
      freeBytes = 0;
    }
    return {
      path: this.path,
      version: VERSION,
      pid: process.pid,
      mode: this.mode,
      uptimeSeconds: Math.round((Date.now() - this.openedAtMs) / 1000),
      diskCount: disks.length,
      snapshotCount: disks.reduce((sum, disk) => sum + disk.snapshotCount, 0),
      usedBytes: disks.reduce((sum, disk) => sum + disk.segmentBytes + disk.journalBytes, 0),
      freeBytes,
      checksumErrors: [...this.disks.values()].reduce((sum, disk) => sum + disk.engine.checksumErrorCount, 0),
      nbd: this.nbdEndpoints,
      disks,
    };
  }

  private diskInfo(disk: OpenDisk): DiskInfo {
    const stats = disk.engine.stats();
    return {
      name: disk.meta.name,
      sizeBytes: disk.meta.sizeBytes,
      blockSizeBytes: disk.meta.blockSizeBytes,
      lun: disk.meta.lun,
      historySeconds: disk.meta.historySeconds,
      createdAt: disk.meta.createdAt,
      hasBaseline: disk.engine.hasBaseline,
      entryCount: stats.entryCount,
      logBytes: stats.slotCount * disk.meta.blockSizeBytes,
      segmentBytes: stats.segmentBytes,
      journalBytes: stats.journalBytes,
      lsnLast: stats.lsnLast,
      snapshotCount: disk.engine.snapshots.length,
    };
  }

  private snapshotInfos(disk: OpenDisk): SnapshotInfo[] {
    return disk.engine.snapshots.map((cut) => snapshotInfo(disk.meta.name, cut));
  }

  /** The whole-disk check of every open disk (fsck): problems per disk, empty lists when sound. */
  checkIntegrity(): Record<string, string[]> {
    const problems: Record<string, string[]> = {};
    for (const disk of this.disks.values()) problems[disk.meta.name] = disk.engine.checkIntegrity();
    return problems;
  }

  // ---- VolumeResolver -----------------------------------------------------------------

  resolve(exportName: string): Volume {
    const target = parseExportName(exportName);
    if (target.kind === "lun") return this.resolveLun(target.lun);
    const disk = this.disk(target.disk);
    const name = disk.meta.name;
    const engine = disk.engine;
    const diskAlive = () => {
      if (disk.deleted || this.closed) throw new SnaplogError(ErrorCodes.CLOSED, `disk ${name} was deleted or the store is closing`, { disk: name });
    };
    switch (target.kind) {
      case "current": {
        if (disk.rollingBack) throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${name} is being rolled back; connect again when it is done`, { disk: name });
        const generation = disk.generation;
        const alive = () => {
          diskAlive();
          if (disk.generation !== generation) {
            throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${name} was rolled back after this connection was made; reconnect to use the rolled-back volume`, { disk: name });
          }
        };
        return new DiskVolume(engine, name, `disk ${name}, LUN ${disk.meta.lun}, read-write`, Infinity, false, alive);
      }
      case "baseline":
        return new DiskVolume(engine, `${name}@baseline`, `baseline of disk ${name}, read-only`, 0, true, diskAlive);
      case "snapshot": {
        const cut = engine.findSnapshot(target.snapshot);
        if (cut === undefined) throw notFound(`disk ${name} has no snapshot named ${JSON.stringify(target.snapshot)}`, { disk: name });
        const alive = () => {
          diskAlive();
          if (engine.findSnapshot(cut.name) !== cut) throw new SnaplogError(ErrorCodes.CLOSED, `snapshot ${cut.name} of disk ${name} was deleted`, { disk: name });
        };
        return new DiskVolume(engine, `${name}@${cut.name}`, this.snapshotDescription(name, cut), cut.lsn, true, alive);
      }
      case "lsn":
      case "time": {
        // Checked against the window now, then pinned while attached: nothing it sees is freed.
        const lsn = target.kind === "lsn" ? (engine.checkViewAvailable(target.lsn), target.lsn) : engine.viewAtTime(target.timeMs);
        const release = engine.pinView(lsn);
        const time = lsn === 0 ? "the baseline" : new Date(engine.timeOfLsn(lsn)).toISOString();
        return new DiskVolume(engine, exportName, `disk ${name} at LSN ${lsn} (${time}), read-only`, lsn, true, diskAlive, release);
      }
    }
  }

  private snapshotDescription(diskName: string, cut: { name: string; lun: number; lsn: number; timeMs: number }): string {
    return `snapshot ${cut.name} of disk ${diskName}, LUN ${cut.lun}, LSN ${cut.lsn}, ${new Date(cut.timeMs).toISOString()}, read-only`;
  }

  private resolveLun(lun: number): Volume {
    for (const disk of this.disks.values()) {
      if (disk.meta.lun === lun) return this.resolve(disk.meta.name);
      const cut = disk.engine.snapshots.find((snapshot) => snapshot.lun === lun);
      if (cut !== undefined) return this.resolve(`${disk.meta.name}@${cut.name}`);
    }
    throw notFound(`no volume holds LUN ${lun}`);
  }

  list(): ExportInfo[] {
    const exports: ExportInfo[] = [];
    for (const disk of [...this.disks.values()].sort((a, b) => a.meta.name.localeCompare(b.meta.name))) {
      const name = disk.meta.name;
      exports.push({ name, description: `disk ${name}, LUN ${disk.meta.lun}, read-write` });
      exports.push({ name: `${name}@baseline`, description: `baseline of disk ${name}, read-only` });
      for (const cut of disk.engine.snapshots) exports.push({ name: `${name}@${cut.name}`, description: this.snapshotDescription(name, cut) });
    }
    return exports;
  }

  // ---- lifecycle ----------------------------------------------------------------------

  /** Flushes and checkpoints every disk, releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A pass under way ends at its next step once the engines close.
    const compactionStopped = this.compactionScheduler?.stop();
    await this.control.run(async () => undefined);
    const results = await Promise.allSettled([...this.disks.values()].map((disk) => disk.engine.close()));
    await compactionStopped;
    await this.lock.release();
    const failure = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failure !== undefined) throw fromSystemError(failure.reason, { path: this.path });
  }

  /** For crash tests: drop everything without a final checkpoint (as a kill would), keep the lock file. */
  async abandon(): Promise<void> {
    this.closed = true;
    const compactionStopped = this.compactionScheduler?.stop();
    await Promise.allSettled([...this.disks.values()].map((disk) => disk.engine.abandon()));
    await compactionStopped;
    this.lock.abandon();
  }
}

function policyOf(meta: DiskFile): DiskPolicy {
  return { historySeconds: meta.historySeconds, autoCompact: meta.autoCompact ?? true, compactOnDelete: meta.compactOnDelete ?? true };
}

function snapshotInfo(disk: string, cut: { name: string; lun: number; lsn: number; timeMs: number }): SnapshotInfo {
  return { disk, name: cut.name, lun: cut.lun, lsn: cut.lsn, createdAt: new Date(cut.timeMs).toISOString() };
}

/** A disk to scrub, or one that failed to open (reported, not scrubbed). */
type ScrubTarget = { name: string; disk: OpenDisk } | { name: string; disk: undefined; offlineReason: string };

/** Index pages a disk of this size can have: the scrub's unit of progress. */
function indexPageCount(meta: DiskFile): number {
  return Math.ceil(meta.sizeBytes / meta.blockSizeBytes / INDEX_PAGE_BLOCKS);
}

function offlineScrubResult(disk: string, offlineReason: string): ScrubDiskResult {
  return { disk, entriesChecked: 0, bytesChecked: 0, corrupt: [], baselineUnknownBlocks: [], offlineReason, ok: false };
}

/**
 * One progress count over disks scrubbed in turn. Each disk counts for every index page its
 * size allows, known before anything starts, so the total is fixed and done only grows: the
 * engine reports pages up to the highest one written, and the pages past it (never written)
 * count as done once the disk is.
 */
class ScrubProgress {
  private readonly pageTotal: number;
  private pagesOfDisksDone = 0;
  private diskIndex = 0;

  constructor(
    private readonly pagesPerDisk: readonly number[],
    private readonly onProgress: ProgressCallback | undefined,
  ) {
    this.pageTotal = pagesPerDisk.reduce((sum, pages) => sum + pages, 0);
  }

  /** The engine's callback for the disk being scrubbed: pages of it done so far. */
  readonly onDiskProgress = (pagesDone: number): void => {
    const pagesOfDisk = this.pagesPerDisk[this.diskIndex];
    this.onProgress?.(this.pagesOfDisksDone + Math.min(pagesDone, pagesOfDisk), this.pageTotal);
  };

  diskDone(): void {
    this.pagesOfDisksDone += this.pagesPerDisk[this.diskIndex];
    this.diskIndex++;
    if (this.pageTotal > 0) this.onProgress?.(this.pagesOfDisksDone, this.pageTotal);
  }
}

function isoOrNull(timeMs: number): string | null {
  return timeMs === 0 ? null : new Date(timeMs).toISOString();
}

/**
 * An LSN bound of `log --since/--until` (inclusive): `lsn:N` as given; a time T as the first
 * entry at or after T (since) or the last at or before T (until). Listing the log needs no
 * window: it shows what is still there.
 */
function boundLsn(engine: DiskEngine, text: string, what: string, side: "first" | "last"): number {
  const target = parsePoint(text, what);
  if (target.kind === "lsn") return target.lsn;
  if (target.kind !== "time") throw invalidArgument(`${what} takes lsn:N or an ISO 8601 time, not ${JSON.stringify(text)}`);
  return side === "last" ? engine.lsnAtTime(target.timeMs) : engine.lsnAtTime(target.timeMs - 1) + 1;
}
