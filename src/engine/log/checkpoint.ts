import { crc32c } from "../../util/crc32c.js";
import { SnaplogError, ErrorCodes } from "../../util/errors.js";
import { CHECKPOINT_MAGIC, CHECKPOINT_VERSION } from "../constants.js";
import type { CrashHook } from "../crash-points.js";
import type { DiskState } from "../tables/disk-state.js";
import type { SnapshotCut } from "../tables/snapshot-cut.js";
import type { Medium, MediumFile } from "../medium.js";

/**
 * A checkpoint is the engine's tables at one moment, so that opening replays only the journal
 * written after it. Layout (little-endian), see docs/on-disk-format.md:
 *
 *   0  u32 magic "SLCK"   4 u32 version   8 u32 crc32c of bytes [16, end)   12 u32 reserved (zero)
 *  16  f64 generation (first journal file to replay)
 *  24  f64 lsnLast
 *  32  f64 entryCount    40 u32 snapshotJsonBytes   44 u32 timePointCount
 *  48  f64 lsnHorizon (history window's horizon)   56 f64 foldLsn (a fold under way, else 0)
 *      (version 1 had zeros at 48..64: no horizon, no fold)
 *  64  entryCount × (f64 lba, f64 lsn, u32 slot, u32 crc), in LSN order
 *      JSON (utf-8) {snapshots, baselineBad}, padded to 8 (before baselineBad: the snapshot array)
 *      timePointCount × (f64 lsn, f64 timeMs)
 */
export const CHECKPOINT_FILE = "checkpoint.ckpt";
const CHECKPOINT_TEMP_FILE = "checkpoint.tmp";
const HEADER_BYTES = 64;
const ENTRY_BYTES = 24;
const ENTRIES_PER_CHUNK = 64 * 1024;
/** Entries read per step when a checkpoint is loaded (12 MiB): the file is never held whole. */
const ENTRIES_PER_READ = 512 * 1024;

/** Time points as columns (TimeIndex): no object per point. */
export interface TimePoints {
  readonly count: number;
  lsnAt(index: number): number;
  timeMsAt(index: number): number;
}

export type { SnapshotCut } from "../tables/snapshot-cut.js";

export interface CheckpointState {
  generation: number;
  lsnLast: number;
  entryCount: number;
  /** Calls back with each live entry in LSN order. */
  forEachEntry(visit: (lba: number, lsn: number, slot: number, crc: number) => void): void;
  snapshots: SnapshotCut[];
  timePoints: TimePoints;
  lsnHorizon: number;
  /** The fold under way (0: none). */
  foldLsn: number;
  baselineBad: number[];
}

/** A checkpoint's tables but its entries and time points, which go to a CheckpointSink as they are read. */
export interface LoadedCheckpoint {
  generation: number;
  lsnLast: number;
  entryCount: number;
  snapshots: SnapshotCut[];
  lsnHorizon: number;
  foldLsn: number;
  baselineBad: number[];
}

/** Where readCheckpoint puts entries (in LSN order) and time points as it reads them. */
export interface CheckpointSink {
  entry(lba: number, lsn: number, slot: number, crc: number): void;
  timePoint(lsn: number, timeMs: number): void;
}

/** The checkpoint of a disk's tables, naming `generation` as the journal to replay from. */
export function checkpointStateOf(state: DiskState, generation: number, foldLsn = 0): CheckpointState {
  const timePoints = state.times;
  return {
    generation,
    lsnLast: state.lsnLast,
    entryCount: state.entries.count,
    forEachEntry: (visit) => state.forEachEntryInLsnOrder(visit),
    snapshots: [...state.snapshots],
    timePoints,
    lsnHorizon: state.lsnHorizon,
    foldLsn,
    baselineBad: [...state.baselineBad],
  };
}

/** One entry of a checkpoint, as its entry section holds it. */
export interface CheckpointEntry {
  lba: number;
  lsn: number;
  slot: number;
  crc: number;
}

/**
 * The checkpoint entry at `offset` of `bytes` (a piece of the entry section): the one place that
 * reads the entry layout. Fills `into` when given (a checkpoint holds up to 10⁷ entries).
 */
export function readCheckpointEntry(
  bytes: Buffer,
  offset: number,
  into: CheckpointEntry = { lba: 0, lsn: 0, slot: 0, crc: 0 },
): CheckpointEntry {
  into.lba = bytes.readDoubleLE(offset);
  into.lsn = bytes.readDoubleLE(offset + 8);
  into.slot = bytes.readUInt32LE(offset + 16);
  into.crc = bytes.readUInt32LE(offset + 20);
  return into;
}

