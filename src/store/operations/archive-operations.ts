import type { StreamSink } from "../../stream/index.js";
import type { ExportRequest, ExportResult } from "../archive/export-stream.js";
import type { ImportRequest, ImportResult } from "../archive/import-stream.js";
import type { ProgressCallback } from "./progress.js";

export type { ExportRequest, ExportResult } from "../archive/export-stream.js";
export type { ImportRequest, ImportResult } from "../archive/import-stream.js";

/** Archive streams (SPEC §5.1, §5.2): a volume out as a stream, a stream in as a disk or onto one. */
export interface ArchiveOperations {
  /** Writes the stream to `sink` (awaited: backpressure); the counts, the LSNs pinned and the SHA-256. */
  exportStream(request: ExportRequest, sink: StreamSink, onProgress?: ProgressCallback): Promise<ExportResult>;
  /** Applies a stream, all or nothing (nothing changes until its trailer is verified). */
  importStream(request: ImportRequest, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<ImportResult>;
}
