/**
 * The replication-lag event (SPEC §4.3, §5.4): once a second the relations' lag is compared
 * with each disk's --replication-lag-high; crossing it records `replication-lag` (actions
 * attached to it run, like any event), and falling back under it `replication-lag-normal`,
 * each once per episode.
 */
import type { Store } from "../store/store.js";

export const REPLICATION_LAG_CHECK_MS = 1_000;

export class ReplicationLagMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Disks whose relation is past its mark now. */
  private readonly high = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly options: { intervalMs?: number; onError?(error: unknown): void } = {},
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.check().finally(() => (this.running = undefined));
    }, this.options.intervalMs ?? REPLICATION_LAG_CHECK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async check(): Promise<void> {
    try {
      for (const relation of await this.store.listRelations()) {
        if (relation.state === "ended") continue;
        const mark = (await this.store.showPolicy(relation.disk)).replicationLagHighSeconds;
        const past = mark !== null && relation.lagSeconds > mark;
        if (past === this.high.has(relation.disk)) continue;
        if (past) this.high.add(relation.disk);
        else this.high.delete(relation.disk);
        await this.store.events.record({
          type: past ? "replication-lag" : "replication-lag-normal",
          disk: relation.disk,
          reason: "replication",
          message: past
            ? `disk ${relation.disk}: the replica at ${relation.to} lags ${relation.lagSeconds.toFixed(1)} s, past ${mark} s (${relation.state}${relation.reason === null ? "" : `: ${relation.reason}`})`
            : `disk ${relation.disk}: the replica at ${relation.to} lags ${relation.lagSeconds.toFixed(1)} s, back under its mark`,
          details: { lagSeconds: relation.lagSeconds, lagBytes: relation.lagBytes, mark },
        });
      }
    } catch (error) {
      this.options.onError?.(error);
    }
  }
}
