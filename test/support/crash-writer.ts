/**
 * The crash test's writer: a separate process (so that the test process stays a pure checker)
 * that drives a running `snaplog serve` with a pipelined write load until it is killed, and
 * journals everything it knows in the format described in crash-model.ts.
 *
 * Per disk, one NBD connection runs a stream of requests generated from (seed, round, disk):
 * WRITEs aligned to the 4 KiB block (4-64 KiB) and sector-aligned but block-unaligned ones
 * (512 B-32 KiB, so the server's read-modify-write path runs), WRITE_ZEROES and TRIM (aligned or
 * not), FLUSHes at random points, and FUA on some writes. Up to depthMax requests are in flight.
 * Half the requests land in a small hot region, so versions pile up on the same sectors.
 *
 * One client rule: a request that covers a block only partly (so the server must read and
 * merge it) is not sent while another request on that block is in flight, and no request is sent
 * while such a partial one is in flight on its blocks. See the report on the read-modify-write
 * race; SNAPLOG_CRASH_RMW_RACE=1 turns the rule off.
 *
 * Snapshots are created at the configured moments (some with the disk's stream quiesced, so
 * their content is known exactly) through the running server's API socket or the CLI (`snaplog -s STORE --json snapshot create DISK --name NAME`, which goes through the
 * same socket), journaled before they start and after they return, and then read in full over
 * NBD (export DISK@NAME) to journal their SHA-256.
 *
 * Run only by the test, with `--crash-writer-config JSON`; without it (e.g. when the test runner
 * loads every file under dist/test) it does nothing.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import http from "node:http";
import { hashExport, NbdClient, NbdClosedError, NbdRequestError, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE } from "./nbd-client.js";
import {
  mix,
  Prng,
  SECTOR_BYTES,
  ID_LIMIT,
  writePayload,
  WRITER_CONFIG_FLAG,
  type WriterConfig,
  type WriterDiskConfig,
} from "./crash-model.js";

const BLOCK_BYTES = 4096;
const HOT_REGION_BYTES = 2 * 1024 * 1024;
/** The writer ends itself if nobody killed it by then (a parent that died). */
const SELF_EXIT_MS = 120_000;

/** Appends journal lines with write(2); `commit` hands them to the kernel before requests go out. */
class Journal {
  private readonly fd: number;
  private lines: string[] = [];
  private clockNext = 1;

  constructor(path: string) {
    this.fd = openSync(path, "a");
  }

  tick(): number {
    return this.clockNext++;
  }

  add(line: string): void {
    this.lines.push(line);
  }

  commit(): void {
    if (this.lines.length === 0) return;
    const text = this.lines.join("\n") + "\n";
    this.lines = [];
    writeSync(this.fd, text);
  }

  close(): void {
    this.commit();
    closeSync(this.fd);
  }
}

type Kind = "W" | "Z" | "T" | "F";

interface Request {
  id: number;
  kind: Kind;
  offsetBytes: number;
  lengthBytes: number;
  flags: number;
  /** Blocks [first, end) the request touches, and the partial (read-merged) ones among them. */
  blockFirst: number;
  blockEnd: number;
  partialBlocks: number[];
}

let idNext = 1;

/** One disk's request stream over one connection. */
class Stream {
  private readonly prng: Prng;
  private readonly inflight = new Set<Request>();
  private held: Request | undefined;
  private stopped = false;
  private readonly hotStartBytes: number;
  /** Per round and disk: from rare FLUSHes (much acknowledged but not durable at the kill) to frequent ones. */
  private readonly flushProbability: number;
  private readonly fuaProbability: number;

  constructor(
    private readonly config: WriterConfig,
    private readonly disk: WriterDiskConfig,
    private readonly client: NbdClient,
    private readonly journal: Journal,
    private readonly raceAllowed: boolean,
  ) {
    this.prng = new Prng(mix(config.seed, config.round, disk.diskTag));
    const hotBlocks = HOT_REGION_BYTES / BLOCK_BYTES;
    this.hotStartBytes = this.prng.below(client.sizeBytes / BLOCK_BYTES - hotBlocks) * BLOCK_BYTES;
    this.flushProbability = [0.002, 0.01, 0.03, 0.08][this.prng.below(4)];
    this.fuaProbability = [0.01, 0.05, 0.15][this.prng.below(3)];
  }

  start(): void {
    this.pump();
  }

