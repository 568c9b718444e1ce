/**
 * Per-disk metrics (label `disk`): what the store knows of each disk (size, entries, live and
 * segment bytes, journal, snapshots, LSN, window), read from `listDisks` once per scrape (cheap:
 * counts kept in memory, no scan of the index), and the NBD figures the server counts per disk
 * (requests, bytes and errors by command, a latency histogram per command). Names follow the
 * Prometheus conventions: base units as suffixes, `_total` for counters.
 */
import { Counter, type Registry } from "prom-client";
import { COMMAND_LABELS, LATENCY_BUCKETS_SECONDS, type DiskRequestStats, type RequestStatsByDisk } from "../nbd/disk-request-stats.js";
import type { DiskInfo } from "../store/operations/index.js";
import type { DiskCounters } from "../store/disk-info.js";
import { registerScraped, type ScrapedSeries } from "./scraped-metric.js";

const diskGauges: ReadonlyArray<ScrapedSeries<DiskInfo>> = [
  { name: "snaplog_disk_size_bytes", help: "Size of the disk as hosts see it", value: (disk) => disk.sizeBytes },
  { name: "snaplog_disk_entries", help: "Live log entries (versions of blocks kept)", value: (disk) => disk.entryCount },
  { name: "snaplog_disk_live_bytes", help: "Bytes of data slots held by live entries", value: (disk) => disk.logBytes },
  { name: "snaplog_disk_segment_bytes", help: "Bytes of the disk's data segment files", value: (disk) => disk.segmentBytes },
  {
    name: "snaplog_disk_free_slot_bytes",
    help: "Bytes of the segment files not held by a live entry (free slots, reused before the files grow)",
    value: (disk) => Math.max(0, disk.segmentBytes - disk.logBytes),
  },
  { name: "snaplog_disk_journal_bytes", help: "Bytes of the disk's metadata journal", value: (disk) => disk.journalBytes },
  { name: "snaplog_disk_snapshots", help: "Snapshots of the disk", value: (disk) => disk.snapshotCount },
  { name: "snaplog_disk_lsn", help: "Newest log sequence number of the disk (a write counter)", value: (disk) => disk.lsnLast },
  {
    name: "snaplog_disk_history_window_seconds",
    help: "The every-write history window the disk keeps",
    value: (disk) => disk.historySeconds,
  },
];

export function registerDiskMetrics(registry: Registry, listDisks: () => Promise<DiskInfo[]>, stats: RequestStatsByDisk): void {
  // One listDisks per scrape, whatever the number of gauges reading it: a scrape collects every
  // gauge at once, so they share the call in flight; the next scrape (or chart sample) reads anew.
  let inFlight: Promise<DiskInfo[]> | undefined;
  const disks = (): Promise<DiskInfo[]> => {
    inFlight ??= listDisks().finally(() => (inFlight = undefined));
    return inFlight;
  };
  registerScraped(registry, "gauge", ["disk"], disks, (disk) => ({ disk: disk.name }), diskGauges);
  const perCommand = (name: string, help: string, read: (index: number, disk: DiskRequestStats) => number, only?: number[]) =>
    new Counter({
      name,
      help,
      labelNames: ["disk", "command"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [disk, figures] of stats.entries()) {
          for (let command = 0; command < COMMAND_LABELS.length; command++) {
            if (only !== undefined && !only.includes(command)) continue;
            if (figures.requests[command] === 0) continue;
            this.inc({ disk, command: COMMAND_LABELS[command] }, read(command, figures));
          }
        }
      },
    });
  perCommand("snaplog_disk_nbd_requests_total", "NBD requests run, by disk and command", (command, figures) => figures.requests[command]);
  perCommand(
    "snaplog_disk_nbd_errors_total",
    "NBD requests answered with an error, by disk and command",
    (command, figures) => figures.errors[command],
  );
  perCommand(
    "snaplog_disk_nbd_bytes_total",
    "Data bytes of successful NBD READs and WRITEs, by disk",
    (command, figures) => figures.bytes[command],
    [0, 1],
  );
  // prom-client types registerMetric for its own classes; the registry only calls name, get() and reset(), which this has.
  registry.registerMetric(new LatencyHistogram(stats) as never);
}

/**
 * The latency histogram, built at scrape time from the counts the data path keeps
 * (DiskRequestStats): prom-client's own Histogram would observe on the data path.
 */
class LatencyHistogram {
  readonly name = "snaplog_disk_nbd_request_duration_seconds";
  readonly help = "Time from an NBD request's arrival to its reply, by disk and command (successful requests)";
  readonly type = "histogram";
  readonly aggregator = "sum";

  constructor(private readonly stats: RequestStatsByDisk) {}

  get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const [disk, figures] of this.stats.entries()) {
      for (let command = 0; command < COMMAND_LABELS.length; command++) {
        const counts = figures.cumulative(command);
        const total = counts[counts.length - 1];
        if (total === 0) continue;
        const labels = { disk, command: COMMAND_LABELS[command] };
        counts.forEach((count, bucket) =>
          values.push({
            metricName: `${this.name}_bucket`,
            labels: { ...labels, le: bucket < LATENCY_BUCKETS_SECONDS.length ? LATENCY_BUCKETS_SECONDS[bucket] : "+Inf" },
            value: count,
          }),
        );
        values.push({ metricName: `${this.name}_sum`, labels, value: figures.secondsSum[command] });
        values.push({ metricName: `${this.name}_count`, labels, value: total });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

const diskCounterMetrics: ReadonlyArray<ScrapedSeries<DiskCounters>> = [
  {
    name: "snaplog_disk_checksum_errors_total",
    help: "Reads whose data failed its checksum, by disk, since the server started (alert on any)",
    value: (counters) => counters.checksumErrors,
  },
  {
    name: "snaplog_disk_compactions_total",
    help: "In-place compactions run (manual, background, policy, space)",
    value: (counters) => counters.compactions,
  },
  {
    name: "snaplog_disk_compaction_freed_bytes_total",
    help: "Data bytes in-place compaction freed (slots back to the free list)",
    value: (counters) => counters.compactionBytesFreed,
  },
  { name: "snaplog_disk_folds_total", help: "Folds into the baseline run", value: (counters) => counters.folds },
  {
    name: "snaplog_disk_fold_moved_bytes_total",
    help: "Bytes folds copied into the baseline image",
    value: (counters) => counters.foldBytesMoved,
  },
  {
    name: "snaplog_disk_fold_freed_bytes_total",
    help: "Data bytes folds freed from the log",
    value: (counters) => counters.foldBytesFreed,
  },
];

/** Counters the store keeps per open disk (checksum errors, compaction and fold work), read when scraped. */
export function registerDiskCounterMetrics(registry: Registry, diskCounters: () => DiskCounters[]): void {
  registerScraped(registry, "counter", ["disk"], diskCounters, (counters) => ({ disk: counters.disk }), diskCounterMetrics);
}
