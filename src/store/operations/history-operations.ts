/**
 * A disk's history (SPEC §3.2, docs/history.md): compaction, restore and rollback to a point
 * in time, the log read back, and the blocks that differ between two volumes.
 *
 * The request checks at the bottom (checkRestoreRequest, checkCompactRequest) are the one
 * place a request's fields are checked against each other: the Store calls them, and the
 * CLI calls them too, to refuse a bad command before it opens the store or calls the server.
 */
import * as path from "node:path";
import { invalidArgument } from "../../util/errors.js";
import type { ProgressCallback } from "./progress.js";
import type { SnapshotInfo } from "./snapshot-operations.js";

/**
 * A point in time, or a volume, as text: `lsn:N`, an ISO 8601 time, and for volumes also
 * `current`, `baseline` or a snapshot name (the grammar: point-spec.ts, parsePoint).
 */
export type PointSpec = string;

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

export interface HistoryOperations {
  compact(request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult>;
  restore(request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult>;
  /** The log in time order, streamed. */
  readLog(request: LogRequest): AsyncIterable<LogEntry>;
  /** The blocks that differ between two volumes, in block order, streamed. */
  diff(request: DiffRequest): AsyncIterable<DiffRun>;
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
