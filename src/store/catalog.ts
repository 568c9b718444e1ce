/**
 * What the store holds, and the one way to reach a disk: the store file, the disks that are
 * open, the disks that failed to open (with why), and the queue that puts the store's changes
 * in order. Each job of the store (disk-lifecycle.ts, snapshots.ts, disk-policy.ts, history/,
 * scrub.ts, store-status.ts, export-resolver.ts) works on it; the Store facade owns it.
 */
import { ErrorCodes, notFound, SnaplogError } from "../util/errors.js";
import { SerialQueue } from "../util/serial-queue.js";
import { DiskSignals } from "./disk-signals.js";
import type { EventLog } from "./event-log.js";
import type { OpenDisk } from "./open-disk.js";
import type { StoreLogger } from "./store-options.js";
import { writeStoreFile, type StoreFile } from "./store-file.js";
import { VaultActivity } from "./vault-activity.js";

export class Catalog {
  readonly disks = new Map<string, OpenDisk>();
  /** Disks that failed to open, with why: listed in status and scrub, not served. */
  readonly failedDisks = new Map<string, string>();
  /** Changes of the store (disks, snapshots, policies, rollbacks), one at a time, in call order. */
  readonly control = new SerialQueue();
  /** What the engines tell the background work (disk-signals.ts). */
  readonly signals = new DiskSignals();
  /**
   * The store's file system is past a space policy's mark (space-policy.ts): compaction keeps no
   * spare segment files while it is, so what it frees goes back at once (SPEC §4.2).
   */
  spaceHigh = false;
  /** Archives per vault since the store was opened (metrics). */
  readonly vaultActivity = new VaultActivity();
  private closedFlag = false;

  constructor(
    /** Absolute path of the store directory. */
    readonly path: string,
    private storeFileNow: StoreFile,
    /** What the store did and saw (SPEC §4.4). */
    readonly events: EventLog,
    readonly logger: StoreLogger | undefined,
    /** The store's clock (StoreOpenOptions.nowMs). */
    readonly nowMs: () => number = Date.now,
  ) {}

  get storeFile(): StoreFile {
    return this.storeFileNow;
  }

  async saveStoreFile(next: StoreFile): Promise<void> {
    await writeStoreFile(this.path, next);
    this.storeFileNow = next;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  markClosed(): void {
    this.closedFlag = true;
  }

  checkOpen(): void {
    if (this.closedFlag) throw new SnaplogError(ErrorCodes.CLOSED, "the store is closed");
  }

  /** The open disk of that name: NOT_FOUND when there is none, CORRUPT when it failed to open. */
  disk(name: string): OpenDisk {
    this.checkOpen();
    const disk = this.disks.get(name);
    if (disk === undefined) {
      const failure = this.failedDisks.get(name);
      if (failure !== undefined) throw new SnaplogError(ErrorCodes.CORRUPT, `disk ${name} is offline: ${failure}`, { disk: name });
      throw notFound(`no disk named ${JSON.stringify(name)}`, { disk: name });
    }
    return disk;
  }

  /** Whether a disk of that name exists, open or not. */
  has(name: string): boolean {
    return this.disks.has(name) || this.failedDisks.has(name);
  }

  /** The open disks in name order. */
  disksByName(): OpenDisk[] {
    return [...this.disks.values()].sort((a, b) => a.meta.name.localeCompare(b.meta.name));
  }
}
