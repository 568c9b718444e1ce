/**
 * `snaplog export` (SPEC §5.1): a volume of a disk as an archive stream, written to a sink.
 *
 * The `to` volume (a snapshot, lsn:N, a time, the current volume) is pinned when the export
 * starts; `from` (a snapshot) makes the stream incremental. What goes out:
 *   full streams first carry the base: the baseline's non-zero blocks (LSN 0);
 *   then the partitions between `from` (or the baseline) and `to`, split at every snapshot cut
 *   in between (a CUT frame each), so the receiver gets every snapshot the source has there:
 *     not compacted, time order   every live entry in LSN order, with its own time (points in time travel)
 *     not compacted, block order  the same entries, per partition sorted by block then LSN
 *     compacted                   per partition only the newest version of each block changed in it,
 *                                 in block order or in LSN order
 */
import { randomUUID } from "node:crypto";
import { BlockSource, readLogRows, type DiskEngine, type EntriesData, type EntriesDataOptions, type LogRow } from "../../engine/index.js";
import { isAllZero } from "../../util/all-zero.js";
import { timedBy, type LoopClock } from "../../util/loop-clock.js";
import { mapAhead } from "../../util/map-ahead.js";
import { invalidArgument, notFound } from "../../util/errors.js";
import {
  CODEC_DEFAULT,
  StreamWriter,
  type CodecName,
  type EntryRun,
  type StreamCut,
  type StreamHeader,
  type StreamPoint,
  type StreamSink,
  type StreamTrailer,
} from "../../stream/index.js";
import type { Catalog } from "../catalog.js";
import type { OpenDisk } from "../open-disk.js";
import type { ExportRequest, ExportResult, ProgressCallback } from "../operations/index.js";
import { lsnOfPoint, parsePoint } from "../point-spec.js";
import { diskIdOf, pointIdOf, snapshotIdOf, storeIdOf } from "./identity.js";
import { stampedName } from "../new-snapshot-name.js";

/** Blocks mapped per step of the base and of a compacted partition: bounds memory and the work between awaits. */
const MAP_BLOCKS = 4096;
/** Entries whose data is read in one call (consecutive slots in one I/O): 4 MiB of 4 KiB blocks. */
const ENTRIES_PER_READ = 1024;
/** Groups being read while earlier ones are compressed and sent. */
const GROUPS_IN_FLIGHT = 3;

/** How an export runs (not what it writes): for a caller that shares its event loop with hosts' I/O. */
export interface ExportTuning {
  /** The stream's SHA-256 on a worker thread, the log's data read into memory it can share. */
  hashOffThread?: boolean;
  /** Counts the export's own work on the event loop (time-ordered exports: what a continuous relation sends). */
  loopClock?: LoopClock;
}

export async function exportStream(
  catalog: Catalog,
  request: ExportRequest,
  sink: StreamSink,
  onProgress?: ProgressCallback,
  tuning: ExportTuning = {},
): Promise<ExportResult> {
  const disk = catalog.disk(request.disk);
  const engine = disk.engine;
  const diskId = diskIdOf(disk.meta);
  const to = resolveTo(disk, diskId, request.to);
  const releaseTo = engine.pinView(to.lsn);
  try {
    const from =
      request.fromLsn !== undefined
        ? {
            name: `lsn:${request.fromLsn}`,
            id: pointIdOf(diskId, request.fromLsn, engine.timeOfLsn(request.fromLsn)),
            lsn: request.fromLsn,
            timeMs: engine.timeOfLsn(request.fromLsn),
          }
        : request.from === undefined
          ? undefined
          : resolveFrom(disk, diskId, request.from, to);
    if (from !== undefined && from.lsn > to.lsn)
      throw invalidArgument(`the stream would start at LSN ${from.lsn}, after its end (LSN ${to.lsn})`);
    const header: StreamHeader = {
      streamId: request.streamId ?? randomUUID(),
      createdMs: request.createdMs ?? catalog.nowMs(),
      source: { storeId: await storeIdOf(catalog), diskId, diskName: disk.meta.name },
      blockSizeBytes: disk.meta.blockSizeBytes,
      sizeBytes: disk.meta.sizeBytes,
      historySeconds: disk.meta.historySeconds,
      kind: from === undefined ? "full" : "incremental",
      compacted: request.compact ?? false,
      order: request.order ?? "time",
      from,
      to,
      ...(request.cutTo === false ? { cutTo: false } : {}),
    };
    const codec = request.codec ?? CODEC_DEFAULT;
    const hashOffThread = tuning.hashOffThread ?? false;
    const loopClock = tuning.loopClock;
    const writer = new StreamWriter(header, { codec, frameDataBytes: request.frameDataBytes, hashOffThread, loopClock }, sink);
    await writer.start();
    const lsnStart = from?.lsn ?? 0;
    const progress = (lsn: number) => onProgress?.(lsn - lsnStart, to.lsn - lsnStart);
    if (from === undefined && engine.hasBaseline) await writeBase(engine, writer);
    const cuts: StreamPoint[] = [];
    for (const partition of partitionsOf(disk, diskId, lsnStart, to)) {
      if (header.compacted) await writeCompacted(engine, writer, partition, header.order);
      else if (header.order === "time")
        await writeTimeOrdered(engine, writer, partition, { memory: hashOffThread ? "shared" : "private", clock: loopClock });
      else await writeBlockOrdered(engine, writer, partition);
      if (partition.cut !== undefined) {
        await writer.addCut(partition.cut);
        cuts.push(partition.cut);
      }
      progress(partition.lsnLast);
    }
    const trailer = await writer.finish();
    return exportResultOf(disk.meta.name, codec, header, trailer, cuts, writer.bytesWritten);
  } finally {
    releaseTo();
  }
}

