/**
 * The sending side of remote copy (SPEC §5.4): relations, kept in STORE/replication.json (the
 * receiver's token in STORE/replication-secrets/, owner-only), and run by the server
 * (Relations.start) — one loop per relation, across restarts of either side and network loss.
 *
 * A relation's loop: hello (the receiver says what it holds), then
 *   empty     a full compacted stream of the current volume (pinned) makes the replica;
 *   replica   it goes on from the acknowledged LSN, if that view is still here (it is pinned
 *             while the loop runs; after a restart, the history window or a snapshot must
 *             still hold it), else as diverged;
 *   diverged  both sides go back to the newest snapshot they share (by id) and go on from it;
 * then batches: every entry since the acknowledged LSN (continuous, as soon as there are
 * writes) or only the newest version of each block (compacted, every interval), ending at the
 * next snapshot cut if there is one (the receiver cuts it with the same name and time), and
 * snapshots deleted here are deleted there. Only acknowledged batches move the pin; a failed
 * batch is sent again from the acknowledged LSN, nothing acknowledged is sent twice. A receiver
 * that says the replica was promoted ends the relation (failover), with that reason.
 */
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { PassThrough } from "node:stream";
import { once } from "node:events";
import { ErrorCodes, invalidArgument, notFound, SnaplogError } from "../../util/errors.js";
import { readJsonFileIfExists, writeJsonFile } from "../../util/json-file.js";
import { CODEC_DEFAULT, SAVING_MIN, type CodecName, type StreamPoint } from "../../stream/index.js";
import type { DiskEngine } from "../../engine/index.js";
import type { Catalog } from "../catalog.js";
import type { OpenDisk } from "../open-disk.js";
import type { RelationInfo, RelationMode, ReplicaState, ReplicateRequest } from "../operations/index.js";
import { exportStream } from "../archive/export-stream.js";
import { LoopClock } from "../../util/loop-clock.js";
import { diskIdOf, snapshotIdOf, storeIdOf } from "../archive/identity.js";
import { parseReplicaUrl, ReplicaClient } from "./replica-client.js";

export const RELATIONS_FILE = "replication.json";
export const RELATION_SECRETS_DIRECTORY = "replication-secrets";
export const INTERVAL_MS_DEFAULT = 60_000;
/** Continuous mode looks for new writes this often. */
const POLL_MS = 20;
/** A continuous batch ends after about this many entries (when that view is available), so batches stay small. */
export const BATCH_ENTRIES_MAX = 4 * 1024;
/**
 * ... and at most this much of the source's time: a batch is acknowledged whole, so its oldest
 * write waits for its newest. At 10,000 writes/s, three batches of 4,096 in flight held 1.2 s of
 * writes, which was the lag whenever the sender fell behind for a moment.
 */
export const BATCH_SPAN_MS = 200;
/** Continuous batches sent ahead of their acknowledgement: the next is read and sent while the receiver applies one. */
const BATCHES_IN_FLIGHT = 3;
/** A batch that is not full starts at most this long after the one before: under steady writes, fewer and larger batches. */
const BATCH_GAP_MS = 100;
/**
 * While hosts write to the disk, batches take at most this share of the event loop's time (per
 * relation: --max-load): reading, framing and sending run on the loop that serves the hosts' I/O,
 * and on a busy appliance replication yields (the lag grows) rather than slowing the hosts down.
 * The share is of the sender's own time on the loop (util/loop-clock.ts), not of a batch's wall
 * time, which in a flood was mostly the hosts' own writes served meanwhile: the sender then got a
 * few percent and the lag grew by seconds. Idle hosts: no pacing (a backlog goes out at once).
 * 7: on the 2-core benchmark machine, with the receiver beside it and 200 ms batches, 7 kept
 * 0.85x of the source's 4K write IOPS in a flood at a lag p99 of 0.5 s, and 10 kept 0.78-0.79x at
 * 0.35-0.46 s (the targets are 0.8x and 1 s; BENCHMARKS.md "Remote copy").
 */
