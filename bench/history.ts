/**
 * The history scenarios of `npm run bench` (issue 3's numbers), run against the same
 * `snaplog serve` as the fio jobs:
 *
 *  - hot set: a 256 MiB hot set overwritten ten times (fio, 4 KiB random writes, and 1 MiB
 *    sequential passes) on a disk with a zero window and no snapshots, then `compact`: how much
 *    the log holds, and how much its files take, against the live data;
 *  - compaction: ten sequential passes over a hot set on a disk with a window (every version
 *    kept), then the window set to 0 and `compact`: GB of log scanned per second, freed, moved;
 *  - point in time: 4 KiB random reads (QD 32) of `DISK@lsn:N` (the disk before two more
 *    overwrite passes) against the current volume, through the shared harness;
 *  - open: `snaplog serve` start-up (spawn to listening) with a 4 GiB log, after a clean stop and
 *    after a SIGKILL in the middle of a write load.
 */
import { fio, killUnderWriteLoad } from "./fio.js";
import type { Harness, JobResult } from "./harness.js";
import { startServer, type SnaplogServer } from "./server.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface HotSetResult {
  pattern: string;
  liveBytes: number;
  /** Slots held by entries (live + dead) before and after compaction. */
  heldBytesBefore: number;
  heldBytesAfter: number;
  segmentBytesBefore: number;
  segmentBytesAfter: number;
  freeBytesAfter: number;
  segmentsReleased: number;
  writeMbPerSecond: number;
}

export interface CompactionThroughput {
  logBytesBefore: number;
  bytesScanned: number;
  bytesFreed: number;
  bytesMoved: number;
  entriesFreed: number;
  segmentsReleased: number;
  scanMs: number;
  durationMs: number;
  segmentBytesAfter: number;
  liveBytes: number;
}

export interface OpenTimes {
  logBytes: number;
  entries: number;
  cleanSeconds: number;
  killedSeconds: number;
  journalBytesAtKill: number;
}

export interface HistoryResults {
  hotSets: HotSetResult[];
  compaction?: CompactionThroughput;
  pointInTime?: { lsn: number; current?: JobResult; point?: JobResult; passesAfter: number };
  open?: OpenTimes;
}

/** The running server, one holder shared with the runner: the open scenario restarts the server and puts the new one here. */
export interface RunningServer {
  server: SnaplogServer | undefined;
}

export interface HistoryContext {
  running: RunningServer;
  harness: Harness;
  cliPath: string;
  storePath: string;
  scratch: string;
  quick: boolean;
  log(message: string): void;
  /** Runs one scenario; a failure is recorded in the run's errors and the run goes on. */
  step<T>(name: string, body: () => Promise<T>): Promise<T | undefined>;
}

function liveServer(context: HistoryContext): SnaplogServer {
  const server = context.running.server;
  if (server === undefined) throw new Error("snaplog serve is not running");
  return server;
}

async function space(server: SnaplogServer, disk: string) {
  return (await server.api.showDisk(disk)).space;
}

async function hotSet(context: HistoryContext, pattern: "random" | "sequential", hotBytes: number): Promise<HotSetResult> {
  const server = liveServer(context);
  const disk = `bench-hot-${pattern}`;
  await server.api.createDisk({ name: disk, sizeBytes: hotBytes, historySeconds: 0 });
  context.log(`hot set (${pattern}): ${hotBytes / MiB} MiB overwritten 10 times, window 0`);
  const shape = pattern === "random" ? ["--rw=randwrite", "--bs=4k", "--iodepth=32"] : ["--rw=write", "--bs=1m", "--iodepth=8"];
  const written = await fio(server.unixUri(disk), [...shape, `--size=${hotBytes}`, `--io_size=${10 * hotBytes}`]);
  const before = await space(server, disk);
  const compacted = await server.api.compact({ disk });
  const after = await space(server, disk);
  await server.api.deleteDisk(disk);
  return {
    pattern: pattern === "random" ? "4 KiB random writes, QD 32" : "1 MiB sequential passes, QD 8",
    liveBytes: after.logLiveBytes,
    heldBytesBefore: before.logLiveBytes + before.logDeadBytes,
    heldBytesAfter: after.logLiveBytes + after.logDeadBytes,
    segmentBytesBefore: before.segmentBytes,
    segmentBytesAfter: after.segmentBytes,
    freeBytesAfter: after.logFreeBytes,
    segmentsReleased: compacted.segmentsReleased,
    writeMbPerSecond: written.mbPerSecond,
  };
}

