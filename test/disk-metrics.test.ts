/**
 * Goal: /metrics has per-disk figures an operator can alert on (issue 13 item 4), and the events
 * recorded by type (scheduled snapshots, hook failures, degraded mirrors…): what the store
 * knows of each disk, and NBD requests, bytes, errors and latency per disk and command — a
 * snapshot's traffic counted under its disk — in Prometheus's text format with its naming
 * conventions (units as suffixes, `_total` for counters, histograms whose buckets add up).
 * Method: a real appliance on a store, qemu-io writing, reading and flushing through NBD on the
 * unix socket, /metrics read over the API socket and parsed here.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import path from "node:path";
import { startAppliance, type Appliance } from "../src/server/appliance.js";
import { apiSocketPath } from "../src/store/paths.js";
import { Store } from "../src/store/store.js";
import { requireTool } from "./support/nbd-server.js";
import { runOk } from "./support/interop-tools.js";
import { tempDir } from "./support/temp-dir.js";

const hasQemuIo = requireTool("qemu-io");
const storePath = path.join(tempDir("disk-metrics"), "store");
const nbdSocket = path.join(tempDir("disk-metrics-sock"), "nbd.sock");
let appliance: Appliance | undefined;

after(() => appliance?.close());

function metricsText(): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: apiSocketPath(storePath), path: "/metrics" }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve(text));
      })
      .on("error", reject);
  });
}

/** Every sample as name + labels → value; fails on a line that is not exposition format. */
function parse(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      types.set(type[1], type[2]);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(sample !== null, `not exposition format: ${line}`);
    samples.set(sample[1], Number(sample[2]));
  }
  return { samples, types };
}

test("per-disk gauges, NBD counters and latency histograms, a snapshot counted under its disk", { skip: !hasQemuIo }, async () => {
  await Store.init(storePath);
  const store = await Store.open(storePath, { mode: "direct" });
  await store.createDisk({ name: "d", sizeBytes: 8 * 1024 * 1024 });
  await store.createDisk({ name: "other", sizeBytes: 4 * 1024 * 1024 });
  await store.close();
  appliance = await startAppliance({ storePath, nbd: null, nbdSocket });
  const uri = (name: string) => `nbd+unix:///${name}?socket=${nbdSocket}`;
  await runOk("qemu-io", [
    "-f",
    "raw",
    uri("d"),
    "-c",
    "write -P 0x11 0 1M",
    "-c",
    "write -P 0x22 1M 64k",
    "-c",
    "flush",
    "-c",
    "read -P 0x11 0 64k",
  ]);
  await appliance.store.createSnapshot({ disk: "d", name: "s" });
  await runOk("qemu-io", ["-r", "-f", "raw", uri("d@s"), "-c", "read -P 0x22 1M 64k"]);

  const { samples, types } = parse(await metricsText());
  const value = (name: string) => samples.get(name);
  assert.equal(value('snaplog_disk_size_bytes{disk="d"}'), 8 * 1024 * 1024);
  assert.equal(value('snaplog_disk_size_bytes{disk="other"}'), 4 * 1024 * 1024);
  assert.equal(value('snaplog_disk_snapshots{disk="d"}'), 1);
  assert.ok(value('snaplog_disk_entries{disk="d"}')! > 0);
  assert.ok(value('snaplog_disk_live_bytes{disk="d"}')! >= 1024 * 1024 + 64 * 1024);
  assert.equal(value('snaplog_disk_nbd_bytes_total{disk="d",command="write"}'), 1024 * 1024 + 64 * 1024);
  // 64 KiB read from the disk and 64 KiB from its snapshot: one disk.
  assert.equal(value('snaplog_disk_nbd_bytes_total{disk="d",command="read"}'), 128 * 1024);
  assert.ok(value('snaplog_disk_nbd_requests_total{disk="d",command="flush"}')! >= 1);
  assert.equal(value('snaplog_disk_nbd_requests_total{disk="other",command="write"}'), undefined, "no traffic, no series");

  // The histogram: cumulative buckets, +Inf equal to _count, one count per successful request.
  for (const command of ["write", "read", "flush"]) {
    const labels = `disk="d",command="${command}"`;
    const buckets = [...samples].filter(([name]) => name.startsWith(`snaplog_disk_nbd_request_duration_seconds_bucket{${labels},`));
    assert.ok(buckets.length > 2, `${command}: buckets`);
    for (let index = 1; index < buckets.length; index++) assert.ok(buckets[index][1] >= buckets[index - 1][1], `${command}: cumulative`);
    const count = value(`snaplog_disk_nbd_request_duration_seconds_count{${labels}}`)!;
    assert.equal(value(`snaplog_disk_nbd_request_duration_seconds_bucket{${labels},le="+Inf"}`), count);
    const errors = value(`snaplog_disk_nbd_errors_total{${labels}}`) ?? 0;
    assert.equal(count, value(`snaplog_disk_nbd_requests_total{${labels}}`)! - errors);
    assert.ok(value(`snaplog_disk_nbd_request_duration_seconds_sum{${labels}}`)! > 0);
  }
  assert.equal(types.get("snaplog_disk_nbd_request_duration_seconds"), "histogram");
  // Events by type since the server started: the snapshot made above is one.
  assert.ok(value('snaplog_events_total{type="snapshot-created"}')! >= 1, "events are counted by type");
  // Conventions: counters end in _total; snaplog's gauges name a unit or a count.
  for (const [name, type] of types) {
    if (!name.startsWith("snaplog_")) continue;
    if (type === "counter") assert.match(name, /_total$/, `${name}: a counter ends in _total`);
    else assert.doesNotMatch(name, /_total$/, `${name}: only counters end in _total`);
  }
});
