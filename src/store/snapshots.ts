/**
 * Snapshots (SPEC §1): cut, listed and deleted. A cut is O(1) in the engine; the store names it,
 * gives it a LUN (luns.ts), and ends the volumes of a deleted one.
 */
import { stampedName } from "./new-snapshot-name.js";
import { isReadOnlyReplica } from "./replication/replica-mode.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import { settingsOf } from "./policy/policy-settings.js";
import { snapshotInfo, snapshotInfos } from "./disk-info.js";
import { assignSnapshotLun, heldLun, releaseSnapshotLun } from "./luns.js";
import { mergeIfOldest } from "./merge-oldest.js";
import { checkNewSnapshotName } from "./new-snapshot-name.js";
import type { OpenDisk } from "./open-disk.js";
import type { CreateSnapshotRequest, DeleteSnapshotResult, SnapshotInfo, StoreEvent } from "./operations/index.js";

type EventDetails = NonNullable<StoreEvent["details"]>;

export async function listSnapshots(catalog: Catalog, diskName: string): Promise<SnapshotInfo[]> {
  return snapshotInfos(catalog.disk(diskName), catalog.storeFile);
}

export function createSnapshot(catalog: Catalog, request: CreateSnapshotRequest): Promise<SnapshotInfo> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(request.disk);
    return cutSnapshot(catalog, disk, { name: request.name ?? defaultSnapshotName(disk), lun: request.lun, lsn: undefined }, "manual");
  });
}

/**
 * A scheduled snapshot (named auto-… after its slot), unless the disk has it already: the
 * scheduler's one way in. Undefined when it existed (a slot is run once). `catchUp`: the slot
 * passed while nothing ran it (the server was down, the clock stepped forward); its event says so.
 */
export function createScheduledSnapshot(
  catalog: Catalog,
  diskName: string,
  name: string,
  run: { catchUp: boolean } = { catchUp: false },
): Promise<SnapshotInfo | undefined> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    if (disk.engine.findSnapshot(name) !== undefined) return undefined;
    return cutSnapshot(catalog, disk, { name, lun: undefined, lsn: undefined }, "scheduled", { catchUp: run.catchUp });
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
  reason: string,
  details?: EventDetails,
): Promise<SnapshotInfo> {
  if (isReadOnlyReplica(disk.meta)) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${disk.meta.name} is a replica: its snapshots come from its source`, {
      disk: disk.meta.name,
      hint: "promote it first to use it on its own: snaplog disk promote",
    });
  }
  checkNewSnapshotName(cut.name, { scheduled: reason === "scheduled" });
  checkSnapshotNameFree(disk, cut.name);
  if (cut.lsn !== undefined) disk.engine.checkViewAvailable(cut.lsn);
  const lun = await assignSnapshotLun(catalog, disk, cut.name, cut.lun);
  const made = await disk.engine.cutSnapshot(cut.name, lun, cut.lsn);
  const info = snapshotInfo(disk.meta.name, made, lun);
  await recordSnapshotEvent(catalog, "snapshot-created", info, reason, details);
  return info;
}

/** An event for a snapshot made or deleted; a failure to record it is logged, never the operation's. */
async function recordSnapshotEvent(
  catalog: Catalog,
  type: "snapshot-created" | "snapshot-deleted",
  info: SnapshotInfo,
  reason: string,
  details?: EventDetails,
): Promise<void> {
  const verb = type === "snapshot-created" ? "created" : "deleted";
  const catchUp = details?.catchUp === true ? ", a catch-up for a slot missed" : "";
  await catalog.events
    .record({
      type,
      disk: info.disk,
      snapshot: info.name,
      lun: info.lun ?? undefined,
      lsn: info.lsn,
      reason,
      message: `snapshot ${info.name} of disk ${info.disk} ${verb} (${reason}${catchUp}), ${info.lun === null ? "no LUN" : `LUN ${info.lun}`}, LSN ${info.lsn}`,
      details,
    })
    .catch((error: unknown) =>
      catalog.logger?.error(`event log: could not record an event: ${error instanceof Error ? error.message : String(error)}`),
    );
}

/** INVALID_ARGUMENT for a name no snapshot may have, ALREADY_EXISTS for one the disk has. */
export function checkSnapshotNameFree(disk: OpenDisk, name: string): void {
  if (disk.engine.findSnapshot(name) !== undefined) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${disk.meta.name} already has a snapshot named ${name}`, {
      disk: disk.meta.name,
    });
  }
}

/** `prefix-YYYYMMDDTHHMMSSZ` (UTC), with `-2`, `-3`... when the disk has that name already. */
export function defaultSnapshotName(disk: OpenDisk, prefix = "snap", nowMs = Date.now()): string {
  const stamped = stampedName(prefix, nowMs);
  let name = stamped;
  for (let suffix = 2; disk.engine.findSnapshot(name) !== undefined; suffix++) name = `${stamped}-${suffix}`;
  return name;
}

/**
 * Deletes a snapshot. Its volumes stop before the engine removes it (CLOSED from then on),
 * so no host reads it while its partition is merged away; if the delete then fails, hosts
 * attach it again.
 */
export function deleteSnapshot(catalog: Catalog, diskName: string, name: string): Promise<DeleteSnapshotResult> {
  return catalog.control.run(() => deleteSnapshotNow(catalog, catalog.disk(diskName), name, "manual"));
}

/** The delete itself, inside control; `reason` goes to the event log (manual, retention, space, ...). */
export async function deleteSnapshotNow(catalog: Catalog, disk: OpenDisk, name: string, reason: string): Promise<DeleteSnapshotResult> {
  const life = disk.snapshotLives.get(name);
  if (life !== undefined) {
    life.end(new SnaplogError(ErrorCodes.CLOSED, `snapshot ${name} of disk ${disk.meta.name} was deleted`, { disk: disk.meta.name }));
    disk.snapshotLives.delete(name);
  }
  // --merge-oldest-into-baseline: the oldest snapshot is folded into the baseline first (merge-oldest.ts).
  const fold = await mergeIfOldest(catalog, disk, name, reason);
  const held = heldOf(catalog, disk, name);
  const result = await disk.engine.deleteSnapshot(name, { free: settingsOf(disk.meta).compactOnDelete });
  await releaseSnapshotLun(catalog, disk, result.cut, held);
  const info = snapshotInfo(disk.meta.name, result.cut, held);
  await recordSnapshotEvent(catalog, "snapshot-deleted", info, reason);
  return {
    ...info,
    entriesFreed: result.entriesFreed + (fold?.entriesFreed ?? 0),
    bytesFreed: result.bytesFreed + (fold?.bytesFreed ?? 0),
  };
}

/** The LUN a snapshot holds before its delete releases it (null: none, or no such snapshot: the engine says which). */
function heldOf(catalog: Catalog, disk: OpenDisk, name: string): number | null {
  const cut = disk.engine.findSnapshot(name);
  return cut === undefined ? null : heldLun(catalog.storeFile, disk.meta.name, cut);
}
