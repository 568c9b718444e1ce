/**
 * The archive stream's byte layout (docs/stream-format.md is the reference; this file is its
 * code): a header, frames, a trailer. All integers little-endian; u64 values are safe integers.
 *
 *   header   "SNAPLOGS" | version u16 | flags u16 | requiredFeatures u32 | jsonBytes u32 | JSON | crc32c u32
 *   frame    "SLFR" | type u8 | codec u8 | flags u16 | seq u32 | rawBytes u32 | storedBytes u32
 *            | payloadCrc32c u32 | reserved u32 | headerCrc32c u32 (32 bytes) | stored payload
 *   trailer  "SLTR" | reserved u32 | frames u64 | runs u64 | blocks u64 | cuts u64 | bytesBefore u64
 *            | sha256[32] of every byte before the trailer | crc32c u32 (84 bytes)
 */
import { blockCrcsOf, crc32c, crc32cCombine, crc32cOfBlocks } from "../util/crc32c.js";
import { assert, ErrorCodes, SnaplogError } from "../util/errors.js";

export const STREAM_MAGIC = Buffer.from("SNAPLOGS", "latin1");
export const STREAM_VERSION = 1;
/** Feature bits a reader must know to read a stream (none defined in version 1). */
export const REQUIRED_FEATURES_KNOWN = 0;
export const HEADER_FIXED_BYTES = 20;
export const HEADER_JSON_BYTES_MAX = 64 * 1024;

export const FRAME_MAGIC = 0x52464c53; // "SLFR"
export const TRAILER_MAGIC = 0x52544c53; // "SLTR"
export const FRAME_HEADER_BYTES = 32;
export const TRAILER_BYTES = 84;
/** A frame's decoded payload is at most this big: a reader never holds more than a frame or two. */
export const FRAME_RAW_BYTES_MAX = 8 * 1024 * 1024;
/** Stored bytes may exceed raw bytes only by a codec's framing. */
export const FRAME_STORED_OVERHEAD_MAX = 4096;

/** Frame types; types with bit 0x80 are optional: a reader that does not know one skips it. */
export const FrameType = { ENTRIES: 1, CUT: 2 } as const;
export const FRAME_TYPE_OPTIONAL_BIT = 0x80;

export const RUN_DESCRIPTOR_BYTES = 40;
export const EntryKind = { write: 1, zero: 2, trim: 3 } as const;
export type EntryKindName = keyof typeof EntryKind;

/** A point of the source's history the stream starts from or ends at. */
export interface StreamPoint {
  /** The snapshot's name, or export-YYYYMMDDTHHMMSSZ for a point that is not one. */
  name: string;
  /** The snapshot id (docs/stream-format.md "Identity"): matched by import, never only the name. */
  id: string;
  lsn: number;
  timeMs: number;
}

export interface StreamHeader {
  streamId: string;
  createdMs: number;
  source: { storeId: string; diskId: string; diskName: string };
  blockSizeBytes: number;
  sizeBytes: number;
  /** The source disk's history window, which a full import gives the new disk. */
  historySeconds: number;
  kind: "full" | "incremental";
  /** Only the newest version of each block per partition (between consecutive cuts). */
  compacted: boolean;
  order: "time" | "block";
  from?: StreamPoint;
  to: StreamPoint;
  /** False when `to` is no snapshot of the source and the receiver cuts none there (a replication batch); absent: true. */
  cutTo?: boolean;
}

/**
 * A run of entries: consecutive blocks from `lba`, consecutive LSNs from `lsn`, one kind, one
 * time. LSN 0 is the base: the source's baseline, in full streams only.
 */
export interface EntryRun {
  lsn: number;
  timeMs: number;
  lba: number;
  blockCount: number;
  kind: EntryKindName;
  /** Write runs: blockCount blocks. */
  data?: Buffer;
  /**
   * Write runs, when known: each block's CRC32C, already checked against `data` (an export's
   * from the log, which verified them reading; an import's computed decoding). Runs and frames
   * take their checksums from these rather than passing over the data again.
   */
  blockCrcs?: Uint32Array;
}

/** A snapshot cut inside the stream's range: the source's partitions travel as they are. */
export interface StreamCut extends StreamPoint {
  lun?: number;
}

export interface StreamTrailer {
  frameCount: number;
  runCount: number;
  blockCount: number;
  cutCount: number;
  bytesBefore: number;
  sha256: Buffer;
}

export interface FrameHeader {
  type: number;
  codecId: number;
  seq: number;
  rawBytes: number;
  storedBytes: number;
  payloadCrc32c: number;
}

export function corruptStream(message: string): SnaplogError {
  return new SnaplogError(ErrorCodes.BAD_STREAM, `stream refused: ${message}`);
}

