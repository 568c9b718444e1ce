import { promises as fs } from "node:fs";
import * as path from "node:path";
import {
  BLOCK_SIZE_BYTES_DEFAULT,
  DISK_BLOCK_COUNT_MAX,
  FORMAT_VERSION,
  INDEX_PAGE_BLOCKS,
  isValidBlockSize,
  BASELINE_FILE,
  DiskEngine,
  DirectoryMedium,
  type Medium,
  readLog,
} from "../engine/index.js";
import { ErrorCodes, fromSystemError, invalidArgument, notFound, SnaplogError } from "../util/errors.js";
import { readJsonFile, writeJsonFile } from "../util/json-file.js";
import { checkName, parseExportName } from "./export-name.js";
import { DiskVolume, VolumeLife } from "./disk-volume.js";
import { describePoint, resolveBoundLsn, resolvePointLsn, timeOfPoint } from "./point-spec.js";
import { restoreToFile } from "./restore-to-file.js";
import { CompactionScheduler } from "./compaction-scheduler.js";
import { DISK_FILE, diskPath, disksPath, STORE_FILE } from "./paths.js";
import { StoreLock } from "./store-lock.js";
import { SerialQueue } from "../util/serial-queue.js";
import { maxOf } from "../util/max-of.js";
import {
  checkCompactRequest,
  checkRestoreRequest,
  type CompactRequest,
  type CompactResult,
  type CreateDiskRequest,
  type CreateSnapshotRequest,
  type DeleteSnapshotResult,
  type DiffRequest,
  type DiffRun,
  type DiskDetail,
  type DiskInfo,
  type DiskPolicy,
  type DiskSpace,
  type LogEntry,
  type LogRequest,
  type Operations,
  type PolicyUpdate,
  type ProgressCallback,
  type RestoreRequest,
  type RestoreResult,
  type ScrubDiskResult,
  type ScrubRequest,
  type ScrubResult,
  type SnapshotInfo,
  type StoreStatus,
} from "./operations/index.js";
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
  /** Policies (absent in disks made before they existed: defaults apply). */
  autoCompact?: boolean;
  compactOnDelete?: boolean;
}

/**
 * An open disk and the lives of its volumes (VolumeLife): ended when the disk is deleted or the
 * store closes; the current volume's also by a rollback (then replaced: connections made
 * before fail, new ones see the rolled-back disk); a snapshot's when it is deleted.
 */
interface OpenDisk {
  meta: DiskFile;
  engine: DiskEngine;
  /** The baseline and point-in-time volumes; ended: the disk is deleted or the store closed. */
  life: VolumeLife;
  /** The current volume's connections made since the last rollback. */
  currentLife: VolumeLife;
  /** Snapshot volumes by snapshot name, made when one is first attached. */
  snapshotLives: Map<string, VolumeLife>;
  /** A rollback is under way: no new connection to the current volume until it is done. */
  rollingBack: boolean;
}

function openDisk(meta: DiskFile, engine: DiskEngine): OpenDisk {
  return { meta, engine, life: new VolumeLife(), currentLife: new VolumeLife(), snapshotLives: new Map(), rollingBack: false };
}

