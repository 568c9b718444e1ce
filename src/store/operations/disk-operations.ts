/** Disks: created, listed, shown with their space and history window, deleted (SPEC §3.2). */
import type { DiskPolicy } from "./policy-operations.js";
import type { SnapshotInfo } from "./snapshot-operations.js";

export interface DiskInfo {
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  /** LUN of the current (read-write) volume. */
  lun: number;
  /** Every-write history window, seconds. */
  historySeconds: number;
  createdAt: string;
  /** Whether the disk has a baseline image (from --from). */
  hasBaseline: boolean;
  /** Live log entries. */
  entryCount: number;
  /** Bytes held by data slots of live entries. */
  logBytes: number;
  /** Bytes of the data segment files on the medium. */
  segmentBytes: number;
  /** Bytes of the metadata journal. */
  journalBytes: number;
  /** Newest LSN assigned (0 when nothing was written). */
  lsnLast: number;
  snapshotCount: number;
}

/**
 * Where a disk's bytes are, and how far back its history reaches (`disk show`). The disk's
 * size, journal bytes and window length are in DiskInfo; they are not repeated here.
 */
export interface DiskSpace {
  /** Size of the baseline image (0 without one). */
  baselineBytes: number;
  /** Log data some kept view needs. */
  logLiveBytes: number;
  /** Log data no kept view needs: what compaction would free now. */
  logDeadBytes: number;
  /** Free slots inside existing segment files (reused by later writes). */
  logFreeBytes: number;
  /**
   * Bytes of the segment files as the medium reports them (a file's unwritten tail is not
   * counted); DiskInfo.segmentBytes counts whole files, without asking the medium.
   */
  segmentBytes: number;
  liveEntries: number;
  deadEntries: number;
  window: HistoryWindowInfo;
}

/** The points in time that can be attached now (the window's length is DiskInfo.historySeconds). */
export interface HistoryWindowInfo {
  /** Oldest point in time that can be attached (LSN, ISO time or null when before every write). */
  lsnFirst: number;
  timeFirst: string | null;
  lsnLast: number;
}

export interface DiskDetail extends DiskInfo {
  snapshots: SnapshotInfo[];
  space: DiskSpace;
  policy: DiskPolicy;
}

export interface CreateDiskRequest {
  name: string;
  sizeBytes: number;
  /** Optional block size; default the store's. */
  blockSizeBytes?: number;
  /** Path of a raw image that becomes the baseline. */
  fromImage?: string;
  historySeconds?: number;
}

export interface DiskOperations {
  listDisks(): Promise<DiskInfo[]>;
  showDisk(name: string): Promise<DiskDetail>;
  createDisk(request: CreateDiskRequest): Promise<DiskInfo>;
  /** Every volume of the disk stops (CLOSED), then its files go. */
  deleteDisk(name: string): Promise<void>;
}
