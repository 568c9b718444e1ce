/**
 * The receiving side of remote copy (SPEC §5.4, docs/replication.md). A replica is an ordinary
 * disk with `replica` in its disk.json: whose disk it copies and the source LSN it holds (the
 * acknowledged point). It is read-only until promoted.
 *
 *   hello    the sender says who it is; the answer: no such disk (send a full stream), this
 *            source's replica at LSN N (send from N), or the same disk by id written on its own
 *            (after a failover: resync from the newest snapshot both have)
 *   batch    a stream from exactly the acknowledged LSN (any other start is refused, so an old
 *            or replayed batch changes nothing), checked whole, then applied as ONE engine
 *            batch: the replica moves from one source state to the next, never shows a mix; a
 *            snapshot cut ends a batch and is cut here with the source's name and time; then
 *            the new acknowledged LSN goes into disk.json. A crash between the two leaves the
 *            batch applied but not acknowledged: it comes again and applies again to the same
 *            state (writes of the same data).
 *   delete   snapshots deleted at the source, by id
 *   promote  failover: read-write, the relation ends at the sender's next contact
 */
import { aroundMirrorChange } from "../mirror/disk-mirror.js";
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import { promises as fs } from "node:fs";
import type { ImportRun } from "../../engine/index.js";
import type { Catalog } from "../catalog.js";
import type { DiskFile } from "../disk-file.js";
import { writeDiskFile } from "../disk-file.js";
import type { DiskLifecycle } from "../disk-lifecycle.js";
import { VolumeLife } from "../disk-volume.js";
import { assignSnapshotLun } from "../luns.js";
import { checkName } from "../names.js";
import type { OpenDisk } from "../open-disk.js";
import type { ReplicaAck, ReplicaHello, ReplicaState } from "../operations/index.js";
import { deleteSnapshotNow } from "../snapshots.js";
import { diskIdOf, snapshotIdOf } from "../archive/identity.js";
import { defaultSnapshotName } from "../snapshots.js";
import { importSpool, receive, type Spool } from "../archive/import-stream.js";
import { BatchOrder, type BatchTicket } from "./batch-order.js";
import { PayloadLease } from "../../util/payload-pool.js";

/** A batch's data is applied as one engine batch, in memory: bounded (senders cut batches far below). */
export const REPLICA_BATCH_BYTES_MAX = 256 * 1024 * 1024;

type ReplicaMeta = NonNullable<DiskFile["replica"]>;

function snapshotsOf(disk: OpenDisk): ReplicaState["snapshots"] {
  const diskId = diskIdOf(disk.meta);
  return disk.engine.snapshots.map((cut) => ({ name: cut.name, id: snapshotIdOf(diskId, cut), lsn: cut.lsn, timeMs: cut.timeMs }));
}

function promotedError(disk: OpenDisk): SnaplogError {
  return new SnaplogError(
    ErrorCodes.CONFLICT,
    `disk ${disk.meta.name} was promoted at ${disk.meta.replica?.promotedAt}: it is no replica any more`,
    {
      disk: disk.meta.name,
      hint: "the relation has ended; to copy the other way, replicate from this disk",
    },
  );
}

export function replicaHello(catalog: Catalog, hello: ReplicaHello): Promise<ReplicaState> {
  checkName("disk", hello.disk);
  return catalog.control.run(async () => {
    if (!catalog.has(hello.disk)) return { state: "empty", ackedLsn: null, snapshots: [] };
    const disk = catalog.disk(hello.disk);
    const replica = disk.meta.replica;
    if (replica?.promotedAt !== undefined && replica.sourceDiskId === hello.source.diskId) throw promotedError(disk);
    if (replica !== undefined && replica.promotedAt === undefined) {
      if (replica.sourceDiskId !== hello.source.diskId) {
        throw new SnaplogError(
          ErrorCodes.CONFLICT,
          `disk ${hello.disk} here is the replica of another disk (${replica.sourceDiskName}, id ${replica.sourceDiskId})`,
          { disk: hello.disk },
        );
      }
      const settled = (await settlePending(disk)) ?? replica;
      return { state: "replica", ackedLsn: settled.ackedLsn, snapshots: snapshotsOf(disk) };
    }
    if (diskIdOf(disk.meta) === hello.source.diskId) return { state: "diverged", ackedLsn: null, snapshots: snapshotsOf(disk) };
    throw new SnaplogError(
      ErrorCodes.ALREADY_EXISTS,
      `a disk named ${hello.disk} exists here and is not a copy of ${hello.source.diskName}`,
      {
        disk: hello.disk,
        hint: "replicate to another name",
      },
    );
  });
}

