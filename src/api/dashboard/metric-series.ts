/**
 * The dashboard's charts over time (write and read rate, live and segment bytes per disk),
 * sampled from the metrics registry itself: the charts show the same numbers /metrics
 * serves, and a page opened now still shows the last hour. One sampler per API server,
 * shared by its listeners; a sample every intervalMs, the newest `capacity` kept.
 */
import type { Registry } from "prom-client";

export interface DiskSample {
  writeBytesPerSecond: number;
  readBytesPerSecond: number;
  liveBytes: number;
  segmentBytes: number;
}

export interface SeriesSample {
  /** Seconds since the epoch. */
  t: number;
  disks: Record<string, DiskSample>;
}

export interface MetricSeriesOptions {
  /** Default 2 s. */
  intervalMs?: number;
  /** Samples kept; default one hour's worth. */
  capacity?: number;
}

/** The registry's names this reads (server/disk-metrics.ts registers them). */
const BYTES_TOTAL = "snaplog_disk_nbd_bytes_total";
const LIVE_BYTES = "snaplog_disk_live_bytes";
const SEGMENT_BYTES = "snaplog_disk_segment_bytes";

interface Totals {
  atMs: number;
  write: Map<string, number>;
  read: Map<string, number>;
}

export class MetricSeries {
  readonly intervalMs: number;
  private readonly capacity: number;
  private readonly samples: SeriesSample[] = [];
  private readonly listeners = new Set<(sample: SeriesSample) => void>();
  private previous: Totals | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;

  constructor(
    private readonly registry: Registry,
    options: MetricSeriesOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 2000;
    this.capacity = options.capacity ?? Math.ceil(3_600_000 / this.intervalMs);
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.sampleNow(), this.intervalMs);
    this.timer.unref();
    void this.sampleNow();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** The samples kept, oldest first. */
  history(): SeriesSample[] {
    return this.samples.slice();
  }

  /** Takes one sample now (the timer calls it; tests may too). A sample still being taken is not doubled. */
  async sampleNow(): Promise<SeriesSample | undefined> {
    if (this.sampling) return undefined;
    this.sampling = true;
    try {
      const sample = await this.read();
      if (sample === undefined) return undefined;
      this.samples.push(sample);
      if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
      for (const listener of this.listeners) listener(sample);
      return sample;
    } catch {
      // A scrape that fails (a disk closing under it) leaves a gap in the chart, nothing more.
      return undefined;
    } finally {
      this.sampling = false;
    }
  }

  /** The kept samples, then each new one as it is taken, until the signal aborts. */
  async *follow(signal: AbortSignal): AsyncGenerator<SeriesSample> {
    const queue: SeriesSample[] = this.history();
    let wake: (() => void) | undefined;
    const listener = (sample: SeriesSample): void => {
      // A reader that stopped reading keeps only the newest samples.
      if (queue.length >= this.capacity) queue.shift();
      queue.push(sample);
      wake?.();
    };
    const onAbort = (): void => wake?.();
    this.listeners.add(listener);
    signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.listeners.delete(listener);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** The first call only sets the counters' starting point (a rate needs two readings). */
  private async read(): Promise<SeriesSample | undefined> {
    const [bytes, live, segment] = await Promise.all([
      valuesOf(this.registry, BYTES_TOTAL),
      valuesOf(this.registry, LIVE_BYTES),
      valuesOf(this.registry, SEGMENT_BYTES),
    ]);
    const atMs = Date.now();
    const totals: Totals = { atMs, write: new Map(), read: new Map() };
    for (const { labels, value } of bytes) {
      const disk = String(labels.disk);
      if (labels.command === "write") totals.write.set(disk, value);
      else if (labels.command === "read") totals.read.set(disk, value);
    }
    const previous = this.previous;
    this.previous = totals;
    if (previous === undefined) return undefined;
    const seconds = Math.max(0.001, (atMs - previous.atMs) / 1000);
    const rate = (now: Map<string, number>, before: Map<string, number>, disk: string): number =>
      // A counter that went down (a disk deleted and made again) starts over: no negative rate.
      Math.max(0, ((now.get(disk) ?? 0) - (before.get(disk) ?? 0)) / seconds);
    const disks: Record<string, DiskSample> = {};
    for (const { labels, value } of live) {
      const disk = String(labels.disk);
      disks[disk] = {
        writeBytesPerSecond: Math.round(rate(totals.write, previous.write, disk)),
        readBytesPerSecond: Math.round(rate(totals.read, previous.read, disk)),
        liveBytes: value,
        segmentBytes: 0,
      };
    }
    for (const { labels, value } of segment) {
      const sample = disks[String(labels.disk)];
      if (sample !== undefined) sample.segmentBytes = value;
    }
    return { t: Math.round(atMs / 100) / 10, disks };
  }
}

async function valuesOf(
  registry: Registry,
  name: string,
): Promise<Array<{ labels: Record<string, string | number | undefined>; value: number }>> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return [];
  return (await metric.get()).values;
}
