/**
 * Per-disk NBD figures for /metrics: requests, bytes and errors by command, and a latency
 * histogram per command, counted in typed arrays on the data path (a few additions per request;
 * nothing is formatted until a scrape reads them).
 */
import * as P from "./protocol.js";

/** Upper bounds of the latency buckets, seconds (+Inf is implied). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** Metric label of each NBD command type (index: the command's number). */
export const COMMAND_LABELS: readonly string[] = ["read", "write", "disc", "flush", "trim", "cache", "write_zeroes", "block_status"];

const COMMAND_COUNT = COMMAND_LABELS.length;
const BUCKET_COUNT = LATENCY_BUCKETS_SECONDS.length + 1;

export class DiskRequestStats {
  readonly requests = new Float64Array(COMMAND_COUNT);
  readonly bytes = new Float64Array(COMMAND_COUNT);
  readonly errors = new Float64Array(COMMAND_COUNT);
  /** Per command, BUCKET_COUNT counts (not cumulative; the last is +Inf). */
  readonly buckets = new Float64Array(COMMAND_COUNT * BUCKET_COUNT);
  readonly secondsSum = new Float64Array(COMMAND_COUNT);

  record(commandType: number, lengthBytes: number, seconds: number, ok: boolean): void {
    if (commandType >= COMMAND_COUNT) return;
    this.requests[commandType]++;
    if (!ok) {
      this.errors[commandType]++;
      return;
    }
    if (commandType === P.CMD_READ || commandType === P.CMD_WRITE) this.bytes[commandType] += lengthBytes;
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS_SECONDS.length && seconds > LATENCY_BUCKETS_SECONDS[bucket]) bucket++;
    this.buckets[commandType * BUCKET_COUNT + bucket]++;
    this.secondsSum[commandType] += seconds;
  }

  /** Cumulative count of successful requests of a command at or under each bucket bound, then +Inf. */
  cumulative(commandType: number): number[] {
    const counts: number[] = [];
    let running = 0;
    for (let bucket = 0; bucket < BUCKET_COUNT; bucket++) {
      running += this.buckets[commandType * BUCKET_COUNT + bucket];
      counts.push(running);
    }
    return counts;
  }
}

/** The figures of every disk served since the server started, by disk name. */
export class RequestStatsByDisk {
  private readonly byDisk = new Map<string, DiskRequestStats>();

  for(disk: string): DiskRequestStats {
    let stats = this.byDisk.get(disk);
    if (stats === undefined) this.byDisk.set(disk, (stats = new DiskRequestStats()));
    return stats;
  }

  entries(): IterableIterator<[string, DiskRequestStats]> {
    return this.byDisk.entries();
  }
}
