/**
 * The control-plane operations of a store, as plain JSON-able data. The Store implements
 * them in-process; the API server exposes them over HTTP; the CLI calls either the running
 * server (ApiClient) or an opened Store, through this one interface.
 * Errors are SnaplogError (mapped to HTTP status in api/, to exit codes in cli/).
 *
 * The request checks at the bottom (checkRestoreRequest, checkCompactRequest) are the one
 * place a request's fields are checked against each other: the Store calls them, and the
 * CLI calls them too, to refuse a bad command before it opens the store or calls the server.
 */
import * as path from "node:path";
import { invalidArgument } from "../util/errors.js";

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

/** Per-disk rules (SPEC §4); the ones built so far. */
export interface DiskPolicy {
  /** Every-write history window, seconds. */
  historySeconds: number;
  /** Compact in the background when the disk is idle or the store's space is short. */
  autoCompact: boolean;
  /** Free a deleted snapshot's partition at once. */
  compactOnDelete: boolean;
}

export interface DiskDetail extends DiskInfo {
  snapshots: SnapshotInfo[];
  space: DiskSpace;
  policy: DiskPolicy;
}

export interface PolicyUpdate {
  disk: string;
  historySeconds?: number;
  autoCompact?: boolean;
  compactOnDelete?: boolean;
}

export interface DeleteSnapshotResult extends SnapshotInfo {
  /** Entries and log bytes the merge freed (0 with compact-on-delete off). */
  entriesFreed: number;
  bytesFreed: number;
}

export interface CompactRequest {
  disk: string;
  /** Only this snapshot's partition. */
  snapshot?: string;
  /** Fold the oldest versions into the baseline instead of freeing in place. */
  intoBaseline?: boolean;
}

export interface CompactResult {
  disk: string;
  mode: "in-place" | "into-baseline";
  entriesFreed: number;
  bytesFreed: number;
  /** Data bytes copied: 0 in place; the folded blocks into the baseline. */
  bytesMoved: number;
  /** In place: entries looked at and the log bytes they stand for. */
  entriesScanned: number;
  bytesScanned: number;
  segmentsReleased: number;
  /** Into the baseline: the LSN whose view the baseline now holds (0: nothing to fold). */
  lsnFold: number;
  /** In place: the scan alone (bytesScanned / scanMs is the scan rate); 0 into the baseline. */
  scanMs: number;
  durationMs: number;
  /**
   * Into the baseline: blocks whose data failed its checksum, so the fold left them in the log
   * (the baseline volume answers EIO there; `scrub` lists them). Ascending; empty in place.
   */
  corruptBlocks: number[];
}

/**
 * A point in time, or a volume, as text: `lsn:N`, an ISO 8601 time, and for volumes also
 * `current`, `baseline` or a snapshot name (the grammar: point-spec.ts, parsePoint).
 */
export type PointSpec = string;

export interface RestoreRequest {
  disk: string;
  /** `lsn:N` or an ISO 8601 time (a snapshot name also works: its cut). */
  at: PointSpec;
  /** Materialize as a raw image at this absolute path (neither it nor `<to>.partial` may exist). */
  to?: string;
  /** Name that point as a new snapshot (O(1)). */
  asSnapshot?: string;
  /** Roll the current volume back to that point. */
  rollback?: boolean;
  /** With rollback: name of the snapshot that keeps the state before (default before-rollback-<time>). */
  name?: string;
  /** LUN of the new snapshot (as-snapshot or the state before a rollback). */
  lun?: number;
}

export interface RestoreResult {
  disk: string;
  mode: "file" | "snapshot" | "rollback";
  /** The point restored. */
  lsn: number;
  time: string | null;
  file?: { path: string; sizeBytes: number; bytesWritten: number };
  snapshot?: SnapshotInfo;
  /** Rollback: the snapshot holding the state before, and the blocks that changed. */
  before?: SnapshotInfo;
  blocksRestored?: number;
}

export interface LogRequest {
  disk: string;
  since?: PointSpec;
  until?: PointSpec;
  /** Only this snapshot's partition (and its cut). */
  snapshot?: string;
  /** Include each entry's data (base64). */
  data?: boolean;
}

/** One row of `snaplog log`: a run of entries, or a snapshot cut. */
export interface LogEntry {
  kind: "write" | "zero" | "trim" | "snapshot";
  lsnFirst: number;
  lsnLast: number;
  time: string;
  block: number;
  blockCount: number;
  offsetBytes: number;
  lengthBytes: number;
  snapshot?: { name: string; lun: number };
  /** Base64 of the entries' bytes (with data; absent if compaction freed them meanwhile). */
  data?: string;
}

