/**
 * `npm run bench`: snaplog's own benchmark runner.
 *
 * 1. CRC32C micro benchmark (bench/crc32c.ts), in-process, a few seconds.
 * 2. A fresh store in a scratch dir under /var/tmp (a real disk), `snaplog serve` as a child
 *    process (NBD on a unix socket and a loopback port, API on STORE/api.sock).
 * 3. The shared harness nbd-bench.sh (fio, nbd ioengine) in URI mode against snaplog:
 *    (a) the jobs on a disk with the default history window, (b) the same on a disk with
 *    --history 0, (c) randread-4k-qd32 with no snapshot, then after N snapshots on the current
 *    volume and on the oldest snapshot's export.
 * 4. The server is stopped; the harness runs its peers (qemu-nbd/qcow2, nbdkit file, raw disk)
 *    with the same settings.
 * 5. BENCHMARKS.md (or --out) is written, keeping the hand-written analysis section.
 * The server is stopped and the scratch dir removed at the end, on failure and on Ctrl-C.
 */
import { mkdtempSync, rmSync, existsSync, writeFileSync, statfsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runCrc32cBench, type Crc32cResult } from "./crc32c.js";
import { ALL_JOBS, Harness, locateHarness, PEER_NAMES, type JobResult } from "./harness.js";
import { collectMachineInfo } from "./machine.js";
import {
  preservedAnalysis,
  preservedSeparateRuns,
  renderReport,
  type DiskSnapshotState,
  type RunData,
  type Settings,
  type SnapshotScenario,
} from "./report.js";
import { createSnapshotsWithWrites } from "./snapshots.js";
import { runRecoveryScenarios } from "./recovery.js";
import { runHistoryScenarios, type RunningServer } from "./history.js";
import { runCli, startServer, tail, type SnaplogServer } from "./server.js";
import { runMultiConnectionPeers, runMultiConnectionSnaplog, type MultiConnectionSettings } from "./multi-connection.js";
import { nbdWrittenBytes } from "./metrics.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const cliPath = path.join(repoRoot, "dist", "src", "cli", "main.js");

const usage = `Usage: npm run bench -- [options]      (or: node dist/bench/run.js [options])

Benchmarks snaplog over NBD with the shared fio harness (nbd-bench.sh) and compares it with
qemu-nbd/qcow2, nbdkit file and the raw disk in the same run; writes BENCHMARKS.md.

Options (environment variable in brackets):
  --quick               smoke run: --size 64M --runtime 2 --ramp 1, jobs randwrite-4k-qd32,seqwrite-1m-qd8,
                        50 snapshots, peer nbdkit-file only, --quiet-wait 2 --retries 0 (about 1-2 min)
                        [SNAPLOG_BENCH_QUICK=1]
  --size SIZE           working set and disk size (default 1G) [SNAPLOG_BENCH_SIZE]
  --runtime SEC         measured seconds per job (default 10) [SNAPLOG_BENCH_RUNTIME]
  --ramp SEC            unmeasured warm-up seconds per job (default 2) [SNAPLOG_BENCH_RAMP]
  --jobs LIST           comma-separated harness jobs (default: all six) [SNAPLOG_BENCH_JOBS]
  --peers LIST          harness peers (default: ${PEER_NAMES.join(",")}) [SNAPLOG_BENCH_PEERS]
  --skip-peers          run no peers [SNAPLOG_BENCH_SKIP_PEERS=1]
  --scenarios LIST      snaplog scenarios: default (jobs, default window), h0 (jobs, --history 0),
                        h24 (jobs, --history 24h), multi (jobs over 4 NBD connections, snaplog and
                        the peers, started by the runner),
                        snapshots (snapshot read), history (compaction, points in time, open time),
                        recovery (open after SIGKILL with a full journal of the smallest records
                        and with 10^7 live entries, with the server's memory)
                        (default: all) [SNAPLOG_BENCH_SCENARIOS]
  --snapshots N         snapshots for the snapshot-read scenario (default 1000) [SNAPLOG_BENCH_SNAPSHOTS]
  --snapshot-writes N   random 4 KiB writes before each snapshot (default 16) [SNAPLOG_BENCH_SNAPSHOT_WRITES]
  --quiet-wait SEC      harness: wait up to SEC for an idle host before each job (default 30)
  --retries N           harness: reruns of a job disturbed by other load (default 1)
  --max-foreign PCT     harness: foreign CPU that counts as disturbed (default 10)
  --tmpdir DIR          parent of the scratch dir; must be a real disk (default /var/tmp) [SNAPLOG_BENCH_TMPDIR]
  --out FILE            report file (default BENCHMARKS.md in the repo) [SNAPLOG_BENCH_OUT]
  --json FILE           also write every harness result as JSON lines
  -h, --help            this text

The harness is <repo>/../shared/bench/nbd-bench.sh, or SNAPLOG_BENCH_HARNESS.
`;

