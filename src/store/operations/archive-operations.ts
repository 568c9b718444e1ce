import type { CodecName, StreamPoint, StreamSink } from "../../stream/index.js";
import type { ProgressCallback } from "./progress.js";

export interface ExportRequest {
  disk: string;
  /** The volume exported (default: the current volume, pinned at the start). */
  to?: string;
  /** A snapshot the receiver has: the stream is incremental from it. */
  from?: string;
  /** Incremental from this LSN instead (replication: the replica's acknowledged point; the caller keeps it pinned). */
  fromLsn?: number;
  /** False: `to` is no snapshot the receiver should cut (replication batches). */
  cutTo?: boolean;
  compact?: boolean;
  order?: "time" | "block";
  codec?: CodecName;
  frameDataBytes?: number;
  /** A fixed stream id and creation time (an archive regenerating a stream it started); default new ones. */
  streamId?: string;
  createdMs?: number;
}

export interface ExportResult {
  disk: string;
  streamId: string;
  kind: "full" | "incremental";
  compacted: boolean;
  order: "time" | "block";
  codec: CodecName;
  from: StreamPoint | null;
  to: StreamPoint;
  /** The LSN range pinned: (lsnFirst - 1, lsnLast]. */
  lsnFirst: number;
  lsnLast: number;
  frameCount: number;
  runCount: number;
  blockCount: number;
  cutCount: number;
  /** The source's snapshots the stream carries (CUT frames), in order. */
  cuts: StreamPoint[];
  bytes: number;
  sha256: string;
}

export interface ImportRequest {
  disk: string;
  /** Apply onto a disk written since the stream's `from` (the state replaced is kept as a snapshot first). */
  force?: boolean;
  /** Stop at this time (non-compacted streams): the disk ends at that point, `to` is not cut. */
  untilMs?: number;
}

export interface ImportResult {
  disk: string;
  created: boolean;
  streamId: string;
  kind: "full" | "incremental";
  compacted: boolean;
  from: string | null;
  to: string | null;
  snapshots: string[];
  blockCount: number;
  bytes: number;
  /** With --force on a written disk: the snapshot that keeps what was replaced. */
  beforeImport: string | null;
}

/** Archive streams (SPEC §5.1, §5.2): a volume out as a stream, a stream in as a disk or onto one. */
export interface ArchiveOperations {
  /** Writes the stream to `sink` (awaited: backpressure); the counts, the LSNs pinned and the SHA-256. */
  exportStream(request: ExportRequest, sink: StreamSink, onProgress?: ProgressCallback): Promise<ExportResult>;
  /** Applies a stream, all or nothing (nothing changes until its trailer is verified). */
  importStream(request: ImportRequest, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<ImportResult>;
}
