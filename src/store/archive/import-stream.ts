/**
 * `snaplog import` (SPEC §5.2): a stream applied to the store, all or nothing.
 *
 *   1. receive   the stream is written to a spool file in STORE/imports/ while the reader checks
 *                every frame; at the end the trailer (counts, whole-stream SHA-256) must check out
 *                and nothing may follow it. Then the header is checked against the store: a full
 *                stream needs a new name, an incremental one the disk it came from (disk id) at
 *                the snapshot it starts from (snapshot id), and cut names that are free.
 *                Until here nothing in the store has changed.
 *   2. apply     full: the disk is built in a hidden directory and renamed into place when
 *                complete (a crash leaves nothing). Incremental: the current volume's
 *                connections end (CONFLICT) and none are taken until the end; an intent file in
 *                the disk's directory names the LSN before the import, so an interrupted import
 *                is rolled back at the next open (the partial state kept as a snapshot).
 * Entries keep their source times (a non-compacted stream's points in time can be attached),
 * snapshots their names and times (so their ids), and `to` becomes a snapshot.
 */
import { writeAll } from "../../util/write-all.js";
import type { PayloadLease } from "../../util/payload-pool.js";
import { randomUUID } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import * as path from "node:path";
import { BASELINE_FILE, type DiskEngine, type ImportRun, type Medium, type MediumFile } from "../../engine/index.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../../util/errors.js";
import { StreamReader, type EntryRun, type StreamCut, type StreamHeader, type StreamItem } from "../../stream/index.js";
import type { Catalog } from "../catalog.js";
import type { DiskLifecycle } from "../disk-lifecycle.js";
import { VolumeLife } from "../disk-volume.js";
import { assignDiskLun, assignSnapshotLun } from "../luns.js";
import { checkName } from "../names.js";
import type { OpenDisk } from "../open-disk.js";
import { writeJsonOn } from "../medium-json.js";
import { IMPORT_INTENT_FILE } from "./interrupted-import.js";
import { aroundMirrorChange } from "../mirror/disk-mirror.js";
import { diskIdOf, snapshotIdOf } from "./identity.js";
import { defaultSnapshotName } from "../snapshots.js";
import type { ImportRequest, ImportResult } from "../operations/index.js";

export const IMPORTS_DIRECTORY = "imports";
/** Data per engine batch while applying. */
const APPLY_BATCH_BYTES = 8 * 1024 * 1024;

export async function importStream(
  catalog: Catalog,
  lifecycle: DiskLifecycle,
  request: ImportRequest,
  source: AsyncIterable<Buffer | Uint8Array | string>,
): Promise<ImportResult> {
  catalog.checkOpen();
  checkName("disk", request.disk);
  const spool = await receive(catalog, source);
  try {
    return await importSpool(catalog, lifecycle, request, spool);
  } finally {
    await fs.rm(spool.path, { force: true });
  }
}

/**
 * Phase 2 for a stream already received and checked whole (receive(), or a vault restore's
 * own verified file): applied to the store. The caller removes the spool.
 */
export function importSpool(catalog: Catalog, lifecycle: DiskLifecycle, request: ImportRequest, spool: Spool): Promise<ImportResult> {
  checkName("disk", request.disk);
  return catalog.control.run(async () => {
    const plan = checkAgainstStore(catalog, request, spool.header);
    const spooled = spooledItems(spool.path);
    const items = spool.header.order === "block" && !spool.header.compacted ? inLsnOrder(spooled) : spooled;
    return plan.kind === "full"
      ? await applyFull(catalog, lifecycle, request, spool, items)
      : await applyIncremental(catalog, request, spool, plan.disk, items);
  });
}

export interface Spool {
  path: string;
  header: StreamHeader;
  bytes: number;
  /**
   * With receive()'s keepRunsBytesMax: the runs of an incremental stream, checked (a replication
   * batch applies them without a spool file, which stays empty). Undefined when the stream held
   * a cut or more data than that: then `runsDropped` says which.
   */
  runs?: EntryRun[];
  runsDropped?: "cut" | "too-large";
}