  /** Sends nothing more until resume(); resolves once no request is in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    while (this.inflight.size > 0 && !this.stopped) await new Promise((resolve) => setTimeout(resolve, 1));
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  private paused = false;

  /** Sends requests until depthMax are in flight or the next one must wait for a conflict. */
  private pump(): void {
    const sending: Request[] = [];
    while (!this.stopped && !this.paused && this.inflight.size < this.config.depthMax) {
      const request = this.held ?? this.generate();
      this.held = undefined;
      if (this.conflicts(request)) {
        this.held = request;
        break;
      }
      this.inflight.add(request);
      this.journal.add(
        `I ${this.disk.name} ${request.id} ${this.journal.tick()} ${request.kind} ${request.offsetBytes} ${request.lengthBytes} ${request.flags}`,
      );
      sending.push(request);
    }
    // Issued lines reach the kernel before any of these requests leaves the process.
    this.journal.commit();
    for (const request of sending) this.send(request);
  }

  private send(request: Request): void {
    let done: Promise<unknown>;
    switch (request.kind) {
      case "W": {
        const payload = writePayload(
          this.config.seed,
          this.disk.diskTag,
          this.config.round,
          request.id,
          request.offsetBytes,
          request.lengthBytes,
        );
        done = this.client.write(request.offsetBytes, payload, { fua: (request.flags & CMD_FLAG_FUA) !== 0 });
        break;
      }
      case "Z":
        done = this.client.writeZeroes(request.offsetBytes, request.lengthBytes, {
          fua: (request.flags & CMD_FLAG_FUA) !== 0,
          noHole: (request.flags & CMD_FLAG_NO_HOLE) !== 0,
        });
        break;
      case "T":
        done = this.client.trim(request.offsetBytes, request.lengthBytes, { fua: (request.flags & CMD_FLAG_FUA) !== 0 });
        break;
      case "F":
        done = this.client.flush();
        break;
    }
    done.then(
      () => this.replied(request, 0),
      (error: unknown) => {
        if (error instanceof NbdRequestError) this.replied(request, error.errno);
        else this.stop(error);
      },
    );
  }

  private replied(request: Request, errno: number): void {
    this.inflight.delete(request);
    this.journal.add(`A ${this.disk.name} ${request.id} ${this.journal.tick()} ${errno}`);
    this.journal.commit();
    // Replies of one socket chunk resolve in one microtask run; pump once they are all in.
    if (!this.pumpQueued) {
      this.pumpQueued = true;
      setImmediate(() => {
        this.pumpQueued = false;
        this.pump();
      });
    }
  }

  private pumpQueued = false;

  private stop(error: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    if (!(error instanceof NbdClosedError)) {
      this.journal.add(`X ${this.disk.name}: ${String((error as Error)?.message ?? error).replace(/\n/g, " ")}`);
      this.journal.commit();
    }
  }

  private conflicts(request: Request): boolean {
    if (this.raceAllowed || request.kind === "F") return false;
    for (const other of this.inflight) {
      if (other.kind === "F") continue;
      for (const block of request.partialBlocks) if (block >= other.blockFirst && block < other.blockEnd) return true;
      for (const block of other.partialBlocks) if (block >= request.blockFirst && block < request.blockEnd) return true;
    }
    return false;
  }

  private generate(): Request {
    const prng = this.prng;
    const id = idNext++;
    if (id >= ID_LIMIT) throw new Error("too many requests in one round");
    const roll = prng.float();
    if (roll < this.flushProbability) return this.request(id, "F", 0, 0, 0);
    const kind: Kind = roll < 0.8 ? "W" : roll < 0.9 ? "Z" : "T";
    const aligned = prng.chance(0.6);
    let lengthBytes: number;
    if (aligned) lengthBytes = prng.between(1, 16) * BLOCK_BYTES;
    else lengthBytes = prng.between(1, 64) * SECTOR_BYTES;
    const unit = aligned ? BLOCK_BYTES : SECTOR_BYTES;
    let offsetBytes: number;
    if (prng.chance(0.5)) {
      offsetBytes = this.hotStartBytes + prng.below((HOT_REGION_BYTES - lengthBytes) / unit + 1) * unit;
    } else {
      offsetBytes = prng.below((this.client.sizeBytes - lengthBytes) / unit + 1) * unit;
    }
    let flags = 0;
    if (prng.chance(this.fuaProbability)) flags |= CMD_FLAG_FUA;
    if (kind === "Z" && prng.chance(0.5)) flags |= CMD_FLAG_NO_HOLE;
    return this.request(id, kind, offsetBytes, lengthBytes, flags);
  }