export interface DiffRequest {
  disk: string;
  from: PointSpec;
  to: PointSpec;
}

export interface DiffRun {
  block: number;
  blockCount: number;
  offsetBytes: number;
  lengthBytes: number;
}

export interface ScrubRequest {
  /** Only this disk; default every disk of the store. */
  disk?: string;
}

/** A live log entry whose data failed its CRC32C or could not be read. */
export interface ScrubDamage {
  block: number;
  lsn: number;
  /** Where the block lies in the disk: block × block size. */
  offsetBytes: number;
  /** The segment file holding the entry's data, relative to the store directory. */
  file: string;
  /** Where the data lies inside that file. */
  fileOffsetBytes: number;
  /** "checksum mismatch", or "unreadable: ..." with the medium's error. */
  reason: string;
}

export interface ScrubDiskResult {
  disk: string;
  /** Live entries whose data was read and checked, and their bytes. */
  entriesChecked: number;
  bytesChecked: number;
  corrupt: ScrubDamage[];
  /**
   * Baseline blocks a fold could not write because their data was damaged: the baseline
   * volume answers EIO there. Ascending.
   */
  baselineUnknownBlocks: number[];
  /** Why the disk could not be checked: it failed to open (absent when it was checked). */
  offlineReason?: string;
  /** Checked, and nothing damaged. */
  ok: boolean;
}

/**
 * What `snaplog scrub` found. Damage is a finding, not a failure of the scrub: the call
 * succeeds and `ok` is false.
 */
export interface ScrubResult {
  disks: ScrubDiskResult[];
  /** Every disk ok. */
  ok: boolean;
  durationMs: number;
}

/** Progress of long work: `done` of `total` (units of the operation's choosing). */
export type ProgressCallback = (done: number, total: number) => void;

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
  /** Releases the LUN and merges the partition into the next (freeing it with compact-on-delete). */
  deleteSnapshot(disk: string, name: string): Promise<DeleteSnapshotResult>;
  showPolicy(disk: string): Promise<DiskPolicy>;
  setPolicy(update: PolicyUpdate): Promise<DiskPolicy>;
  compact(request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult>;
  restore(request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult>;
  /**
   * Reads every live log entry of the disk (default: every disk) and checks its CRC32C;
   * reports the damage per disk and repairs nothing. Disks that failed to open are in the
   * result, not ok, with their reason. NOT_FOUND for an unknown disk; CLOSED when the store
   * closes (or the disk is deleted) before the scrub is done. Progress is in index pages
   * (INDEX_PAGE_BLOCKS blocks each) of all the disks scrubbed.
   */
  scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult>;
  /** The log in time order, streamed. */
  readLog(request: LogRequest): AsyncIterable<LogEntry>;
  /** The blocks that differ between two volumes, in block order, streamed. */
  diff(request: DiffRequest): AsyncIterable<DiffRun>;
  status(): Promise<StoreStatus>;
}

/**
 * Checks a restore request's fields against each other (not against the disk): exactly one
 * target, `name` only with a rollback, `lun` only where a snapshot is made, an absolute `to`.
 * INVALID_ARGUMENT otherwise. Messages name each field by its CLI option, then its API field.
 */
export function checkRestoreRequest(request: RestoreRequest): void {
  const targets = [request.to !== undefined, request.asSnapshot !== undefined, request.rollback === true].filter(Boolean).length;
  if (targets !== 1)
    throw invalidArgument("restore needs exactly one of --to FILE, --as-snapshot NAME, --rollback (API: to, asSnapshot, rollback)");
  if (request.name !== undefined && request.rollback !== true)
    throw invalidArgument("--name (API: name) is the snapshot a rollback keeps of the state before; it goes only with --rollback");
  if (request.lun !== undefined && request.to !== undefined)
    throw invalidArgument("--lun (API: lun) is the LUN of a new snapshot; a restore --to a file makes none");
  // The server writes the file: a relative path would depend on its working directory.
  if (request.to !== undefined && !path.isAbsolute(request.to))
    throw invalidArgument(`--to (API: to) ${request.to} must be an absolute path`);
}

/** Checks a compact request's fields against each other: INVALID_ARGUMENT for a snapshot with into-baseline. */
export function checkCompactRequest(request: CompactRequest): void {
  if (request.snapshot !== undefined && request.intoBaseline === true) {
    throw invalidArgument("--into-baseline (API: intoBaseline) folds the oldest kept view into the baseline; it takes no --snapshot");
  }
}