/** Serializes the state into buffers (synchronously, so the state is one consistent moment). */
export function encodeCheckpoint(state: CheckpointState): Buffer[] {
  const chunks: Buffer[] = [];
  let chunk = Buffer.alloc(Math.min(state.entryCount, ENTRIES_PER_CHUNK) * ENTRY_BYTES);
  let offset = 0;
  let written = 0;
  state.forEachEntry((lba, lsn, slot, crc) => {
    if (offset === chunk.length) {
      chunks.push(chunk);
      chunk = Buffer.alloc(Math.min(state.entryCount - written, ENTRIES_PER_CHUNK) * ENTRY_BYTES);
      offset = 0;
    }
    chunk.writeDoubleLE(lba, offset);
    chunk.writeDoubleLE(lsn, offset + 8);
    chunk.writeUInt32LE(slot, offset + 16);
    chunk.writeUInt32LE(crc, offset + 20);
    offset += ENTRY_BYTES;
    written++;
  });
  if (written !== state.entryCount) throw new SnaplogError(ErrorCodes.INTERNAL, "checkpoint entry count mismatch");
  if (chunk.length > 0) chunks.push(chunk);

  const json = Buffer.from(JSON.stringify({ snapshots: state.snapshots, baselineBad: state.baselineBad }), "utf8");
  const jsonPadded = Buffer.alloc((json.length + 7) & ~7);
  json.copy(jsonPadded);
  const points = Buffer.alloc(state.timePoints.count * 16);
  for (let index = 0; index < state.timePoints.count; index++) {
    points.writeDoubleLE(state.timePoints.lsnAt(index), index * 16);
    points.writeDoubleLE(state.timePoints.timeMsAt(index), index * 16 + 8);
  }

  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  header.writeUInt32LE(CHECKPOINT_VERSION, 4);
  header.writeDoubleLE(state.generation, 16);
  header.writeDoubleLE(state.lsnLast, 24);
  header.writeDoubleLE(state.entryCount, 32);
  header.writeUInt32LE(json.length, 40);
  header.writeUInt32LE(state.timePoints.count, 44);
  header.writeDoubleLE(state.lsnHorizon, 48);
  header.writeDoubleLE(state.foldLsn, 56);
  const parts: Buffer[] = [header];
  for (const part of chunks) parts.push(part);
  parts.push(jsonPadded, points);
  let crc = crc32c(header.subarray(16));
  for (let index = 1; index < parts.length; index++) crc = crc32c(parts[index], crc);
  header.writeUInt32LE(crc, 8);
  return parts;
}

/** Writes a checkpoint durably: temp file, sync, rename, directory sync. */
export async function writeCheckpoint(medium: Medium, buffers: Buffer[], crash?: CrashHook): Promise<void> {
  await medium.remove(CHECKPOINT_TEMP_FILE);
  const file = await medium.open(CHECKPOINT_TEMP_FILE, { create: true });
  try {
    let position = 0;
    // writev takes at most IOV_MAX buffers per call on some platforms; libuv splits, but keep calls bounded.
    for (let index = 0; index < buffers.length; index += 64) {
      const group = buffers.slice(index, index + 64);
      await file.writev(group, position);
      for (const buffer of group) position += buffer.length;
    }
    await file.sync();
  } finally {
    await file.close();
  }
  crash?.("checkpoint:written");
  await medium.rename(CHECKPOINT_TEMP_FILE, CHECKPOINT_FILE);
  await medium.syncDirectory();
  crash?.("checkpoint:renamed");
}

/**
 * Reads a disk's checkpoint, handing its entries and time points to `sink` as they are read (a
 * 10⁷-entry checkpoint is 240 MB: it is read a step at a time, never whole). The checksum covers
 * the whole file and is known only at the end: on CORRUPT, whatever the sink received must be
 * thrown away. Undefined when there is no checkpoint file.
 */
export async function readCheckpoint(medium: Medium, diskName: string, sink: CheckpointSink): Promise<LoadedCheckpoint | undefined> {
  if (!(await medium.exists(CHECKPOINT_FILE))) return undefined;
  const file = await medium.open(CHECKPOINT_FILE, { create: false });
  try {
    return await readCheckpointFile(file, diskName, sink);
  } finally {
    await file.close();
  }
}