const SCENARIOS = ["default", "h0", "h24", "multi", "snapshots", "history", "recovery"] as const;

interface Options extends Settings {
  scenarios: string[];
  tmpParent: string;
  outPath: string;
  jsonPath?: string;
  harnessPath: string;
  skipPeers: boolean;
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean" },
      size: { type: "string" },
      runtime: { type: "string" },
      ramp: { type: "string" },
      jobs: { type: "string" },
      peers: { type: "string" },
      "skip-peers": { type: "boolean" },
      scenarios: { type: "string" },
      snapshots: { type: "string" },
      "snapshot-writes": { type: "string" },
      "quiet-wait": { type: "string" },
      retries: { type: "string" },
      "max-foreign": { type: "string" },
      tmpdir: { type: "string" },
      out: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const env = process.env;
  const flag = (name: string): boolean => env[name] === "1" || env[name] === "true";
  const quick = values.quick === true || flag("SNAPLOG_BENCH_QUICK");
  const integer = (text: string | undefined, fallback: number, what: string, min = 0): number => {
    if (text === undefined || text === "") return fallback;
    if (!/^\d+$/.test(text) || Number(text) < min) throw new Error(`${what}: expected a whole number >= ${min}, got "${text}"`);
    return Number(text);
  };
  const list = (text: string | undefined, fallback: readonly string[], known: readonly string[], what: string): string[] => {
    if (text === undefined || text === "") return [...fallback];
    const items = text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
    for (const item of items) if (!known.includes(item)) throw new Error(`unknown ${what} "${item}" (known: ${known.join(", ")})`);
    return items;
  };
  const harnessPath = locateHarness(repoRoot);
  if (harnessPath === undefined)
    throw new Error(`harness not found at ${path.resolve(repoRoot, "..", "shared", "bench", "nbd-bench.sh")}; set SNAPLOG_BENCH_HARNESS`);
  const knownPeers = ["local-direct", "nbdkit-memory", "nbdkit-file", "nbd-server", "qemu-qcow2", "qemu-chain"];
  const skipPeers = values["skip-peers"] === true || flag("SNAPLOG_BENCH_SKIP_PEERS");
  const size = values.size ?? env.SNAPLOG_BENCH_SIZE ?? (quick ? "64M" : "1G");
  if (!/^\d+[KMGT]?$/i.test(size)) throw new Error(`--size: expected e.g. 64M or 1G, got "${size}"`);
  return {
    quick,
    size,
    runtimeSeconds: integer(values.runtime ?? env.SNAPLOG_BENCH_RUNTIME, quick ? 2 : 10, "--runtime", 1),
    rampSeconds: integer(values.ramp ?? env.SNAPLOG_BENCH_RAMP, quick ? 1 : 2, "--ramp"),
    jobs: list(values.jobs ?? env.SNAPLOG_BENCH_JOBS, quick ? ["randwrite-4k-qd32", "seqwrite-1m-qd8"] : ALL_JOBS, ALL_JOBS, "job"),
    peers: skipPeers ? [] : list(values.peers ?? env.SNAPLOG_BENCH_PEERS, quick ? ["nbdkit-file"] : PEER_NAMES, knownPeers, "peer"),
    skipPeers,
    scenarios: list(values.scenarios ?? env.SNAPLOG_BENCH_SCENARIOS, SCENARIOS, SCENARIOS, "scenario"),
    quietWaitSeconds: integer(values["quiet-wait"], quick ? 2 : 30, "--quiet-wait"),
    retries: integer(values.retries, quick ? 0 : 1, "--retries"),
    maxForeignPct: integer(values["max-foreign"], 10, "--max-foreign"),
    snapshotCount: integer(values.snapshots ?? env.SNAPLOG_BENCH_SNAPSHOTS, quick ? 50 : 1000, "--snapshots", 1),
    writesPerSnapshot: integer(values["snapshot-writes"] ?? env.SNAPLOG_BENCH_SNAPSHOT_WRITES, 16, "--snapshot-writes"),
    tmpParent: path.resolve(values.tmpdir ?? env.SNAPLOG_BENCH_TMPDIR ?? "/var/tmp"),
    outPath: path.resolve(values.out ?? env.SNAPLOG_BENCH_OUT ?? path.join(repoRoot, "BENCHMARKS.md")),
    jsonPath: values.json === undefined ? undefined : path.resolve(values.json),
    harnessPath,
    commandLine: ["npm run bench --", ...argv].join(" ").replace(/ --$/, ""),
  };
}

