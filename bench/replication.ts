/**
 * Remote copy (issue 11): the numbers in BENCHMARKS.md "Remote copy". Two `snaplog serve` on
 * loopback (the receiver with --replication), scratch stores on a real disk (/var/tmp):
 *
 *   1. fio 4K random write QD32 for --seconds (default 15) over NBD, --rounds times (default 3),
 *      against a source disk with no relation and another with a continuous relation, in the
 *      order A B, B A, A B... after one uncounted run on each (each disk's runs meet the same
 *      store state and the same drift of this machine); before each run the relation has caught
 *      up, so an unreplicated run shares the CPU with nothing. The write IOPS ratio (the replicated runs' sum over the
 *      unreplicated runs'; target >= 0.8x) and each round's, the lag in seconds sampled every
 *      100 ms during the replicated runs (p50, p99, max; target < 1 s), how long the replica
 *      takes to catch up after each, and each server's CPU per entry then;
 *   2. a 64 MiB hot set overwritten 10x (fio, incompressible data) within one interval of a
 *      compacted relation, and the same writes under a continuous one: bytes shipped, compacted
 *      vs continuous (target <= 0.12x).
 *
 *   npm run bench:replication -- [--seconds 15] [--rounds 3] [--tmpdir /var/tmp] [--profile DIR] [--continuous-only] [--max-load 20]
 *
 * --max-load is the continuous relation's (the share of the source's time shipping may take while hosts write).
 *
 * --profile writes a V8 CPU profile of each server into DIR (open it in Chrome's DevTools).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ApiClient } from "../src/api/client.js";
import type { RelationInfo } from "../src/store/operations/index.js";
import { Store } from "../src/store/store.js";
import { SERVER_NODE_FLAGS } from "../src/server/node-flags.js";
import { MAX_LOAD_PERCENT_DEFAULT } from "../src/store/replication/relations.js";
import { benchUsageError, parseBenchArgs } from "./bench-args.js";

const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const MiB = 1024 * 1024;

const usage = `Usage: npm run bench:replication -- [options]   (or: node dist/bench/replication.js [options])

Remote copy between two snaplog servers on loopback: write IOPS with and without a continuous
relation, the lag through a 4K random-write flood and at a sixth of its rate, the CPU each side
spends per shipped entry, and bytes shipped compacted against continuous. Prints JSON.

  --seconds N         fio run length (default 15)
  --rounds N          pairs of runs with and without a relation, alternating order (default 3)
  --max-load PCT      the continuous relation's --max-load (default: the product's, 7)
  --continuous-only   skip the compacted hot-set measurement
  --tmpdir DIR        parent of the scratch stores, a real disk (default /var/tmp)
  --profile DIR       write a V8 CPU profile of each server into DIR
  --lag-series FILE   write every lag sample of the floods to FILE (JSON lines: ms since the
                      first, round, lag seconds and bytes, acknowledged LSN)
  -h, --help          this text
`;
const values = parseBenchArgs(usage, {
  seconds: { type: "string", default: "15" },
  rounds: { type: "string", default: "3" },
  tmpdir: { type: "string", default: "/var/tmp" },
  profile: { type: "string" },
  "lag-series": { type: "string" },
  "continuous-only": { type: "boolean", default: false },
  "max-load": { type: "string" },
});
const seconds = Number(values.seconds);
if (!Number.isInteger(seconds) || seconds < 1)
  benchUsageError(usage, `--seconds: expected a whole number of seconds, got "${values.seconds}"`);
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) benchUsageError(usage, `--rounds: expected a whole number, got "${values.rounds}"`);
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

// 1. Continuous: IOPS with and without, lag during the replicated runs, in alternating order.
await run(source.store, ["disk", "create", "plain", "--size", "1G"]);
await run(source.store, ["disk", "create", "copied", "--size", "1G"]);
await replicate(source, "copied", receiver, values["max-load"] === undefined ? [] : ["--max-load", values["max-load"]]);

const lagSeries = values["lag-series"];
if (lagSeries !== undefined) writeFileSync(lagSeries, "");
const seriesStartMs = Date.now();
let seriesRound = 0;

function sampleLags(into: number[]): () => Promise<void> {
  let sampling = true;
  seriesRound++;
  const sampler = (async () => {
    while (sampling) {
      const info = await relation(source, "copied");
      into.push(info.lagSeconds);
      if (lagSeries !== undefined) {
        const sample = {
          ms: Date.now() - seriesStartMs,
          round: seriesRound,
          lagSeconds: info.lagSeconds,
          lagBytes: info.lagBytes,
          ackedLsn: info.ackedLsn,
        };
        appendFileSync(lagSeries, `${JSON.stringify(sample)}\n`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return async () => {
    sampling = false;
    await sampler;
  };
}

const lags: number[] = [];
const plainRuns: number[] = [];
const copiedRuns: number[] = [];
const catchUps: { seconds: number; entries: number; sourceCpu: number; receiverCpu: number }[] = [];
const cpuUsed = { source: 0, receiver: 0, fio: 0 };
let copiedBytes = 0;

async function unreplicatedRun(): Promise<void> {
  // Nothing of the relation's runs meanwhile: the unreplicated figure shares the CPU with nothing.
  await caughtUp(source, "copied");
  plainRuns.push((await fio(source, "plain", randwrite)).writeIops);
}

async function replicatedRun(): Promise<void> {
  await caughtUp(source, "copied");
  const cpuBefore = { source: cpuSeconds(source.pid), receiver: cpuSeconds(receiver.pid) };
  const stopSampling = sampleLags(lags);
  const copied = await fio(source, "copied", randwrite);
  const loadEnd = Date.now();
  await stopSampling();
  copiedRuns.push(copied.writeIops);
  copiedBytes += copied.writeBytes;
  cpuUsed.fio += copied.cpuSeconds;
  // The backlog left after the flood drains with the hosts idle: replication's own cost per entry
  // (each server's CPU over the entries shipped meanwhile), without fio or host writes beside it.
  const cpuAtLoadEnd = { source: cpuSeconds(source.pid), receiver: cpuSeconds(receiver.pid) };
  const ackedAtLoadEnd = (await relation(source, "copied")).ackedLsn ?? 0;
  const afterLoad = await caughtUp(source, "copied");
  catchUps.push({
    seconds: (Date.now() - loadEnd) / 1000,
    entries: (afterLoad.ackedLsn ?? 0) - ackedAtLoadEnd,
    sourceCpu: cpuSeconds(source.pid) - cpuAtLoadEnd.source,
    receiverCpu: cpuSeconds(receiver.pid) - cpuAtLoadEnd.receiver,
  });
  cpuUsed.source += cpuSeconds(source.pid) - cpuBefore.source;
  cpuUsed.receiver += cpuSeconds(receiver.pid) - cpuBefore.receiver;
}

// A run on each disk first, not counted: the first fio run of a bench meets fresh memory and an
// empty disk (no overwrites) and ran up to 1.7x faster than the ones after it.
await fio(source, "plain", randwrite);
await fio(source, "copied", randwrite);
const shippedBefore = (await caughtUp(source, "copied")).bytesShipped;
for (let round = 0; round < rounds; round++) {
  if (round % 2 === 0) {
    await unreplicatedRun();
    await replicatedRun();
  } else {
    await replicatedRun();
    await unreplicatedRun();
  }
}
const continuousShipped = (await relation(source, "copied")).bytesShipped - shippedBefore;
const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
const catchUpEntries = sum(catchUps.map((each) => each.entries));
const perCatchUpEntryUs = (cpu: number) => (catchUpEntries > 0 ? Number(((cpu * 1e6) / catchUpEntries).toFixed(1)) : null);
const catchUpCost = {
  catchUpSeconds: catchUps.map((each) => Number(each.seconds.toFixed(1))),
  catchUpEntries,
  catchUpSourceUsPerEntry: perCatchUpEntryUs(sum(catchUps.map((each) => each.sourceCpu))),
  catchUpReceiverUsPerEntry: perCatchUpEntryUs(sum(catchUps.map((each) => each.receiverCpu))),
};
const sortedLags = [...lags].sort((a, b) => a - b);

// 1b. The same at a write rate the replica can keep up with on this machine (a sixth of the unreplicated rate).
const rateIops = Math.round(sum(plainRuns) / plainRuns.length / 6);
const rateLags: number[] = [];
const stopRateSampling = sampleLags(rateLags);
const rated = await fio(source, "copied", [...randwrite, `--rate_iops=${rateIops}`]);
await stopRateSampling();
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
  maxLoadPercent: values["max-load"] === undefined ? MAX_LOAD_PERCENT_DEFAULT : Number(values["max-load"]),
  rounds,
  order: "A B, B A, ... (A without a relation, B with)",
  iopsWithout: plainRuns.map(Math.round),
  iopsWithContinuous: copiedRuns.map(Math.round),
  iopsRatio: Number((sum(copiedRuns) / sum(plainRuns)).toFixed(3)),
  iopsRatioPerRound: copiedRuns.map((copied, round) => Number((copied / plainRuns[round]).toFixed(3))),
  lagSamples: lags.length,
  lagMaxSeconds: Number(sortedLags[sortedLags.length - 1]?.toFixed(3)),
  lagP99Seconds: Number(percentile(sortedLags, 99).toFixed(3)),
  lagP50Seconds: Number(percentile(sortedLags, 50).toFixed(3)),
  ...catchUpCost,
  ratedIops: Math.round(rated.writeIops),
  ratedLagP50Seconds: Number(percentile(sortedRateLags, 50).toFixed(3)),
  ratedLagP99Seconds: Number(percentile(sortedRateLags, 99).toFixed(3)),
  ratedLagMaxSeconds: Number(sortedRateLags[sortedRateLags.length - 1]?.toFixed(3)),
  continuousShippedMiB: Number((continuousShipped / MiB).toFixed(1)),
  continuousWrittenMiB: Number((copiedBytes / MiB).toFixed(1)),
  // CPU of the replicated runs, each from the load's start to the replica caught up: the source serves fio and exports; the receiver applies.
  sourceCpuSeconds: Number(cpuUsed.source.toFixed(1)),
  receiverCpuSeconds: Number(cpuUsed.receiver.toFixed(1)),
  fioCpuSeconds: Number(cpuUsed.fio.toFixed(1)),
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
