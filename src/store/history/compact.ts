/**
 * Compaction asked for by a user (`snaplog compact`): in place (freed slots go to the free
 * list) or into the baseline (the oldest visible versions folded into the image), each engine
 * result mapped to the one CompactResult the API and the CLI show.
 */
import type { CompactionResult, FoldResult } from "../../engine/index.js";
import type { Catalog } from "../catalog.js";
import { checkCompactRequest, type CompactRequest, type CompactResult, type ProgressCallback } from "../operations/index.js";

export async function compact(catalog: Catalog, request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult> {
  checkCompactRequest(request);
  const disk = catalog.disk(request.disk);
  const name = disk.meta.name;
  if (request.intoBaseline === true) return foldResult(name, await disk.engine.foldIntoBaseline({ onProgress }));
  // Asked for by a user: every wholly free segment goes back (background passes keep spares).
  return inPlaceResult(name, await disk.engine.compact({ snapshot: request.snapshot, onProgress, spareSegmentCount: 0 }));
}

function foldResult(disk: string, fold: FoldResult): CompactResult {
  return {
    disk,
    mode: "into-baseline",
    entriesFreed: fold.entriesFreed,
    bytesFreed: fold.bytesFreed,
    bytesMoved: fold.bytesMoved,
    entriesScanned: 0,
    bytesScanned: 0,
    segmentsReleased: 0,
    lsnFold: fold.lsnFold,
    scanMs: 0,
    durationMs: fold.durationMs,
    corruptBlocks: [...fold.corruptLbas].sort((a, b) => a - b),
  };
}

function inPlaceResult(disk: string, result: CompactionResult): CompactResult {
  return {
    disk,
    mode: "in-place",
    entriesFreed: result.entriesFreed,
    bytesFreed: result.bytesFreed,
    bytesMoved: result.bytesMoved,
    entriesScanned: result.entriesScanned,
    bytesScanned: result.bytesScanned,
    segmentsReleased: result.segmentsReleased,
    lsnFold: 0,
    scanMs: result.scanMs,
    durationMs: result.durationMs,
    corruptBlocks: [],
  };
}