/**
 * Phase 1: the whole stream to a spool file, checked; nothing in the store changes. With
 * keepRunsBytesMax, an incremental stream is kept as its runs instead and nothing is written:
 * one with a cut inside or more data than that is still read and checked to its end, and comes
 * back without runs, saying why (the caller checks who sent it before it refuses it).
 */
export async function receive(
  catalog: Catalog,
  source: AsyncIterable<Buffer | Uint8Array | string>,
  options: { keepRunsBytesMax?: number; payloads?: PayloadLease; onHeader?: (header: StreamHeader) => void } = {},
): Promise<Spool> {
  const directory = path.join(catalog.path, IMPORTS_DIRECTORY);
  await fs.mkdir(directory, { recursive: true });
  const spoolPath = path.join(directory, `.spool-${process.pid}-${randomUUID()}`);
  const handle = await fs.open(spoolPath, "wx", 0o600);
  let bytes = 0;
  let written = 0;
  // Until the header says what the stream is, its bytes are held; then written to the spool, or,
  // for runs kept in memory, let go: copying every replicated byte into a file never read
  // again, or holding them to the end of the batch, costs the receiver more than the batch.
  let held: Buffer[] | undefined = [];
  let spooling = false;
  async function* tee(): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      bytes += buffer.length;
      if (spooling) written = await writeAll(handle, buffer, written);
      else held?.push(buffer);
      yield buffer;
    }
  }
  // Kept runs' frames are assembled in `payloads` (reused memory the caller gives back once the runs are written).
  const reader = new StreamReader(tee(), options.payloads);
  try {
    const header = await reader.readHeader();
    options.onHeader?.(header);
    const keepRunsBytesMax = header.kind === "incremental" ? options.keepRunsBytesMax : undefined;
    let runs: EntryRun[] | undefined = keepRunsBytesMax !== undefined ? [] : undefined;
    let runsDropped: Spool["runsDropped"];
    if (runs === undefined) {
      options.payloads?.giveBack();
      for (const buffer of held) written = await writeAll(handle, buffer, written);
      spooling = true;
    }
    held = undefined;
    let keptBytes = 0;
    for await (const item of reader.items()) {
      if (runs === undefined) continue;
      if (item.type === "cut") {
        runsDropped = "cut";
        runs = undefined;
        // Nothing holds the runs read so far any more.
        options.payloads?.giveBack();
        continue;
      }
      for (const run of item.runs) {
        keptBytes += run.data?.length ?? 0;
        runs.push(run);
      }
      if (keptBytes > (keepRunsBytesMax ?? 0)) {
        runsDropped = "too-large";
        runs = undefined;
        options.payloads?.giveBack();
      }
    }
    // Not synced: a spool is read back at once from the page cache, and a crash discards it.
    return { path: spoolPath, header, bytes, runs, runsDropped };
  } catch (error) {
    await fs.rm(spoolPath, { force: true });
    throw error instanceof SnaplogError ? error : fromSystemError(error, { path: spoolPath });
  } finally {
    await handle.close().catch(() => undefined);
    await reader.close().catch(() => undefined);
  }
}

export async function* spooledItems(spoolPath: string): AsyncGenerator<StreamItem> {
  // Read again from our own file, checked again (cheap): what is applied is what was verified.
  const reader = new StreamReader(createReadStream(spoolPath, { highWaterMark: 1024 * 1024 }));
  try {
    await reader.readHeader();
    yield* reader.items();
  } finally {
    await reader.close();
  }
}

/** Runs a block-ordered stream may hold per partition before it is refused (they are sorted in memory). */
const BLOCK_ORDER_PARTITION_BYTES_MAX = 512 * 1024 * 1024;

/**
 * A non-compacted block-ordered stream keeps every entry; applied in LSN order (each partition's
 * runs sorted), the receiver gets the source's points in time too. The sort is in memory, so a
 * partition is limited (time-ordered streams have no limit).
 */