async function readCheckpointFile(file: MediumFile, diskName: string, sink: CheckpointSink): Promise<LoadedCheckpoint> {
  const corrupt = (why: string) =>
    new SnaplogError(ErrorCodes.CORRUPT, `checkpoint of disk ${diskName} is corrupt: ${why}`, {
      disk: diskName,
      path: CHECKPOINT_FILE,
      hint: "the store cannot open this disk safely; restore it from an archive",
    });
  const sizeBytes = await file.sizeBytes();
  const header = Buffer.alloc(HEADER_BYTES);
  if ((await file.read(header, 0)) < HEADER_BYTES || header.readUInt32LE(0) !== CHECKPOINT_MAGIC) throw corrupt("bad header");
  const version = header.readUInt32LE(4);
  if (version !== CHECKPOINT_VERSION && version !== 1) throw corrupt(`unknown version ${version}`);
  // Bytes 4..16 are outside the checksum: what is reserved must be zero, and a version 1 file
  // has no horizon or fold (so a version 2 file whose version rotted to 1 is refused, unless it
  // reads the same either way).
  if (header.readUInt32LE(12) !== 0) throw corrupt("reserved header bytes are not zero");
  if (version === 1 && (header.readBigUInt64LE(48) !== 0n || header.readBigUInt64LE(56) !== 0n))
    throw corrupt("a version 1 header with a horizon or a fold");
  const entryCount = header.readDoubleLE(32);
  const jsonBytes = header.readUInt32LE(40);
  const timePointCount = header.readUInt32LE(44);
  if (!Number.isSafeInteger(entryCount) || entryCount < 0) throw corrupt("bad entry count");
  const entriesEnd = HEADER_BYTES + entryCount * ENTRY_BYTES;
  const jsonEnd = entriesEnd + ((jsonBytes + 7) & ~7);
  if (jsonEnd + timePointCount * 16 !== sizeBytes) throw corrupt("sizes do not add up");
  let crc = crc32c(header.subarray(16));
  // Entries reach the sink before the checksum is known: one it refuses (rot the checksum will
  // explain) stops the feeding, and the checksum decides which error to report.
  let refused: unknown;
  const chunk = Buffer.alloc(Math.min(entryCount, ENTRIES_PER_READ) * ENTRY_BYTES);
  const entry: CheckpointEntry = { lba: 0, lsn: 0, slot: 0, crc: 0 };
  for (let first = 0; first < entryCount; first += ENTRIES_PER_READ) {
    const count = Math.min(ENTRIES_PER_READ, entryCount - first);
    const piece = chunk.subarray(0, count * ENTRY_BYTES);
    if ((await file.read(piece, HEADER_BYTES + first * ENTRY_BYTES)) < piece.length) throw corrupt("cut short");
    crc = crc32c(piece, crc);
    if (refused !== undefined) continue;
    try {
      for (let offset = 0; offset < piece.length; offset += ENTRY_BYTES) {
        readCheckpointEntry(piece, offset, entry);
        sink.entry(entry.lba, entry.lsn, entry.slot, entry.crc);
      }
    } catch (error) {
      refused = error;
    }
  }
  const rest = Buffer.alloc(sizeBytes - entriesEnd);
  if ((await file.read(rest, entriesEnd)) < rest.length) throw corrupt("cut short");
  crc = crc32c(rest, crc);
  if (crc !== header.readUInt32LE(8)) throw corrupt("checksum mismatch");
  if (refused !== undefined) throw refused;
  const pointsStart = jsonEnd - entriesEnd;
  for (let index = 0; index < timePointCount; index++)
    sink.timePoint(rest.readDoubleLE(pointsStart + index * 16), rest.readDoubleLE(pointsStart + index * 16 + 8));
  return {
    generation: header.readDoubleLE(16),
    lsnLast: header.readDoubleLE(24),
    entryCount,
    ...parseTables(rest.toString("utf8", 0, jsonBytes)),
    lsnHorizon: header.readDoubleLE(48),
    foldLsn: header.readDoubleLE(56),
  };
}

/** The JSON part: {snapshots, baselineBad}, or (older checkpoints) the snapshot array alone. */
function parseTables(text: string): { snapshots: SnapshotCut[]; baselineBad: number[] } {
  const parsed = JSON.parse(text) as SnapshotCut[] | { snapshots: SnapshotCut[]; baselineBad: number[] };
  return Array.isArray(parsed) ? { snapshots: parsed, baselineBad: [] } : parsed;
}

export const CHECKPOINT_ENTRY_BYTES = ENTRY_BYTES;
export const CHECKPOINT_HEADER_BYTES = HEADER_BYTES;

/** The header fields of an open checkpoint file (for streaming readers; no whole-file checksum check). */
export async function readCheckpointHeader(file: MediumFile): Promise<{ generation: number; lsnLast: number; entryCount: number }> {
  const header = Buffer.alloc(HEADER_BYTES);
  if ((await file.read(header, 0)) < HEADER_BYTES || header.readUInt32LE(0) !== CHECKPOINT_MAGIC) {
    throw new SnaplogError(ErrorCodes.CORRUPT, `checkpoint ${file.name} has a bad header`, { path: file.name });
  }
  return { generation: header.readDoubleLE(16), lsnLast: header.readDoubleLE(24), entryCount: header.readDoubleLE(32) };
}
