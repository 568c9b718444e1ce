/**
 * The control-plane operations of a store, as plain JSON-able data. The Store implements
 * them in-process; the API server exposes them over HTTP; the CLI calls either the running
 * server (ApiClient) or an opened Store, through this one interface.
 * Errors are SnaplogError (mapped to HTTP status in api/, to exit codes in cli/).
 */
export interface SnapshotInfo {
  disk: string;
  name: string;
  lun: number;
  /** The cut: the snapshot sees every entry with LSN <= lsn. */
  lsn: number;
  /** ISO 8601. */
  createdAt: string;
}

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

export interface DiskDetail extends DiskInfo {
  snapshots: SnapshotInfo[];
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

export interface CreateSnapshotRequest {
  disk: string;
  /** Default: a name from the time, e.g. "snap-20261125T100000Z". */
  name?: string;
  /** Explicit LUN; default: the next unused one. */
  lun?: number;
}

export interface StoreStatus {
  path: string;
  version: string;
  /** PID of the process that owns the store. */
  pid: number;
  /** "server" when answered by a running server, "direct" when the CLI opened the store. */
  mode: "server" | "direct";
  uptimeSeconds: number;
  diskCount: number;
  snapshotCount: number;
  /** Bytes used by the store's files. */
  usedBytes: number;
  /** Free bytes on the file system holding the store. */
  freeBytes: number;
  /** Counters since the process started. */
  checksumErrors: number;
  /** Listening NBD endpoints, if serving. */
  nbd: string[];
  disks: DiskInfo[];
}

export interface Operations {
  listDisks(): Promise<DiskInfo[]>;
  showDisk(name: string): Promise<DiskDetail>;
  createDisk(request: CreateDiskRequest): Promise<DiskInfo>;
  deleteDisk(name: string): Promise<void>;
  createSnapshot(request: CreateSnapshotRequest): Promise<SnapshotInfo>;
  listSnapshots(disk: string): Promise<SnapshotInfo[]>;
  status(): Promise<StoreStatus>;
}
