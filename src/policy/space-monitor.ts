/**
 * The space policy's clock (SPEC §4.2): a space check (Store.checkSpace, store/space-policy.ts)
 * at least every `intervalMs` (5 s) and soon after every write burst that creates a segment
 * file, one check at a time (a trigger during a check runs one more after it). What a check
 * does — the marks, the steps, the events — is the store's; this only says when.
 */
import type { MeasureSpace, SpaceCheckResult, Store } from "../store/store.js";

/** SPEC §4.2: space checks run at least every 5 s. */
export const SPACE_CHECK_INTERVAL_MS = 5_000;

export interface SpaceMonitorOptions {
  /** Checks at least this often (default 5 s). */
  intervalMs?: number;
  /** How the store's file system is measured (default: statfs, as df). Tests inject their own. */
  measure?: MeasureSpace;
  /** A check that failed (it is tried again at the next trigger). */
  onError?(error: unknown): void;
  /** Each check's result (tests, logs). */
  onChecked?(result: SpaceCheckResult): void;
}

export class SpaceMonitor {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly options: SpaceMonitorOptions = {},
  ) {}

  start(): void {
    this.unsubscribe = this.store.onSegmentCreated(() => this.checkSoon());
    this.timer = setInterval(() => this.checkSoon(), this.options.intervalMs ?? SPACE_CHECK_INTERVAL_MS);
    this.timer.unref();
    this.checkSoon();
  }

  /** Stops the triggers and waits for a check under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    await this.running;
  }

  /** Runs a check now, or right after the one under way. */
  checkSoon(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.run().finally(() => {
      this.running = undefined;
      // Triggered after the last look but before this ran: look again.
      if (this.again) this.checkSoon();
    });
  }

  private async run(): Promise<void> {
    // Off the caller's stack: segment triggers come from the write path.
    await new Promise((resolve) => setImmediate(resolve));
    do {
      this.again = false;
      try {
        const result = await this.store.checkSpace(this.options.measure);
        this.options.onChecked?.(result);
      } catch (error) {
        if (!this.stopped) this.options.onError?.(error);
      }
    } while (this.again && !this.stopped);
  }
}
