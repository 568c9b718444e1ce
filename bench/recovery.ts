/**
 * The recovery-at-scale scenario of `npm run bench` (issue 7): how long `snaplog serve` takes to
 * start, and how much memory it takes doing it, when a disk must be recovered from
 *
 *  - a full journal of the smallest records: a disk of 512-byte blocks whose journal is just
 *    under its rotation size, made of one-block writes each followed by a FLUSH (96 journal
 *    bytes per write: about 700,000 writes, 1.4 million records; written by the engine's record
 *    encoder, test/support/journal-filler.ts). The server starts on it (the first open replays
 *    it all), is killed with SIGKILL at once, and starts again: that second start is measured;
 *  - 10⁷ live entries: a disk of 512-byte blocks written whole (5 GiB, 1 MiB sequential writes,
 *    every version kept), stopped cleanly and started (the checkpoint alone), then killed 5 s
 *    into a 4 KiB random write load and started (checkpoint plus journal replay).
 *
 * Each measurement is spawn to listening (node's start-up included) in a store of its own, and
 * the server's peak resident memory (VmHWM) right after it listens.
 */
import { mkdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { JOURNAL_CHECKPOINT_BYTES } from "../src/engine/index.js";
import { fillJournal } from "../test/support/journal-filler.js";
import { fio, killUnderWriteLoad } from "./fio.js";
import { runCli, startServer, type SnaplogServer } from "./server.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface RecoveryStart {
  seconds: number;
  /** Peak resident memory of the server process when it started listening. */
  rssPeakBytes: number;
}

export interface FullJournalRecovery {
  writes: number;
  records: number;
  journalBytes: number;
  afterKill: RecoveryStart;
}

export interface ManyEntriesRecovery {
  entries: number;
  logBytes: number;
  clean: RecoveryStart;
  journalBytesAtKill: number;
  afterKill: RecoveryStart;
}

export interface RecoveryResults {
  fullJournal?: FullJournalRecovery;
  manyEntries?: ManyEntriesRecovery;
}

export interface RecoveryContext {
  cliPath: string;
  scratch: string;
  quick: boolean;
  log(message: string): void;
  step<T>(name: string, body: () => Promise<T>): Promise<T | undefined>;
}

function peakRssBytes(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match === null ? 0 : Number(match[1]) * 1024;
}

async function timedStart(
  context: RecoveryContext,
  storePath: string,
  scratch: string,
): Promise<{ server: SnaplogServer; start: RecoveryStart }> {
  const started = process.hrtime.bigint();
  const server = await startServer(context.cliPath, storePath, scratch);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { server, start: { seconds, rssPeakBytes: peakRssBytes(server.pid) } };
}

async function newStore(context: RecoveryContext, name: string): Promise<{ storePath: string; scratch: string }> {
  const scratch = path.join(context.scratch, name);
  mkdirSync(scratch, { recursive: true });
  const storePath = path.join(scratch, "store");
  await runCli(context.cliPath, ["--store", storePath, "init"]);
  return { storePath, scratch };
}

async function fullJournal(context: RecoveryContext): Promise<FullJournalRecovery> {
  const { storePath, scratch } = await newStore(context, "recovery-journal");
  await runCli(context.cliPath, ["--store", storePath, "disk", "create", "d", "--size", "64M", "--block-size", "512"]);
  const fill = fillJournal({
    diskDirectory: path.join(storePath, "disks", "d"),
    blockSizeBytes: 512,
    blockCount: 100_000,
    journalBytesMax: JOURNAL_CHECKPOINT_BYTES - 64 * 1024,
    snapshotEvery: 100_000,
    lunFirst: 100,
    timeFirstMs: Date.now() - 20 * 60 * 1000,
  });
  context.log(
    `recovery: a full journal of ${fill.recordCount.toLocaleString("en-US")} records (${fill.writeCount.toLocaleString("en-US")} one-block writes, each with a FLUSH)`,
  );
  const first = await timedStart(context, storePath, scratch);
  await first.server.kill();
  const again = await timedStart(context, storePath, scratch);
  await again.server.stop();
  return { writes: fill.writeCount, records: fill.recordCount, journalBytes: fill.journalBytes, afterKill: again.start };
}

async function manyEntries(context: RecoveryContext, logBytes: number): Promise<ManyEntriesRecovery> {
  const { storePath, scratch } = await newStore(context, "recovery-entries");
  await runCli(context.cliPath, ["--store", storePath, "disk", "create", "d", "--size", String(logBytes), "--block-size", "512"]);
  let server = await startServer(context.cliPath, storePath, scratch);
  context.log(
    `recovery: ${logBytes / GiB} GiB written to a disk of 512-byte blocks (${(logBytes / 512).toLocaleString("en-US")} live entries)`,
  );
  await fio(server.unixUri("d"), ["--rw=write", "--bs=1m", "--iodepth=8", `--size=${logBytes}`]);
  const shown = await server.api.showDisk("d");
  await server.stop();
  const clean = await timedStart(context, storePath, scratch);
  server = clean.server;
  const journalBytesAtKill = await killUnderWriteLoad(server, "d", logBytes);
  const killed = await timedStart(context, storePath, scratch);
  await killed.server.stop();
  return { entries: shown.entryCount, logBytes: shown.logBytes, clean: clean.start, journalBytesAtKill, afterKill: killed.start };
}

export async function runRecoveryScenarios(context: RecoveryContext): Promise<RecoveryResults> {
  return {
    fullJournal: await context.step("full journal", () => fullJournal(context)),
    manyEntries: await context.step("10^7 entries", () => manyEntries(context, context.quick ? 256 * MiB : 5 * GiB)),
  };
}