export async function replicaBatch(
  catalog: Catalog,
  lifecycle: DiskLifecycle,
  diskName: string,
  source: AsyncIterable<Buffer | Uint8Array | string>,
): Promise<ReplicaAck> {
  checkName("disk", diskName);
  let spool: Awaited<ReturnType<typeof receive>> | undefined;
  let ticket: BatchTicket | undefined;
  // The batch's frames in reused memory (fresh 1 MiB buffers start V8's full collections), given
  // back once the batch is applied or refused: the engine keeps nothing of a write it settled.
  const payloads = new PayloadLease();
  try {
    const spooled = (spool = await receive(catalog, source, {
      keepRunsBytesMax: REPLICA_BATCH_BYTES_MAX,
      payloads,
      onHeader: (header) => {
        if (header.from !== undefined) ticket = batchOrderOf(catalog).enter(diskName, header.from.lsn, header.to.lsn);
      },
    }));
    const header = spooled.header;
    if (header.kind === "full") return await firstCopy(catalog, lifecycle, diskName, spooled);
    await ticket?.turn();
    return await catalog.control.run(() => applyBatch(catalog, diskName, spooled));
  } catch (error) {
    // A refused batch (old, replayed, of another disk, damaged) is an event on the receiver: it changed nothing.
    if (error instanceof SnaplogError && error.code !== ErrorCodes.NO_SPACE) {
      await catalog.events
        .record({
          type: "replica-batch-refused",
          disk: diskName,
          reason: "replication",
          message: `batch for ${diskName} refused: ${error.message}${error.hint === undefined ? "" : ` (${error.hint})`}`,
        })
        .catch(() => undefined);
    }
    throw error;
  } finally {
    ticket?.leave();
    payloads.giveBack();
    if (spool !== undefined) await fs.rm(spool.path, { force: true });
  }
}

const batchOrders = new WeakMap<Catalog, BatchOrder>();

function batchOrderOf(catalog: Catalog): BatchOrder {
  let order = batchOrders.get(catalog);
  if (order === undefined) batchOrders.set(catalog, (order = new BatchOrder()));
  return order;
}

