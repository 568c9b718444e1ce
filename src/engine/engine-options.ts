import { ErrorCodes, SnaplogError } from "../util/errors.js";
import type { CrashHook } from "./crash-points.js";

export interface DiskGeometry {
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  /** Every-write history window at open; 0 lets overwritten versions go at once. See DiskEngine.setHistory. */
  historySeconds: number;
}

/** Blocks of a disk (its size is a whole number of blocks). */
export function blockCountOf(geometry: DiskGeometry): number {
  return geometry.sizeBytes / geometry.blockSizeBytes;
}

/** Throws OUT_OF_RANGE unless [lbaFirst, +blockCount) are whole block numbers inside the disk; `what` names the operation. */
export function checkBlockRange(geometry: DiskGeometry, lbaFirst: number, blockCount: number, what: string): void {
  const blockCountDisk = blockCountOf(geometry);
  if (
    !Number.isInteger(lbaFirst) ||
    !Number.isInteger(blockCount) ||
    lbaFirst < 0 ||
    blockCount < 0 ||
    lbaFirst + blockCount > blockCountDisk
  ) {
    throw new SnaplogError(
      ErrorCodes.OUT_OF_RANGE,
      `${what} of blocks [${lbaFirst}, +${blockCount}) is outside disk ${geometry.name} (${blockCountDisk} blocks)`,
      { disk: geometry.name },
    );
  }
}

export interface DiskEngineTuning {
  /** Rotate the journal and checkpoint past this size (tests make it small). */
  journalCheckpointBytes?: number;
  /** Data segment size; part of the format, so only tests that always pass the same value may set it. */
  segmentSizeBytes?: number;
  /** Journal bytes kept written past the appends for space-freeing records on a full file system (default 64 KiB). */
  journalReserveBytes?: number;
  /** Wholly free segment files kept for reuse when compaction hands space back (default 2). */
  spareSegmentCount?: number;
  /** Wall clock for entry times and the history window (ms since the epoch); tests move it by hand. */
  clock?: () => number;
  /** Off: no timer-driven background sync (a deterministic simulation drives time itself). Default on. */
  backgroundSyncTimer?: boolean;
  /** Called at each durability step (crash-points.ts); a simulator cuts the power there. */
  crashHook?: CrashHook;
  /**
   * Test-only: break one durability rule on purpose, so tests can show the power-loss
   * simulator catches it. Never set outside tests.
   */
  sabotage?: Sabotage;
}

/** The rules a sabotage can break (test/sim.test.ts shows the simulator catches each). */
export type Sabotage =
  /** Write a sync batch's journal record without first syncing its data. */
  | "skip-data-sync"
  /** Apply journal records at open without checking their CRC32C. */
  | "trust-record-without-crc"
  /** Reuse freed slots at once, before the entry that made them dead is durable. */
  | "reuse-slots-early"
  /** Do not check the data of records past the last sync point at open. */
  | "skip-tail-data-check";

export interface DiskEngineEvents {
  /** A stored block failed its checksum (answered with EIO). */
  onChecksumError?(info: { disk: string; lba: number; lsn: number }): void;
  /** Something went wrong in the background (a checkpoint write, a background sync). */
  onBackgroundError?(error: SnaplogError): void;
  /** A write took a new segment file: the store's file system has less room (space checks follow). */
  onSegmentCreated?(info: { disk: string; segment: number }): void;
  /** The history cap (setHistoryMax) may be passed: run capHistory soon. Told once until it runs. */
  onHistoryCapDue?(info: { disk: string }): void;
}
