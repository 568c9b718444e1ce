import { promises as fs } from "node:fs";
import * as path from "node:path";
import { BLOCK_SIZE_BYTES_DEFAULT, DISK_BLOCK_COUNT_MAX, FORMAT_VERSION, isValidBlockSize } from "../engine/constants.js";
import { BASELINE_FILE, DiskEngine } from "../engine/disk-engine.js";
import { DirectoryMedium } from "../engine/medium.js";
import { ErrorCodes, fromSystemError, invalidArgument, notFound, SnaplogError } from "../util/errors.js";
import { readJsonFile, writeJsonFile } from "../util/json-file.js";
import { checkName, parseExportName } from "./export-name.js";
import { DiskVolume } from "./disk-volume.js";
import { DISK_FILE, diskPath, disksPath, STORE_FILE } from "./paths.js";
import { StoreLock } from "./store-lock.js";
import { SerialQueue } from "../util/serial-queue.js";
import type {
  CreateDiskRequest,
  CreateSnapshotRequest,
  DiskDetail,
  DiskInfo,
  Operations,
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
  hasBaseline: boolean;
}

interface OpenDisk {
  meta: DiskFile;
  engine: DiskEngine;
  deleted: boolean;
}

export interface StoreOpenOptions {
  mode?: "server" | "direct";
  logger?: { warn(message: string): void; error(message: string): void };
}

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

  private constructor(
    readonly path: string,
    private storeFile: StoreFile,
    private readonly lock: StoreLock,
    private readonly mode: "server" | "direct",
    private readonly logger: StoreOpenOptions["logger"],
  ) {}

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
    const store = new Store(absolute, storeFile, lock, options.mode ?? "direct", options.logger);
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
        this.disks.set(name, { meta, engine, deleted: false });
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
      new DirectoryMedium(diskPath(this.path, meta.name)),
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
    return { ...this.diskInfo(disk), snapshots: this.snapshotInfos(disk) };
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
    const disk = { meta, engine, deleted: false };
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
      const name = request.name ?? this.defaultSnapshotName(disk);
      checkName("snapshot", name);
      if (disk.engine.findSnapshot(name) !== undefined) {
        throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${request.disk} already has a snapshot named ${name}`, { disk: request.disk });
      }
      const lun = await this.assignLun(request.lun);
      const cut = await disk.engine.cutSnapshot(name, lun);
      return { disk: disk.meta.name, name: cut.name, lun: cut.lun, lsn: cut.lsn, createdAt: new Date(cut.timeMs).toISOString() };
    });
  }

  private defaultSnapshotName(disk: OpenDisk): string {
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    let name = `snap-${stamp}`;
    for (let suffix = 2; disk.engine.findSnapshot(name) !== undefined; suffix++) name = `snap-${stamp}-${suffix}`;
    return name;
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
      hasBaseline: disk.meta.hasBaseline,
      entryCount: stats.entryCount,
      logBytes: stats.slotCount * disk.meta.blockSizeBytes,
      segmentBytes: stats.segmentBytes,
      journalBytes: stats.journalBytes,
      lsnLast: stats.lsnLast,
      snapshotCount: disk.engine.snapshots.length,
    };
  }

  private snapshotInfos(disk: OpenDisk): SnapshotInfo[] {
    return disk.engine.snapshots.map((cut) => ({
      disk: disk.meta.name,
      name: cut.name,
      lun: cut.lun,
      lsn: cut.lsn,
      createdAt: new Date(cut.timeMs).toISOString(),
    }));
  }

  // ---- VolumeResolver -----------------------------------------------------------------

  resolve(exportName: string): Volume {
    const target = parseExportName(exportName);
    if (target.kind === "lun") return this.resolveLun(target.lun);
    const disk = this.disk(target.disk);
    const name = disk.meta.name;
    const alive = () => {
      if (disk.deleted || this.closed) throw new SnaplogError(ErrorCodes.CLOSED, `disk ${name} was deleted or the store is closing`, { disk: name });
    };
    switch (target.kind) {
      case "current":
        return new DiskVolume(disk.engine, name, `disk ${name}, LUN ${disk.meta.lun}, read-write`, Infinity, false, alive);
      case "baseline":
        return new DiskVolume(disk.engine, `${name}@baseline`, `baseline of disk ${name}, read-only`, 0, true, alive);
      case "snapshot": {
        const cut = disk.engine.findSnapshot(target.snapshot);
        if (cut === undefined) throw notFound(`disk ${name} has no snapshot named ${JSON.stringify(target.snapshot)}`, { disk: name });
        return new DiskVolume(disk.engine, `${name}@${cut.name}`, this.snapshotDescription(name, cut), cut.lsn, true, alive);
      }
      default:
        throw new SnaplogError(ErrorCodes.UNSUPPORTED, `point-in-time exports (${exportName}) are not available yet`, { disk: name });
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
    await this.control.run(async () => undefined);
    const results = await Promise.allSettled([...this.disks.values()].map((disk) => disk.engine.close()));
    await this.lock.release();
    const failure = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failure !== undefined) throw fromSystemError(failure.reason, { path: this.path });
  }

  /** For crash tests: drop everything without a final checkpoint (as a kill would), keep the lock file. */
  async abandon(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.disks.values()].map((disk) => disk.engine.abandon()));
    this.lock.abandon();
  }
}