  private request(id: number, kind: Kind, offsetBytes: number, lengthBytes: number, flags: number): Request {
    const blockFirst = Math.floor(offsetBytes / BLOCK_BYTES);
    const blockEnd = Math.ceil((offsetBytes + lengthBytes) / BLOCK_BYTES);
    const partialBlocks: number[] = [];
    if (kind !== "F") {
      if (offsetBytes % BLOCK_BYTES !== 0) partialBlocks.push(blockFirst);
      if ((offsetBytes + lengthBytes) % BLOCK_BYTES !== 0 && !partialBlocks.includes(blockEnd - 1)) partialBlocks.push(blockEnd - 1);
    }
    return { id, kind, offsetBytes, lengthBytes, flags, blockFirst, blockEnd, partialBlocks };
  }
}

// ---- Snapshots ------------------------------------------------------------------------------------

function createViaApi(socketPath: string, disk: string, name: string): Promise<{ lsn: number }> {
  const body = Buffer.from(JSON.stringify({ name }));
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        socketPath,
        method: "POST",
        path: `/v1/disks/${encodeURIComponent(disk)}/snapshots`,
        headers: { "content-type": "application/json", "content-length": body.length },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (response.statusCode !== 201) reject(new Error(`HTTP ${response.statusCode}: ${text}`));
          else resolve(JSON.parse(text) as { lsn: number });
        });
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

function createViaCli(config: WriterConfig, disk: string, name: string): Promise<{ lsn: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [config.cliPath, "-s", config.storePath, "--json", "snapshot", "create", disk, "--name", name], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`exit ${code}: ${Buffer.concat(err).toString("utf8").trim()}`));
      else resolve(JSON.parse(Buffer.concat(out).toString("utf8")) as { lsn: number });
    });
  });
}

async function takeSnapshot(
  config: WriterConfig,
  journal: Journal,
  snapshot: WriterConfig["snapshots"][number],
  stream: Stream,
): Promise<void> {
  const disk = config.disks.find((candidate) => candidate.name === snapshot.disk);
  if (disk === undefined) throw new Error(`no disk ${snapshot.disk}`);
  if (snapshot.quiesce) await stream.pause();
  journal.add(`S ${snapshot.disk} ${snapshot.name} ${journal.tick()} ${snapshot.via}`);
  journal.commit();
  let created: { lsn: number };
  try {
    created =
      snapshot.via === "api"
        ? await createViaApi(config.apiSocketPath, snapshot.disk, snapshot.name)
        : await createViaCli(config, snapshot.disk, snapshot.name);
  } catch (error) {
    journal.add(`SE ${snapshot.disk} ${snapshot.name} ${journal.tick()} ${String((error as Error).message).replace(/\n/g, " ")}`);
    journal.commit();
    return;
  }
  journal.add(`SD ${snapshot.disk} ${snapshot.name} ${journal.tick()} ${created.lsn}`);
  journal.commit();
  if (snapshot.quiesce) stream.resume();
  const digest = await hashExport(disk.target, `${snapshot.disk}@${snapshot.name}`);
  journal.add(`SH ${snapshot.disk} ${snapshot.name} ${digest}`);
  journal.commit();
}

// ---- Main -----------------------------------------------------------------------------------------

async function main(config: WriterConfig): Promise<void> {
  setTimeout(() => process.exit(3), SELF_EXIT_MS);
  const journal = new Journal(config.journalPath);
  const raceAllowed = process.env.SNAPLOG_CRASH_RMW_RACE === "1";
  const clients = await Promise.all(config.disks.map((disk) => NbdClient.connect(disk.target, disk.name)));
  journal.add(`R ${journal.tick()}`);
  journal.commit();
  process.stdout.write("ready\n");
  const streams = new Map(config.disks.map((disk, index) => [disk.name, new Stream(config, disk, clients[index], journal, raceAllowed)]));
  for (const stream of streams.values()) stream.start();
  for (const snapshot of config.snapshots) {
    setTimeout(() => {
      takeSnapshot(config, journal, snapshot, streams.get(snapshot.disk)!).catch((error: unknown) => {
        if (error instanceof NbdClosedError || (error as NodeJS.ErrnoException).code === "ECONNREFUSED") return;
        journal.add(`X snapshot ${snapshot.name}: ${String((error as Error).message).replace(/\n/g, " ")}`);
        journal.commit();
      });
    }, snapshot.delayMs);
  }
}

const flagIndex = process.argv.indexOf(WRITER_CONFIG_FLAG);
if (flagIndex >= 0) {
  main(JSON.parse(process.argv[flagIndex + 1]) as WriterConfig).catch((error: unknown) => {
    process.stderr.write(`crash-writer: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(2);
  });
}