/** NBD connections of the multi-connection scenario (fio numjobs). */
const MULTI_CONNECTIONS = 4;

function sizeToBytes(size: string): number {
  const match = /^(\d+)([KMGT]?)$/i.exec(size);
  if (match === null) throw new Error(`bad size ${size}`);
  const exponent = ["", "K", "M", "G", "T"].indexOf(match[2].toUpperCase());
  return Number(match[1]) * 1024 ** exponent;
}

// ---------------------------------------------------------------------------- lifecycle

let scratch: string | undefined;
/** The running snaplog serve (the history scenario restarts it). */
const running: RunningServer = { server: undefined };
let harness: Harness | undefined;
let interrupted = false;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    try {
      await harness?.stop();
    } catch (error) {
      log(`stopping the harness: ${(error as Error).message}`);
    }
    try {
      const server = running.server;
      if (server !== undefined) log(`stopping snaplog serve (pid ${server.pid})`);
      await server?.stop();
    } catch (error) {
      log(`stopping snaplog serve: ${(error as Error).message}`);
    }
    running.server = undefined;
    if (scratch !== undefined) {
      rmSync(scratch, { recursive: true, force: true });
      log(`removed ${scratch}`);
      scratch = undefined;
    }
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (interrupted) {
      log(`second ${signal}: exiting without cleanup`);
      process.exit(130);
    }
    interrupted = true;
    log(`${signal}: stopping and cleaning up`);
    void cleanup().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  });
}

// ---------------------------------------------------------------------------- scenarios

async function diskState(active: SnaplogServer, disk: string): Promise<DiskSnapshotState> {
  const detail = await active.api.showDisk(disk);
  return {
    writtenBytes: await nbdWrittenBytes(active.api.socketPath, disk),
    entryCount: detail.entryCount,
    logBytes: detail.logBytes,
    segmentBytes: detail.segmentBytes,
    journalBytes: detail.journalBytes,
    historySeconds: detail.historySeconds,
  };
}

async function runSnaplogScenario(
  active: SnaplogServer,
  runner: Harness,
  options: Options,
  disk: string,
  label: string,
  historySeconds: number | undefined,
  data: RunData,
): Promise<JobResult[]> {
  const created = await active.api.createDisk({
    name: disk,
    sizeBytes: sizeToBytes(options.size),
    ...(historySeconds === undefined ? {} : { historySeconds }),
  });
  if (historySeconds === undefined) data.defaultHistorySeconds = created.historySeconds;
  log(`scenario ${label}: disk ${disk}, history ${created.historySeconds} s, jobs ${options.jobs.join(",")}`);
  const results = await runner.run({ uri: active.unixUri(disk), label, serverPid: active.pid, jobs: options.jobs, prefill: true });
  data.diskStates.push({ label: `\`${disk}\` (${label})`, state: await diskState(active, disk) });
  await active.api.deleteDisk(disk);
  return results;
}

