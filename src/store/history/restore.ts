/**
 * Restore (SPEC §3.2 `restore DISK --at T`): a point in time materialized as a raw image
 * (--to), named as a snapshot in O(1) (--as-snapshot), or made the current volume again
 * (--rollback, the state before kept as a snapshot).
 */
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { Catalog } from "../catalog.js";
import { snapshotInfo } from "../disk-info.js";
import { VolumeLife } from "../disk-volume.js";
import { assignSnapshotLun } from "../luns.js";
import type { OpenDisk } from "../open-disk.js";
import { checkRestoreRequest, type ProgressCallback, type RestoreRequest, type RestoreResult } from "../operations/index.js";
import { lsnOfPoint, timeOfPoint } from "../point-spec.js";
import { checkNewSnapshotName } from "../new-snapshot-name.js";
import { checkSnapshotNameFree, cutSnapshot, defaultSnapshotName } from "../snapshots.js";
import { restoreToFile } from "./restore-to-file.js";
import { aroundMirrorChange } from "../mirror/disk-mirror.js";

/** What every restore result starts with: the disk and the point restored. */
type RestoredPoint = Pick<RestoreResult, "disk" | "lsn" | "time">;

export async function restore(catalog: Catalog, request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult> {
  checkRestoreRequest(request);
  const disk = catalog.disk(request.disk);
  const engine = disk.engine;
  const lsn = lsnOfPoint(engine, request.at, "--at");
  const point: RestoredPoint = { disk: disk.meta.name, lsn, time: timeOfPoint(engine, lsn) };
  if (request.to !== undefined) {
    const release = engine.pinView(lsn);
    try {
      const file = await restoreToFile(engine, lsn, request.to, onProgress);
      return { ...point, mode: "file", file: { path: request.to, ...file } };
    } finally {
      release();
    }
  }
  if (request.asSnapshot !== undefined) {
    const cut = { name: request.asSnapshot, lun: request.lun, lsn };
    const snapshot = await catalog.control.run(() => cutSnapshot(catalog, disk, cut, "restore"));
    return { ...point, mode: "snapshot", snapshot };
  }
  return catalog.control.run(() => rollback(catalog, disk, request, point));
}

/**
 * Rolls the current volume back (inside control). Connections to it made before fail from now
 * on (CONFLICT: EIO over NBD), and none can be made until it is done: no host sees the switch
 * silently. A rollback to the current LSN (nothing written since) would change no block, yet
 * fail those connections and keep a snapshot: it is refused (CONFLICT) and changes nothing.
 */
async function rollback(catalog: Catalog, disk: OpenDisk, request: RestoreRequest, point: RestoredPoint): Promise<RestoreResult> {
  const diskName = disk.meta.name;
  const lsn = point.lsn;
  if (lsn >= disk.engine.lsnLast) {
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `disk ${diskName} is at LSN ${lsn} already (nothing was written since): a rollback to it would change nothing`,
      { disk: diskName, lsn, hint: "to keep this point, restore it with as-snapshot instead" },
    );
  }
  const name = request.name ?? defaultSnapshotName(disk, "before-rollback");
  checkNewSnapshotName(name);
  checkSnapshotNameFree(disk, name);
  disk.engine.checkViewAvailable(lsn);
  const lun = await assignSnapshotLun(catalog, disk, name, request.lun);
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
    const result = await aroundMirrorChange(disk, "all", () => disk.engine.rollback(lsn, name, lun));
    return { ...point, mode: "rollback", before: snapshotInfo(diskName, result.cut, lun), blocksRestored: result.blockCount };
  } finally {
    disk.rollingBack = false;
  }
}
