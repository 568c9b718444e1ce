/** disk.json: what a disk is (name, size, block size, LUN) and its policy, kept in the disk's directory. */
import type { Medium } from "../engine/index.js";
import { readJsonOn, writeJsonOn } from "./medium-json.js";
import type { PolicySettings } from "./operations/index.js";
import { DISK_FILE } from "./paths.js";

export interface DiskFile {
  formatVersion: number;
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  lun: number;
  historySeconds: number;
  createdAt: string;
  /**
   * The disk's id (archive/identity.ts): random at create; an import's disk takes its source's,
   * so the snapshots it carries keep their ids. Absent in disks made before archives: derived.
   */
  id?: string;
  /**
   * Set on a replica (SPEC §5.4): whose disk it copies and the source LSN it holds. Read-only
   * until promoted (promotedAt).
   */
  replica?: {
    sourceStoreId: string;
    sourceDiskId: string;
    sourceDiskName: string;
    ackedLsn: number;
    ackedTimeMs: number;
    promotedAt?: string;
    /**
     * A batch being applied: its end, and the replica's own LSN before it. Written before the
     * batch is applied, so a batch applied but not acknowledged (disk.json could not be written
     * after it: a full file system, a crash) is recognised and acknowledged at the next contact.
     */
    pending?: { toLsn: number; toTimeMs: number; localLsnBefore: number; cut?: string };
  };
  /** Policies (absent in disks made before they existed: defaults apply, disk-policy.ts). */
  autoCompact?: boolean;
  compactOnDelete?: boolean;
  /** The other policy settings (SPEC §4), each absent until first set. */
  policy?: Partial<Omit<PolicySettings, "historySeconds" | "autoCompact" | "compactOnDelete">>;
  /** The scheduler's memory: when the schedule was set (no slot before is owed), the last slot it ran. */
  scheduleState?: { setAtMs: number; lastSlotMs: number };
}

/** `directory` names the file in errors. */
export function readDiskFile(medium: Medium, directory: string): Promise<DiskFile> {
  return readJsonOn<DiskFile>(medium, DISK_FILE, `${directory}/${DISK_FILE}`);
}

export function writeDiskFile(medium: Medium, meta: DiskFile): Promise<void> {
  return writeJsonOn(medium, DISK_FILE, meta);
}
