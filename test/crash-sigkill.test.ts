/**
 * Goal: SPEC §2 Durability and "Snapshots never change" hold when the real server is killed
 * with SIGKILL under load, again and again on the same store, and the server comes back each
 * time without manual cleanup (stale lock, stale API and NBD sockets).
 *
 * Method. One store with two 64 MiB disks of 4 KiB blocks: `d` (empty, history window 0, so
 * overwritten versions are reclaimed and their slots reused) and `b` (created with --from a
 * random raw image, so the baseline path is covered; default window). Each round:
 *   1. a writer process (test/support/crash-writer.ts) drives `snaplog serve` over NBD — pipelined
 *      aligned and unaligned writes with content derived from (seed, round, id), WRITE_ZEROES,
 *      TRIM, FLUSH and FUA — takes snapshots through the API socket and the CLI, and journals
 *      every request before it is sent and every reply when it arrives (crash-model.ts);
 *   2. 50-800 ms into the load the server is SIGKILLed, then the writer (with its children);
 *   3. the server is started again on the same store, and this process — a pure checker —
 *      reads everything back with a fresh NBD client and checks, per 512-byte sector:
 *        - a durable version (FUA reply, or the reply of a FLUSH sent after its reply) reads back,
 *          unless a write that may have landed after it covers the sector: the allowed versions
 *          are exactly those that did not finish before a durable one was sent;
 *        - nothing else ever appears: every sector is the round's starting content, or a version
 *          some request of the round put there (checked byte for byte), never bytes nobody wrote;
 *        - no 4 KiB block is torn: if a block shows a write anywhere, every sector of the block
 *          that write covers shows it or something that may have landed after it;
 *      and per snapshot: every snapshot the API/CLI reported as created is listed after the
 *      restart with the same LSN; a new snapshot holds every write acknowledged before its
 *      creation started and nothing issued after it returned; its SHA-256 equals what the
 *      writer read right after creating it, and stays the same in every later round.
 * What was read back becomes the starting content of the next round (the model carries over).
 *
 * Deterministic from a seed: the request streams, snapshot moments and kill delays derive from
 * it (the exact crash point still depends on timing). The seed is in every failure message;
 * SNAPLOG_CRASH_SEED replays it, SNAPLOG_CRASH_ROUNDS sets the number of rounds (default 25).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomInt } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NbdClient } from "./support/nbd-client.js";
import { tempDir } from "./support/temp-dir.js";
import {
  baselineImage,
  describeKey,
  isZero,
  mix,
  Prng,
  readSectorHeader,
  SECTOR_BYTES,
  sectorIsVersion,
  versionKey,
  WRITER_CONFIG_FLAG,
  type NbdTargetConfig,
  type WriterConfig,
} from "./support/crash-model.js";

const cliPath = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const writerPath = fileURLToPath(new URL("./support/crash-writer.js", import.meta.url));

const roundCount = Number(process.env.SNAPLOG_CRASH_ROUNDS ?? 25);
const seed = process.env.SNAPLOG_CRASH_SEED !== undefined ? Number(process.env.SNAPLOG_CRASH_SEED) >>> 0 : randomInt(2 ** 32);
const diskSizeBytes = 64 * 1024 * 1024;
const blockBytes = 4096;
const sectorsPerBlock = blockBytes / SECTOR_BYTES;
/** Not a multiple of the sector or block size: the baseline's last sector is part image, part zeros. */
const imageBytes = 40 * 1024 * 1024 + 3 * SECTOR_BYTES + 100;
const killDelayMsMin = 50;
const killDelayMsMax = 800;
const startTimeoutMs = 20_000;
const readChunkBytes = 1024 * 1024;
/** Older snapshots re-read in full per round (besides the new ones); all are listed every round. */
const snapshotRecheckCount = 1;
const failureLinesMax = 25;
const verbose = process.env.SNAPLOG_CRASH_VERBOSE === "1";

// ---- Child processes ------------------------------------------------------------------------------

const children = new Set<{ child: ChildProcess; group: boolean }>();

