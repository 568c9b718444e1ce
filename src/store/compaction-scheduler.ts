import type { DiskEngine } from "../engine/index.js";

export interface CompactionTarget {
  name: string;
  engine: DiskEngine;
  /** The disk's auto-compact policy. */
  autoCompact: boolean;
}

export interface CompactionSchedulerOptions {
  /** How often disks are looked at. */
  intervalMs: number;
  /** A disk counts as idle after this long without a write. */
  idleMs: number;
  /** Below this fraction of free space on the store's file system, space is short: compact busy disks too. */
  freeFractionMin: number;
  /** Free and total bytes of the store's file system. */
  space(): Promise<{ freeBytes: number; totalBytes: number }>;
  /** Wholly free segment files a pass keeps (undefined: the engine's default); a space policy past its mark wants 0. */
  spareSegmentCount?(): number | undefined;
  onCompacted?(disk: string, result: { entriesFreed: number; bytesFreed: number; segmentsReleased: number; reason: string }): void;
  onError?(disk: string, error: unknown): void;
}

/**
 * Background compaction (SPEC §4 `--auto-compact`): every interval, each disk with the policy
 * on is compacted in place when it has been idle for a while, or at once when the store's
 * file system is short of space — and only when there can be something to free (it was
 * written since the last pass, or its window's horizon moved). One disk at a time.
 */
export class CompactionScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /**
   * The LSN each disk had at its last pass, by engine: a deleted disk's entry goes with its
   * engine, and a disk created again under the same name (a new engine) starts with none.
   */
  private readonly lsnCompacted = new WeakMap<DiskEngine, number>();

  constructor(
    private readonly targets: () => Iterable<CompactionTarget>,
    private readonly options: CompactionSchedulerOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running === undefined) this.running = this.pass().finally(() => (this.running = undefined));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass under way (engine closes make it end early). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One look at every disk (tests call it directly). */
  async pass(): Promise<void> {
    let spaceShort: boolean;
    try {
      const { freeBytes, totalBytes } = await this.options.space();
      spaceShort = totalBytes > 0 && freeBytes / totalBytes < this.options.freeFractionMin;
    } catch {
      spaceShort = false;
    }
    for (const target of [...this.targets()]) {
      if (!target.autoCompact) continue;
      const engine = target.engine;
      const idle = Date.now() - engine.lastWriteMs >= this.options.idleMs;
      const written = this.lsnCompacted.get(engine) !== engine.lsnLast;
      const horizonMoved = engine.historySeconds > 0 && engine.historyWindow().lsnFirst > engine.stats().lsnHorizon;
      if (!(idle || spaceShort) || !(written || horizonMoved)) continue;
      const lsn = engine.lsnLast;
      try {
        const result = await engine.compact({ spareSegmentCount: this.options.spareSegmentCount?.() });
        this.lsnCompacted.set(engine, lsn);
        if (result.entriesFreed > 0 || result.segmentsReleased > 0) {
          this.options.onCompacted?.(target.name, { ...result, reason: spaceShort ? "space is short" : "idle" });
        }
      } catch (error) {
        this.options.onError?.(target.name, error);
      }
    }
  }
}