async function compactionThroughput(context: HistoryContext, hotBytes: number, passes: number): Promise<CompactionThroughput> {
  const server = liveServer(context);
  const disk = "bench-compact";
  await server.api.createDisk({ name: disk, sizeBytes: hotBytes });
  context.log(
    `compaction: ${passes} sequential passes over ${hotBytes / MiB} MiB with a window (every version kept), then window 0 and compact`,
  );
  await fio(server.unixUri(disk), ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${hotBytes}`, `--io_size=${passes * hotBytes}`]);
  const before = await space(server, disk);
  await server.api.setPolicy({ disk, historySeconds: 0 });
  const result = await server.api.compact({ disk });
  const after = await space(server, disk);
  await server.api.deleteDisk(disk);
  return {
    logBytesBefore: before.logLiveBytes + before.logDeadBytes,
    bytesScanned: result.bytesScanned,
    bytesFreed: result.bytesFreed,
    bytesMoved: result.bytesMoved,
    entriesFreed: result.entriesFreed,
    segmentsReleased: result.segmentsReleased,
    scanMs: result.scanMs,
    durationMs: result.durationMs,
    segmentBytesAfter: after.segmentBytes,
    liveBytes: after.logLiveBytes,
  };
}

async function pointInTimeRead(context: HistoryContext, sizeBytes: number): Promise<HistoryResults["pointInTime"]> {
  const server = liveServer(context);
  const disk = "bench-pit";
  await server.api.createDisk({ name: disk, sizeBytes });
  context.log(
    "point in time: prefill, then two random overwrite passes; randread-4k-qd32 on the point before them and on the current volume",
  );
  await fio(server.unixUri(disk), ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${sizeBytes}`]);
  const lsn = (await server.api.showDisk(disk)).lsnLast;
  const passesAfter = 2;
  await fio(server.unixUri(disk), [
    "--rw=randwrite",
    "--bs=4k",
    "--iodepth=32",
    `--size=${sizeBytes}`,
    `--io_size=${passesAfter * sizeBytes}`,
  ]);
  const job = ["randread-4k-qd32"];
  const pick = (results: JobResult[]) => results.find((result) => result.phase === "job");
  const current = pick(
    await context.harness.run({
      uri: server.unixUri(disk),
      label: "snaplog-pit-current",
      serverPid: server.pid,
      jobs: job,
      prefill: false,
    }),
  );
  const point = pick(
    await context.harness.run({
      uri: server.unixUri(`${disk}@lsn:${lsn}`),
      label: "snaplog-pit-point",
      serverPid: server.pid,
      jobs: job,
      prefill: false,
    }),
  );
  await server.api.deleteDisk(disk);
  return { lsn, current, point, passesAfter };
}

/** Seconds from spawning `snaplog serve` to its listening, on the store as it is; the new server is the running one. */
async function timedStart(context: HistoryContext): Promise<{ server: SnaplogServer; seconds: number }> {
  const started = process.hrtime.bigint();
  const server = await startServer(context.cliPath, context.storePath, context.scratch);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  context.running.server = server;
  return { server, seconds };
}

async function openTimes(context: HistoryContext, logBytes: number): Promise<OpenTimes> {
  let server = liveServer(context);
  const disk = "bench-open";
  await server.api.createDisk({ name: disk, sizeBytes: logBytes });
  context.log(
    `open: a ${logBytes / GiB} GiB log (1 MiB sequential writes, window kept), then clean stop / start, and SIGKILL under load / start`,
  );
  await fio(server.unixUri(disk), ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${logBytes}`]);
  const shown = await server.api.showDisk(disk);
  await server.stop();
  const clean = await timedStart(context);
  server = clean.server;
  const journalBytesAtKill = await killUnderWriteLoad(server, disk, logBytes);
  const killed = await timedStart(context);
  await killed.server.api.deleteDisk(disk);
  return {
    logBytes: shown.logBytes,
    entries: shown.entryCount,
    cleanSeconds: clean.seconds,
    killedSeconds: killed.seconds,
    journalBytesAtKill,
  };
}

export async function runHistoryScenarios(context: HistoryContext): Promise<HistoryResults> {
  const results: HistoryResults = { hotSets: [] };
  const hotBytes = context.quick ? 32 * MiB : 256 * MiB;
  for (const pattern of ["random", "sequential"] as const) {
    const result = await context.step(`hot set ${pattern}`, () => hotSet(context, pattern, hotBytes));
    if (result !== undefined) results.hotSets.push(result);
  }
  results.compaction = await context.step("compaction throughput", () => compactionThroughput(context, hotBytes, 10));
  results.pointInTime = await context.step("point-in-time read", () => pointInTimeRead(context, context.quick ? 64 * MiB : GiB));
  results.open = await context.step("open time", () => openTimes(context, context.quick ? 256 * MiB : 4 * GiB));
  return results;
}
