import { crc32c } from "../util/crc32c.js";
import { SnaplogError, ErrorCodes } from "../util/errors.js";
import { CHECKPOINT_MAGIC, CHECKPOINT_VERSION } from "./constants.js";
import type { CrashHook } from "./crash-points.js";
import type { DiskState } from "./disk-state.js";
import type { Medium, MediumFile } from "./medium.js";

/**
 * A checkpoint is the engine's tables at one moment, so that opening replays only the journal
 * written after it. Layout (little-endian), see docs/on-disk-format.md:
 *
 *   0  u32 magic "SLCK"   4 u32 version   8 u32 crc32c of bytes [16, end)   12 u32 reserved
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

export interface SnapshotCut {
  name: string;
  lun: number;
  lsn: number;
  timeMs: number;
}

export interface CheckpointState {
  generation: number;
  lsnLast: number;
  entryCount: number;
  /** Calls back with each live entry in LSN order. */
  forEachEntry(visit: (lba: number, lsn: number, slot: number, crc: number) => void): void;
  snapshots: SnapshotCut[];
  timePoints: { lsn: number; timeMs: number }[];
  lsnHorizon: number;
  foldLsn: number;
  baselineBad: number[];
}

export interface LoadedCheckpoint {
  generation: number;
  lsnLast: number;
  entryCount: number;
  /** Raw entry bytes: ENTRY_BYTES each. */
  entries: Buffer;
  snapshots: SnapshotCut[];
  timePoints: { lsn: number; timeMs: number }[];
  lsnHorizon: number;
  foldLsn: number;
  baselineBad: number[];
}

/** The checkpoint of a disk's tables, naming `generation` as the journal to replay from. */
export function checkpointStateOf(state: DiskState, generation: number, foldLsn = 0): CheckpointState {
  const timePoints: { lsn: number; timeMs: number }[] = [];
  for (let index = 0; index < state.times.count; index++) timePoints.push(state.times.pointAt(index));
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
  const points = Buffer.alloc(state.timePoints.length * 16);
  state.timePoints.forEach((point, index) => {
    points.writeDoubleLE(point.lsn, index * 16);
    points.writeDoubleLE(point.timeMs, index * 16 + 8);
  });

  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  header.writeUInt32LE(CHECKPOINT_VERSION, 4);
  header.writeDoubleLE(state.generation, 16);
  header.writeDoubleLE(state.lsnLast, 24);
  header.writeDoubleLE(state.entryCount, 32);
  header.writeUInt32LE(json.length, 40);
  header.writeUInt32LE(state.timePoints.length, 44);
  header.writeDoubleLE(state.lsnHorizon, 48);
  header.writeDoubleLE(state.foldLsn, 56);
  const body = [...chunks, jsonPadded, points];
  let crc = crc32c(header.subarray(16));
  for (const part of body) crc = crc32c(part, crc);
  header.writeUInt32LE(crc, 8);
  return [header, ...body];
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

export async function readCheckpoint(medium: Medium, diskName: string): Promise<LoadedCheckpoint | undefined> {
  if (!(await medium.exists(CHECKPOINT_FILE))) return undefined;
  const file = await medium.open(CHECKPOINT_FILE, { create: false });
  let bytes: Buffer;
  try {
    bytes = Buffer.alloc(await file.sizeBytes());
    await file.read(bytes, 0);
  } finally {
    await file.close();
  }
  const corrupt = (why: string) =>
    new SnaplogError(ErrorCodes.CORRUPT, `checkpoint of disk ${diskName} is corrupt: ${why}`, {
      disk: diskName,
      path: CHECKPOINT_FILE,
      hint: "the store cannot open this disk safely; restore it from an archive",
    });
  if (bytes.length < HEADER_BYTES || bytes.readUInt32LE(0) !== CHECKPOINT_MAGIC) throw corrupt("bad header");
  const version = bytes.readUInt32LE(4);
  if (version !== CHECKPOINT_VERSION && version !== 1) throw corrupt(`unknown version ${version}`);
  if (crc32c(bytes.subarray(16)) !== bytes.readUInt32LE(8)) throw corrupt("checksum mismatch");
  const entryCount = bytes.readDoubleLE(32);
  const jsonBytes = bytes.readUInt32LE(40);
  const timePointCount = bytes.readUInt32LE(44);
  const entriesEnd = HEADER_BYTES + entryCount * ENTRY_BYTES;
  const jsonEnd = entriesEnd + ((jsonBytes + 7) & ~7);
  if (jsonEnd + timePointCount * 16 !== bytes.length) throw corrupt("sizes do not add up");
  const timePoints: { lsn: number; timeMs: number }[] = [];
  for (let index = 0; index < timePointCount; index++) {
    timePoints.push({ lsn: bytes.readDoubleLE(jsonEnd + index * 16), timeMs: bytes.readDoubleLE(jsonEnd + index * 16 + 8) });
  }
  return {
    generation: bytes.readDoubleLE(16),
    lsnLast: bytes.readDoubleLE(24),
    entryCount,
    entries: bytes.subarray(HEADER_BYTES, entriesEnd),
    ...parseTables(bytes.toString("utf8", entriesEnd, entriesEnd + jsonBytes)),
    timePoints,
    lsnHorizon: bytes.readDoubleLE(48),
    foldLsn: bytes.readDoubleLE(56),
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
