/**
 * Remote copy (issue 11): the numbers in BENCHMARKS.md "Remote copy". Two `snaplog serve` on
 * loopback (the receiver with --replication), scratch stores on a real disk (/var/tmp):
 *
 *   1. fio 4K random write QD32 for --seconds (default 20) over NBD against a source disk with
 *      no relation, then against another with a continuous relation, then the first again: the
 *      write IOPS ratio (target >= 0.8x; also against the mean of the runs before and after) and
 *      the lag in seconds sampled every 100 ms during the run (max and p99; target < 1 s), how
 *      long the replica takes to catch up after the load, and each server's CPU per entry then;
 *   2. a 64 MiB hot set overwritten 10x (fio, incompressible data) within one interval of a
 *      compacted relation, and the same writes under a continuous one: bytes shipped, compacted
 *      vs continuous (target <= 0.12x).
 *
 *   npm run bench:replication -- [--seconds 20] [--tmpdir /var/tmp] [--profile DIR] [--continuous-only] [--max-load 20]
 *
 * --max-load is the continuous relation's (the share of the source's time shipping may take while hosts write).
 *
 * --profile writes a V8 CPU profile of each server into DIR (open it in Chrome's DevTools).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ApiClient } from "../src/api/client.js";
import type { RelationInfo } from "../src/store/operations/index.js";
import { Store } from "../src/store/store.js";
import { SERVER_NODE_FLAGS } from "../src/server/node-flags.js";
import { benchUsageError, parseBenchArgs } from "./bench-args.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const MiB = 1024 * 1024;

const usage = `Usage: npm run bench:replication -- [options]   (or: node dist/bench/replication.js [options])

Remote copy between two snaplog servers on loopback: write IOPS with and without a continuous
relation, the lag through a 4K random-write flood and at a sixth of its rate, the CPU each side
spends per shipped entry, and bytes shipped compacted against continuous. Prints JSON.

  --seconds N         fio run length (default 20)
  --max-load PCT      the continuous relation's --max-load (default 20)
  --continuous-only   skip the compacted hot-set measurement
  --tmpdir DIR        parent of the scratch stores, a real disk (default /var/tmp)
  --profile DIR       write a V8 CPU profile of each server into DIR
  -h, --help          this text
`;
const values = parseBenchArgs(usage, {
  seconds: { type: "string", default: "20" },
  tmpdir: { type: "string", default: "/var/tmp" },
  profile: { type: "string" },
  "continuous-only": { type: "boolean", default: false },
  "max-load": { type: "string", default: "20" },
});
const seconds = Number(values.seconds);
if (!Number.isInteger(seconds) || seconds < 1)
  benchUsageError(usage, `--seconds: expected a whole number of seconds, got "${values.seconds}"`);
const scratch = mkdtempSync(path.join(values.tmpdir, "snaplog-bench-replication-"));
const children: ChildProcessWithoutNullStreams[] = [];
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(scratch, { recursive: true, force: true });
});

function run(store: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, "--store", store, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`snaplog ${args.join(" ")}: ${out}`))));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** User + system CPU seconds a process has used so far (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8")
    .replace(/^.*\) /, "")
    .split(" ");
  // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Server {
  pid: number;
  store: string;
  sock: string;
  port?: number;
  api: ApiClient;
}

async function serve(name: string, replication: boolean): Promise<Server> {
  const store = path.join(scratch, name);
  await Store.init(store);
  const sock = path.join(scratch, `${name}.sock`);
  const port = replication ? await freePort() : undefined;
  const args = [cli, "--store", store, "serve", "--nbd", "127.0.0.1:0", "--nbd-socket", sock];
  if (port !== undefined) args.push("--replication", `127.0.0.1:${port}`);
  const profile =
    values.profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${values.profile}`, `--cpu-prof-name=${name}.cpuprofile`];
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...profile, ...args], {
    env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
  });
  children.push(child);
  // Drained always: a full pipe would stall the server being measured.
  child.stderr.pipe(process.stderr);
  let stdout = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^api: unix:/m.test(stdout) && (port === undefined || /^replication: /m.test(stdout))) resolve();
    });
    child.once("exit", () => reject(new Error(`serve ${name} exited`)));
  });
  const api = await ApiClient.connectIfRunning(store);
  if (api === undefined) throw new Error("no API");
  return { pid: child.pid!, store, sock, port, api };
}

function fio(server: Server, disk: string, args: string[]): Promise<{ writeIops: number; writeBytes: number; cpuSeconds: number }> {
  // Each run starts with the page cache written back: the gigabytes an earlier run left dirty
  // would otherwise be flushed during (and charged to) the next one.
  spawnSync("sync");
  return new Promise((resolve, reject) => {
    const child = spawn(
      "fio",
      [
        "--name=bench",
        "--ioengine=nbd",
        `--uri=nbd+unix:///${disk}?socket=${server.sock}`,
        "--output-format=json",
        "--randrepeat=0",
        "--refill_buffers",
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("close", (code) => {
      if (code !== 0) return reject(new Error(`fio: ${stderr}`));
      const job = (
        JSON.parse(stdout.slice(stdout.indexOf("{"))) as {
          jobs: { write: { iops: number; io_bytes: number }; usr_cpu: number; sys_cpu: number; job_runtime: number }[];
        }
      ).jobs[0];
      // usr_cpu and sys_cpu are percentages of the job's runtime (ms).
      const cpuSeconds = ((job.usr_cpu + job.sys_cpu) / 100) * (job.job_runtime / 1000);
      resolve({ writeIops: job.write.iops, writeBytes: job.write.io_bytes, cpuSeconds });
    });
  });
}

async function relation(source: Server, disk: string): Promise<RelationInfo> {
  const found = (await source.api.listRelations()).find((candidate) => candidate.disk === disk);
  if (found === undefined) throw new Error(`no relation for ${disk}`);
  return found;
}

async function caughtUp(source: Server, disk: string, timeoutMs = 600_000): Promise<RelationInfo> {
  const deadline = Date.now() + timeoutMs;
  // Once: `disk show` counts space with a scan of the disk's index, which would steal the CPU being measured.
  const last = (await source.api.showDisk(disk)).lsnLast;
  for (;;) {
    const info = await relation(source, disk);
    if (info.state === "connected" && info.ackedLsn === last) return info;
    if (Date.now() > deadline) throw new Error(`${disk} did not catch up: ${JSON.stringify(info)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function replicate(source: Server, disk: string, receiver: Server, mode: string[]): Promise<void> {
  await run(source.store, [
    "replicate",
    disk,
    "--to",
    `snaplog://127.0.0.1:${receiver.port}/${disk}`,
    "--token-file",
    path.join(receiver.store, "api.token"),
    ...mode,
  ]);
  await caughtUp(source, disk);
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const source = await serve("source", false);
const receiver = await serve("receiver", true);
const randwrite = ["--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=1g", "--time_based", `--runtime=${seconds}`, "--norandommap"];

// 1. Continuous: IOPS with and without, lag during the run.
await run(source.store, ["disk", "create", "plain", "--size", "1G"]);
await run(source.store, ["disk", "create", "copied", "--size", "1G"]);
const plain = await fio(source, "plain", randwrite);
await replicate(source, "copied", receiver, ["--max-load", values["max-load"]]);
const lags: number[] = [];
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    lags.push((await relation(source, "copied")).lagSeconds);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
})();
const cpuBefore = { source: cpuSeconds(source.pid), receiver: cpuSeconds(receiver.pid) };
const copied = await fio(source, "copied", randwrite);
const loadEnd = Date.now();
sampling = false;
await sampler;
// The backlog left after the flood drains with the hosts idle: replication's own cost per entry
// (each server's CPU over the entries shipped meanwhile), without fio or host writes beside it.
const cpuAtLoadEnd = { source: cpuSeconds(source.pid), receiver: cpuSeconds(receiver.pid) };
const ackedAtLoadEnd = (await relation(source, "copied")).ackedLsn;
const afterLoad = await caughtUp(source, "copied");
const catchUpSeconds = (Date.now() - loadEnd) / 1000;
const catchUpEntries = (afterLoad.ackedLsn ?? 0) - (ackedAtLoadEnd ?? 0);
const perCatchUpEntryUs = (cpu: number) => (catchUpEntries > 0 ? Number(((cpu * 1e6) / catchUpEntries).toFixed(1)) : null);
const catchUpCost = {
  catchUpEntries,
  catchUpSourceUsPerEntry: perCatchUpEntryUs(cpuSeconds(source.pid) - cpuAtLoadEnd.source),
  catchUpReceiverUsPerEntry: perCatchUpEntryUs(cpuSeconds(receiver.pid) - cpuAtLoadEnd.receiver),
};
const cpuUsed = { source: cpuSeconds(source.pid) - cpuBefore.source, receiver: cpuSeconds(receiver.pid) - cpuBefore.receiver };
const sortedLags = [...lags].sort((a, b) => a - b);
// The disk without a relation again: what a run costs can drift over a bench (a page cache that
// grows into memory the host takes back: freePageReporting), so the ratio is also given against
// the mean of the runs before and after.
const plainAfter = await fio(source, "plain", randwrite);

// 1b. The same at a write rate the replica can keep up with on this machine (a sixth of the unreplicated rate).
const rateIops = Math.round(plain.writeIops / 6);
const rateLags: number[] = [];
sampling = true;
const rateSampler = (async () => {
  while (sampling) {
    rateLags.push((await relation(source, "copied")).lagSeconds);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
})();
const rated = await fio(source, "copied", [...randwrite, `--rate_iops=${rateIops}`]);
sampling = false;
await rateSampler;
await caughtUp(source, "copied");
const sortedRateLags = [...rateLags].sort((a, b) => a - b);

// 2. A 64 MiB hot set overwritten 10x: continuous vs compacted (one interval holds all ten passes).
async function hotSet() {
  const hot = ["--rw=write", "--bs=1m", "--iodepth=8", "--size=64m", "--loops=10"];
  await run(source.store, ["disk", "create", "hotc", "--size", "256M"]);
  await run(source.store, ["disk", "create", "hotk", "--size", "256M"]);
  await replicate(source, "hotc", receiver, []);
  const hotcBefore = (await relation(source, "hotc")).bytesShipped;
  const hotcWrite = await fio(source, "hotc", hot);
  const hotcShipped = (await caughtUp(source, "hotc")).bytesShipped - hotcBefore;
  await replicate(source, "hotk", receiver, ["--mode", "compacted", "--interval", "20s"]);
  const hotkBefore = (await relation(source, "hotk")).bytesShipped;
  const hotkStart = Date.now();
  await fio(source, "hotk", hot);
  const hotkWriteSeconds = (Date.now() - hotkStart) / 1000;
  const hotkShipped = (await caughtUp(source, "hotk", 120_000)).bytesShipped - hotkBefore;
  return {
    hotWrittenMiB: Number((hotcWrite.writeBytes / MiB).toFixed(1)),
    hotContinuousShippedMiB: Number((hotcShipped / MiB).toFixed(1)),
    hotCompactedShippedMiB: Number((hotkShipped / MiB).toFixed(1)),
    hotCompactedWriteSeconds: hotkWriteSeconds,
    hotRatio: Number((hotkShipped / hotcShipped).toFixed(3)),
  };
}
const hotResult = values["continuous-only"] ? {} : await hotSet();

/**
 * Whether this (virtual) machine hands freed memory back to its host (virtio-balloon free page
 * reporting): then every page the page cache takes anew is a fault on the host, and a log that
 * grows with every write pays it per write where a file overwritten in place does not
 * (BENCHMARKS.md "Remote copy"). Read only; "absent" on a machine without it.
 */
