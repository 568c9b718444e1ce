/** Per-disk rules (SPEC §4): shown whole, changed a few options at a time. */

/** The rules built so far. */
export interface DiskPolicy {
  /** Every-write history window, seconds. */
  historySeconds: number;
  /** Compact in the background when the disk is idle or the store's space is short. */
  autoCompact: boolean;
  /** Free a deleted snapshot's partition at once. */
  compactOnDelete: boolean;
}

/** The options to change; the others stay as they are. */
export interface PolicyUpdate {
  disk: string;
  historySeconds?: number;
  autoCompact?: boolean;
  compactOnDelete?: boolean;
}

export interface PolicyOperations {
  showPolicy(disk: string): Promise<DiskPolicy>;
  /** Answers the whole policy after the change. */
  setPolicy(update: PolicyUpdate): Promise<DiskPolicy>;
}
