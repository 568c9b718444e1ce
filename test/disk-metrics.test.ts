/**
 * Goal: /metrics has per-disk figures an operator can alert on (issue 13 item 4), and the events
 * recorded by type (scheduled snapshots, hook failures, degraded mirrors…): what the store
 * knows of each disk, and NBD requests, bytes, errors and latency per disk and command — a
 * snapshot's traffic counted under its disk — in Prometheus's text format with its naming
 * conventions (units as suffixes, `_total` for counters, histograms whose buckets add up).
 * Method: a real appliance on a store, qemu-io writing, reading and flushing through NBD on the
 * unix socket, /metrics read over the API socket, parsed here and linted by Prometheus's
 * `promtool check metrics`; a flipped byte in a segment file for a checksum error; a directory
 * vault, and one whose directory became a file, for archive successes and failures.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as http from "node:http";
import path from "node:path";
import { startAppliance, type Appliance } from "../src/server/appliance.js";
import { apiSocketPath } from "../src/store/paths.js";
import { Store } from "../src/store/store.js";
import { requireTool } from "./support/nbd-server.js";
import { runOk, runTool } from "./support/interop-tools.js";
import { flipByte } from "./support/store-fixtures.js";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tempDir } from "./support/temp-dir.js";

const hasQemuIo = requireTool("qemu-io");
const hasPromtool = requireTool("promtool", "prometheus");
const storePath = path.join(tempDir("disk-metrics"), "store");
const nbdSocket = path.join(tempDir("disk-metrics-sock"), "nbd.sock");
let appliance: Appliance | undefined;

after(() => appliance?.close());

function metricsText(): Promise<string> {
  return metricsTextOf(storePath);
}

function metricsTextOf(store: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: apiSocketPath(store), path: "/metrics" }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve(text));
      })
      .on("error", reject);
  });
}

/** Every sample as name + labels → value; fails on a line that is not exposition format (whose float parser takes NaN in any case: prom-client writes "Nan"). */
function parseText(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ")) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      types.set(type[1], type[2]);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/i.exec(line);
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

  const { samples, types } = parseText(await metricsText());
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

test(
  "checksum errors, compaction and fold work per disk; archives per vault with their last success and failure",
  { skip: !hasQemuIo },
  async () => {
    const root = tempDir("disk-metrics-work");
    const workStore = path.join(root, "store");
    const socket = path.join(root, "nbd.sock");
    await Store.init(workStore);
    const setup = await Store.open(workStore, { mode: "direct" });
    await setup.createDisk({ name: "w", sizeBytes: 4 * 1024 * 1024, historySeconds: 0 });
    await setup.close();
    const work = await startAppliance({ storePath: workStore, nbd: null, nbdSocket: socket });
    try {
      const uri = `nbd+unix:///w?socket=${socket}`;
      await runOk("qemu-io", ["-f", "raw", uri, "-c", "write -P 0x11 0 256k", "-c", "flush"]);
      await work.store.createSnapshot({ disk: "w", name: "a" });
      await runOk("qemu-io", ["-f", "raw", uri, "-c", "write -P 0x22 0 256k", "-c", "flush"]);
      await work.store.deleteSnapshot("w", "a");
      const compaction = await work.store.compact({ disk: "w" });
      const fold = await work.store.compact({ disk: "w", intoBaseline: true });
      assert.ok(fold.bytesMoved > 0, "the fold copied blocks into the baseline");

      await work.store.addVault({ name: "here", url: `file://${path.join(root, "vault")}` });
      const archived = await work.store.archive({ disk: "w", vault: "here" });
      // A vault whose directory became a file after it was added: its archive fails.
      await work.store.addVault({ name: "blocked", url: `file://${path.join(root, "blocked")}` });
      rmSync(path.join(root, "blocked"), { recursive: true, force: true });
      writeFileSync(path.join(root, "blocked"), "");
      await assert.rejects(work.store.archive({ disk: "w", vault: "blocked" }));
      await assert.rejects(work.store.archive({ disk: "w", vault: "no-such-vault" }));

      // A flipped byte in the data a read needs: the read fails its checksum, and is counted.
      await runOk("qemu-io", ["-f", "raw", uri, "-c", "write -P 0x33 1M 4k", "-c", "flush"]);
      const before = parseText(await metricsTextOf(workStore)).samples.get('snaplog_disk_checksum_errors_total{disk="w"}');
      assert.equal(before, 0);
      // Its data is the one run of 0x33 in the disk's segment files.
      const pattern = Buffer.alloc(4096, 0x33);
      const segments = readdirSync(path.join(workStore, "disks", "w")).filter((name) => name.startsWith("segment-"));
      const hits = segments.flatMap((name) => {
        const file = path.join(workStore, "disks", "w", name);
        const offset = readFileSync(file).indexOf(pattern);
        return offset < 0 ? [] : [{ file, offset }];
      });
      assert.equal(hits.length, 1, "the block's data is found once");
      flipByte(hits[0].file, hits[0].offset + 5);
      const read = await runTool("qemu-io", ["-r", "-f", "raw", uri, "-c", "read 1M 4k"]);
      assert.match(read.stdout + read.stderr, /error|failed/i, "the damaged block is refused");

      const text = await metricsTextOf(workStore);
      const { samples } = parseText(text);
      const value = (name: string) => samples.get(name);
      if (hasPromtool) {
        // Prometheus's own linter over every series; prom-client's default nodejs_*/process_* figures are the library's, not ours.
        const lint = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
        const problems = `${lint.stdout}${lint.stderr}`
          .split("\n")
          .filter((line) => line.trim() !== "" && !/^(nodejs|process)_/.test(line));
        assert.deepEqual(problems, [], "promtool check metrics finds nothing in snaplog's series");
      }
      assert.ok(value('snaplog_disk_checksum_errors_total{disk="w"}')! >= 1);
      assert.equal(value('snaplog_disk_compactions_total{disk="w"}'), 1);
      assert.equal(value('snaplog_disk_compaction_freed_bytes_total{disk="w"}'), compaction.bytesFreed);
      assert.equal(value('snaplog_disk_folds_total{disk="w"}'), 1);
      assert.equal(value('snaplog_disk_fold_moved_bytes_total{disk="w"}'), fold.bytesMoved);
      assert.equal(value('snaplog_disk_fold_freed_bytes_total{disk="w"}'), fold.bytesFreed);
      assert.equal(value('snaplog_vault_archives_total{vault="here"}'), 1);
      assert.equal(value('snaplog_vault_sent_bytes_total{vault="here"}'), archived.bytesSent);
      assert.equal(value('snaplog_vault_failures_total{vault="here"}'), 0);
      assert.ok(Math.abs(value('snaplog_vault_last_success_timestamp_seconds{vault="here"}')! - Date.now() / 1000) < 120);
      assert.equal(value('snaplog_vault_last_failure_timestamp_seconds{vault="here"}'), undefined, "no failure: no time");
      assert.equal(value('snaplog_vault_failures_total{vault="blocked"}'), 1);
      assert.equal(value('snaplog_vault_archives_total{vault="blocked"}'), 0);
      assert.ok(value('snaplog_vault_last_failure_timestamp_seconds{vault="blocked"}')! > 0);
      assert.equal(value('snaplog_vault_failures_total{vault="no-such-vault"}'), undefined, "a name that is no vault is not counted");
    } finally {
      await work.close();
    }
  },
);
