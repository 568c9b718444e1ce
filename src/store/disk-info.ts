/** What `disk list`, `disk show` and `snapshot list` answer: an open disk described as plain data. */
import type { MaintenanceCounters, SnapshotCut } from "../engine/index.js";
import { policyOf } from "./disk-policy.js";
import { isScheduledName } from "./policy/scheduled-name.js";
import { heldLun } from "./luns.js";
import type { OpenDisk } from "./open-disk.js";
import type { DiskDetail, DiskInfo, DiskSpace, SnapshotInfo } from "./operations/index.js";
import type { StoreFile } from "./store-file.js";

/** Per open disk, counted since it was opened: checksum failures seen by reads, and what compaction and folds did (metrics). */
export interface DiskCounters extends MaintenanceCounters {
  disk: string;
  checksumErrors: number;
}

export function diskCounters(disk: OpenDisk): DiskCounters {
  return { disk: disk.meta.name, checksumErrors: disk.engine.checksumErrorCount, ...disk.engine.maintenanceCounters };
}

export function diskInfo(disk: OpenDisk): DiskInfo {
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

/** `nowMs`: the store's clock (the policy's next scheduled run is from it); `storeFile` says which snapshots lost their LUN to a newer one (luns.ts). */
export async function diskDetail(disk: OpenDisk, nowMs: number, storeFile: StoreFile): Promise<DiskDetail> {
  return { ...diskInfo(disk), snapshots: snapshotInfos(disk, storeFile), space: await diskSpace(disk), policy: policyOf(disk, nowMs) };
}

async function diskSpace(disk: OpenDisk): Promise<DiskSpace> {
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

export function snapshotInfos(disk: OpenDisk, storeFile: StoreFile): SnapshotInfo[] {
  const name = disk.meta.name;
  return disk.engine.snapshots.map((cut) => snapshotInfo(name, cut, heldLun(storeFile, name, cut)));
}

/** `lun`: the LUN the snapshot holds now (null: a newer snapshot took the one it was created with). */
export function snapshotInfo(disk: string, cut: Pick<SnapshotCut, "name" | "lsn" | "timeMs">, lun: number | null): SnapshotInfo {
  return { disk, name: cut.name, lun, lsn: cut.lsn, createdAt: new Date(cut.timeMs).toISOString(), scheduled: isScheduledName(cut.name) };
}

function isoOrNull(timeMs: number): string | null {
  return timeMs === 0 ? null : new Date(timeMs).toISOString();
}