export const MAX_LOAD_PERCENT_DEFAULT = 7;
/**
 * A step of the sender (a frame of about 1 MiB, one read's log entries, one read's checksums)
 * takes 1-4 ms on the benchmark machine; a longer one was a collection or the thread waiting for a
 * core, and counted whole it held the next batch back nine times as long (a 50 ms step: 0.45 s).
 */
const SENDER_SECTION_MS_MAX = 5;
/** An idle relation still contacts the receiver this often (a promote there ends it; a lost replica state is noticed). */
const HEARTBEAT_MS = 2_000;
/**
 * A batch of at least COMPRESSION_CHECK_BYTES that compression did not shrink (by SAVING_MIN) makes the
 * next this many batches go uncompressed; then compression is tried again. Within one stream the
 * writer already stops trying after a few frames, but each batch is a new stream: for data that
 * does not compress (encrypted disks, random test data), a third of every batch was compressed
 * for nothing, and copied to be, on the loop that serves the hosts.
 */
const UNCOMPRESSED_BATCHES_AFTER_MISS = 16;
const COMPRESSION_CHECK_BYTES = 4 * 1024 * 1024;
const RETRY_MS_MIN = 500;
const RETRY_MS_MAX = 10_000;

interface RelationRecord {
  to: string;
  mode: RelationMode;
  intervalMs: number;
  /** Absent in relations set up before it existed: MAX_LOAD_PERCENT_DEFAULT. */
  maxLoadPercent?: number;
  createdAt: string;
  /** The source's LSN when the relation was set up (bytes written since are counted from it). */
  lsnAtCreate: number;
  ended?: { reason: string; at: string };
}

type RelationsFile = Record<string, RelationRecord>;

async function readRelations(storePath: string): Promise<RelationsFile> {
  return (await readJsonFileIfExists<RelationsFile>(path.join(storePath, RELATIONS_FILE))) ?? {};
}

/** What a running relation knows now (in memory; the file keeps what must survive). */
interface Live {
  state: RelationInfo["state"];
  reason: string | null;
  ackedLsn: number | null;
  /** When the replica last acknowledged (ms since the epoch; 0: not since this server started). */
  ackedAtMs: number;
  bytesShipped: number;
}

export class Relations {
  private readonly live = new Map<string, Live>();
  private readonly loops = new Map<string, { stop: AbortController; done: Promise<void> }>();
  private running = false;

  constructor(private readonly catalog: Catalog) {}

