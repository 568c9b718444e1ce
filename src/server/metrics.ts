/**
 * Prometheus metrics of a running appliance: the process defaults plus the NBD server's
 * counters and the replication relations, read when scraped (nothing is counted twice and the data path pays nothing).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { NbdCounters, NbdServer } from "../nbd/server.js";
import type { RelationInfo } from "../store/operations/index.js";
import type { VaultActivityFigures } from "../store/vault-activity.js";
import { registerScraped, type ScrapedSeries } from "./scraped-metric.js";

type CounterName = keyof Pick<
  NbdCounters,
  "requestCount" | "readBytes" | "writtenBytes" | "errorCount" | "connectionCountTotal" | "connectionRefusedCount"
>;

const nbdCounterMetrics: ReadonlyArray<{ name: string; help: string; counter: CounterName }> = [
  { name: "snaplog_nbd_requests_total", help: "NBD requests parsed, rejected ones included", counter: "requestCount" },
  { name: "snaplog_nbd_read_bytes_total", help: "Data bytes answered to successful NBD READs", counter: "readBytes" },
  { name: "snaplog_nbd_written_bytes_total", help: "Payload bytes of successful NBD WRITEs", counter: "writtenBytes" },
  {
    name: "snaplog_nbd_errors_total",
    help: "NBD requests answered with an error, plus connections closed for protocol violations",
    counter: "errorCount",
  },
  { name: "snaplog_nbd_connections_total", help: "NBD connections accepted", counter: "connectionCountTotal" },
  {
    name: "snaplog_nbd_refused_connections_total",
    help: "NBD connections closed at once because the most allowed were open (CONNECTIONS_MAX_DEFAULT)",
    counter: "connectionRefusedCount",
  },
];

export function registerNbdMetrics(registry: Registry, nbd: NbdServer): void {
  new Gauge({
    name: "snaplog_nbd_connections",
    help: "Open NBD connections (handshake or transmission)",
    registers: [registry],
    collect() {
      this.set(nbd.connectionCount);
    },
  });
  new Gauge({
    name: "snaplog_nbd_buffered_bytes_max",
    help: "High-water mark of the bytes one NBD connection held in flight",
    registers: [registry],
    collect() {
      this.set(nbd.counters.bufferedBytesMax);
    },
  });
  for (const { name, help, counter } of nbdCounterMetrics) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(nbd.counters[counter]);
      },
    });
  }
}

const relationGauges: ReadonlyArray<ScrapedSeries<RelationInfo>> = [
  {
    name: "snaplog_replication_lag_seconds",
    help: "Age of the oldest write the replica has not acknowledged (0 when caught up)",
    value: (relation) => relation.lagSeconds,
  },
  {
    name: "snaplog_replication_lag_bytes",
    help: "Bytes written on the source the replica has not acknowledged",
    value: (relation) => relation.lagBytes,
  },
  {
    name: "snaplog_replication_acked_lsn",
    help: "The source LSN the replica acknowledged (-1: none yet)",
    value: (relation) => relation.ackedLsn ?? -1,
  },
  {
    name: "snaplog_replication_shipped_bytes",
    help: "Bytes shipped to the replica since this server started (on the wire, compressed)",
    value: (relation) => relation.bytesShipped,
  },
  {
    name: "snaplog_replication_written_bytes",
    help: "Bytes written by hosts on the source since the relation was set up",
    value: (relation) => relation.bytesWritten,
  },
  {
    name: "snaplog_replication_connected",
    help: "1 while the relation is connected, 0 while retrying or ended",
    value: (relation) => (relation.state === "connected" ? 1 : 0),
  },
  {
    name: "snaplog_replication_last_ack_timestamp_seconds",
    help: "When the replica last acknowledged (absent until it has since this server started): alert when too old",
    value: (relation) => (relation.lastAckAt === null ? undefined : Date.parse(relation.lastAckAt) / 1000),
  },
];

/** One series per relation (labels disk and to), read from the store when scraped (SPEC §5.4). */
export function registerReplicationMetrics(registry: Registry, relations: () => Promise<RelationInfo[]>): void {
  registerScraped(registry, "gauge", ["disk", "to"], relations, (relation) => ({ disk: relation.disk, to: relation.to }), relationGauges);
}

/**
 * Events recorded by type since the server started (docs/policies.md lists the types): what an
 * operator alerts on — `hook-failed`, `mirror-degraded`, `space-high`, `replica-batch-refused`,
 * `replication-lag` — and what the policies did (`snapshot-created`, `compaction`, `archive`…).
 */
export function registerEventMetrics(registry: Registry, counts: () => ReadonlyMap<string, number>): void {
  registerScraped(registry, "counter", ["type"], counts, ([type]) => ({ type }), [
    {
      name: "snaplog_events_total",
      help: "Events recorded in the event log since the server started, by type",
      value: ([, count]) => count,
    },
  ]);
}

/** Archives per vault since the server started: successes, failures, bytes sent, when the last of each was. */
export function registerVaultMetrics(registry: Registry, activity: () => VaultActivityFigures[]): void {
  const byVault = (figures: VaultActivityFigures) => ({ vault: figures.vault });
  registerScraped(registry, "counter", ["vault"], activity, byVault, [
    { name: "snaplog_vault_archives_total", help: "Archives shipped to the vault", value: (figures) => figures.archives },
    { name: "snaplog_vault_failures_total", help: "Archives to the vault that failed", value: (figures) => figures.failures },
    { name: "snaplog_vault_sent_bytes_total", help: "Stream bytes uploaded to the vault", value: (figures) => figures.bytesSent },
  ]);
  // Absent until the first success (or failure): a zero time would read as "a very long time ago".
  const seconds = (ms: number) => (ms === 0 ? undefined : ms / 1000);
  registerScraped(registry, "gauge", ["vault"], activity, byVault, [
    {
      name: "snaplog_vault_last_success_timestamp_seconds",
      help: "When the last archive to the vault succeeded (alert when too old)",
      value: (figures) => seconds(figures.lastSuccessMs),
    },
    {
      name: "snaplog_vault_last_failure_timestamp_seconds",
      help: "When the last archive to the vault failed",
      value: (figures) => seconds(figures.lastFailureMs),
    },
  ]);
}