async function runSnapshotScenario(active: SnaplogServer, runner: Harness, options: Options, snap: SnapshotScenario): Promise<void> {
  const job = ["randread-4k-qd32"];
  await active.api.createDisk({ name: snap.diskName, sizeBytes: sizeToBytes(options.size) });
  log(`scenario snapshot read: disk ${snap.diskName}, no snapshots`);
  snap.none = pick(
    await runner.run({ uri: active.unixUri(snap.diskName), label: "snaplog-snap-none", serverPid: active.pid, jobs: job, prefill: true }),
    job[0],
  );

  log(`creating ${options.snapshotCount} snapshots with ${options.writesPerSnapshot} random 4 KiB writes before each`);
  const built = await createSnapshotsWithWrites({
    api: active.api,
    nbdSocket: active.nbdSocket,
    disk: snap.diskName,
    count: options.snapshotCount,
    writesPerSnapshot: options.writesPerSnapshot,
    workingSetBytes: sizeToBytes(options.size),
    progress: (message) => log(`  ${message}`),
  });
  snap.createdCount = built.names.length;
  snap.createSeconds = built.seconds;
  snap.writtenBlocks = built.writtenBlocks;
  snap.snapshotName = built.names[0];
  log(`${built.names.length} snapshots in ${built.seconds.toFixed(1)} s`);

  const label = `snaplog-snap${snap.createdCount}`;
  snap.current = pick(
    await runner.run({ uri: active.unixUri(snap.diskName), label: `${label}-current`, serverPid: active.pid, jobs: job, prefill: false }),
    job[0],
  );
  const exportName = `${snap.diskName}@${snap.snapshotName}`;
  snap.snapshotExport = pick(
    await runner.run({ uri: active.unixUri(exportName), label: `${label}-export`, serverPid: active.pid, jobs: job, prefill: false }),
    job[0],
  );
  await active.api.deleteDisk(snap.diskName);
}

function pick(results: JobResult[], job: string): JobResult | undefined {
  return results.find((result) => result.phase === "job" && result.job === job);
}