  /** Sets up a relation: the receiver is contacted now (a wrong token, an unreachable host or a name taken there is refused). */
  async replicate(request: ReplicateRequest): Promise<RelationInfo> {
    const disk = this.catalog.disk(request.disk);
    if (request.mode !== "continuous" && request.mode !== "compacted") throw invalidArgument(`--mode must be continuous or compacted`);
    const intervalMs = request.intervalMs ?? INTERVAL_MS_DEFAULT;
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 100) throw invalidArgument("--interval must be at least 100 ms");
    const maxLoadPercent = request.maxLoadPercent ?? MAX_LOAD_PERCENT_DEFAULT;
    if (!Number.isInteger(maxLoadPercent) || maxLoadPercent < 1 || maxLoadPercent > 100)
      throw invalidArgument("--max-load must be a whole percent from 1 to 100");
    const target = parseReplicaUrl(request.to);
    const token = request.token.trim();
    if (token === "") throw invalidArgument("the receiver's token is empty");
    const relations = await readRelations(this.catalog.path);
    const existing = relations[disk.meta.name];
    if (existing !== undefined && existing.ended === undefined) {
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${disk.meta.name} is replicated to ${existing.to} already`, {
        hint: `stop it first: snaplog replicate --stop ${disk.meta.name}`,
      });
    }
    const client = new ReplicaClient(target, token);
    await client.hello(await this.sourceOf(disk));
    const record: RelationRecord = {
      to: request.to,
      mode: request.mode,
      intervalMs,
      maxLoadPercent,
      createdAt: new Date(this.catalog.nowMs()).toISOString(),
      lsnAtCreate: disk.engine.lsnLast,
    };
    const secrets = path.join(this.catalog.path, RELATION_SECRETS_DIRECTORY);
    await fs.mkdir(secrets, { recursive: true, mode: 0o700 });
    await fs.writeFile(path.join(secrets, `${disk.meta.name}.token`), token, { mode: 0o600 });
    await writeJsonFile(path.join(this.catalog.path, RELATIONS_FILE), { ...relations, [disk.meta.name]: record });
    await this.event(
      "replication-started",
      disk.meta.name,
      `disk ${disk.meta.name}: replication to ${request.to} set up (${request.mode})`,
    );
    if (this.running) this.startLoop(disk.meta.name, record, token);
    return this.infoOf(disk.meta.name, record);
  }

  async stop(diskName: string): Promise<void> {
    const relations = await readRelations(this.catalog.path);
    if (relations[diskName] === undefined) throw notFound(`disk ${diskName} has no replication relation`);
    await this.stopLoop(diskName);
    const rest = { ...relations };
    delete rest[diskName];
    await writeJsonFile(path.join(this.catalog.path, RELATIONS_FILE), rest);
    await fs.rm(path.join(this.catalog.path, RELATION_SECRETS_DIRECTORY, `${diskName}.token`), { force: true });
    this.live.delete(diskName);
    await this.event("replication-stopped", diskName, `disk ${diskName}: replication stopped`);
  }

  async list(): Promise<RelationInfo[]> {
    const relations = await readRelations(this.catalog.path);
    return Object.entries(relations)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([disk, record]) => this.infoOf(disk, record));
  }

  /** The server runs every relation that has not ended. */
  async start(): Promise<void> {
    this.running = true;
    const relations = await readRelations(this.catalog.path);
    for (const [disk, record] of Object.entries(relations)) {
      if (record.ended !== undefined) continue;
      const token = await fs.readFile(path.join(this.catalog.path, RELATION_SECRETS_DIRECTORY, `${disk}.token`), "utf8").catch(() => "");
      this.startLoop(disk, record, token.trim());
    }
  }

  async close(): Promise<void> {
    this.running = false;
    for (const disk of [...this.loops.keys()]) await this.stopLoop(disk);
  }

  private infoOf(disk: string, record: RelationRecord): RelationInfo {
    const live = this.live.get(disk);
    const open = this.catalog.disks.get(disk);
    const acked = live?.ackedLsn ?? null;
    let lagSeconds = 0;
    let lagBytes = 0;
    let bytesWritten = 0;
    if (open !== undefined) {
      const blockSize = open.meta.blockSizeBytes;
      bytesWritten = Math.max(0, open.engine.lsnLast - record.lsnAtCreate) * blockSize;
      if (acked !== null && open.engine.lsnLast > acked) {
        lagBytes = (open.engine.lsnLast - acked) * blockSize;
        const oldest = open.engine.timeOfLsn(acked + 1);
        lagSeconds = oldest === 0 ? 0 : Math.max(0, (this.catalog.nowMs() - oldest) / 1000);
      } else if (acked === null && open.engine.lsnLast > 0) {
        lagBytes = open.engine.lsnLast * blockSize;
      }
    }
    return {
      disk,
      to: record.to,
      mode: record.mode,
      intervalMs: record.intervalMs,
      maxLoadPercent: record.maxLoadPercent ?? MAX_LOAD_PERCENT_DEFAULT,
      state: record.ended !== undefined ? "ended" : (live?.state ?? "starting"),
      reason: record.ended?.reason ?? live?.reason ?? null,
      ackedLsn: acked,
      lastAckAt: live === undefined || live.ackedAtMs === 0 ? null : new Date(live.ackedAtMs).toISOString(),
      lagSeconds,
      lagBytes,
      bytesShipped: live?.bytesShipped ?? 0,
      bytesWritten,
      createdAt: record.createdAt,
    };
  }

  private startLoop(disk: string, record: RelationRecord, token: string): void {
    if (this.loops.has(disk)) return;
    const stop = new AbortController();
    const live: Live = this.live.get(disk) ?? { state: "starting", reason: null, ackedLsn: null, ackedAtMs: 0, bytesShipped: 0 };
    this.live.set(disk, live);
    const done = new RelationLoop(this, this.catalog, disk, record, token, live, stop.signal).run();
    this.loops.set(disk, { stop, done });
  }

  private async stopLoop(disk: string): Promise<void> {
    const loop = this.loops.get(disk);
    if (loop === undefined) return;
    loop.stop.abort();
    await loop.done;
    this.loops.delete(disk);
  }

  /** The receiver said the replica was promoted: the relation ends, with that reason. */
  async end(disk: string, reason: string): Promise<void> {
    const relations = await readRelations(this.catalog.path);
    const record = relations[disk];
    if (record === undefined) return;
    await writeJsonFile(path.join(this.catalog.path, RELATIONS_FILE), {
      ...relations,
      [disk]: { ...record, ended: { reason, at: new Date(this.catalog.nowMs()).toISOString() } },
    });
    this.loops.delete(disk);
    await this.event("replication-ended", disk, `disk ${disk}: replication ended: ${reason}`);
  }

  async sourceOf(disk: OpenDisk): Promise<{ source: { storeId: string; diskId: string; diskName: string }; snapshots: StreamPoint[] }> {
    const diskId = diskIdOf(disk.meta);
    const snapshots = disk.engine.snapshots.map((cut) => ({
      name: cut.name,
      id: snapshotIdOf(diskId, cut),
      lsn: cut.lsn,
      timeMs: cut.timeMs,
    }));
    return { source: { storeId: await storeIdOf(this.catalog), diskId, diskName: disk.meta.name }, snapshots };
  }

  async event(type: string, disk: string, message: string, details?: Record<string, string | number | boolean | null>): Promise<void> {
    await this.catalog.events.record({ type, disk, reason: "replication", message, details }).catch(() => undefined);
  }
}

/** One relation's loop (see the top). */
class RelationLoop {
  private release: () => void = () => undefined;
  private replicaSnapshotIds = new Set<string>();
  /** Cuts sent in a batch not yet acknowledged (by snapshot name): not planned again meanwhile. */
  private readonly cutsInFlight = new Set<string>();
  /** No batch starts before this (ms since the epoch): the pacing while hosts write (--max-load). */
  private nextStartMs = 0;
  /** Batches still to go uncompressed (the last batch tried did not compress). */
  private uncompressedBatches = 0;

  constructor(
    private readonly relations: Relations,
    private readonly catalog: Catalog,
    private readonly diskName: string,
    private readonly record: RelationRecord,
    private readonly token: string,
    private readonly live: Live,
    private readonly signal: AbortSignal,
  ) {}

  async run(): Promise<void> {
    let retryMs = RETRY_MS_MIN;
    while (!this.signal.aborted && !this.catalog.closed) {
      try {
        const disk = this.catalog.disk(this.diskName);
        const client = new ReplicaClient(parseReplicaUrl(this.record.to), this.token);
        const state = await client.hello(await this.relations.sourceOf(disk));
        this.live.state = "connected";
        this.live.reason = null;
        retryMs = RETRY_MS_MIN;
        let acked = await this.establish(disk, client, state);
        for (;;) {
          const work = await this.waitForWork(disk, acked);
          if (work === "stop") return;
          if (work === "idle") {
            await this.heartbeat(disk, client, acked);
            continue;
          }
          const shipped =
            this.record.mode === "continuous" ? await this.shipWindow(disk, client, acked) : await this.ship(disk, client, acked);
          await this.shipDeletes(disk, client);
          if (shipped === acked && this.record.mode === "compacted") await this.heartbeat(disk, client, acked);
          acked = shipped;
        }
      } catch (error) {
        if (this.signal.aborted || this.catalog.closed) break;
        const text = error instanceof Error ? error.message : String(error);
        if (error instanceof SnaplogError && error.code === ErrorCodes.CONFLICT && /promoted/.test(text)) {
          this.live.state = "ended";
          this.live.reason = text;
          await this.relations.end(this.diskName, text);
          break;
        }
        // The reason names the error code (e.g. SNAPLOG_NO_SPACE from a full receiver), for status and for scripts.
        const message = error instanceof SnaplogError ? `${error.code}: ${text}` : text;
        if (this.live.state !== "retrying" || this.live.reason !== message)
          await this.relations.event(
            "replication-retrying",
            this.diskName,
            `disk ${this.diskName}: replication to ${this.record.to} retrying: ${message}`,
          );
        this.live.state = "retrying";
        this.live.reason = message;
        await sleep(retryMs, this.signal);
        retryMs = Math.min(RETRY_MS_MAX, retryMs * 2);
      } finally {
        this.release();
        this.release = () => undefined;
      }
    }
  }

  /** The acknowledged LSN to go on from, with its view pinned. */
  /** The replica holds everything up to `lsn`: the relation's acknowledged point, and when it was said. */
  private acknowledged(lsn: number): void {
    this.live.ackedLsn = lsn;
    this.live.ackedAtMs = this.catalog.nowMs();
  }

  private async establish(disk: OpenDisk, client: ReplicaClient, state: ReplicaState): Promise<number> {
    // Only snapshots this source has are ever deleted there (never one the receiver made itself, like before-resync-…).
    const diskId = diskIdOf(disk.meta);
    const here = new Set(disk.engine.snapshots.map((cut) => snapshotIdOf(diskId, cut)));
    this.replicaSnapshotIds = new Set(state.snapshots.map((snapshot) => snapshot.id).filter((id) => here.has(id)));
    if (state.state === "empty") return this.firstCopy(disk, client);
    if (state.state === "replica" && state.ackedLsn !== null && this.pinIfAvailable(disk, state.ackedLsn)) {
      this.acknowledged(state.ackedLsn);
      return state.ackedLsn;
    }
    // Diverged, or the acknowledged view is gone here: the newest snapshot both sides hold.
    const common = [...disk.engine.snapshots]
      .reverse()
      .find((cut) => this.replicaSnapshotIds.has(snapshotIdOf(diskId, cut)) && (state.ackedLsn === null || cut.lsn <= state.ackedLsn));
    if (common === undefined) {
      throw new SnaplogError(
        ErrorCodes.CONFLICT,
        `the replica shares no snapshot with disk ${disk.meta.name} at or before what it holds: it cannot be brought up to date incrementally`,
        {
          hint: "delete the replica on the receiver; the next contact makes a full copy",
        },
      );
    }
    const release = disk.engine.pinView(common.lsn);
    try {
      const { source } = await this.relations.sourceOf(disk);
      await client.resync(source, snapshotIdOf(diskId, common), common.lsn);
    } catch (error) {
      release();
      throw error;
    }
    this.release = release;
    this.acknowledged(common.lsn);
    await this.relations.event(
      "replication-resync",
      disk.meta.name,
      `disk ${disk.meta.name}: the replica goes on from snapshot ${common.name} (LSN ${common.lsn})`,
    );
    return common.lsn;
  }

  /** Pins the view at `lsn` if this disk still holds it (inside the window, or a snapshot's cut). */
  private pinIfAvailable(disk: OpenDisk, lsn: number): boolean {
    try {
      disk.engine.checkViewAvailable(lsn);
    } catch {
      return false;
    }
    this.release = disk.engine.pinView(lsn);
    return true;
  }

  private async firstCopy(disk: OpenDisk, client: ReplicaClient): Promise<number> {
    const lsn = disk.engine.lsnLast;
    this.release = disk.engine.pinView(lsn);
    await this.send(client, (sink) =>
      exportStream(this.catalog, { disk: disk.meta.name, to: `lsn:${lsn}`, compact: true, cutTo: false }, sink),
    );
    // The full stream carried every snapshot up to it.
    const diskId = diskIdOf(disk.meta);
    for (const cut of disk.engine.snapshots) if (cut.lsn <= lsn) this.replicaSnapshotIds.add(snapshotIdOf(diskId, cut));
    this.acknowledged(lsn);
    return lsn;
  }

  /** "work" when there is something to ship, "idle" when a heartbeat is due, "stop" when the loop should end. */
  private async waitForWork(disk: OpenDisk, acked: number): Promise<"work" | "idle" | "stop"> {
    if (this.record.mode === "compacted") {
      await sleep(this.record.intervalMs, this.signal);
      return this.signal.aborted ? "stop" : "work";
    }
    const idleUntil = Date.now() + HEARTBEAT_MS;
    while (!this.signal.aborted && !this.catalog.closed) {
      if (disk.engine.lsnLast > acked || this.nextCut(disk, acked) !== undefined || this.deletesPending(disk)) return "work";
      if (Date.now() >= idleUntil) return "idle";
      await sleep(POLL_MS, this.signal);
    }
    return "stop";
  }

  /** An idle contact: a promoted replica ends the relation (the hello is refused); a replica that lost its place starts over. */
  private async heartbeat(disk: OpenDisk, client: ReplicaClient, acked: number): Promise<void> {
    const state = await client.hello(await this.relations.sourceOf(disk));
    if (state.state !== "replica" || state.ackedLsn !== acked) {
      throw new SnaplogError(
        ErrorCodes.CLOSED,
        `the receiver holds ${state.state} at LSN ${state.ackedLsn ?? "-"}, not LSN ${acked}: contacting it again`,
      );
    }
  }

  /** The oldest snapshot the replica still needs: past the acknowledged LSN, or at it and not there yet. */
  private nextCut(disk: OpenDisk, acked: number) {
    const diskId = diskIdOf(disk.meta);
    let next: (typeof disk.engine.snapshots)[number] | undefined;
    for (const cut of disk.engine.snapshots) {
      const needed = cut.lsn > acked || (cut.lsn === acked && !this.replicaSnapshotIds.has(snapshotIdOf(diskId, cut)));
      if (needed && (next === undefined || cut.lsn < next.lsn)) next = cut;
    }
    return next;
  }

  private deletesPending(disk: OpenDisk): boolean {
    if (this.replicaSnapshotIds.size === 0) return false;
    const diskId = diskIdOf(disk.meta);
    const here = new Set(disk.engine.snapshots.map((cut) => snapshotIdOf(diskId, cut)));
    for (const id of this.replicaSnapshotIds) if (!here.has(id)) return true;
    return false;
  }

  /**
   * The next batch from `from`: to the next cut, else to the log's end (continuous: at most
   * BATCH_ENTRIES_MAX entries and BATCH_SPAN_MS of writes, when that view is here; `full` when
   * more is written behind it).
   */
  private planBatch(disk: OpenDisk, from: number): BatchPlan | undefined {
    const engine = disk.engine;
    let end = engine.lsnLast;
    const diskId = diskIdOf(disk.meta);
    const cut = engine.snapshots
      .filter(
        (candidate) =>
          candidate.lsn > from ||
          (candidate.lsn === from &&
            !this.replicaSnapshotIds.has(snapshotIdOf(diskId, candidate)) &&
            !this.cutsInFlight.has(candidate.name)),
      )
      .sort((a, b) => a.lsn - b.lsn)[0];
    if (cut !== undefined && cut.lsn <= end) end = cut.lsn;
    else if (this.record.mode === "continuous") end = continuousBatchEnd(engine, from, end);
    const isCut = cut !== undefined && cut.lsn === end;
    if (end <= from && !isCut) return undefined;
    return { from, end, cut: isCut ? cut : undefined, full: !isCut && end < engine.lsnLast };
  }

  /** Starts sending a planned batch; its end stays pinned until it is acknowledged (the next batch starts there). */
  private startBatch(disk: OpenDisk, client: ReplicaClient, plan: BatchPlan): InFlightBatch {
    const releaseEnd = disk.engine.pinView(plan.end);
    if (plan.cut !== undefined) this.cutsInFlight.add(plan.cut.name);
    const loopClock = new LoopClock(SENDER_SECTION_MS_MAX);
    const lsnAtStart = disk.engine.lsnLast;
    const codec: CodecName = this.uncompressedBatches > 0 ? "none" : CODEC_DEFAULT;
    if (codec === "none") this.uncompressedBatches--;
    const ack = this.send(client, async (sink) => {
      const result = await exportStream(
        this.catalog,
        {
          disk: disk.meta.name,
          fromLsn: plan.from,
          to: plan.cut?.name ?? `lsn:${plan.end}`,
          compact: this.record.mode === "compacted",
          cutTo: plan.cut !== undefined,
          codec,
        },
        sink,
        undefined,
        { hashOffThread: true, loopClock },
      );
      const dataBytes = result.blockCount * disk.meta.blockSizeBytes;
      if (codec !== "none" && dataBytes >= COMPRESSION_CHECK_BYTES && result.bytes > dataBytes * (1 - SAVING_MIN))
        this.uncompressedBatches = UNCOMPRESSED_BATCHES_AFTER_MISS;
      // Hosts writing meanwhile: the next batch waits so that exports take at most the relation's share of the loop's time.
      const share = (this.record.maxLoadPercent ?? MAX_LOAD_PERCENT_DEFAULT) / 100;
      if (this.record.mode === "continuous" && share < 1 && disk.engine.lsnLast > lsnAtStart)
        this.nextStartMs = Date.now() + loopClock.ms * (1 / share - 1);
      return result;
    });
    ack.catch(() => undefined);
    return { plan, ack, releaseEnd };
  }

  /** A batch acknowledged: the pin moves to its end, its cut is on the replica. */
  private settle(disk: OpenDisk, batch: InFlightBatch, ack: number): void {
    if (batch.plan.cut !== undefined) {
      this.cutsInFlight.delete(batch.plan.cut.name);
      this.replicaSnapshotIds.add(snapshotIdOf(diskIdOf(disk.meta), batch.plan.cut));
    }
    const next = disk.engine.pinView(ack);
    this.release();
    this.release = next;
    batch.releaseEnd();
    this.acknowledged(ack);
  }

  /** One batch from `acked` (compacted mode: one per interval); returns the acknowledged LSN. */
  private async ship(disk: OpenDisk, client: ReplicaClient, acked: number): Promise<number> {
    const plan = this.planBatch(disk, acked);
    if (plan === undefined) return acked;
    const batch = this.startBatch(disk, client, plan);
    let ack: number;
    try {
      ack = await batch.ack;
    } catch (error) {
      batch.releaseEnd();
      if (plan.cut !== undefined) this.cutsInFlight.delete(plan.cut.name);
      throw error;
    }
    this.settle(disk, batch, ack);
    return ack;
  }

  /**
   * Continuous mode: up to BATCHES_IN_FLIGHT batches sent one after the other without waiting
   * for each acknowledgement (the receiver applies them in order), so the next batch is read and
   * sent while the receiver applies the last — once there is a backlog of full batches. A batch
   * that ends at a snapshot cut goes alone (the ones before it acknowledged first), so cuts
   * arrive in order whatever the network does. Returns once nothing is in flight and nothing
   * more is written; a failure waits for the batches still in flight (the receiver refuses those
   * after it) and is thrown.
   */
  private async shipWindow(disk: OpenDisk, client: ReplicaClient, acked: number): Promise<number> {
    const window: InFlightBatch[] = [];
    let sentTo = acked;
    let lastStartMs = 0;
    try {
      for (;;) {
        const plan = window.length < BATCHES_IN_FLIGHT ? this.planBatch(disk, sentTo) : undefined;
        // With nothing in flight a batch goes at once (the lag stays one round trip); behind
        // others only a full one does, so a backlog travels in few large batches, not a stream
        // of small ones that each cost the receiver its syncs.
        const full = plan?.full === true;
        const sendNow =
          plan !== undefined &&
          Date.now() >= this.nextStartMs &&
          (full || (window.length === 0 && (plan.cut !== undefined || Date.now() - lastStartMs >= BATCH_GAP_MS)));
        if (plan !== undefined && sendNow) {
          lastStartMs = Date.now();
          const batch = this.startBatch(disk, client, plan);
          window.push(batch);
          sentTo = plan.end;
          if (plan.cut === undefined) continue;
        }
        const oldest = window[0];
        if (oldest === undefined) {
          if (plan === undefined) return acked;
          await sleep(Math.max(1, BATCH_GAP_MS - (Date.now() - lastStartMs), this.nextStartMs - Date.now()), this.signal);
          if (this.signal.aborted) return acked;
          continue;
        }
        // While the oldest is acknowledged, writes go on: a batch that fills up meanwhile is sent.
        const ack =
          window.length < BATCHES_IN_FLIGHT && plan?.cut === undefined ? await raceTimeout(oldest.ack, POLL_MS) : await oldest.ack;
        if (ack === undefined) continue;
        window.shift();
        this.settle(disk, oldest, ack);
        acked = ack;
      }
    } finally {
      // After a failure: the batches behind it fail at the receiver too; wait for them, then drop their pins.
      for (const batch of window) {
        await batch.ack.catch(() => undefined);
        batch.releaseEnd();
        if (batch.plan.cut !== undefined) this.cutsInFlight.delete(batch.plan.cut.name);
      }
    }
  }

  /** Streams an export into one batch request; returns the acknowledged LSN. */
  private async send(client: ReplicaClient, run: (sink: (chunk: Buffer) => Promise<void>) => Promise<{ bytes: number }>): Promise<number> {
    const body = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
    const exporting = run(async (chunk) => {
      if (!body.write(chunk)) await once(body, "drain");
    }).then(
      (result) => {
        body.end();
        return result;
      },
      (error: unknown) => {
        body.destroy(error instanceof Error ? error : new Error(String(error)));
        throw error;
      },
    );
    exporting.catch(() => undefined);
    const ack = await client.batch(body);
    const result = await exporting;
    this.live.bytesShipped += result.bytes;
    return ack.ackedLsn;
  }

  private async shipDeletes(disk: OpenDisk, client: ReplicaClient): Promise<void> {
    if (!this.deletesPending(disk)) return;
    const diskId = diskIdOf(disk.meta);
    const here = new Set(disk.engine.snapshots.map((cut) => snapshotIdOf(diskId, cut)));
    const gone = [...this.replicaSnapshotIds].filter((id) => !here.has(id));
    await client.deleteSnapshots(diskId, gone);
    for (const id of gone) this.replicaSnapshotIds.delete(id);
  }
}

/**
 * Where a continuous batch from `from` ends, the log holding entries up to `end`: after at most
 * BATCH_ENTRIES_MAX entries and BATCH_SPAN_MS of writes, when that LSN is a view the source can
 * pin (without a history window only the log's end is: then one batch to it).
 */
export function continuousBatchEnd(
  engine: Pick<DiskEngine, "timeOfLsn" | "lsnAtTime" | "checkViewAvailable">,
  from: number,
  end: number,
): number {
  if (end <= from + 1) return end;
  const firstMs = engine.timeOfLsn(from + 1);
  let capped = Math.min(end, from + BATCH_ENTRIES_MAX);
  if (firstMs > 0) capped = Math.min(capped, Math.max(from + 1, engine.lsnAtTime(firstMs + BATCH_SPAN_MS)));
  if (capped === end) return end;
  try {
    engine.checkViewAvailable(capped);
    return capped;
  } catch {
    return end;
  }
}

interface BatchPlan {
  from: number;
  end: number;
  /** The snapshot cut the batch ends at, if it ends at one. */
  cut?: { name: string; lsn: number; timeMs: number };
  /** Capped (continuous mode): more is written behind it. */
  full: boolean;
}

interface InFlightBatch {
  plan: BatchPlan;
  /** The LSN the receiver acknowledged for it. */
  ack: Promise<number>;
  releaseEnd: () => void;
}

/** The promise's value, or undefined when it takes longer than `ms` (it goes on). */
function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
