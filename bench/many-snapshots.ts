/**
 * Many snapshots on one disk (issue 9 item 7): how long each listing takes with N snapshots.
 * Method: the store library in-process on a scratch store (a real disk: /var/tmp by default);
 * N snapshots cut one by one (each a synced journal record), timed per tenth so a cost that
 * grows with the count shows as a rising rate; then each way of listing them, timed: the
 * operations (snapshot list, disk show, policy show), the HTTP API (inject, no socket), the
 * export list and every export resolved as `nbdinfo --list` does, `lun:N` for every LUN, the
 * store reopened (recovery replays every snapshot record), and the CLI in direct mode.
 *
 *   node dist/bench/many-snapshots.js [--count 10000] [--tmpdir /var/tmp] [--lun-policy P] [--cli] [--serve] [--tcp]
 *
 *   --lun-policy  the disk's LUN policy while the snapshots are cut (explicit: --lun 1000000+i each;
 *                 constant: LUN 999999 for all)
 *   --cli         also time the CLI in direct mode (a process per command, opening the store)
 *   --serve       also start `snaplog serve` on the store: its start, the CLI through its API, and
 *                 `nbdinfo --list` on its unix socket
 *   --tcp         with --serve: nbdinfo --list over TCP too (libnbd 1.14: about 200 ms per export)
 *
 * The regression test (test/many-snapshots.test.ts) runs the same code at a small count: it
 * checks that every way agrees, never the times (those are for BENCHMARKS.md).
 */
import { mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildApiApp, createMetricsRegistry } from "../src/api/server.js";
import type { LunPolicy } from "../src/store/operations/index.js";
import { Store } from "../src/store/store.js";
import { startServer } from "./server.js";

const cliPath = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");

export interface ManySnapshotsResult {
  count: number;
  /** Seconds to cut each tenth of the snapshots, in order (a rising series means a cost per snapshot held). */
  createTenthsSeconds: number[];
  createSeconds: number;
  timings: Record<string, number>;
  /** What each way of listing found, for the consistency checks. */
  found: {
    listed: string[];
    shown: string[];
    apiListed: string[];
    apiShown: string[];
    exports: string[];
    resolved: string[];
    lunHolders: string[];
    reopened: string[];
    policyDisk: string;
  };
}

export const BENCH_DISK = "many";

function seconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function timed<T>(timings: Record<string, number>, label: string, action: () => Promise<T> | T): Promise<T> {
  const started = process.hrtime.bigint();
  const result = await action();
  timings[label] = seconds(started);
  return result;
}

/** The LUN of snapshot `index` (from 1) under each policy, as the run asks for it. */
const REQUESTED_LUN_BASE = 1_000_000;
const CONSTANT_LUN = 999_999;

/** Cuts `count` snapshots on a new disk of a new store at `storePath`, then lists them every way. */
export async function runManySnapshots(
  storePath: string,
  count: number,
  progress: (line: string) => void,
  lunPolicy: LunPolicy = "sequential",
): Promise<ManySnapshotsResult> {
  await Store.init(storePath);
  const timings: Record<string, number> = {};
  const createTenthsSeconds: number[] = [];
  let store = await Store.open(storePath);
  let createSeconds = 0;
  try {
    await store.createDisk({ name: BENCH_DISK, sizeBytes: 64 * 1024 * 1024 });
    await store.setPolicy({ disk: BENCH_DISK, lunPolicy, lun: lunPolicy === "constant" ? CONSTANT_LUN : undefined });
    const width = String(count).length;
    const tenth = Math.max(1, Math.ceil(count / 10));
    let started = process.hrtime.bigint();
    for (let index = 1; index <= count; index++) {
      const lun = lunPolicy === "explicit" ? REQUESTED_LUN_BASE + index : undefined;
      await store.createSnapshot({ disk: BENCH_DISK, name: `s${String(index).padStart(width, "0")}`, lun });
      if (index % tenth === 0 || index === count) {
        const step = seconds(started);
        createTenthsSeconds.push(step);
        createSeconds += step;
        progress(`${index}/${count} snapshots (${((index % tenth || tenth) / step).toFixed(0)}/s)`);
        started = process.hrtime.bigint();
      }
    }
    const listed = await timed(timings, "snapshot list (operation)", () => store.listSnapshots(BENCH_DISK));
    const shown = await timed(timings, "disk show (operation)", () => store.showDisk(BENCH_DISK));
    const policy = await timed(timings, "policy show (operation)", () => store.showPolicy(BENCH_DISK));
    const app = await buildApiApp({ operations: store, metrics: createMetricsRegistry() });
    const apiListed = await timed(timings, "GET /v1/disks/NAME/snapshots", () => app.inject(`/v1/disks/${BENCH_DISK}/snapshots`));
    const apiShown = await timed(timings, "GET /v1/disks/NAME", () => app.inject(`/v1/disks/${BENCH_DISK}`));
    await timed(timings, "GET /v1/disks/NAME/policy", () => app.inject(`/v1/disks/${BENCH_DISK}/policy`));
    await app.close();
    const exports = await timed(timings, "export list (NBD_OPT_LIST)", () => store.list());
    const resolved = await timed(timings, "every export resolved (nbdinfo --list)", () =>
      exports.map((info) => {
        const volume = store.resolve(info.name);
        volume.release();
        return `${volume.name}\t${volume.description}`;
      }),
    );
    const lunHolders = await timed(timings, "every lun:N resolved", () =>
      listed.flatMap((snapshot) => {
        if (snapshot.lun === null) return [];
        const volume = store.resolve(`lun:${snapshot.lun}`);
        volume.release();
        return volume.name;
      }),
    );
    await timed(timings, "store close", () => store.close());
    store = await timed(timings, "store open (recovery)", () => Store.open(storePath));
    const reopened = await store.listSnapshots(BENCH_DISK);
    return {
      count,
      createTenthsSeconds,
      createSeconds,
      timings,
      found: {
        listed: listed.map((snapshot) => `${snapshot.name}\t${snapshot.lun}\t${snapshot.lsn}`),
        shown: shown.snapshots.map((snapshot) => `${snapshot.name}\t${snapshot.lun}\t${snapshot.lsn}`),
        apiListed: (apiListed.json() as Array<{ name: string; lun: number; lsn: number }>).map((s) => `${s.name}\t${s.lun}\t${s.lsn}`),
        apiShown: (apiShown.json() as { snapshots: Array<{ name: string; lun: number; lsn: number }> }).snapshots.map(
          (s) => `${s.name}\t${s.lun}\t${s.lsn}`,
        ),
        exports: exports.map((info) => `${info.name}\t${info.description}`),
        resolved,
        lunHolders,
        reopened: reopened.map((snapshot) => `${snapshot.name}\t${snapshot.lun}\t${snapshot.lsn}`),
        policyDisk: policy.lunPolicy,
      },
    };
  } finally {
    await store.close();
  }
}

