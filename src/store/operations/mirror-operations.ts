/** A disk's mirror leg (SPEC §6, docs/mirror.md): its state, and a resync of what differs. */
import type { ProgressCallback } from "./progress.js";

export type MirrorState = "syncing" | "in-sync" | "degraded";

export interface MirrorStatus {
  disk: string;
  /** The mirror file or block device. */
  path: string;
  state: MirrorState;
  /** Why the leg is degraded (absent otherwise). */
  reason?: string;
  /** Bytes written to the mirror by the last or running sync. */
  bytesCopied: number;
  /** Log blocks that failed their checksum, served from this mirror and written again, since the disk opened. */
  blocksRepaired: number;
  /** Bytes in regions of the write-intent bitmap that are set: at most this much differs. */
  dirtyBytes: number;
  /** The bitmap's region size. */
  regionBytes: number;
}

export interface MirrorResyncResult {
  disk: string;
  path: string;
  state: MirrorState;
  bytesCopied: number;
  /** Dirty regions read from both legs (written only where they differed). */
  regionsChecked: number;
}

export interface MirrorOperations {
  mirrorStatus(disk: string): Promise<MirrorStatus>;
  /** Copies the dirty regions from the log to the mirror; progress in regions. */
  resyncMirror(disk: string, onProgress?: ProgressCallback): Promise<MirrorResyncResult>;
}