/** What an export says of the stream it wrote (or, through the API, of the stream the client checked as it came). */
export function exportResultOf(
  disk: string,
  codec: CodecName,
  header: StreamHeader,
  trailer: StreamTrailer,
  cuts: StreamPoint[],
  bytes: number,
): ExportResult {
  const lsnStart = header.from?.lsn ?? 0;
  return {
    disk,
    streamId: header.streamId,
    kind: header.kind,
    compacted: header.compacted,
    order: header.order,
    codec,
    from: header.from ?? null,
    to: header.to,
    lsnFirst: lsnStart + 1,
    lsnLast: header.to.lsn,
    frameCount: trailer.frameCount,
    runCount: trailer.runCount,
    blockCount: trailer.blockCount,
    cutCount: trailer.cutCount,
    cuts,
    bytes,
    sha256: trailer.sha256.toString("hex"),
  };
}

function resolveTo(disk: OpenDisk, diskId: string, text: string | undefined): StreamPoint {
  const engine = disk.engine;
  const target = parsePoint(text ?? "current", "--to");
  if (target.kind === "snapshot") {
    const cut = engine.findSnapshot(target.name);
    if (cut === undefined)
      throw notFound(`disk ${disk.meta.name} has no snapshot named ${JSON.stringify(target.name)} (--to)`, { disk: disk.meta.name });
    return { name: cut.name, id: snapshotIdOf(diskId, cut), lsn: cut.lsn, timeMs: cut.timeMs };
  }
  const lsn = lsnOfPoint(engine, text ?? "current", "--to");
  const timeMs = lsn === 0 ? 0 : engine.timeOfLsn(lsn) || Date.now();
  return { name: stampedName("export", timeMs || Date.now()), id: pointIdOf(diskId, lsn, timeMs), lsn, timeMs };
}

function resolveFrom(disk: OpenDisk, diskId: string, name: string, to: StreamPoint): StreamPoint {
  const cut = disk.engine.findSnapshot(name);
  if (cut === undefined)
    throw notFound(`disk ${disk.meta.name} has no snapshot named ${JSON.stringify(name)} (--from)`, { disk: disk.meta.name });
  if (cut.lsn > to.lsn || (cut.lsn === to.lsn && cut.name === to.name)) {
    throw invalidArgument(`--from ${name} (LSN ${cut.lsn}) must be older than the exported volume (LSN ${to.lsn})`, {
      disk: disk.meta.name,
    });
  }
  return { name: cut.name, id: snapshotIdOf(diskId, cut), lsn: cut.lsn, timeMs: cut.timeMs };
}

/** (lsnFirst-1, lsnLast] and the cut that ends it (none for the last: `to` is in the header). */
interface Partition {
  lsnAfter: number;
  lsnLast: number;
  /** Its end's time: a compacted partition's runs carry it (no point inside one is kept). */
  timeMs: number;
  cut?: StreamCut;
}

function partitionsOf(disk: OpenDisk, diskId: string, lsnStart: number, to: StreamPoint): Partition[] {
  const cuts = disk.engine.snapshots
    .filter((cut) => cut.lsn > lsnStart && cut.lsn <= to.lsn && !(cut.name === to.name && cut.lsn === to.lsn))
    .slice()
    .sort((a, b) => a.lsn - b.lsn || a.timeMs - b.timeMs);
  const partitions: Partition[] = [];
  let lsnAfter = lsnStart;
  for (const cut of cuts) {
    partitions.push({
      lsnAfter,
      lsnLast: cut.lsn,
      timeMs: cut.timeMs,
      cut: { name: cut.name, id: snapshotIdOf(diskId, cut), lsn: cut.lsn, timeMs: cut.timeMs },
    });
    lsnAfter = cut.lsn;
  }
  partitions.push({ lsnAfter, lsnLast: to.lsn, timeMs: to.timeMs });
  return partitions;
}