export function writeU64(buffer: Buffer, value: number, offset: number): void {
  buffer.writeUInt32LE(value % 2 ** 32, offset);
  buffer.writeUInt32LE(Math.floor(value / 2 ** 32), offset + 4);
}

export function readU64(buffer: Buffer, offset: number): number {
  const high = buffer.readUInt32LE(offset + 4);
  if (high >= 2 ** 21) throw corruptStream(`a 64-bit field at ${offset} is beyond 2^53`);
  return high * 2 ** 32 + buffer.readUInt32LE(offset);
}

export function encodeHeader(header: StreamHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const bytes = Buffer.alloc(HEADER_FIXED_BYTES + json.length + 4);
  STREAM_MAGIC.copy(bytes, 0);
  bytes.writeUInt16LE(STREAM_VERSION, 8);
  bytes.writeUInt16LE(0, 10);
  bytes.writeUInt32LE(0, 12);
  bytes.writeUInt32LE(json.length, 16);
  json.copy(bytes, HEADER_FIXED_BYTES);
  bytes.writeUInt32LE(crc32c(bytes.subarray(0, HEADER_FIXED_BYTES + json.length)), HEADER_FIXED_BYTES + json.length);
  return bytes;
}

/** The fixed part: checks magic, version and features; returns the JSON's length. */
export function decodeHeaderFixed(fixed: Buffer): number {
  if (!fixed.subarray(0, 8).equals(STREAM_MAGIC)) throw corruptStream("it does not start with a snaplog stream header");
  const version = fixed.readUInt16LE(8);
  if (version !== STREAM_VERSION) {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, `stream refused: format version ${version} (this version reads ${STREAM_VERSION})`);
  }
  const required = fixed.readUInt32LE(12);
  if ((required & ~REQUIRED_FEATURES_KNOWN) !== 0) {
    throw new SnaplogError(
      ErrorCodes.UNSUPPORTED,
      `stream refused: it needs features this version lacks (bits 0x${required.toString(16)})`,
    );
  }
  const jsonBytes = fixed.readUInt32LE(16);
  if (jsonBytes === 0 || jsonBytes > HEADER_JSON_BYTES_MAX) throw corruptStream(`header length ${jsonBytes} is out of range`);
  return jsonBytes;
}

export function decodeHeaderRest(fixed: Buffer, rest: Buffer): StreamHeader {
  const jsonBytes = rest.length - 4;
  if (rest.readUInt32LE(jsonBytes) !== crc32c(rest.subarray(0, jsonBytes), crc32c(fixed))) throw corruptStream("header checksum mismatch");
  let value: unknown;
  try {
    value = JSON.parse(rest.subarray(0, jsonBytes).toString("utf8"));
  } catch {
    throw corruptStream("header is not JSON");
  }
  return checkHeader(value);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

export function checkPoint(value: unknown, what: string): StreamPoint {
  if (!isObject(value) || typeof value.name !== "string" || typeof value.id !== "string" || !isCount(value.lsn) || !isCount(value.timeMs)) {
    throw corruptStream(`the ${what} point is malformed`);
  }
  return { name: value.name, id: value.id, lsn: value.lsn, timeMs: value.timeMs };
}

function checkHeader(value: unknown): StreamHeader {
  if (!isObject(value)) throw corruptStream("header is not an object");
  const source = value.source;
  const ok =
    typeof value.streamId === "string" &&
    isCount(value.createdMs) &&
    isObject(source) &&
    typeof source.storeId === "string" &&
    typeof source.diskId === "string" &&
    typeof source.diskName === "string" &&
    isCount(value.blockSizeBytes) &&
    isCount(value.sizeBytes) &&
    isCount(value.historySeconds) &&
    (value.kind === "full" || value.kind === "incremental") &&
    typeof value.compacted === "boolean" &&
    (value.order === "time" || value.order === "block");
  if (!ok) throw corruptStream("header fields are missing or malformed");
  const header: StreamHeader = {
    streamId: value.streamId as string,
    createdMs: value.createdMs as number,
    source: { storeId: source.storeId as string, diskId: source.diskId as string, diskName: source.diskName as string },
    blockSizeBytes: value.blockSizeBytes as number,
    sizeBytes: value.sizeBytes as number,
    historySeconds: value.historySeconds as number,
    kind: value.kind as "full" | "incremental",
    compacted: value.compacted as boolean,
    order: value.order as "time" | "block",
    to: checkPoint(value.to, "to"),
  };
  if (header.kind === "incremental") header.from = checkPoint(value.from, "from");
  if (value.cutTo === false) header.cutTo = false;
  const blockSize = header.blockSizeBytes;
  if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0)
    throw corruptStream(`block size ${blockSize} is not valid`);
  if (header.sizeBytes === 0 || header.sizeBytes % blockSize !== 0)
    throw corruptStream(`disk size ${header.sizeBytes} is not whole blocks`);
  return header;
}