/** A full stream makes the replica (built hidden, placed whole), at the stream's end. */
async function firstCopy(catalog: Catalog, lifecycle: DiskLifecycle, diskName: string, spool: Spool): Promise<ReplicaAck> {
  const header = spool.header;
  if (catalog.has(diskName))
    throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} exists: a full stream only makes a new replica`, { disk: diskName });
  const result = await importSpool(catalog, lifecycle, { disk: diskName }, spool);
  const replica: ReplicaMeta = {
    sourceStoreId: header.source.storeId,
    sourceDiskId: header.source.diskId,
    sourceDiskName: header.source.diskName,
    ackedLsn: header.to.lsn,
    ackedTimeMs: header.to.timeMs,
  };
  await catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    await saveMeta(disk, { ...disk.meta, replica });
  });
  return {
    disk: diskName,
    ackedLsn: replica.ackedLsn,
    ackedTimeMs: replica.ackedTimeMs,
    snapshots: result.snapshots,
    blockCount: result.blockCount,
  };
}

async function applyBatch(catalog: Catalog, diskName: string, spool: Spool): Promise<ReplicaAck> {
  const header = spool.header;
  const disk = catalog.disk(diskName);
  // A batch applied earlier but not acknowledged (disk.json could not be written) counts first.
  await settlePending(disk);
  const replica = disk.meta.replica;
  if (replica === undefined) throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} is no replica`, { disk: diskName });
  if (replica.promotedAt !== undefined) throw promotedError(disk);
  if (replica.sourceDiskId !== header.source.diskId) {
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `the batch is of disk ${header.source.diskName} (id ${header.source.diskId}), not of this replica's source`,
      { disk: diskName },
    );
  }
  const fromLsn = header.from?.lsn ?? -1;
  if (fromLsn !== replica.ackedLsn) {
    throw new SnaplogError(
      ErrorCodes.CONFLICT,
      `the batch starts at source LSN ${fromLsn}; replica ${diskName} holds LSN ${replica.ackedLsn}`,
      {
        disk: diskName,
        lsn: replica.ackedLsn,
        hint:
          fromLsn < replica.ackedLsn ? "an old or replayed batch: nothing changed" : "a batch is missing: send from the acknowledged LSN",
      },
    );
  }
  // Kept while the batch was received and checked (one pass). Without them, it held a cut or too much.
  const runs: ImportRun[] | undefined = spool.runs;
  if (runs === undefined) {
    throw spool.runsDropped === "too-large"
      ? new SnaplogError(ErrorCodes.OUT_OF_RANGE, `a replication batch holds more than ${REPLICA_BATCH_BYTES_MAX} bytes of block data`)
      : new SnaplogError(ErrorCodes.BAD_STREAM, "a replication batch holds a snapshot cut inside: batches end at cuts");
  }
  // The intent first: if even disk.json cannot be written (a full file system), nothing is applied.
  const cut = header.cutTo !== false ? header.to.name : undefined;
  await saveMeta(disk, {
    ...disk.meta,
    replica: {
      ...replica,
      pending: {
        toLsn: header.to.lsn,
        toTimeMs: header.to.timeMs,
        localLsnBefore: disk.engine.lsnLast,
        ...(cut === undefined ? {} : { cut }),
      },
    },
  });
  let blockCount = 0;
  for (const run of runs) blockCount += run.blockCount;
  const snapshots: string[] = [];
  if (runs.length > 0) {
    const blockSize = disk.meta.blockSizeBytes;
    await aroundMirrorChange(
      disk,
      runs.map((run) => ({ offsetBytes: run.lba * blockSize, lengthBytes: run.blockCount * blockSize })),
      () => disk.engine.importRuns(runs, header.to.timeMs, true),
    );
  }
  if (header.cutTo !== false) {
    const existing = disk.engine.findSnapshot(header.to.name);
    if (existing === undefined) {
      await disk.engine.cutSnapshot(
        header.to.name,
        await assignSnapshotLun(catalog, disk, header.to.name, undefined),
        undefined,
        header.to.timeMs,
      );
      snapshots.push(header.to.name);
    }
  } else if (runs.length === 0) await disk.engine.flush();
  await saveMeta(disk, {
    ...disk.meta,
    replica: { ...replica, ackedLsn: header.to.lsn, ackedTimeMs: header.to.timeMs, pending: undefined },
  });
  return { disk: diskName, ackedLsn: header.to.lsn, ackedTimeMs: header.to.timeMs, snapshots, blockCount };
}

