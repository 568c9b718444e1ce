/** Snapshots: cuts of a disk's log, each a read-only volume with its own LUN (SPEC §1, §3.2). */

export interface SnapshotInfo {
  disk: string;
  name: string;
  /**
   * The LUN the snapshot holds now; null when a newer snapshot took over the LUN it was created
   * with (constant LUN policy, SPEC §4.5): it keeps its name and is attached as DISK@NAME.
   */
  lun: number | null;
  /** The cut: the snapshot sees every entry with LSN <= lsn. */
  lsn: number;
  /** ISO 8601. */
  createdAt: string;
  /** Made by the disk's schedule (named auto-YYYYMMDDTHHMMSSZ): only these are retention's. */
  scheduled: boolean;
}

export interface CreateSnapshotRequest {
  disk: string;
  /** Default: a name from the time, e.g. "snap-20261125T100000Z". */
  name?: string;
  /** Explicit LUN (required by the explicit policy, only N under constant N); default: the disk's LUN policy. */
  lun?: number;
}

export interface DeleteSnapshotResult extends SnapshotInfo {
  /** Entries and log bytes the merge freed (0 with compact-on-delete off). */
  entriesFreed: number;
  bytesFreed: number;
}

export interface SnapshotOperations {
  createSnapshot(request: CreateSnapshotRequest): Promise<SnapshotInfo>;
  listSnapshots(disk: string): Promise<SnapshotInfo[]>;
  /** Releases the LUN and merges the partition into the next (freeing it with compact-on-delete). */
  deleteSnapshot(disk: string, name: string): Promise<DeleteSnapshotResult>;
}