/** The baseline's blocks that are not zeros, as LSN-0 runs in block order. */
async function writeBase(engine: DiskEngine, writer: StreamWriter): Promise<void> {
  const blockSize = engine.geometry.blockSizeBytes;
  for (let lba = 0; lba < engine.blockCount; lba += MAP_BLOCKS) {
    const count = Math.min(MAP_BLOCKS, engine.blockCount - lba);
    const data = await engine.readBlocks(lba, count, 0);
    let runFirst = -1;
    for (let index = 0; index <= count; index++) {
      const zero = index === count || isAllZero(data.subarray(index * blockSize, (index + 1) * blockSize));
      if (!zero && runFirst < 0) runFirst = index;
      if (zero && runFirst >= 0) {
        await writer.addRun({
          lsn: 0,
          timeMs: 0,
          lba: lba + runFirst,
          blockCount: index - runFirst,
          kind: "write",
          data: data.subarray(runFirst * blockSize, index * blockSize),
        });
        runFirst = -1;
      }
    }
  }
}

/** Every live entry of the partition in LSN order, runs split where the log's rows are. */
async function writeTimeOrdered(
  engine: DiskEngine,
  writer: StreamWriter,
  partition: Partition,
  options: EntriesDataOptions,
): Promise<void> {
  if (partition.lsnLast <= partition.lsnAfter) return;
  const blockSize = engine.geometry.blockSizeBytes;
  const clock = options.clock;
  const timed = <T>(work: () => T): T => timedBy(clock, work);
  const rows = readLogRows(engine, { lsnFirst: partition.lsnAfter + 1, lsnLast: partition.lsnLast, withData: false, clock });
  const readData = (group: LogRow[]): Promise<EntriesData> => {
    let count = 0;
    for (const row of group) if (row.kind === "write") count += row.blockCount;
    const lbas = new Float64Array(count);
    const lsns = new Float64Array(count);
    let at = 0;
    for (const row of group) {
      if (row.kind !== "write") continue;
      for (let index = 0; index < row.blockCount; index++, at++) {
        lbas[at] = row.lba + index;
        lsns[at] = row.lsnFirst + index;
      }
    }
    return engine.readEntriesData(lbas, lsns, options);
  };
  const runsOf = (group: LogRow[], { data, live, crcs }: EntriesData): EntryRun[] => {
    const runs: EntryRun[] = [];
    let next = 0;
    for (const row of group) {
      if (row.kind === "snapshot") continue;
      if (row.kind !== "write") {
        runs.push({ lsn: row.lsnFirst, timeMs: row.timeMs, lba: row.lba, blockCount: row.blockCount, kind: row.kind });
        continue;
      }
      // An entry freed while being read (compaction: no view needs it any more) is left out: the
      // stream is the log as it now holds. Each live stretch of the row is a run (a view of the read, no copy).
      for (let first = 0; first < row.blockCount;) {
        if (live[next + first] === 0) {
          first++;
          continue;
        }
        let end = first + 1;
        while (end < row.blockCount && live[next + end] === 1) end++;
        runs.push({
          lsn: row.lsnFirst + first,
          timeMs: row.timeMs,
          lba: row.lba + first,
          blockCount: end - first,
          kind: "write",
          data: data.subarray((next + first) * blockSize, (next + end) * blockSize),
          blockCrcs: crcs.subarray(next + first, next + end),
        });
        first = end;
      }
      next += row.blockCount;
    }
    return runs;
  };
  const withData = async (group: LogRow[]): Promise<EntryRun[]> => {
    const read = await timed(() => readData(group));
    return timed(() => runsOf(group, read));
  };
  // Stepped by hand so that the work each step does synchronously (the rows read and grouped) is timed too.
  const groups = mapAhead(rowGroups(rows), withData, GROUPS_IN_FLIGHT);
  try {
    for (;;) {
      const step = await timed(() => groups.next());
      if (step.done === true) return;
      await timed(() => writer.addRuns(step.value));
    }
  } finally {
    // As for-await would: a failed step leaves no read running and no log file open.
    await groups.return(undefined);
  }
}

/** The log's rows in groups of about ENTRIES_PER_READ entries: each group's data is read at once. */
async function* rowGroups(batches: AsyncIterable<LogRow[]>): AsyncGenerator<LogRow[]> {
  let group: LogRow[] = [];
  let entries = 0;
  for await (const rows of batches) {
    for (const row of rows) {
      group.push(row);
      entries += row.blockCount;
      if (entries >= ENTRIES_PER_READ) {
        yield group;
        group = [];
        entries = 0;
      }
    }
  }
  if (group.length > 0) yield group;
}

