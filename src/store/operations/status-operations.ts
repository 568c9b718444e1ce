/**
 * The store's health and space (`snaplog status`). What the process serves (its listeners)
 * is not the store's to know: the layer that runs them adds it (api/appliance-status.ts).
 */
import type { RelationInfo } from "./replication-operations.js";
import type { MirrorStatus } from "./mirror-operations.js";
import type { DiskInfo } from "./disk-operations.js";

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
  disks: DiskInfo[];
  /** Replication relations of this store's disks (the sending side). */
  replication: RelationInfo[];
  /** The mirror legs of this store's disks (SPEC §6). */
  mirrors: MirrorStatus[];
}

export interface StatusOperations {
  status(): Promise<StoreStatus>;
}