/** Every volume of the disk fails from now on with `error`. */
function endVolumes(disk: OpenDisk, error: SnaplogError): void {
  disk.life.end(error);
  disk.currentLife.end(error);
  for (const life of disk.snapshotLives.values()) life.end(error);
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
      throw new SnaplogError(ErrorCodes.UNSUPPORTED, `store format ${storeFile.formatVersion} is not supported by this version`, {
        path: absolute,
      });
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
        this.disks.set(name, openDisk(meta, engine));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.failedDisks.set(name, message);
        this.logger?.error(`disk ${name} is offline: ${message}`);
      }
    }
    const lunHighest = maxOf(this.allLuns(), 0);
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
      if (!Number.isInteger(requested) || requested < 1 || requested > 0xffff_ffff)
        throw invalidArgument(`LUN ${requested} is not an integer from 1 to 4294967295`);
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
      () =>
        [...this.disks.values()].map((disk) => ({
          name: disk.meta.name,
          engine: disk.engine,
          autoCompact: policyOf(disk.meta).autoCompact,
        })),
      {
        intervalMs: options.intervalMs ?? COMPACTION_INTERVAL_MS,
        idleMs: options.idleMs ?? COMPACTION_IDLE_MS,
        freeFractionMin: options.freeFractionMin ?? COMPACTION_FREE_FRACTION_MIN,
        space: () => this.fileSystemSpace(),
        onCompacted: (disk, result) =>
          this.logger?.info?.(
            `compacted disk ${disk} (${result.reason}): ${result.entriesFreed} entries, ${result.bytesFreed} bytes freed, ${result.segmentsReleased} segment files released`,
          ),
        onError: (disk, error) =>
          this.logger?.error(`background compaction of disk ${disk} failed: ${error instanceof Error ? error.message : String(error)}`),
      },
    );
    this.compactionScheduler.start();
  }

  /** Free (for unprivileged users) and total bytes of the file system holding the store. */
  private async fileSystemSpace(): Promise<{ freeBytes: number; totalBytes: number }> {
    const stat = await fs.statfs(this.path);
    return { freeBytes: stat.bavail * stat.bsize, totalBytes: stat.blocks * stat.bsize };
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
    const blockSizeBytes = disk.meta.blockSizeBytes;
    const window = engine.historyWindow();
    return {
      baselineBytes: space.baselineBytes,
      logLiveBytes: space.liveSlots * blockSizeBytes,
      logDeadBytes: space.deadSlots * blockSizeBytes,
      logFreeBytes: space.freeSlots * blockSizeBytes,
      segmentBytes: space.segmentBytes,
      liveEntries: space.liveEntries,
      deadEntries: space.deadEntries,
      window: { lsnFirst: window.lsnFirst, timeFirst: isoOrNull(window.timeMsFirst), lsnLast: window.lsnLast },
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
    if (!isValidBlockSize(blockSizeBytes))
      throw invalidArgument(`block size ${blockSizeBytes} is not a power of two between 512 and 65536`);
    const sizeBytes = request.sizeBytes;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)
      throw invalidArgument(`disk size ${sizeBytes} must be a positive number of bytes`);
    if (sizeBytes % blockSizeBytes !== 0)
      throw invalidArgument(`disk size ${sizeBytes} is not a multiple of the block size ${blockSizeBytes}`);
    if (sizeBytes / blockSizeBytes > DISK_BLOCK_COUNT_MAX) throw invalidArgument(`disk size ${sizeBytes} is too large`);
    const historySeconds = request.historySeconds ?? HISTORY_SECONDS_DEFAULT;
    if (!Number.isInteger(historySeconds) || historySeconds < 0)
      throw invalidArgument(`history window ${historySeconds} must be a whole number of seconds >= 0`);
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
    const disk = openDisk(meta, await this.openEngine(meta));
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
    if (stat.size > sizeBytes)
      throw invalidArgument(`image ${imagePath} (${stat.size} bytes) is larger than the disk (${sizeBytes} bytes)`, { path: imagePath });
  }

  deleteDisk(name: string): Promise<void> {
    return this.control.run(async () => {
      const disk = this.disk(name);
      endVolumes(disk, new SnaplogError(ErrorCodes.CLOSED, `disk ${name} was deleted`, { disk: name }));
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

  /**
   * A new snapshot (at the log's end, or at an earlier LSN): name and view checked, then the
   * LUN assigned (it is persisted, so every check that can fail comes first). Inside control.
   */
  private async cutSnapshotOf(disk: OpenDisk, name: string, lun: number | undefined, lsn: number | undefined): Promise<SnapshotInfo> {
    this.checkNewSnapshotName(disk, name);
    if (lsn !== undefined) disk.engine.checkViewAvailable(lsn);
    const cut = await disk.engine.cutSnapshot(name, await this.assignLun(lun), lsn);
    return snapshotInfo(disk.meta.name, cut);
  }

  private checkNewSnapshotName(disk: OpenDisk, name: string): void {
    checkName("snapshot", name);
    if (disk.engine.findSnapshot(name) !== undefined) {
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${disk.meta.name} already has a snapshot named ${name}`, {
        disk: disk.meta.name,
      });
    }
  }

  private defaultSnapshotName(disk: OpenDisk, prefix = "snap"): string {
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z");
    let name = `${prefix}-${stamp}`;
    for (let suffix = 2; disk.engine.findSnapshot(name) !== undefined; suffix++) name = `${prefix}-${stamp}-${suffix}`;
    return name;
  }

  /**
   * Deletes a snapshot. Its volumes stop before the engine removes it (CLOSED from then on),
   * so no host reads it while its partition is merged away; if the delete then fails, hosts
   * attach it again.
   */
  deleteSnapshot(diskName: string, name: string): Promise<DeleteSnapshotResult> {
    return this.control.run(async () => {
      const disk = this.disk(diskName);
      const life = disk.snapshotLives.get(name);
      if (life !== undefined) {
        life.end(new SnaplogError(ErrorCodes.CLOSED, `snapshot ${name} of disk ${disk.meta.name} was deleted`, { disk: disk.meta.name }));
        disk.snapshotLives.delete(name);
      }
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
      if (seconds !== undefined && (!Number.isSafeInteger(seconds) || seconds < 0))
        throw invalidArgument(`history window ${seconds} must be a whole number of seconds >= 0`);
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
    checkCompactRequest(request);
    const disk = this.disk(request.disk);
    const name = disk.meta.name;
    if (request.intoBaseline === true) {
      return disk.engine.foldIntoBaseline({ onProgress }).then((fold) => ({
        disk: name,
        mode: "into-baseline",
        entriesFreed: fold.entriesFreed,
        bytesFreed: fold.bytesFreed,
        bytesMoved: fold.bytesMoved,
        entriesScanned: 0,
        bytesScanned: 0,
        segmentsReleased: 0,
        lsnFold: fold.lsnFold,
        scanMs: 0,
        durationMs: fold.durationMs,
        corruptBlocks: [...fold.corruptLbas].sort((a, b) => a - b),
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
      corruptBlocks: [],
    }));
  }

  async restore(request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult> {
    checkRestoreRequest(request);
    const disk = this.disk(request.disk);
    const engine = disk.engine;
    const lsn = resolvePointLsn(engine, request.at, "--at");
    const base = { disk: disk.meta.name, lsn, time: timeOfPoint(engine, lsn) };
    if (request.to !== undefined) {
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
   * A rollback to the current LSN (nothing written since) would change no block, yet fail those
   * connections and keep a snapshot: it is refused (CONFLICT) and changes nothing.
   */
  private rollback(
    disk: OpenDisk,
    lsn: number,
    request: RestoreRequest,
    base: { disk: string; lsn: number; time: string | null },
  ): Promise<RestoreResult> {
    return this.control.run(async () => {
      const diskName = disk.meta.name;
      if (lsn >= disk.engine.lsnLast) {
        throw new SnaplogError(
          ErrorCodes.CONFLICT,
          `disk ${diskName} is at LSN ${lsn} already (nothing was written since): a rollback to it would change nothing`,
          {
            disk: diskName,
            lsn,
            hint: "to keep this point, restore it with as-snapshot instead",
          },
        );
      }
      const name = request.name ?? this.defaultSnapshotName(disk, "before-rollback");
      this.checkNewSnapshotName(disk, name);
      disk.engine.checkViewAvailable(lsn);
      const lun = await this.assignLun(request.lun);
      disk.currentLife.end(
        new SnaplogError(
          ErrorCodes.CONFLICT,
          `disk ${diskName} was rolled back after this connection was made; reconnect to use the rolled-back volume`,
          { disk: diskName },
        ),
      );
      disk.currentLife = new VolumeLife();
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
    // Progress counts every index page each disk's size allows, known before anything starts, so
    // the total is fixed and done only grows: the engine reports pages up to the highest one
    // written, and the pages past it (never written) count as done once the disk is.
    const pageCounts = targets.map((target) => (target.disk === undefined ? 0 : indexPageCount(target.disk.meta)));
    const pageTotal = pageCounts.reduce((sum, pages) => sum + pages, 0);
    let pagesBefore = 0;
    const disks: ScrubDiskResult[] = [];
    for (const [index, target] of targets.entries()) {
      const pages = pageCounts[index];
      const onDiskProgress = (pagesDone: number) => onProgress?.(pagesBefore + Math.min(pagesDone, pages), pageTotal);
      disks.push(
        target.disk === undefined
          ? offlineScrubResult(target.name, target.offlineReason)
          : await this.scrubDisk(target.disk, onDiskProgress),
      );
      pagesBefore += pages;
      if (pageTotal > 0) onProgress?.(pagesBefore, pageTotal);
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
    const offline: ScrubTarget[] = [...this.failedDisks].map(([failedName, reason]) => ({
      name: failedName,
      disk: undefined,
      offlineReason: reason,
    }));
    return [...open, ...offline].sort((a, b) => a.name.localeCompare(b.name));
  }

  private async scrubDisk(disk: OpenDisk, onProgress: (pagesDone: number) => void): Promise<ScrubDiskResult> {
    const name = disk.meta.name;
    const report = await disk.engine.scrub(onProgress);
    // The engine stops early, with what it saw so far, when it closes: that is no clean bill of health.
    if (disk.life.ended !== undefined) {
      throw new SnaplogError(ErrorCodes.CLOSED, `the scrub of disk ${name} was cut short: the disk was deleted or the store is closing`, {
        disk: name,
      });
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
    if (request.since !== undefined) lsnFirst = Math.max(lsnFirst, resolveBoundLsn(engine, request.since, "--since", "first"));
    if (request.until !== undefined) lsnLast = Math.min(lsnLast, resolveBoundLsn(engine, request.until, "--until", "last"));
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
      yield {
        block: run.lbaFirst,
        blockCount: run.blockCount,
        offsetBytes: run.lbaFirst * blockSizeBytes,
        lengthBytes: run.blockCount * blockSizeBytes,
      };
    }
  }

  async status(): Promise<StoreStatus> {
    this.checkOpen();
    const disks = await this.listDisks();
    // 0 when the file system will not say.
    const { freeBytes } = await this.fileSystemSpace().catch(() => ({ freeBytes: 0 }));
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
    switch (target.kind) {
      case "current": {
        if (disk.rollingBack)
          throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${name} is being rolled back; connect again when it is done`, { disk: name });
        return new DiskVolume(engine, name, `disk ${name}, LUN ${disk.meta.lun}, read-write`, Infinity, false, disk.currentLife);
      }
      case "baseline":
        return new DiskVolume(engine, `${name}@baseline`, `baseline of disk ${name}, read-only`, 0, true, disk.life);
      case "snapshot": {
        const cut = engine.findSnapshot(target.snapshot);
        if (cut === undefined) throw notFound(`disk ${name} has no snapshot named ${JSON.stringify(target.snapshot)}`, { disk: name });
        let life = disk.snapshotLives.get(cut.name);
        if (life === undefined) {
          life = new VolumeLife();
          disk.snapshotLives.set(cut.name, life);
        }
        return new DiskVolume(engine, `${name}@${cut.name}`, this.snapshotDescription(name, cut), cut.lsn, true, life);
      }
      case "lsn":
      case "time": {
        // Checked against the window now (pinView), then pinned while attached: nothing it sees is freed.
        const lsn = target.kind === "lsn" ? target.lsn : engine.viewAtTime(target.timeMs);
        const release = engine.pinView(lsn);
        return new DiskVolume(
          engine,
          exportName,
          `disk ${name} at ${describePoint(lsn, timeOfPoint(engine, lsn))}, read-only`,
          lsn,
          true,
          disk.life,
          release,
        );
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
      for (const cut of disk.engine.snapshots)
        exports.push({ name: `${name}@${cut.name}`, description: this.snapshotDescription(name, cut) });
    }
    return exports;
  }

  // ---- lifecycle ----------------------------------------------------------------------

  private endAllVolumes(): void {
    for (const disk of this.disks.values())
      endVolumes(
        disk,
        new SnaplogError(ErrorCodes.CLOSED, `the store is closing: disk ${disk.meta.name} is no longer served`, { disk: disk.meta.name }),
      );
  }

  /** Flushes and checkpoints every disk, releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.endAllVolumes();
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
    this.endAllVolumes();
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

function isoOrNull(timeMs: number): string | null {
  return timeMs === 0 ? null : new Date(timeMs).toISOString();
}