async function* inLsnOrder(items: AsyncGenerator<StreamItem>): AsyncGenerator<StreamItem> {
  let runs: EntryRun[] = [];
  let bytes = 0;
  const sorted = (): StreamItem => {
    const out = runs.sort((a, b) => a.lsn - b.lsn);
    runs = [];
    bytes = 0;
    return { type: "runs", runs: out };
  };
  for await (const item of items) {
    if (item.type === "cut") {
      yield sorted();
      yield item;
      continue;
    }
    for (const run of item.runs) {
      runs.push(run);
      bytes += run.data?.length ?? 0;
    }
    if (bytes > BLOCK_ORDER_PARTITION_BYTES_MAX) {
      throw new SnaplogError(
        ErrorCodes.UNSUPPORTED,
        `a block-ordered partition of more than ${BLOCK_ORDER_PARTITION_BYTES_MAX} bytes cannot be put back in time order`,
        {
          hint: "export it in time order (--order time), or compacted",
        },
      );
    }
  }
  yield sorted();
}

type Plan = { kind: "full" } | { kind: "incremental"; disk: OpenDisk };

function checkAgainstStore(catalog: Catalog, request: ImportRequest, header: StreamHeader): Plan {
  const name = request.disk;
  if (header.kind === "full") {
    if (catalog.has(name)) {
      throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `a disk named ${name} already exists: a full stream makes a new disk`, {
        disk: name,
        hint: "import it under another name, or import an incremental stream onto this disk",
      });
    }
    return { kind: "full" };
  }
  const disk = catalog.disk(name);
  const engine = disk.engine;
  const diskId = diskIdOf(disk.meta);
  if (header.source.diskId !== diskId) {
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `the stream is of disk ${header.source.diskName} (id ${header.source.diskId}), not of disk ${name} (id ${diskId})`,
      { disk: name },
    );
  }
  if (header.blockSizeBytes !== disk.meta.blockSizeBytes || header.sizeBytes !== disk.meta.sizeBytes) {
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `the stream's geometry (${header.sizeBytes} bytes in blocks of ${header.blockSizeBytes}) is not disk ${name}'s`,
      { disk: name },
    );
  }
  const from = header.from as StreamCut;
  const base = engine.snapshots.find((cut) => snapshotIdOf(diskId, cut) === from.id);
  if (base === undefined) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${name} does not have the stream's base, snapshot ${from.name} (id ${from.id})`, {
      disk: name,
      hint: "import the streams of the chain in order, starting with the full one",
    });
  }
  if (engine.snapshots.some((cut) => snapshotIdOf(diskId, cut) === header.to.id)) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk ${name} has the stream's end, snapshot ${header.to.name}, already`, {
      disk: name,
    });
  }
  if (engine.lsnLast > base.lsn && request.force !== true) {
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `disk ${name} was written since snapshot ${base.name} (LSN ${base.lsn}, now ${engine.lsnLast}): the import would replace that`,
      {
        disk: name,
        hint: "with --force the current state is kept as a snapshot before-import-… first",
      },
    );
  }
  return { kind: "incremental", disk };
}