export function encodeFrameHeader(frame: FrameHeader): Buffer {
  const bytes = Buffer.alloc(FRAME_HEADER_BYTES);
  bytes.writeUInt32LE(FRAME_MAGIC, 0);
  bytes.writeUInt8(frame.type, 4);
  bytes.writeUInt8(frame.codecId, 5);
  bytes.writeUInt16LE(0, 6);
  bytes.writeUInt32LE(frame.seq, 8);
  bytes.writeUInt32LE(frame.rawBytes, 12);
  bytes.writeUInt32LE(frame.storedBytes, 16);
  bytes.writeUInt32LE(frame.payloadCrc32c, 20);
  bytes.writeUInt32LE(0, 24);
  bytes.writeUInt32LE(crc32c(bytes.subarray(0, 28)), 28);
  return bytes;
}

/** A frame header, checked whole before its payload is read: no size is trusted unchecked. */
export function decodeFrameHeader(bytes: Buffer, seqExpected: number): FrameHeader {
  if (bytes.readUInt32LE(28) !== crc32c(bytes.subarray(0, 28))) throw corruptStream(`frame ${seqExpected}: header checksum mismatch`);
  const frame: FrameHeader = {
    type: bytes.readUInt8(4),
    codecId: bytes.readUInt8(5),
    seq: bytes.readUInt32LE(8),
    rawBytes: bytes.readUInt32LE(12),
    storedBytes: bytes.readUInt32LE(16),
    payloadCrc32c: bytes.readUInt32LE(20),
  };
  if (frame.seq !== seqExpected)
    throw corruptStream(`frame ${frame.seq} found where frame ${seqExpected} belongs (reordered or missing frames)`);
  if (frame.rawBytes > FRAME_RAW_BYTES_MAX)
    throw corruptStream(`frame ${frame.seq} claims ${frame.rawBytes} bytes (at most ${FRAME_RAW_BYTES_MAX})`);
  if (frame.storedBytes > frame.rawBytes + FRAME_STORED_OVERHEAD_MAX) {
    throw corruptStream(`frame ${frame.seq} stores ${frame.storedBytes} bytes for ${frame.rawBytes}`);
  }
  return frame;
}

export function encodeTrailer(trailer: StreamTrailer): Buffer {
  const bytes = Buffer.alloc(TRAILER_BYTES);
  bytes.writeUInt32LE(TRAILER_MAGIC, 0);
  writeU64(bytes, trailer.frameCount, 8);
  writeU64(bytes, trailer.runCount, 16);
  writeU64(bytes, trailer.blockCount, 24);
  writeU64(bytes, trailer.cutCount, 32);
  writeU64(bytes, trailer.bytesBefore, 40);
  trailer.sha256.copy(bytes, 48);
  bytes.writeUInt32LE(crc32c(bytes.subarray(0, 80)), 80);
  return bytes;
}

export function decodeTrailer(bytes: Buffer): StreamTrailer {
  if (bytes.readUInt32LE(80) !== crc32c(bytes.subarray(0, 80))) throw corruptStream("trailer checksum mismatch");
  return {
    frameCount: readU64(bytes, 8),
    runCount: readU64(bytes, 16),
    blockCount: readU64(bytes, 24),
    cutCount: readU64(bytes, 32),
    bytesBefore: readU64(bytes, 40),
    sha256: Buffer.from(bytes.subarray(48, 80)),
  };
}

/**
 * An ENTRIES payload: run count, reserved, descriptors, then the write runs' data in order;
 * with the payload's CRC32C (combined from the runs', not computed over the data again). It is
 * made as pieces, the runs' data not copied: the descriptors, then views of the runs' own buffers
 * (neighbouring views of one buffer joined). A frame stored raw goes out as
 * these pieces; copying a megabyte per frame into a fresh buffer was a sixth of the sender's time.
 */