function killChild(entry: { child: ChildProcess; group: boolean }): void {
  const pid = entry.child.pid;
  if (pid === undefined || entry.child.exitCode !== null || entry.child.signalCode !== null) return;
  try {
    // The writer runs in its own process group, so its snapshot CLI children die with it.
    if (entry.group) process.kill(-pid, "SIGKILL");
    else process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

after(() => {
  for (const entry of children) killChild(entry);
});

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

function cli(storePath: string, ...args: string[]): string {
  const result = spawnSync(process.execPath, [cliPath, "-s", storePath, ...args], { encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) throw new Error(`snaplog ${args.join(" ")} exited ${result.status}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** Runs the CLI without blocking the event loop. */
function cliAsync(storePath: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, "-s", storePath, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const entry = { child, group: false };
    children.add(entry);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      children.delete(entry);
      if (code === 0) resolve(stdout);
      else reject(new Error(`snaplog ${args.join(" ")} exited ${code}: ${stderr.trim()}`));
    });
  });
}

interface Server {
  child: ChildProcess;
  tcp: { host: string; port: number };
  stderrTail(): string;
}

/** `snaplog --json serve`; resolves once it printed its endpoints (it listens then). */
async function startServer(storePath: string, nbdSocketPath: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    [cliPath, "-s", storePath, "--json", "serve", "--nbd", "127.0.0.1:0", "--nbd-socket", nbdSocketPath],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
    },
  );
  children.add({ child, group: false });
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const endpoints = await new Promise<{ nbd: string[] }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serve printed no endpoints in ${startTimeoutMs} ms; stderr: ${stderr}`)),
      startTimeoutMs,
    );
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      try {
        const parsed = JSON.parse(stdout) as { nbd: string[] };
        clearTimeout(timer);
        resolve(parsed);
      } catch {
        // Not complete yet.
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening; stderr: ${stderr}`));
    });
  });
  const tcpUrl = endpoints.nbd.find((url) => url.startsWith("nbd://"));
  assert.ok(tcpUrl !== undefined, `serve reported no TCP endpoint: ${JSON.stringify(endpoints)}`);
  const address = new URL(tcpUrl);
  return { child, tcp: { host: address.hostname, port: Number(address.port) }, stderrTail: () => stderr };
}

async function startWriter(config: WriterConfig): Promise<ChildProcess> {
  const child = spawn(process.execPath, [writerPath, WRITER_CONFIG_FLAG, JSON.stringify(config)], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  children.add({ child, group: true });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`writer not ready in ${startTimeoutMs} ms; stderr: ${stderr}`)), startTimeoutMs);
    child.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`writer exited (${code ?? signal}) before ready; stderr: ${stderr}`));
    });
  });
  return child;
}

// ---- The journal of one round -----------------------------------------------------------------------

interface Op {
  disk: string;
  id: number;
  kind: "W" | "Z" | "T" | "F";
  offsetBytes: number;
  lengthBytes: number;
  fua: boolean;
  issue: number;
  /** Clock of the reply; Infinity when none came. */
  ack: number;
  errno: number;
  durable: boolean;
  key: number;
}

interface SnapshotEvent {
  disk: string;
  name: string;
  round: number;
  issue: number;
  /** Clock when the create returned; Infinity when it never did. */
  done: number;
  lsn?: number;
  writerHash?: string;
}

interface RoundJournal {
  ops: Op[];
  snapshots: SnapshotEvent[];
  notes: string[];
}

function parseJournal(text: string, round: number): RoundJournal {
  const ops = new Map<string, Op>();
  const snapshots = new Map<string, SnapshotEvent>();
  const notes: string[] = [];
  const lines = text.split("\n");
  // A line without its newline was cut by the kill.
  if (!text.endsWith("\n")) lines.pop();
  for (const line of lines) {
    if (line === "") continue;
    const fields = line.split(" ");
    switch (fields[0]) {
      case "I": {
        const [, disk, id, clock, kind, offset, length, flags] = fields;
        ops.set(`${disk}/${id}`, {
          disk,
          id: Number(id),
          kind: kind as Op["kind"],
          offsetBytes: Number(offset),
          lengthBytes: Number(length),
          fua: (Number(flags) & 1) !== 0,
          issue: Number(clock),
          ack: Infinity,
          errno: 0,
          durable: false,
          key: kind === "W" ? versionKey(round, Number(id)) : 0,
        });
        break;
      }
      case "A": {
        const op = ops.get(`${fields[1]}/${fields[2]}`);
        assert.ok(op !== undefined, `journal: reply to a request never issued: ${line}`);
        op.ack = Number(fields[3]);
        op.errno = Number(fields[4]);
        break;
      }
      case "S":
        snapshots.set(`${fields[1]}@${fields[2]}`, { disk: fields[1], name: fields[2], round, issue: Number(fields[3]), done: Infinity });
        break;
      case "SD": {
        const snapshot = snapshots.get(`${fields[1]}@${fields[2]}`)!;
        snapshot.done = Number(fields[3]);
        snapshot.lsn = Number(fields[4]);
        break;
      }
      case "SH":
        snapshots.get(`${fields[1]}@${fields[2]}`)!.writerHash = fields[3];
        break;
      case "SE":
      case "X":
        notes.push(line);
        break;
      case "R":
        break;
      default:
        assert.fail(`journal: unknown line ${line}`);
    }
  }
  markDurable([...ops.values()]);
  return { ops: [...ops.values()], snapshots: [...snapshots.values()], notes };
}

/** Durable: a FUA request that got its reply, or a reply followed by a FLUSH sent after it whose reply came. */
function markDurable(ops: Op[]): void {
  const flushIssueLast = new Map<string, number>();
  for (const op of ops) {
    if (op.kind === "F" && op.ack !== Infinity && op.errno === 0)
      flushIssueLast.set(op.disk, Math.max(flushIssueLast.get(op.disk) ?? -Infinity, op.issue));
  }
  for (const op of ops) {
    if (op.kind === "F" || op.ack === Infinity || op.errno !== 0) continue;
    op.durable = op.fua || op.ack < (flushIssueLast.get(op.disk) ?? -Infinity);
  }
}

// ---- The model of one disk -----------------------------------------------------------------------------

interface KnownSnapshot {
  name: string;
  lsn: number;
  hash: string;
  round: number;
  checkedRound: number;
}

class DiskModel {
  readonly sectorCount: number;
  /** What every byte read as after the last restart (or initially): the starting content of a round. */
  image: Buffer;
  readonly snapshots = new Map<string, KnownSnapshot>();
  /** Snapshots a create was started for, not seen yet (they may exist or not). */
  readonly pendingSnapshots = new Map<string, SnapshotEvent>();

  constructor(
    readonly name: string,
    readonly diskTag: number,
    readonly baseline: Buffer | undefined,
  ) {
    this.sectorCount = diskSizeBytes / SECTOR_BYTES;
    this.image = Buffer.alloc(diskSizeBytes);
    baseline?.copy(this.image);
  }
}

/** Per sector, the round's W/Z/T requests covering it, in issue order. */
function sectorOps(ops: Op[], disk: string): Map<number, Op[]> {
  const bySector = new Map<number, Op[]>();
  for (const op of ops) {
    if (op.disk !== disk || op.kind === "F") continue;
    const sectorFirst = op.offsetBytes / SECTOR_BYTES;
    for (let sector = sectorFirst; sector < sectorFirst + op.lengthBytes / SECTOR_BYTES; sector++) {
      let list = bySector.get(sector);
      if (list === undefined) bySector.set(sector, (list = []));
      list.push(op);
    }
  }
  return bySector;
}

/**
 * Which versions of a sector may be read. `anchors` are requests known to have landed (durable
 * ones after a crash; for a snapshot, those answered before its creation started): a version
 * that finished before an anchor was sent was certainly overwritten by it. The starting content
 * is allowed only without anchors.
 */
interface Allowed {
  initial: boolean;
  ops: Op[];
}

function allowedVersions(list: Op[], isAnchor: (op: Op) => boolean): Allowed {
  let anchorIssueLast = -Infinity;
  for (const op of list) if (isAnchor(op)) anchorIssueLast = Math.max(anchorIssueLast, op.issue);
  return { initial: anchorIssueLast === -Infinity, ops: list.filter((op) => !(op.ack < anchorIssueLast)) };
}

/**
 * Which versions a sector may be showing: "initial" and/or requests. Empty: bytes nobody wrote,
 * or a version that is not allowed. Zeros are ambiguous (any zeroing request, or zeros that were
 * there), so they can match several.
 */
type Match = "initial" | Op;

function matchSector(data: Buffer, offset: number, sector: number, model: DiskModel, allowed: Allowed): Match[] {
  const matches: Match[] = [];
  if (allowed.initial && data.compare(model.image, sector * SECTOR_BYTES, (sector + 1) * SECTOR_BYTES, offset, offset + SECTOR_BYTES) === 0)
    matches.push("initial");
  const header = readSectorHeader(data, offset);
  if (header !== undefined) {
    const op = allowed.ops.find((candidate) => candidate.kind === "W" && candidate.key === versionKey(header.round, header.id));
    if (
      op !== undefined &&
      header.diskTag === model.diskTag &&
      header.sector === sector &&
      sectorIsVersion(data, offset, seed, model.diskTag, header.round, header.id, sector)
    )
      matches.push(op);
  } else if (isZero(data, offset, SECTOR_BYTES)) {
    for (const op of allowed.ops) if (op.kind !== "W") matches.push(op);
  }
  return matches;
}

function describeSector(data: Buffer, offset: number, sector: number, model: DiskModel): string {
  if (data.compare(model.image, sector * SECTOR_BYTES, (sector + 1) * SECTOR_BYTES, offset, offset + SECTOR_BYTES) === 0)
    return "the round's starting content";
  const header = readSectorHeader(data, offset);
  if (header !== undefined) {
    const intact = sectorIsVersion(data, offset, seed, header.diskTag, header.round, header.id, header.sector);
    const misplaced =
      header.diskTag !== model.diskTag || header.sector !== sector
        ? ` (written for disk tag ${header.diskTag}, sector ${header.sector})`
        : "";
    return `${describeKey(versionKey(header.round, header.id))}${misplaced}${intact ? "" : " (damaged)"}`;
  }
  if (isZero(data, offset, SECTOR_BYTES)) return "zeros";
  if (
    model.baseline !== undefined &&
    data.compare(model.baseline, sector * SECTOR_BYTES, (sector + 1) * SECTOR_BYTES, offset, offset + SECTOR_BYTES) === 0
  )
    return "the baseline";
  return `unknown bytes ${data.subarray(offset, offset + 16).toString("hex")}…`;
}

function describeOp(op: Op): string {
  const reply = op.ack === Infinity ? "no reply" : op.errno !== 0 ? `errno ${op.errno}` : `reply@${op.ack}`;
  const name = op.kind === "W" ? describeKey(op.key) : `${op.kind === "Z" ? "zeroes" : "trim"} r#${op.id}`;
  return `${name} [${op.offsetBytes}+${op.lengthBytes}] sent@${op.issue} ${reply}${op.fua ? " FUA" : ""}${op.durable ? " durable" : ""}`;
}

/**
 * Checks one volume read in full against the model: each sector against its allowed versions,
 * then each block for tearing. Returns failure lines (empty when all is well).
 */
/** Failure lines per sector, with runs of neighbouring sectors that fail the same way merged. */
class SectorFailures {
  private readonly runs: { sectorFirst: number; sectorEnd: number; detail: string }[] = [];
  readonly other: string[] = [];

  constructor(private readonly what: string) {}

  add(sector: number, detail: string): void {
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && last.sectorEnd === sector && last.detail === detail) last.sectorEnd++;
    else this.runs.push({ sectorFirst: sector, sectorEnd: sector + 1, detail });
  }

  lines(): string[] {
    const runs = this.runs.map(({ sectorFirst, sectorEnd, detail }) => {
      const where = sectorEnd - sectorFirst === 1 ? `sector ${sectorFirst}` : `sectors ${sectorFirst}-${sectorEnd - 1}`;
      return `${this.what}: ${where} (bytes ${sectorFirst * SECTOR_BYTES}+${(sectorEnd - sectorFirst) * SECTOR_BYTES}) ${detail}`;
    });
    return [...runs, ...this.other];
  }
}

function checkContent(data: Buffer, model: DiskModel, bySector: Map<number, Op[]>, isAnchor: (op: Op) => boolean, what: string): string[] {
  const failures = new SectorFailures(what);
  const matches: Match[][] = new Array(sectorsPerBlock);
  for (let block = 0; block < diskSizeBytes / blockBytes; block++) {
    const sectorFirst = block * sectorsPerBlock;
    let touched = false;
    for (let index = 0; index < sectorsPerBlock; index++) if (bySector.has(sectorFirst + index)) touched = true;
    const blockOffset = block * blockBytes;
    if (!touched) {
      if (data.compare(model.image, blockOffset, blockOffset + blockBytes, blockOffset, blockOffset + blockBytes) !== 0) {
        for (let sector = sectorFirst; sector < sectorFirst + sectorsPerBlock; sector++) {
          const offset = sector * SECTOR_BYTES;
          if (data.compare(model.image, offset, offset + SECTOR_BYTES, offset, offset + SECTOR_BYTES) !== 0) {
            failures.add(sector, `not written this round, but reads ${describeSector(data, offset, sector, model)}`);
          }
        }
      }
      continue;
    }
    for (let index = 0; index < sectorsPerBlock; index++) {
      const sector = sectorFirst + index;
      const list = bySector.get(sector);
      const allowed: Allowed = list === undefined ? { initial: true, ops: [] } : allowedVersions(list, isAnchor);
      matches[index] = matchSector(data, sector * SECTOR_BYTES, sector, model, allowed);
      if (matches[index].length === 0) {
        const candidates = [...(allowed.initial ? ["starting content"] : []), ...allowed.ops.map(describeOp)];
        const history = (list ?? []).map(describeOp).join("; ");
        failures.add(
          sector,
          `reads ${describeSector(data, sector * SECTOR_BYTES, sector, model)}; allowed: ${candidates.join(", ") || "none"}; requests on it: ${history}`,
        );
      }
    }
    failures.other.push(...tornBlock(block, matches, what));
  }
  return failures.lines();
}

/** If a block shows write W in one sector, every sector W covers must show W or what may have landed after it. */
function tornBlock(block: number, matches: Match[][], what: string): string[] {
  const sectorFirst = block * sectorsPerBlock;
  const overwrittenBy = (match: Match, write: Op): boolean => match === "initial" || match.ack < write.issue;
  for (const shownMatches of matches) {
    // A sector that shows a write matches only that write.
    const shown = shownMatches.length === 1 ? shownMatches[0] : undefined;
    if (shown === undefined || shown === "initial" || shown.kind !== "W") continue;
    const coveredFirst = shown.offsetBytes / SECTOR_BYTES;
    const coveredEnd = coveredFirst + shown.lengthBytes / SECTOR_BYTES;
    for (let index = 0; index < sectorsPerBlock; index++) {
      const sector = sectorFirst + index;
      if (sector < coveredFirst || sector >= coveredEnd) continue;
      const others = matches[index];
      if (others.length === 0 || !others.every((other) => overwrittenBy(other, shown))) continue;
      const other = others[0];
      return [
        `${what}: block ${block} is torn: it shows ${describeOp(shown)}, but its sector ${sector} shows ${other === "initial" ? "the round's starting content" : describeOp(other)}, which that write overwrote`,
      ];
    }
  }
  return [];
}

// ---- Reading volumes ------------------------------------------------------------------------------------

async function readVolume(target: NbdTargetConfig, exportName: string): Promise<Buffer> {
  const client = await NbdClient.connect(target, exportName);
  try {
    assert.equal(client.sizeBytes, diskSizeBytes, `${exportName}: size`);
    const data = Buffer.allocUnsafe(client.sizeBytes);
    const depth = 4;
    for (let offset = 0; offset < client.sizeBytes; offset += depth * readChunkBytes) {
      const reads: Promise<void>[] = [];
      for (let index = 0; index < depth && offset + index * readChunkBytes < client.sizeBytes; index++) {
        const at = offset + index * readChunkBytes;
        reads.push(client.read(at, readChunkBytes).then((chunk) => void chunk.copy(data, at)));
      }
      await Promise.all(reads);
    }
    return data;
  } finally {
    await client.disconnect();
  }
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---- The test ---------------------------------------------------------------------------------------------

interface Context {
  storePath: string;
  nbdSocketPath: string;
  directory: string;
  models: DiskModel[];
  server: Server;
  /** Data requests over all rounds, to show the load did something. */
  totals: { answered: number; durable: number; unanswered: number };
}

function targetOf(context: Context, disk: string): NbdTargetConfig {
  // Disk d over the unix socket, b over TCP: both listeners are covered.
  return disk === "d" ? { path: context.nbdSocketPath } : context.server.tcp;
}

function planRound(context: Context, round: number): { config: WriterConfig; killDelayMs: number } {
  const prng = new Prng(mix(seed, round, 0x7e57));
  const snapshots: WriterConfig["snapshots"] = [];
  const snapshotCount = (prng.chance(0.75) ? 1 : 0) + (prng.chance(0.3) ? 1 : 0);
  for (let index = 0; index < snapshotCount; index++) {
    snapshots.push({
      delayMs: prng.between(0, 500),
      disk: prng.chance(0.5) ? "d" : "b",
      name: `r${round}-${index}`,
      via: prng.chance(0.35) ? "cli" : "api",
      quiesce: prng.chance(0.5),
    });
  }
  const config: WriterConfig = {
    seed,
    round,
    journalPath: join(context.directory, `journal-${round}.log`),
    storePath: context.storePath,
    cliPath,
    apiSocketPath: join(context.storePath, "api.sock"),
    disks: context.models.map((model) => ({ name: model.name, diskTag: model.diskTag, target: targetOf(context, model.name) })),
    depthMax: prng.between(4, 32),
    snapshots,
  };
  return { config, killDelayMs: prng.between(killDelayMsMin, killDelayMsMax) };
}

async function runRound(context: Context, round: number): Promise<string[]> {
  const { config, killDelayMs } = planRound(context, round);
  writeFileSync(config.journalPath, "");
  const writer = await startWriter(config);
  await new Promise((resolve) => setTimeout(resolve, killDelayMs));
  killChild({ child: context.server.child, group: false });
  killChild({ child: writer, group: true });
  await Promise.all([exited(context.server.child), exited(writer)]);

  const journal = parseJournal(readFileSync(config.journalPath, "utf8"), round);
  const failures: string[] = [];
  for (const op of journal.ops) if (op.errno !== 0) failures.push(`request failed: ${op.disk} ${describeOp(op)}`);

  // Rule 4: the same command starts again on the same store, no cleanup in between.
  const restartMs = Date.now();
  context.server = await startServer(context.storePath, context.nbdSocketPath);
  const checkMs = Date.now();
  for (const model of context.models) failures.push(...(await checkDisk(context, model, journal, round)));
  if (verbose) console.log(roundSummary(round, killDelayMs, journal, checkMs - restartMs, Date.now() - checkMs));
  for (const op of journal.ops) {
    if (op.kind === "F") continue;
    context.totals.answered += op.ack !== Infinity ? 1 : 0;
    context.totals.durable += op.durable ? 1 : 0;
    context.totals.unanswered += op.ack === Infinity ? 1 : 0;
  }
  if (failures.length > 0) failures.push(...journal.notes.map((note) => `writer note: ${note}`));
  return failures;
}

function roundSummary(round: number, killDelayMs: number, journal: RoundJournal, restartMs: number, checkMs: number): string {
  const count = (predicate: (op: Op) => boolean): number => journal.ops.filter(predicate).length;
  const data = (op: Op): boolean => op.kind !== "F";
  return [
    `round ${round}: kill after ${killDelayMs} ms`,
    `${count(data)} data requests (${count((op) => op.kind === "W" && (op.offsetBytes % blockBytes !== 0 || op.lengthBytes % blockBytes !== 0))} unaligned writes)`,
    `${count((op) => data(op) && op.ack !== Infinity)} answered, ${count((op) => op.durable)} durable, ${count((op) => op.kind === "F")} flushes`,
    `snapshots: ${journal.snapshots.map((snapshot) => `${snapshot.disk}@${snapshot.name}${snapshot.done !== Infinity ? " done" : ""}${snapshot.writerHash !== undefined ? " hashed" : ""}`).join(", ") || "none"}`,
    `restart ${restartMs} ms, check ${checkMs} ms`,
  ].join("; ");
}

async function checkDisk(context: Context, model: DiskModel, journal: RoundJournal, round: number): Promise<string[]> {
  const failures: string[] = [];
  const target = targetOf(context, model.name);
  const listing = cliAsync(context.storePath, "--json", "snapshot", "list", model.name);
  const bySector = sectorOps(journal.ops, model.name);
  const current = await readVolume(target, model.name);
  failures.push(...checkContent(current, model, bySector, (op) => op.durable, `${model.name} (round ${round})`));

  const listed = JSON.parse(await listing) as { name: string; lsn: number }[];
  const listedNames = new Map(listed.map((snapshot) => [snapshot.name, snapshot]));
  for (const event of journal.snapshots) if (event.disk === model.name) model.pendingSnapshots.set(event.name, event);
  for (const known of model.snapshots.values()) {
    const now = listedNames.get(known.name);
    if (now === undefined)
      failures.push(`snapshot ${model.name}@${known.name} (created in round ${known.round}) is gone after round ${round}`);
    else if (now.lsn !== known.lsn) failures.push(`snapshot ${model.name}@${known.name} moved from LSN ${known.lsn} to ${now.lsn}`);
  }
  for (const snapshot of listed) {
    if (model.snapshots.has(snapshot.name)) continue;
    const event = model.pendingSnapshots.get(snapshot.name);
    if (event === undefined) {
      failures.push(`snapshot ${model.name}@${snapshot.name} is listed but nobody created it`);
      continue;
    }
    failures.push(...(await checkNewSnapshot(context, model, event, snapshot.lsn, bySector, round)));
  }
  for (const [name, event] of model.pendingSnapshots) {
    if (event.done !== Infinity && !model.snapshots.has(name)) {
      failures.push(
        `snapshot ${model.name}@${name}: the ${event.round === round ? "" : "earlier "}create returned (LSN ${event.lsn}) but it is not listed after the restart`,
      );
    }
    // A create that never returned may or may not have happened; if it did not by now, it never will.
    model.pendingSnapshots.delete(name);
  }
  failures.push(...(await recheckSnapshots(context, model, round)));
  model.image = current;
  return failures;
}

async function checkNewSnapshot(
  context: Context,
  model: DiskModel,
  event: SnapshotEvent,
  lsn: number,
  bySector: Map<number, Op[]>,
  round: number,
): Promise<string[]> {
  const what = `snapshot ${model.name}@${event.name}`;
  const failures: string[] = [];
  if (event.lsn !== undefined && event.lsn !== lsn)
    failures.push(`${what}: created at LSN ${event.lsn}, listed at LSN ${lsn} after the restart`);
  const data = await readVolume(targetOf(context, model.name), `${model.name}@${event.name}`);
  const hash = sha256(data);
  if (event.writerHash !== undefined && event.writerHash !== hash)
    failures.push(`${what}: content changed since the writer read it right after creating it`);
  if (event.round === round) {
    // Issued after the create returned: cannot be in it. Answered before the create started: must be.
    const before = new Map<number, Op[]>();
    for (const [sector, list] of bySector) {
      const issued = list.filter((op) => op.issue < event.done);
      if (issued.length > 0) before.set(sector, issued);
    }
    failures.push(...checkContent(data, model, before, (op) => op.ack < event.issue && op.errno === 0, `${what} (round ${round})`));
  }
  model.snapshots.set(event.name, { name: event.name, lsn, hash, round: event.round, checkedRound: round });
  return failures;
}

/** Re-reads the snapshots checked longest ago: their content must never change. */
async function recheckSnapshots(context: Context, model: DiskModel, round: number): Promise<string[]> {
  const failures: string[] = [];
  const due = [...model.snapshots.values()]
    .filter((snapshot) => snapshot.checkedRound < round)
    .sort((a, b) => a.checkedRound - b.checkedRound);
  for (const snapshot of due.slice(0, snapshotRecheckCount)) {
    const hash = sha256(await readVolume(targetOf(context, model.name), `${model.name}@${snapshot.name}`));
    if (hash !== snapshot.hash)
      failures.push(`snapshot ${model.name}@${snapshot.name} (round ${snapshot.round}) changed by round ${round}`);
    snapshot.checkedRound = round;
  }
  return failures;
}

test(
  `SIGKILL under load: durable writes survive, nothing unwritten appears, snapshots never change (${roundCount} rounds)`,
  { timeout: 600_000 },
  async () => {
    const directory = tempDir("crash");
    const storePath = join(directory, "store");
    const nbdSocketPath = join(directory, "nbd.sock");
    const imagePath = join(directory, "baseline.img");
    const image = baselineImage(seed, imageBytes);
    writeFileSync(imagePath, image);
    const padded = Buffer.alloc(diskSizeBytes);
    image.copy(padded);

    cli(storePath, "init");
    cli(storePath, "disk", "create", "d", "--size", "64M", "--block-size", "4096", "--history", "0");
    const server = await startServer(storePath, nbdSocketPath);
    // Created through the running server's API.
    cli(storePath, "disk", "create", "b", "--size", "64M", "--block-size", "4096", "--from", imagePath);
    const context: Context = {
      storePath,
      nbdSocketPath,
      directory,
      models: [new DiskModel("d", 0xd, undefined), new DiskModel("b", 0xb, padded)],
      server,
      totals: { answered: 0, durable: 0, unanswered: 0 },
    };

    const startedMs = Date.now();
    for (let round = 1; round <= roundCount; round++) {
      const failures = await runRound(context, round);
      if (failures.length > 0) {
        const shown = failures.slice(0, failureLinesMax).join("\n  ");
        const more = failures.length > failureLinesMax ? `\n  … and ${failures.length - failureLinesMax} more` : "";
        assert.fail(
          `crash test failed in round ${round} of ${roundCount} (replay: SNAPLOG_CRASH_SEED=${seed} SNAPLOG_CRASH_ROUNDS=${round}):\n  ${shown}${more}\nserver stderr (tail): ${context.server.stderrTail()}`,
        );
      }
    }
    const snapshotTotal = context.models.reduce((sum, model) => sum + model.snapshots.size, 0);
    killChild({ child: context.server.child, group: false });
    await exited(context.server.child);
    const { answered, durable, unanswered } = context.totals;
    console.log(
      `crash-sigkill: seed ${seed}, ${roundCount} rounds, ${answered} data requests answered (${durable} durable), ${unanswered} in flight at a kill, ${snapshotTotal} snapshots checked, ${((Date.now() - startedMs) / 1000).toFixed(1)} s`,
    );
    // A load that did nothing would pass every check; make sure it did not.
    assert.ok(durable > 0 && unanswered > 0, `seed ${seed}: the writer made no durable writes or none were in flight at a kill`);
    if (roundCount >= 10) assert.ok(snapshotTotal > 0, `seed ${seed}: no snapshot was created in ${roundCount} rounds`);
  },
);