/** A whole CLI process per command, timed: in direct mode (it opens the store) or through a server's API. */
function timeCli(storePath: string, timings: Record<string, number>, mode: string): void {
  for (const args of [
    ["snapshot", "list", BENCH_DISK],
    ["disk", "show", BENCH_DISK],
    ["policy", "show", BENCH_DISK],
    ["--json", "snapshot", "list", BENCH_DISK],
  ]) {
    const started = process.hrtime.bigint();
    const run = spawnSync(process.execPath, [cliPath, "--store", storePath, ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
    if (run.status !== 0) throw new Error(`snaplog ${args.join(" ")}: ${run.stderr}`);
    timings[`CLI ${args.join(" ")} (process, ${mode})`] = seconds(started);
  }
}

/** `nbdinfo --list` of `uri`, timed; the count of exports it listed. */
function timeNbdinfo(uri: string, timings: Record<string, number>, label: string): number {
  const started = process.hrtime.bigint();
  const run = spawnSync("nbdinfo", ["--list", "--json", uri], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, timeout: 3_600_000 });
  if (run.status !== 0) throw new Error(`nbdinfo --list ${uri}: ${run.stderr}`);
  timings[label] = seconds(started);
  return (JSON.parse(run.stdout) as { exports: unknown[] }).exports.length;
}

/** `snaplog serve` on the store: its start, the CLI through its API, nbdinfo --list. */
async function timeServe(storePath: string, scratch: string, timings: Record<string, number>, tcp: boolean): Promise<void> {
  const started = process.hrtime.bigint();
  const server = await startServer(cliPath, storePath, scratch);
  timings["snaplog serve start (open, listening)"] = seconds(started);
  try {
    timeCli(storePath, timings, "through the API");
    const exportCount = timeNbdinfo(server.unixUri(""), timings, "nbdinfo --list (unix socket)");
    if (tcp) timeNbdinfo(server.tcpUrl, timings, "nbdinfo --list (TCP)");
    process.stderr.write(`nbdinfo listed ${exportCount} exports\n`);
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: "string", default: "10000" },
      tmpdir: { type: "string", default: "/var/tmp" },
      "lun-policy": { type: "string", default: "sequential" },
      cli: { type: "boolean" },
      serve: { type: "boolean" },
      tcp: { type: "boolean" },
    },
  });
  const count = Number(values.count);
  const lunPolicy = values["lun-policy"] as LunPolicy;
  const scratch = mkdtempSync(path.join(values.tmpdir ?? "/var/tmp", "snaplog-many-"));
  try {
    const storePath = path.join(scratch, "store");
    const result = await runManySnapshots(storePath, count, (line) => process.stderr.write(`${line}\n`), lunPolicy);
    if (values.cli === true) timeCli(storePath, result.timings, "direct");
    if (values.serve === true) await timeServe(storePath, scratch, result.timings, values.tcp === true);
    const rows = Object.entries(result.timings).map(([label, value]) => `| ${label} | ${(value * 1000).toFixed(1)} ms |`);
    console.log(`## ${count} snapshots on one disk (LUN policy ${lunPolicy})\n`);
    console.log(`| step | time |\n| --- | --- |`);
    console.log(`| ${count} snapshots cut | ${result.createSeconds.toFixed(2)} s (${(count / result.createSeconds).toFixed(0)}/s) |`);
    console.log(`| each tenth | ${result.createTenthsSeconds.map((step) => step.toFixed(2)).join(", ")} s |`);
    for (const row of rows) console.log(row);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
