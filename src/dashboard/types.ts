/**
 * The API's answers the dashboard reads, as the OpenAPI document (/v1/openapi.json) describes
 * them (src/api/schemas.ts); only the fields the page shows. Browser code cannot import the
 * server's modules, so these are written out here; test/dashboard-types.test.ts makes the
 * build fail when the server's answer types stop fitting them.
 */
export interface SnapshotInfo {
  disk: string;
  name: string;
  lun: number | null;
  lsn: number;
  createdAt: string;
  scheduled: boolean;
}

export interface DiskInfo {
  name: string;
  sizeBytes: number;
  blockSizeBytes: number;
  lun: number;
  historySeconds: number;
  createdAt: string;
  hasBaseline: boolean;
  entryCount: number;
  logBytes: number;
  segmentBytes: number;
  journalBytes: number;
  lsnLast: number;
  snapshotCount: number;
}

export interface DiskSpace {
  baselineBytes: number;
  logLiveBytes: number;
  logDeadBytes: number;
  logFreeBytes: number;
  segmentBytes: number;
  liveEntries: number;
  deadEntries: number;
  window: { lsnFirst: number; timeFirst: string | null; lsnLast: number };
}

export type SpaceAction = "compact" | "delete-oldest" | "archive-then-delete";
export type LunPolicy = "sequential" | "pool" | "constant" | "explicit";

export interface PolicySettings {
  historySeconds: number;
  historyMaxBytes: number | null;
  mergeOldestIntoBaseline: boolean;
  snapshotEverySeconds: number | null;
  snapshotCron: string | null;
  timezone: string;
  keepLast: number;
  keepHourly: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  spaceHighPercent: number | null;
  spaceAction: SpaceAction | null;
  spaceVault: string | null;
  replicationLagHighSeconds: number | null;
  hooks: Array<{ event: string; action: string }>;
  lunPolicy: LunPolicy;
  lun: number | null;
  mirror: string | null;
}

export interface DiskPolicy extends PolicySettings {
  nextScheduledRun: string | null;
  retentionWouldDelete: string[];
}

export interface DiskDetail extends DiskInfo {
  snapshots: SnapshotInfo[];
  space: DiskSpace;
  policy: DiskPolicy;
}

export interface MirrorStatus {
  disk: string;
  path: string;
  state: "syncing" | "in-sync" | "degraded";
  reason?: string;
  bytesCopied: number;
  blocksRepaired: number;
  dirtyBytes: number;
}

export interface Relation {
  disk: string;
  to: string;
  mode: "continuous" | "compacted";
  state: "connected" | "retrying" | "ended" | "starting";
  reason: string | null;
  ackedLsn: number | null;
  lastAckAt: string | null;
  lagSeconds: number;
  lagBytes: number;
  bytesShipped: number;
}

export interface ApplianceStatus {
  path: string;
  version: string;
  mode: "server" | "direct";
  uptimeSeconds: number;
  diskCount: number;
  snapshotCount: number;
  usedBytes: number;
  freeBytes: number;
  checksumErrors: number;
  nbd: string[];
  disks: DiskInfo[];
  replication: Relation[];
  mirrors: MirrorStatus[];
}

export interface StoreEvent {
  seq: number;
  time: string;
  type: string;
  disk?: string;
  snapshot?: string;
  message: string;
}

export interface VaultInfo {
  name: string;
  url: string;
  kind: "directory" | "s3" | "appliance";
  addedAt: string;
}

export interface VaultChain {
  disk: string;
  chainId: string;
  items: Array<{
    index: number;
    snapshot: string;
    lsn: number;
    time: string;
    kind: "full" | "incremental";
    compacted: boolean;
    bytes: number;
    complete: boolean;
  }>;
}

export interface DiskSample {
  writeBytesPerSecond: number;
  readBytesPerSecond: number;
  liveBytes: number;
  segmentBytes: number;
}

export interface SeriesSample {
  t: number;
  disks: Record<string, DiskSample>;
}