/** Names of the cuts the apply will make, checked free before anything is written. */
function checkCutName(engine: DiskEngine, diskName: string, cutName: string): void {
  if (engine.findSnapshot(cutName) !== undefined) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} has a snapshot named ${cutName} already, which the stream would cut`, {
      disk: diskName,
    });
  }
}

/** Applies runs in batches of one time each (a batch's entries share its time). */
class RunApplier {
  private pending: ImportRun[] = [];
  private pendingBytes = 0;
  private pendingTimeMs = -1;
  blockCount = 0;

  constructor(
    private readonly engine: DiskEngine,
    readonly untilMs: number | undefined,
  ) {}

  /** False once a run lies past `untilMs`: the caller stops there. */
  async add(run: EntryRun): Promise<boolean> {
    if (this.untilMs !== undefined && run.timeMs > this.untilMs) return false;
    if (run.timeMs !== this.pendingTimeMs || this.pendingBytes >= APPLY_BATCH_BYTES) await this.flush();
    this.pendingTimeMs = run.timeMs;
    // No copy: each frame decodes into buffers of its own, which nothing reuses.
    this.pending.push({ lba: run.lba, blockCount: run.blockCount, kind: run.kind, data: run.data, blockCrcs: run.blockCrcs });
    this.pendingBytes += run.data?.length ?? 0;
    this.blockCount += run.blockCount;
    return true;
  }

  async flush(sync = false): Promise<void> {
    if (this.pending.length === 0) {
      if (sync) await this.engine.flush();
      return;
    }
    const runs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await this.engine.importRuns(runs, this.pendingTimeMs, sync);
  }
}

async function applyFull(
  catalog: Catalog,
  lifecycle: DiskLifecycle,
  request: ImportRequest,
  spool: Spool,
  items: AsyncGenerator<StreamItem>,
): Promise<ImportResult> {
  const header = spool.header;
  const snapshots: string[] = [];
  let blockCount = 0;
  let reachedEnd = true;
  const disk = await lifecycle.createBuilt(
    {
      name: request.disk,
      sizeBytes: header.sizeBytes,
      blockSizeBytes: header.blockSizeBytes,
      historySeconds: header.historySeconds,
      id: header.source.diskId,
    },
    async (medium, _meta, openEngine) => {
      let baseline: MediumFile | undefined;
      let engine: DiskEngine | undefined;
      let applier: RunApplier | undefined;
      try {
        for await (const item of items) {
          if (item.type === "runs" && engine === undefined) {
            // The base (LSN 0, first in a full stream) becomes the new disk's baseline.
            const baseCount = item.runs.findIndex((run) => run.lsn !== 0);
            const base = baseCount < 0 ? item.runs : item.runs.slice(0, baseCount);
            if (base.length > 0) baseline ??= await openBaseline(medium, header.sizeBytes);
            for (const run of base) await writeBase(baseline as MediumFile, run, header.blockSizeBytes);
            if (baseCount < 0) continue;
            item.runs = item.runs.slice(baseCount);
          }
          if (engine === undefined) {
            if (baseline !== undefined) await closeBaseline(baseline);
            baseline = undefined;
            engine = await openEngine();
            applier = new RunApplier(engine, request.untilMs);
          }
          if (!(await applyItem(engine, applier as RunApplier, item, snapshots, () => assignDiskLun(catalog)))) {
            reachedEnd = false;
            break;
          }
        }
        if (baseline !== undefined) await closeBaseline(baseline);
        baseline = undefined;
        engine ??= await openEngine();
        applier ??= new RunApplier(engine, request.untilMs);
        await applier.flush(true);
        blockCount = applier.blockCount;
        if (reachedEnd && header.cutTo !== false) {
          await engine.cutSnapshot(header.to.name, await assignDiskLun(catalog), undefined, header.to.timeMs);
          snapshots.push(header.to.name);
        }
        await engine.close();
      } catch (error) {
        await baseline?.close().catch(() => undefined);
        await engine?.abandon().catch(() => undefined);
        throw error;
      }
    },
  );
  await recordImport(catalog, disk, header, snapshots.length);
  return result(disk.meta.name, true, spool, snapshots, blockCount, reachedEnd, null);
}

async function applyIncremental(
  catalog: Catalog,
  request: ImportRequest,
  spool: Spool,
  disk: OpenDisk,
  items: AsyncGenerator<StreamItem>,
): Promise<ImportResult> {
  const header = spool.header;
  const engine = disk.engine;
  const diskName = disk.meta.name;
  const from = engine.snapshots.find((cut) => snapshotIdOf(diskIdOf(disk.meta), cut) === header.from?.id) as { name: string; lsn: number };
  checkCutName(engine, diskName, header.to.name);
  disk.currentLife.end(
    new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} took an import after this connection was made; reconnect`, { disk: diskName }),
  );
  disk.currentLife = new VolumeLife();
  disk.rollingBack = true;
  const snapshots: string[] = [];
  let beforeImport: string | null = null;
  try {
    // Whatever is applied reaches the log only: the mirror (if any) is marked whole first, and catches up after.
    return await aroundMirrorChange(disk, "all", async () => {
      if (engine.lsnLast > from.lsn) {
        beforeImport = defaultSnapshotName(disk, "before-import", catalog.nowMs());
        await engine.rollback(from.lsn, beforeImport, await assignSnapshotLun(catalog, disk, beforeImport, undefined));
      }
      await writeJsonOn(disk.medium, IMPORT_INTENT_FILE, {
        streamId: header.streamId,
        lsnBefore: engine.lsnLast,
        startedMs: catalog.nowMs(),
      });
      const applier = new RunApplier(engine, request.untilMs);
      let reachedEnd = true;
      for await (const item of items) {
        if (item.type === "cut") checkCutName(engine, diskName, item.cut.name);
        if (
          !(await applyItem(engine, applier, item, snapshots, () =>
            assignSnapshotLun(catalog, disk, item.type === "cut" ? item.cut.name : "", undefined),
          ))
        ) {
          reachedEnd = false;
          break;
        }
      }
      await applier.flush(true);
      if (reachedEnd) {
        await engine.cutSnapshot(
          header.to.name,
          await assignSnapshotLun(catalog, disk, header.to.name, undefined),
          undefined,
          header.to.timeMs,
        );
        snapshots.push(header.to.name);
      }
      await disk.medium.remove(IMPORT_INTENT_FILE);
      await recordImport(catalog, disk, header, snapshots.length);
      return result(diskName, false, spool, snapshots, applier.blockCount, reachedEnd, beforeImport);
    });
  } finally {
    disk.rollingBack = false;
  }
}