/** Runs one step; a failure is recorded and the run goes on (unless interrupted). */
async function step<T>(name: string, data: RunData, body: () => Promise<T>): Promise<T | undefined> {
  try {
    return await body();
  } catch (error) {
    if (interrupted) throw error;
    const message = `${name}: ${(error as Error).message}`;
    log(`FAILED ${message}`);
    data.errors.push(message);
    return undefined;
  }
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run "npx tsc -p ." first (npm run bench does)`);
  if (statfsSync(options.tmpParent).type === 0x01021994)
    log(`warning: ${options.tmpParent} is tmpfs; the figures will measure RAM, not a disk`);
  scratch = mkdtempSync(path.join(options.tmpParent, "snaplog-bench-"));
  log(
    `scratch ${scratch}; harness ${options.harnessPath}; ${options.quick ? "quick" : "full"} run, size ${options.size}, ` +
      `runtime ${options.runtimeSeconds} s, jobs ${options.jobs.join(",")}, peers ${options.peers.join(",") || "none"}`,
  );

  const startedAt = new Date();
  const data: RunData = {
    startedAt,
    finishedAt: startedAt,
    machine: collectMachineInfo(scratch, repoRoot, options.harnessPath),
    settings: options,
    snaplog: [],
    snaplogNoHistory: [],
    snaplogDay: [],
    diskStates: [],
    peers: [],
    peersSkippedReason: options.skipPeers ? "--skip-peers" : undefined,
    snapshot: { diskName: "bench-snap", createdCount: 0, writtenBlocks: 0 },
    errors: [],
  };

  log("CRC32C micro benchmark");
  data.crc = await step<Crc32cResult>("crc32c micro benchmark", data, async () => runCrc32cBench(options.quick ? 1500 : 3000));
  if (data.crc !== undefined)
    log(`  crc32c ${data.crc.crc32cNsPer4k.toFixed(0)} ns / 4 KiB, memcpy ${data.crc.memcpyNsPer4k.toFixed(0)} ns / 4 KiB`);

  const storePath = path.join(scratch, "store");
  await runCli(cliPath, ["--store", storePath, "init"]);
  const server = await startServer(cliPath, storePath, scratch);
  running.server = server;
  log(`snaplog serve pid ${server.pid}: ${server.unixUri("")} and ${server.tcpUrl}`);
  harness = new Harness({
    harness: options.harnessPath,
    size: options.size,
    runtimeSeconds: options.runtimeSeconds,
    rampSeconds: options.rampSeconds,
    quietWaitSeconds: options.quietWaitSeconds,
    retries: options.retries,
    maxForeignPct: options.maxForeignPct,
    tmpDir: scratch,
  });
  const runner = harness;
  const wanted = (scenario: string) => options.scenarios.includes(scenario);
  if (wanted("default"))
    data.snaplog =
      (await step("snaplog, default history", data, () =>
        runSnaplogScenario(server, runner, options, "bench-default", "snaplog", undefined, data),
      )) ?? [];
  if (wanted("h0"))
    data.snaplogNoHistory =
      (await step("snaplog, --history 0", data, () => runSnaplogScenario(server, runner, options, "bench-h0", "snaplog-h0", 0, data))) ??
      [];
  if (wanted("h24"))
    data.snaplogDay =
      (await step("snaplog, --history 24h", data, () =>
        runSnaplogScenario(server, runner, options, "bench-h24", "snaplog-h24", 86400, data),
      )) ?? [];
  if (wanted("multi")) {
    const settings: MultiConnectionSettings = {
      sizeBytes: sizeToBytes(options.size),
      runtimeSeconds: options.runtimeSeconds,
      rampSeconds: options.rampSeconds,
      connections: MULTI_CONNECTIONS,
      jobs: options.jobs,
      scratch: scratch!,
      log,
    };
    data.multiConnection = { connections: MULTI_CONNECTIONS, results: [] };
    const results = data.multiConnection.results;
    await step("snaplog, 4 connections", data, async () => {
      await server.api.createDisk({ name: "bench-mc", sizeBytes: settings.sizeBytes });
      log(`scenario multi: disk bench-mc, ${MULTI_CONNECTIONS} connections, jobs ${options.jobs.join(",")}`);
      for (const result of await runMultiConnectionSnaplog(server.nbdSocket, "bench-mc", server.pid, settings)) results.push(result);
      await server.api.deleteDisk("bench-mc");
    });
    if (options.peers.length > 0)
      await step("peers, 4 connections", data, async () => {
        for (const result of await runMultiConnectionPeers(options.peers, settings)) results.push(result);
      });
  }
  if (wanted("snapshots")) await step("snapshot read", data, () => runSnapshotScenario(server, runner, options, data.snapshot));
  if (wanted("history")) {
    data.history = await step("history", data, () =>
      runHistoryScenarios({
        running,
        harness: runner,
        cliPath,
        storePath,
        scratch: scratch!,
        quick: options.quick,
        log,
        step: (name, body) => step(`history: ${name}`, data, body),
      }),
    );
  }

  if (wanted("recovery")) {
    data.recovery = await step("recovery", data, () =>
      runRecoveryScenarios({
        cliPath,
        scratch: scratch!,
        quick: options.quick,
        log,
        step: (name, body) => step(`recovery: ${name}`, data, body),
      }),
    );
  }

  // The history scenario may have restarted the server.
  const last = running.server;
  if (last !== undefined) {
    log(`stopping snaplog serve (pid ${last.pid}) before the peers`);
    await last.stop();
  }
  running.server = undefined;
  if (options.peers.length > 0) {
    log(`peers: ${options.peers.join(",")}`);
    data.peers = (await step("peers", data, () => runner.run({ peers: options.peers, jobs: options.jobs, prefill: true }))) ?? [];
  }

  data.finishedAt = new Date();
  if (interrupted) return 130;
  const all = [
    ...data.snaplog,
    ...data.snaplogNoHistory,
    ...data.snaplogDay,
    ...(data.multiConnection?.results ?? []),
    ...[data.snapshot.none, data.snapshot.current, data.snapshot.snapshotExport].filter((r) => r !== undefined),
    ...data.peers,
  ];
  if (options.jsonPath !== undefined) writeFileSync(options.jsonPath, all.map((result) => JSON.stringify(result)).join("\n") + "\n");
  writeFileSync(options.outPath, renderReport(data, preservedAnalysis(options.outPath), preservedSeparateRuns(options.outPath)));
  log(`wrote ${options.outPath}`);
  return data.errors.length > 0 ? 1 : 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  if (!interrupted) {
    log(`error: ${(error as Error).message}`);
    if (running.server !== undefined) log(`server log: ${tail(running.server.logPath, 10)}`);
  }
} finally {
  await cleanup();
}
if (!interrupted) process.exit(exitCode);
