/**
 * Per-disk rules (SPEC §4): shown whole (with the next scheduled run and what retention would
 * delete now), changed a few options at a time, refused whole when they cannot hold.
 */

/** Events an action can be attached to (SPEC §4.3). */
export const POLICY_EVENTS = [
  "snapshot-created",
  "snapshot-deleted",
  "space-high",
  "replication-lag",
  "mirror-degraded",
  "scrub-damage",
] as const;
export type PolicyEvent = (typeof POLICY_EVENTS)[number];

/** What the space policy does when the file system passes its mark (SPEC §4.2). */
export const SPACE_ACTIONS = ["compact", "delete-oldest", "archive-then-delete"] as const;
export type SpaceAction = (typeof SPACE_ACTIONS)[number];

/** How a disk's new snapshots get their LUN (SPEC §4.5). */
export const LUN_POLICIES = ["sequential", "pool", "constant", "explicit"] as const;
export type LunPolicy = (typeof LUN_POLICIES)[number];

/** An action run when an event happens: `compact`, `archive:VAULT`, `exec:COMMAND` or `webhook:URL`. */
export interface EventHook {
  event: PolicyEvent;
  action: string;
}

/** The options a user sets (persisted in disk.json). */
export interface PolicySettings {
  /** Every-write history window, seconds. */
  historySeconds: number;
  /** Cap on the log bytes held only for the window (null: no cap). */
  historyMaxBytes: number | null;
  /** Compact in the background when the disk is idle or the store's space is short. */
  autoCompact: boolean;
  /** Free a deleted snapshot's partition at once. */
  compactOnDelete: boolean;
  /** Deleting the oldest snapshot folds it into the baseline. */
  mergeOldestIntoBaseline: boolean;
  /** A scheduled snapshot every this many seconds (null: no such schedule). */
  snapshotEverySeconds: number | null;
  /** A scheduled snapshot at each time of this cron expression (null: no such schedule). */
  snapshotCron: string | null;
  /** The zone of the cron expression and of retention's hours, days, weeks and months. */
  timezone: string;
  /** Retention of scheduled snapshots; 0 turns a rule off; with every rule off, all are kept. */
  keepLast: number;
  keepHourly: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  /** Use of the store's file system (percent) past which the space action runs (null: off). */
  spaceHighPercent: number | null;
  spaceAction: SpaceAction | null;
  /** The vault of archive-then-delete. */
  spaceVault: string | null;
  /** Replication lag (seconds) past which `replication-lag` is recorded (null: never). */
  replicationLagHighSeconds: number | null;
  /** Actions attached to events. */
  hooks: EventHook[];
  lunPolicy: LunPolicy;
  /** The LUN every new snapshot takes (constant policy), else null. */
  lun: number | null;
  /** The mirror leg's file or block device, an absolute path (SPEC §6); null: no mirror. */
  mirror: string | null;
}

export interface DiskPolicy extends PolicySettings {
  /** When the next scheduled snapshot is due (ISO 8601), or null without a schedule. */
  nextScheduledRun: string | null;
  /** Scheduled snapshots retention would delete now, oldest first. */
  retentionWouldDelete: string[];
}

/** The options to change; the others stay as they are. null turns an option off. */
export interface PolicyUpdate {
  disk: string;
  historySeconds?: number;
  historyMaxBytes?: number | null;
  autoCompact?: boolean;
  compactOnDelete?: boolean;
  mergeOldestIntoBaseline?: boolean;
  snapshotEverySeconds?: number | null;
  snapshotCron?: string | null;
  timezone?: string;
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  spaceHighPercent?: number | null;
  spaceAction?: SpaceAction | null;
  spaceVault?: string | null;
  replicationLagHighSeconds?: number | null;
  /** `--on EVENT=ACTION`: attach (an action already attached stays once). */
  hooksAdd?: EventHook[];
  /** `--off EVENT[=ACTION]`: detach that action, or every action of the event. */
  hooksRemove?: { event: PolicyEvent; action?: string }[];
  lunPolicy?: LunPolicy;
  lun?: number | null;
  /** `--mirror PATH|off`. */
  mirror?: string | null;
}

export interface PruneRequest {
  disk: string;
  /** Say what would be deleted, delete nothing. */
  dryRun?: boolean;
}

export interface PruneResult {
  disk: string;
  dryRun: boolean;
  /** Scheduled snapshots deleted (or that would be), oldest first. */
  deleted: string[];
}

export interface PolicyOperations {
  showPolicy(disk: string): Promise<DiskPolicy>;
  /** Answers the whole policy after the change. */
  setPolicy(update: PolicyUpdate): Promise<DiskPolicy>;
  /** Applies retention now (`policy prune`), or says what it would delete. */
  prunePolicy(request: PruneRequest): Promise<PruneResult>;
}