/** The same entries per partition sorted by block then LSN. */
async function writeBlockOrdered(engine: DiskEngine, writer: StreamWriter, partition: Partition): Promise<void> {
  if (partition.lsnLast <= partition.lsnAfter) return;
  const blockSize = engine.geometry.blockSizeBytes;
  type Entry = { lba: number; lsn: number; timeMs: number; kind: "write" | "zero" | "trim" };
  const entries: Entry[] = [];
  for await (const rows of readLogRows(engine, { lsnFirst: partition.lsnAfter + 1, lsnLast: partition.lsnLast, withData: false })) {
    for (const row of rows) {
      if (row.kind === "snapshot") continue;
      for (let index = 0; index < row.blockCount; index++)
        entries.push({ lba: row.lba + index, lsn: row.lsnFirst + index, timeMs: row.timeMs, kind: row.kind });
    }
  }
  entries.sort((a, b) => a.lba - b.lba || a.lsn - b.lsn);
  function* groups(): Generator<Entry[]> {
    for (let first = 0; first < entries.length; first += ENTRIES_PER_READ) yield entries.slice(first, first + ENTRIES_PER_READ);
  }
  // Every entry of the group is asked for (zero and trim ones answer zeros, unused): entry i's bytes at i × the block size.
  const withData = async (group: Entry[]) => ({
    group,
    read: await engine.readEntriesData(
      group.map((entry) => entry.lba),
      group.map((entry) => entry.lsn),
    ),
  });
  for await (const { group, read } of mapAhead(groups(), withData, GROUPS_IN_FLIGHT)) {
    for (const [index, entry] of group.entries()) {
      if (entry.kind === "write" && read.live[index] === 0) continue;
      const data = entry.kind === "write" ? read.data.subarray(index * blockSize, (index + 1) * blockSize) : undefined;
      await writer.addRun({ lsn: entry.lsn, timeMs: entry.timeMs, lba: entry.lba, blockCount: 1, kind: entry.kind, data });
    }
  }
}

/** One version of a block in a compacted partition. */
interface Version {
  lba: number;
  lsn: number;
  kind: "write" | "zero" | "trim";
}

const KIND_OF_SOURCE: Record<number, Version["kind"] | undefined> = {
  [BlockSource.SLOT]: "write",
  [BlockSource.ZERO]: "zero",
  [BlockSource.TRIM]: "trim",
};

/**
 * The newest version, at the partition's end, of each block written in it. In block order the
 * runs are consecutive blocks of one kind (their LSNs need not be consecutive: a compacted
 * stream keeps no point in time inside a partition; a run carries its newest LSN and the
 * partition's end time).
 */
async function writeCompacted(engine: DiskEngine, writer: StreamWriter, partition: Partition, order: "time" | "block"): Promise<void> {
  if (partition.lsnLast <= partition.lsnAfter) return;
  const versions: Version[] = [];
  for await (const changed of engine.diffRuns(partition.lsnAfter, partition.lsnLast)) {
    for (let lba = changed.lbaFirst; lba < changed.lbaFirst + changed.blockCount; lba += MAP_BLOCKS) {
      const count = Math.min(MAP_BLOCKS, changed.lbaFirst + changed.blockCount - lba);
      const seen = engine.versionsSeenBy(lba, count, partition.lsnLast);
      for (let index = 0; index < count; index++) {
        const kind = KIND_OF_SOURCE[seen.sources[index]];
        if (kind !== undefined) versions.push({ lba: lba + index, lsn: seen.lsns[index], kind });
      }
    }
  }
  if (order === "time") versions.sort((a, b) => a.lsn - b.lsn);
  const consecutive = (a: Version, b: Version) => b.lba === a.lba + 1 && b.kind === a.kind && (order === "block" || b.lsn === a.lsn + 1);
  function* runs(): Generator<{ head: Version; blockCount: number; lsnNewest: number }> {
    for (let first = 0; first < versions.length;) {
      let last = first;
      while (last + 1 < versions.length && last - first + 1 < MAP_BLOCKS && consecutive(versions[last], versions[last + 1])) last++;
      let lsnNewest = 0;
      for (let index = first; index <= last; index++) lsnNewest = Math.max(lsnNewest, versions[index].lsn);
      yield { head: versions[first], blockCount: last - first + 1, lsnNewest };
      first = last + 1;
    }
  }
  const withData = async (run: { head: Version; blockCount: number; lsnNewest: number }) => ({
    ...run,
    data: run.head.kind === "write" ? await engine.readBlocks(run.head.lba, run.blockCount, partition.lsnLast) : undefined,
  });
  // Runs reach MAP_BLOCKS blocks (16 MiB of 4 KiB blocks): fewer in flight than for log rows.
  for await (const { head, blockCount, lsnNewest, data } of mapAhead(runs(), withData, 4)) {
    await writer.addRun({ lsn: lsnNewest, timeMs: partition.timeMs, lba: head.lba, blockCount, kind: head.kind, data });
  }
}
