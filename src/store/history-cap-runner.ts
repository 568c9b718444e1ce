/**
 * `--history-max` applied by the running server (SPEC §4.1): each disk with a cap is capped
 * (DiskEngine.capHistory) when its engine says the write path may have passed it, and at least
 * every interval when its running count is unknown (a snapshot deleted, a pin released, the
 * window changed). Each cap that shrank the window is an event saying from where to where.
 * One disk at a time; the cap itself is engine maintenance, beside the write path.
 */
import type { HistoryCapResult } from "../engine/index.js";
import { formatBytes } from "../util/parse.js";
import type { Catalog } from "./catalog.js";
import type { StoreLogger } from "./store-options.js";

const HISTORY_CAP_INTERVAL_MS = 5_000;

export class HistoryCapRunner {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly due = new Set<string>();
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly logger: StoreLogger | undefined,
    private readonly intervalMs = HISTORY_CAP_INTERVAL_MS,
  ) {}

  start(): void {
    this.unsubscribe = this.catalog.signals.on("history-cap-due", (disk) => this.mark(disk));
    this.timer = setInterval(() => {
      for (const disk of this.catalog.disks.values()) if (disk.engine.historyCapDue) this.mark(disk.meta.name);
    }, this.intervalMs);
    this.timer.unref();
    // A cap set before the server started applies at once.
    for (const disk of this.catalog.disks.values()) if (disk.engine.historyCapDue) this.mark(disk.meta.name);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    await this.running;
  }

  /** Caps `disk` soon (once, however often it is marked meanwhile). */
  private mark(disk: string): void {
    if (this.stopped) return;
    this.due.add(disk);
    this.kick();
  }

  private kick(): void {
    if (this.running !== undefined) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      // Marked after the last look but before this ran: go again.
      if (this.due.size > 0 && !this.stopped) this.kick();
    });
  }

  private async drain(): Promise<void> {
    // Off the caller's stack: marks come from the write path.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.due.size > 0 && !this.stopped) {
      const [name] = this.due;
      this.due.delete(name);
      const disk = this.catalog.disks.get(name);
      if (disk === undefined || this.catalog.closed) continue;
      try {
        const result = await disk.engine.capHistory();
        if (result?.shrank === true) await this.record(name, result);
      } catch (error) {
        if (this.catalog.closed || this.catalog.disks.get(name) !== disk) continue;
        this.logger?.error(`history cap of disk ${name} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  private async record(disk: string, result: HistoryCapResult): Promise<void> {
    const from = describePoint(result.lsnFirstBefore, result.timeMsFirstBefore);
    const to = describePoint(result.lsnFirstAfter, result.timeMsFirstAfter);
    await this.catalog.events
      .record({
        type: "history-capped",
        disk,
        lsn: result.lsnFirstAfter,
        reason: "history-max",
        message:
          `the history window of disk ${disk} shrank from ${from} to ${to}: ${formatBytes(result.windowOnlyBytesBefore)} ` +
          `were held only for it, past --history-max ${formatBytes(result.maxBytes)}; ${formatBytes(result.bytesFreed)} freed`,
        details: {
          lsnFirstBefore: result.lsnFirstBefore,
          timeFirstBefore: isoOrNull(result.timeMsFirstBefore),
          lsnFirstAfter: result.lsnFirstAfter,
          timeFirstAfter: isoOrNull(result.timeMsFirstAfter),
          historyMaxBytes: result.maxBytes,
          windowOnlyBytesBefore: result.windowOnlyBytesBefore,
          windowOnlyBytesAfter: result.windowOnlyBytesAfter,
          bytesFreed: result.bytesFreed,
          segmentsReleased: result.segmentsReleased,
        },
      })
      .catch((error: unknown) =>
        this.logger?.error(`event log: could not record an event: ${error instanceof Error ? error.message : String(error)}`),
      );
  }
}

function isoOrNull(timeMs: number): string | null {
  return timeMs === 0 ? null : new Date(timeMs).toISOString();
}

function describePoint(lsn: number, timeMs: number): string {
  return timeMs === 0 ? `the disk's start (LSN ${lsn})` : `${new Date(timeMs).toISOString()} (LSN ${lsn})`;
}
