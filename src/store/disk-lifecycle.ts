/**
 * Disks are opened with the store, created and deleted (SPEC §3.2 `disk create`, `disk delete`).
 * Every file of a disk, and the renames that make a disk appear or go, go through the medium
 * of their directory (StoreOpenOptions.mediumFor), so tests can fill or fail each step. The
 * directories themselves are made and removed with fs: a Medium is the files inside one.
 *
 *   create   checks, a LUN, then the disk built in a hidden directory `.creating-NAME-PID` and
 *            renamed into place: a crash leaves no half disk (hidden directories go at open)
 *   delete   its volumes end (CLOSED), the directory is renamed to `.deleting-NAME-TIME`, and
 *            its files go; a rename that fails leaves the disk as it was, served again
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { BASELINE_FILE, DISK_BLOCK_COUNT_MAX, DiskEngine, FORMAT_VERSION, type Medium } from "../engine/index.js";
import { ErrorCodes, fromSystemError, invalidArgument, SnaplogError } from "../util/errors.js";
import { newDiskId } from "./archive/identity.js";
import { undoInterruptedImport } from "./archive/interrupted-import.js";
import { checkBlockSize } from "./block-size.js";
import type { Catalog } from "./catalog.js";
import { readDiskFile, writeDiskFile, type DiskFile } from "./disk-file.js";
import { diskInfo } from "./disk-info.js";
import { checkHistorySeconds, HISTORY_SECONDS_DEFAULT, settingsOf } from "./disk-policy.js";
import { assignDiskLun, raiseLunNext, releaseDiskLuns } from "./luns.js";
import { checkName } from "./names.js";
import { endVolumes, openDisk, renewVolumes, type OpenDisk } from "./open-disk.js";
import { attachMirror, mirrorChangedWholesale } from "./mirror/disk-mirror.js";
import type { CreateDiskRequest, DiskInfo } from "./operations/index.js";
import { diskPath, disksPath } from "./paths.js";
import type { MediumFor, StoreLogger } from "./store-options.js";

export class DiskLifecycle {
  constructor(
    private readonly catalog: Catalog,
    private readonly mediumFor: MediumFor,
    private readonly logger: StoreLogger | undefined,
  ) {}

  /** Opens every disk of the store; one that fails is offline (listed with why), not fatal. */
  async openAll(): Promise<void> {
    const directory = disksPath(this.catalog.path);
    await fs.mkdir(directory, { recursive: true });
    for (const name of await fs.readdir(directory)) {
      if (name.startsWith(".")) {
        // A create or delete that a crash interrupted: never visible, safe to remove.
        await fs.rm(path.join(directory, name), { recursive: true, force: true });
        continue;
      }
      try {
        const medium = this.mediumFor(diskPath(this.catalog.path, name));
        const meta = await readDiskFile(medium, diskPath(this.catalog.path, name));
        const disk = openDisk(meta, await this.openEngine(meta, medium), medium);
        const kept = await undoInterruptedImport(this.catalog, disk);
        if (kept !== undefined) this.logger?.warn(`disk ${name}: an interrupted import was undone; its partial state is snapshot ${kept}`);
        // Its dirty regions (after a crash: those in flight) are resynced in the background.
        await attachMirror(this.catalog, disk);
        if (kept !== undefined) await mirrorChangedWholesale(disk);
        this.catalog.disks.set(name, disk);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.catalog.failedDisks.set(name, message);
        this.logger?.error(`disk ${name} is offline: ${message}`);
      }
    }
    await raiseLunNext(this.catalog);
  }

  create(request: CreateDiskRequest): Promise<DiskInfo> {
    return this.catalog.control.run(async () => {
      this.catalog.checkOpen();
      const meta = await this.newDiskFile(request);
      await this.build(meta, request.fromImage);
      const medium = this.mediumFor(diskPath(this.catalog.path, meta.name));
      const disk = openDisk(meta, await this.openEngine(meta, medium), medium);
      this.catalog.disks.set(meta.name, disk);
      await this.recordEvent("disk-created", meta.name, `disk ${meta.name} created (${meta.sizeBytes} bytes, LUN ${meta.lun})`);
      return diskInfo(disk);
    });
  }

  /**
   * A disk whose files `fill` writes in the hidden build directory (an import: the engine files
   * made, then `fill` opens an engine there, applies, closes). Placed and opened only when
   * `fill` succeeds; a failure or a crash leaves no disk. Inside control (the caller's).
   */
  async createBuilt(
    request: CreateDiskRequest & { id: string },
    fill: (medium: Medium, meta: DiskFile, openEngine: () => Promise<DiskEngine>) => Promise<void>,
  ): Promise<OpenDisk> {
    this.catalog.checkOpen();
    const meta = { ...(await this.newDiskFile(request)), id: request.id };
    await this.build(meta, undefined, (medium) => fill(medium, meta, () => this.openEngine(meta, medium)));
    const medium = this.mediumFor(diskPath(this.catalog.path, meta.name));
    const disk = openDisk(meta, await this.openEngine(meta, medium), medium);
    this.catalog.disks.set(meta.name, disk);
    await this.recordEvent("disk-created", meta.name, `disk ${meta.name} created by an import (${meta.sizeBytes} bytes, LUN ${meta.lun})`);
    return disk;
  }

  /**
   * Disks come and go in the event log too, so a follower (the server's policy runner) notices
   * them without polling. A failure to record is logged, never the operation's.
   */
  private async recordEvent(type: "disk-created" | "disk-deleted", name: string, message: string): Promise<void> {
    await this.catalog.events
      .record({ type, disk: name, reason: "manual", message })
      .catch((error: unknown) =>
        this.logger?.error(`event log: could not record an event: ${error instanceof Error ? error.message : String(error)}`),
      );
  }

  /** The new disk's disk.json: every check of the request first, then a LUN (persisted). */
  private async newDiskFile(request: CreateDiskRequest): Promise<DiskFile> {
    checkName("disk", request.name);
    if (this.catalog.has(request.name)) {
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a disk named ${request.name} already exists`, { disk: request.name });
    }
    const blockSizeBytes = checkBlockSize(request.blockSizeBytes ?? this.catalog.storeFile.blockSizeBytes);
    const sizeBytes = request.sizeBytes;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)
      throw invalidArgument(`disk size ${sizeBytes} must be a positive number of bytes`);
    if (sizeBytes % blockSizeBytes !== 0)
      throw invalidArgument(`disk size ${sizeBytes} is not a multiple of the block size ${blockSizeBytes}`);
    if (sizeBytes / blockSizeBytes > DISK_BLOCK_COUNT_MAX) throw invalidArgument(`disk size ${sizeBytes} is too large`);
    const historySeconds = checkHistorySeconds(request.historySeconds ?? HISTORY_SECONDS_DEFAULT);
    if (request.fromImage !== undefined) await checkImage(request.fromImage, sizeBytes);
    const lun = await assignDiskLun(this.catalog);
    return {
      formatVersion: FORMAT_VERSION,
      name: request.name,
      sizeBytes,
      blockSizeBytes,
      lun,
      historySeconds,
      createdAt: new Date().toISOString(),
      id: newDiskId(),
    };
  }

  /**
   * Builds the disk's files in a hidden directory, then renames it into place. A failure at any
   * step removes what was built, under either name: a create that fails leaves no disk behind,
   * not even one that only a restart would find.
   */
  private async build(meta: DiskFile, fromImage: string | undefined, fill?: (medium: Medium) => Promise<void>): Promise<void> {
    const disks = disksPath(this.catalog.path);
    const building = `.creating-${meta.name}-${process.pid}`;
    let placed = false;
    await fs.rm(path.join(disks, building), { recursive: true, force: true });
    await fs.mkdir(path.join(disks, building));
    try {
      const medium = this.mediumFor(path.join(disks, building));
      if (fromImage !== undefined) await copyBaseline(medium, fromImage, meta.sizeBytes);
      await DiskEngine.create(medium);
      if (fill !== undefined) await fill(medium);
      await writeDiskFile(medium, meta);
      const parent = this.mediumFor(disks);
      await parent.rename(building, meta.name);
      placed = true;
      await parent.syncDirectory();
    } catch (error) {
      await fs.rm(path.join(disks, placed ? meta.name : building), { recursive: true, force: true });
      throw fromSystemError(error, { disk: meta.name });
    }
  }

  delete(name: string): Promise<void> {
    return this.catalog.control.run(async () => {
      const disk = this.catalog.disk(name);
      endVolumes(disk, new SnaplogError(ErrorCodes.CLOSED, `disk ${name} was deleted`, { disk: name }));
      const disks = disksPath(this.catalog.path);
      const doomed = `.deleting-${name}-${Date.now()}`;
      const parent = this.mediumFor(disks);
      try {
        await parent.rename(name, doomed);
      } catch (error) {
        renewVolumes(disk);
        throw fromSystemError(error, { disk: name });
      }
      this.catalog.disks.delete(name);
      const leg = disk.mirror;
      disk.mirror = undefined;
      await leg?.abandon();
      try {
        await parent.syncDirectory();
      } finally {
        // Gone from the store either way: its engine closes (a failed sync leaves the files to the next open).
        await disk.engine.close().catch(() => undefined);
      }
      await this.recordEvent("disk-deleted", name, `disk ${name} deleted`);
      await this.removeDirectory(path.join(disks, doomed), name);
      // After the rename is durable: a crash before this leaves the disk's LUNs unused, never twice.
      await releaseDiskLuns(this.catalog, disk);
    });
  }

  /**
   * Removes a deleted disk's directory, its files through its medium. The delete is done (the
   * rename is durable), so a failure here is only logged: what is left goes at the next open.
   */
  private async removeDirectory(directory: string, name: string): Promise<void> {
    try {
      const medium = this.mediumFor(directory);
      for (const file of await medium.list()) await medium.remove(file);
      await fs.rm(directory, { recursive: true, force: true });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.logger?.warn(`disk ${name} is deleted, but its files are not all removed (the next open removes them): ${message}`);
    }
  }

  private openEngine(meta: DiskFile, medium: Medium): Promise<DiskEngine> {
    return openDiskEngine(this.catalog, this.logger, meta, medium);
  }
}

/** The engine of a disk, with the store's event wiring and its history cap (policy, in disk.json). */
async function openDiskEngine(catalog: Catalog, logger: StoreLogger | undefined, meta: DiskFile, medium: Medium): Promise<DiskEngine> {
  const signals = catalog.signals;
  const engine = await DiskEngine.open(
    medium,
    { name: meta.name, sizeBytes: meta.sizeBytes, blockSizeBytes: meta.blockSizeBytes, historySeconds: meta.historySeconds },
    {
      onChecksumError: (info) => logger?.error(`checksum error on disk ${info.disk}, block ${info.lba}, LSN ${info.lsn}`),
      onBackgroundError: (error) => logger?.error(error.message),
      onSegmentCreated: (info) => signals.emit("segment-created", info.disk),
      onHistoryCapDue: (info) => signals.emit("history-cap-due", info.disk),
    },
  );
  engine.setHistoryMax(settingsOf(meta).historyMaxBytes);
  return engine;
}

async function checkImage(imagePath: string, sizeBytes: number): Promise<void> {
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

/** The image becomes the baseline, as long as the disk (sparse past the image's end). */
async function copyBaseline(medium: Medium, imagePath: string, sizeBytes: number): Promise<void> {
  await medium.copyIn(imagePath, BASELINE_FILE);
  const baseline = await medium.open(BASELINE_FILE, { create: false });
  try {
    await baseline.truncate(sizeBytes);
    await baseline.sync();
  } finally {
    await baseline.close();
  }
}