function freePageReporting(): string {
  try {
    const order = readFileSync("/sys/module/page_reporting/parameters/page_reporting_order", "utf8").trim();
    const delayMs = readFileSync("/sys/module/page_reporting/parameters/min_free_ms", "utf8").trim();
    return `order ${order}, min_free_ms ${delayMs}${Number(order) > 10 ? " (off: above the largest page order)" : ""}`;
  } catch {
    return "absent";
  }
}

const result = {
  seconds,
  freePageReporting: freePageReporting(),
  maxLoadPercent: Number(values["max-load"]),
  iopsWithout: Math.round(plain.writeIops),
  iopsWithContinuous: Math.round(copied.writeIops),
  iopsRatio: Number((copied.writeIops / plain.writeIops).toFixed(3)),
  iopsWithoutAfter: Math.round(plainAfter.writeIops),
  iopsRatioBracketed: Number(((2 * copied.writeIops) / (plain.writeIops + plainAfter.writeIops)).toFixed(3)),
  lagSamples: lags.length,
  lagMaxSeconds: Number(sortedLags[sortedLags.length - 1]?.toFixed(3)),
  lagP99Seconds: Number(percentile(sortedLags, 99).toFixed(3)),
  lagP50Seconds: Number(percentile(sortedLags, 50).toFixed(3)),
  catchUpSeconds,
  ...catchUpCost,
  ratedIops: Math.round(rated.writeIops),
  ratedLagP50Seconds: Number(percentile(sortedRateLags, 50).toFixed(3)),
  ratedLagP99Seconds: Number(percentile(sortedRateLags, 99).toFixed(3)),
  ratedLagMaxSeconds: Number(sortedRateLags[sortedRateLags.length - 1]?.toFixed(3)),
  continuousShippedMiB: Number((afterLoad.bytesShipped / MiB).toFixed(1)),
  continuousWrittenMiB: Number((copied.writeBytes / MiB).toFixed(1)),
  // CPU from the load's start to the replica caught up: the source serves fio and exports; the receiver applies.
  sourceCpuSeconds: Number(cpuUsed.source.toFixed(1)),
  receiverCpuSeconds: Number(cpuUsed.receiver.toFixed(1)),
  fioCpuSeconds: Number(copied.cpuSeconds.toFixed(1)),
  ...hotResult,
};
console.log(JSON.stringify(result, null, 2));
if (values.profile !== undefined) {
  // A profile is written at a clean exit only.
  await Promise.all(
    children.map(
      (child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : (child.once("exit", resolve), child.kill("SIGTERM")))),
    ),
  );
}
process.exit(0);
