/**
 * Goal: the dashboard's charts show the numbers /metrics serves (issue 13): write and read
 * rates are the byte counters' growth per second, space the gauges; a page opened now gets the
 * kept samples first, then new ones live; the kept history is bounded. Method: the real
 * per-disk metrics (registerDiskMetrics) over a real RequestStatsByDisk, sampled by
 * MetricSeries by hand; and /v1/dashboard/series through the API app.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { MetricSeries } from "../src/api/dashboard/metric-series.js";
import { RequestStatsByDisk } from "../src/nbd/disk-request-stats.js";
import { registerDiskMetrics } from "../src/server/disk-metrics.js";
import type { DiskInfo } from "../src/store/operations/index.js";

const READ = 0;
const WRITE = 1;

function disk(name: string, logBytes: number, segmentBytes: number): DiskInfo {
  return {
    name,
    sizeBytes: 1 << 30,
    blockSizeBytes: 4096,
    lun: 1,
    historySeconds: 3600,
    createdAt: new Date(0).toISOString(),
    hasBaseline: false,
    entryCount: logBytes / 4096,
    logBytes,
    segmentBytes,
    journalBytes: 0,
    lsnLast: 0,
    snapshotCount: 0,
  } as DiskInfo;
}

function setup(capacity?: number) {
  const registry = new Registry();
  const stats = new RequestStatsByDisk();
  let disks = [disk("a", 0, 0)];
  registerDiskMetrics(registry, async () => disks, stats);
  const series = new MetricSeries(registry, { intervalMs: 1000, capacity });
  return { registry, stats, series, setDisks: (next: DiskInfo[]) => (disks = next) };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("rates are the counters' growth per second; space is the gauges; the first reading only starts the counters", async () => {
  const { stats, series, setDisks } = setup();
  assert.equal(await series.sampleNow(), undefined, "one reading gives no rate");
  stats.for("a").record(WRITE, 8 << 20, 0.001, true);
  stats.for("a").record(READ, 2 << 20, 0.001, true);
  setDisks([disk("a", 4 << 20, 6 << 20)]);
  await pause(1100);
  const sample = await series.sampleNow();
  assert.ok(sample !== undefined);
  const a = sample.disks.a;
  const seconds = 1.1;
  assert.ok(Math.abs(a.writeBytesPerSecond - (8 << 20) / seconds) / ((8 << 20) / seconds) < 0.2, `write rate ${a.writeBytesPerSecond}`);
  assert.ok(Math.abs(a.readBytesPerSecond - (2 << 20) / seconds) / ((2 << 20) / seconds) < 0.2, `read rate ${a.readBytesPerSecond}`);
  assert.equal(a.liveBytes, 4 << 20);
  assert.equal(a.segmentBytes, 6 << 20);
  // Nothing more written: the rate falls to zero.
  await pause(1100);
  const idle = await series.sampleNow();
  assert.equal(idle?.disks.a.writeBytesPerSecond, 0);
  assert.equal(series.history().length, 2);
});

test("the kept samples are bounded, oldest dropped; follow gives them, then new ones as they come", async () => {
  const { series } = setup(3);
  for (let i = 0; i < 6; i++) await series.sampleNow();
  const kept = series.history();
  assert.equal(kept.length, 3);
  const stop = new AbortController();
  const seen: number[] = [];
  const reading = (async () => {
    for await (const sample of series.follow(stop.signal)) {
      seen.push(sample.t);
      if (seen.length === 4) stop.abort();
    }
  })();
  await pause(20);
  const next = await series.sampleNow();
  await reading;
  assert.deepEqual(seen, [...kept.map((sample) => sample.t), next?.t]);
});