/** One stream item applied; false when the import stops here (--until). */
async function applyItem(
  engine: DiskEngine,
  applier: RunApplier,
  item: StreamItem,
  snapshots: string[],
  lunFor: () => Promise<number>,
): Promise<boolean> {
  if (item.type === "runs") {
    for (const run of item.runs) if (!(await applier.add(run))) return false;
    return true;
  }
  if (applier.untilMs !== undefined && item.cut.timeMs > applier.untilMs) return false;
  await applier.flush();
  await engine.cutSnapshot(item.cut.name, await lunFor(), undefined, item.cut.timeMs);
  snapshots.push(item.cut.name);
  return true;
}

async function openBaseline(medium: Medium, sizeBytes: number): Promise<MediumFile> {
  const file = await medium.open(BASELINE_FILE, { create: true });
  await file.truncate(sizeBytes);
  return file;
}

async function writeBase(baseline: MediumFile, run: EntryRun, blockSizeBytes: number): Promise<void> {
  if (run.kind === "write" && run.data !== undefined) await baseline.writev([run.data], run.lba * blockSizeBytes);
}

async function closeBaseline(baseline: MediumFile): Promise<void> {
  await baseline.sync();
  await baseline.close();
}

async function recordImport(catalog: Catalog, disk: OpenDisk, header: StreamHeader, snapshotCount: number): Promise<void> {
  await catalog.events
    .record({
      type: "import",
      disk: disk.meta.name,
      reason: "manual",
      message: `disk ${disk.meta.name} imported a ${header.kind}${header.compacted ? " compacted" : ""} stream of ${header.source.diskName} up to ${header.to.name} (${snapshotCount} snapshots)`,
    })
    .catch((error: unknown) =>
      catalog.logger?.error(`event log: could not record an event: ${error instanceof Error ? error.message : String(error)}`),
    );
}

function result(
  disk: string,
  created: boolean,
  spool: Spool,
  snapshots: string[],
  blockCount: number,
  reachedEnd: boolean,
  beforeImport: string | null,
): ImportResult {
  const header = spool.header;
  return {
    disk,
    created,
    streamId: header.streamId,
    kind: header.kind,
    compacted: header.compacted,
    from: header.from?.name ?? null,
    to: reachedEnd ? header.to.name : null,
    snapshots,
    blockCount,
    bytes: spool.bytes,
    beforeImport,
  };
}