export function replicaResync(
  catalog: Catalog,
  diskName: string,
  source: ReplicaHello["source"],
  commonSnapshotId: string,
  sourceLsn: number,
): Promise<ReplicaState> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    if (diskIdOf(disk.meta) !== source.diskId)
      throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} is not a copy of ${source.diskName}`, { disk: diskName });
    const diskId = diskIdOf(disk.meta);
    const common = disk.engine.snapshots.find((cut) => snapshotIdOf(diskId, cut) === commonSnapshotId);
    if (common === undefined)
      throw new SnaplogError(ErrorCodes.NOT_FOUND, `disk ${diskName} has no snapshot with id ${commonSnapshotId}`, { disk: diskName });
    if (disk.engine.lsnLast > common.lsn) {
      const name = defaultSnapshotName(disk, "before-resync", catalog.nowMs());
      disk.currentLife.end(
        new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} became a replica; reconnect (read-only)`, { disk: diskName }),
      );
      disk.currentLife = new VolumeLife();
      const lun = await assignSnapshotLun(catalog, disk, name, undefined);
      await aroundMirrorChange(disk, "all", () => disk.engine.rollback(common.lsn, name, lun));
    }
    const replica: ReplicaMeta = {
      sourceStoreId: source.storeId,
      sourceDiskId: source.diskId,
      sourceDiskName: source.diskName,
      ackedLsn: sourceLsn,
      ackedTimeMs: common.timeMs,
    };
    await saveMeta(disk, { ...disk.meta, replica });
    return { state: "replica", ackedLsn: sourceLsn, snapshots: snapshotsOf(disk) };
  });
}

export function replicaDeleteSnapshots(catalog: Catalog, diskName: string, sourceDiskId: string, ids: string[]): Promise<string[]> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    if (disk.meta.replica === undefined || disk.meta.replica.sourceDiskId !== sourceDiskId || disk.meta.replica.promotedAt !== undefined) {
      throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} is not this source's replica`, { disk: diskName });
    }
    const diskId = diskIdOf(disk.meta);
    const deleted: string[] = [];
    for (const cut of [...disk.engine.snapshots]) {
      if (!ids.includes(snapshotIdOf(diskId, cut))) continue;
      await deleteSnapshotNow(catalog, disk, cut.name, "replication");
      deleted.push(cut.name);
    }
    return deleted;
  });
}

export function promoteDisk(catalog: Catalog, diskName: string): Promise<{ disk: string; promotedAt: string }> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    const replica = disk.meta.replica;
    if (replica === undefined || replica.promotedAt !== undefined) {
      throw new SnaplogError(ErrorCodes.CONFLICT, `disk ${diskName} is no replica: nothing to promote`, { disk: diskName });
    }
    const promotedAt = new Date(catalog.nowMs()).toISOString();
    await saveMeta(disk, { ...disk.meta, replica: { ...replica, promotedAt } });
    await catalog.events
      .record({
        type: "disk-promoted",
        disk: diskName,
        reason: "manual",
        message: `disk ${diskName} promoted: read-write, no longer a replica of ${replica.sourceDiskName}`,
      })
      .catch(() => undefined);
    return { disk: diskName, promotedAt };
  });
}

/**
 * A batch whose intent is in disk.json: if it landed (the replica's log moved past its LSN
 * before, or its cut exists), it is acknowledged now; if not, the intent is dropped. Answers
 * the replica as it now stands (in memory even when disk.json still cannot be written: the
 * next contact writes it), or undefined without a pending batch.
 */
async function settlePending(disk: OpenDisk): Promise<ReplicaMeta | undefined> {
  const replica = disk.meta.replica;
  const pending = replica?.pending;
  if (replica === undefined || pending === undefined) return undefined;
  const landed =
    disk.engine.lsnLast > pending.localLsnBefore || (pending.cut !== undefined && disk.engine.findSnapshot(pending.cut) !== undefined);
  const settled: ReplicaMeta = landed
    ? { ...replica, ackedLsn: pending.toLsn, ackedTimeMs: pending.toTimeMs, pending: undefined }
    : { ...replica, pending: undefined };
  try {
    await saveMeta(disk, { ...disk.meta, replica: settled });
  } catch {
    disk.meta = { ...disk.meta, replica: settled };
  }
  return settled;
}

async function saveMeta(disk: OpenDisk, next: DiskFile): Promise<void> {
  await writeDiskFile(disk.medium, next);
  disk.meta = next;
}
