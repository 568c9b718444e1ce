/**
 * Snapshots (SPEC §1): cut, listed and deleted. A cut is O(1) in the engine; the store names it,
 * gives it a LUN (luns.ts), and ends the volumes of a deleted one.
 */
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import { snapshotInfo, snapshotInfos } from "./disk-info.js";
import { policyOf } from "./disk-policy.js";
import { assignLun } from "./luns.js";
import { checkNewSnapshotName } from "./new-snapshot-name.js";
import type { OpenDisk } from "./open-disk.js";
import type { CreateSnapshotRequest, DeleteSnapshotResult, SnapshotInfo } from "./operations/index.js";

export async function listSnapshots(catalog: Catalog, diskName: string): Promise<SnapshotInfo[]> {
  return snapshotInfos(catalog.disk(diskName));
}

export function createSnapshot(catalog: Catalog, request: CreateSnapshotRequest): Promise<SnapshotInfo> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(request.disk);
    return cutSnapshot(catalog, disk, { name: request.name ?? defaultSnapshotName(disk), lun: request.lun, lsn: undefined });
  });
}

/**
 * A new snapshot (at the log's end, or at an earlier LSN): name and view checked, then the
 * LUN assigned (it is persisted, so every check that can fail comes first). Inside control.
 */
export async function cutSnapshot(
  catalog: Catalog,
  disk: OpenDisk,
  cut: { name: string; lun: number | undefined; lsn: number | undefined },
): Promise<SnapshotInfo> {
  checkSnapshotNameFree(disk, cut.name);
  if (cut.lsn !== undefined) disk.engine.checkViewAvailable(cut.lsn);
  const made = await disk.engine.cutSnapshot(cut.name, await assignLun(catalog, cut.lun), cut.lsn);
  return snapshotInfo(disk.meta.name, made);
}

/** INVALID_ARGUMENT for a name no snapshot may have, ALREADY_EXISTS for one the disk has. */
export function checkSnapshotNameFree(disk: OpenDisk, name: string): void {
  checkNewSnapshotName(name);
  if (disk.engine.findSnapshot(name) !== undefined) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${disk.meta.name} already has a snapshot named ${name}`, {
      disk: disk.meta.name,
    });
  }
}

/** `prefix-YYYYMMDDTHHMMSSZ` (UTC), with `-2`, `-3`... when the disk has that name already. */
export function defaultSnapshotName(disk: OpenDisk, prefix = "snap"): string {
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
export function deleteSnapshot(catalog: Catalog, diskName: string, name: string): Promise<DeleteSnapshotResult> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    const life = disk.snapshotLives.get(name);
    if (life !== undefined) {
      life.end(new SnaplogError(ErrorCodes.CLOSED, `snapshot ${name} of disk ${disk.meta.name} was deleted`, { disk: disk.meta.name }));
      disk.snapshotLives.delete(name);
    }
    const result = await disk.engine.deleteSnapshot(name, { free: policyOf(disk.meta).compactOnDelete });
    return { ...snapshotInfo(disk.meta.name, result.cut), entriesFreed: result.entriesFreed, bytesFreed: result.bytesFreed };
  });
}