export function encodeEntriesParts(runs: readonly EntryRun[], blockSizeBytes: number): { parts: Buffer[]; bytes: number; crc32c: number } {
  const head = Buffer.allocUnsafe(8 + runs.length * RUN_DESCRIPTOR_BYTES);
  head.writeUInt32LE(runs.length, 0);
  head.writeUInt32LE(0, 4);
  const parts: Buffer[] = [head];
  let bytes = head.length;
  // The data piece being joined: a view is made once it ends (one per run was most of the garbage).
  let joining: Buffer | undefined;
  let joinedBytes = 0;
  const endJoin = () => {
    if (joining !== undefined)
      parts.push(joinedBytes === joining.length ? joining : Buffer.from(joining.buffer, joining.byteOffset, joinedBytes));
  };
  let at = 8;
  const dataCrcs = new Uint32Array(runs.length);
  for (const [index, run] of runs.entries()) {
    writeU64(head, run.lsn, at);
    writeU64(head, run.timeMs, at + 8);
    writeU64(head, run.lba, at + 16);
    head.writeUInt32LE(run.blockCount, at + 24);
    head.writeUInt32LE(EntryKind[run.kind], at + 28);
    let crc = 0;
    if (run.kind === "write") {
      const data = run.data as Buffer;
      assert(data.length === run.blockCount * blockSizeBytes, "a write run's data is its blocks");
      if (joining !== undefined && joining.buffer === data.buffer && joining.byteOffset + joinedBytes === data.byteOffset)
        joinedBytes += data.length;
      else {
        endJoin();
        joining = data;
        joinedBytes = data.length;
      }
      bytes += data.length;
      assert(run.blockCrcs === undefined || run.blockCrcs.length === run.blockCount, "a run's block checksums are one per block");
      crc = run.blockCrcs !== undefined ? crc32cOfBlocks(run.blockCrcs, blockSizeBytes) : crc32c(data);
      dataCrcs[index] = crc;
    }
    head.writeUInt32LE(crc, at + 32);
    head.writeUInt32LE(0, at + 36);
    at += RUN_DESCRIPTOR_BYTES;
  }
  endJoin();
  let payloadCrc = crc32c(head);
  for (const [index, run] of runs.entries())
    if (run.kind === "write") payloadCrc = crc32cCombine(payloadCrc, dataCrcs[index], run.blockCount * blockSizeBytes);
  return { parts, bytes, crc32c: payloadCrc };
}

const KIND_BY_ID: Record<number, EntryKindName | undefined> = { 1: "write", 2: "zero", 3: "trim" };

/** The runs of an ENTRIES payload, each checked against the disk's geometry and its data CRC. */
export function decodeEntries(raw: Buffer, geometry: { blockSizeBytes: number; blockCount: number }, seq: number): EntryRun[] {
  const bad = (why: string) => corruptStream(`frame ${seq}: ${why}`);
  if (raw.length < 8) throw bad("entries payload too short");
  const runCount = raw.readUInt32LE(0);
  let dataAt = 8 + runCount * RUN_DESCRIPTOR_BYTES;
  if (dataAt > raw.length) throw bad(`${runCount} runs do not fit in ${raw.length} bytes`);
  const runs: EntryRun[] = [];
  for (let index = 0; index < runCount; index++) {
    const at = 8 + index * RUN_DESCRIPTOR_BYTES;
    const kind = KIND_BY_ID[raw.readUInt32LE(at + 28)];
    if (kind === undefined) throw bad(`run ${index} has an unknown kind`);
    const run: EntryRun = {
      lsn: readU64(raw, at),
      timeMs: readU64(raw, at + 8),
      lba: readU64(raw, at + 16),
      blockCount: raw.readUInt32LE(at + 24),
      kind,
    };
    if (run.blockCount === 0 || run.lba + run.blockCount > geometry.blockCount) {
      throw bad(`run ${index} (blocks ${run.lba}+${run.blockCount}) is outside the disk's ${geometry.blockCount} blocks`);
    }
    if (kind === "write") {
      const bytes = run.blockCount * geometry.blockSizeBytes;
      if (dataAt + bytes > raw.length) throw bad(`run ${index}'s data is cut short`);
      run.data = raw.subarray(dataAt, dataAt + bytes);
      dataAt += bytes;
      // Block by block: the run's checksum is combined from them, and the receiver's log keeps them.
      const blockCrcs = blockCrcsOf(run.data, geometry.blockSizeBytes);
      if (crc32cOfBlocks(blockCrcs, geometry.blockSizeBytes) !== raw.readUInt32LE(at + 32))
        throw bad(`run ${index} (block ${run.lba}): data checksum mismatch`);
      run.blockCrcs = blockCrcs;
    }
    runs.push(run);
  }
  if (dataAt !== raw.length) throw bad(`${raw.length - dataAt} bytes follow the last run's data`);
  return runs;
}

export function encodeCut(cut: StreamCut): Buffer {
  return Buffer.from(JSON.stringify(cut), "utf8");
}

export function decodeCut(raw: Buffer, seq: number): StreamCut {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch {
    throw corruptStream(`frame ${seq}: a cut that is not JSON`);
  }
  const point = checkPoint(value, `frame ${seq} cut`);
  const lun = isObject(value) ? value.lun : undefined;
  return lun === undefined ? point : { ...point, lun: isCount(lun) ? lun : 0 };
}
