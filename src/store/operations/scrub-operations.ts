/** The integrity check (`snaplog scrub`): every stored block's CRC32C, reported per disk. */
import type { ProgressCallback } from "./progress.js";

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
   * Damaged entries that held the current volume's data, written again into the log from the
   * disk's in-sync mirror by this scrub (docs/mirror.md). The damaged versions stay in the log
   * for the points in time before the repair (a later scrub lists them as corrupt while they last).
   */
  repaired: ScrubDamage[];
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

export interface ScrubOperations {
  /**
   * Reads every live log entry of the disk (default: every disk) and checks its CRC32C;
   * reports the damage per disk; damage in the current volume of a disk with an in-sync mirror
   * is repaired from the mirror (and reported as repaired). Disks that failed to open are in the
   * result, not ok, with their reason. NOT_FOUND for an unknown disk; CLOSED when the store
   * closes (or the disk is deleted) before the scrub is done. Progress is in index pages
   * (INDEX_PAGE_BLOCKS blocks each) of all the disks scrubbed.
   */
  scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult>;
}
