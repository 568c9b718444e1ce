/**
 * The engine's front door: everything outside src/engine (the store, the simulator, the
 * benchmarks) imports the engine from here and nowhere else (test/architecture.test.ts checks
 * it). The engine knows disks, LSNs, blocks and files; it never sees a socket or a protocol.
 *
 *   DiskEngine   one disk's log: open (recovery), the write and read paths, snapshots as cuts,
 *                history (delete, compaction, fold, rollback, points in time), inspections
 *   Medium       the files under it (DirectoryMedium on a real directory; tests simulate one)
 *   readLog      the log read back in time order
 *
 * Inside, the groups import one way (each folder's README.md says what it owns):
 * space ← tables ← log ← write ← history ← the facade here at the root (disk-engine.ts with
 * read-path.ts and inspections.ts); constants.ts, crash-points.ts, engine-options.ts and
 * medium.ts are the base every group may import (test/engine-groups.test.ts checks it).
 */
export { DiskEngine } from "./disk-engine.js";
export type { ImportRun, RollbackResult } from "./disk-engine.js";
export type { BlockRun } from "./read-path.js";
export type { ScrubReport, SpaceReport } from "./inspections.js";
export type { DiskEngineEvents, DiskEngineTuning, DiskGeometry, Sabotage } from "./engine-options.js";
export type { MaintenanceCounters } from "./disk-engine.js";
export { BASELINE_FILE } from "./history/baseline-fold.js";
export type { FoldResult } from "./history/baseline-fold.js";
export type { CompactionResult, ProgressCallback } from "./history/compaction.js";
export type { HistoryCapResult } from "./history/history-cap.js";
export type { HistoryWindow } from "./history/history-window.js";
export type { SnapshotCut } from "./tables/snapshot-cut.js";
export { BlockSource } from "./tables/disk-state.js";
export { DirectoryMedium } from "./medium.js";
export type { Medium, MediumFile } from "./medium.js";
export { CrashPoints } from "./crash-points.js";
export type { CrashHook, CrashPoint } from "./crash-points.js";
export { readLog, readLogRows } from "./log/log-reader.js";
export type { EntriesData, EntriesDataOptions, LogFiles, LogQuery, LogRow, LogSource } from "./log/log-reader.js";
export {
  BLOCK_SIZE_BYTES_DEFAULT,
  BLOCK_SIZE_BYTES_MAX,
  BLOCK_SIZE_BYTES_MIN,
  DISK_BLOCK_COUNT_MAX,
  FORMAT_VERSION,
  INDEX_PAGE_BLOCKS,
  JOURNAL_CHECKPOINT_BYTES,
  isValidBlockSize,
} from "./constants.js";
