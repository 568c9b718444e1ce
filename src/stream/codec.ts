/**
 * Frame compression (docs/stream-format.md "Codecs"). Each frame is compressed on its own, so a
 * reader can check and decode frames one at a time; a frame that compression does not shrink
 * by at least 3 % is stored raw (codec none), so incompressible data costs nothing to decode.
 * zstd comes from @mongodb-js/zstd (native, prebuilt from the registry, runs on the libuv pool)
 * at zstd's default level 3 (the package's wrapper takes no level; BENCHMARKS.md has 1, 3, 9);
 * deflate from node:zlib (always there). Measured in BENCHMARKS.md "Stream compression".
 */
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { compress as zstdCompress, decompress as zstdDecompress } from "@mongodb-js/zstd";
import { ErrorCodes, invalidArgument, SnaplogError } from "../util/errors.js";

export const CODEC_NAMES = ["none", "zstd", "deflate"] as const;
export type CodecName = (typeof CODEC_NAMES)[number];
export const CODEC_DEFAULT: CodecName = "zstd";

/** The codec byte of a frame header. */
export const CodecId = { none: 0, zstd: 1, deflate: 2 } as const satisfies Record<CodecName, number>;

const DEFLATE_LEVEL = 1;
/** Keep the compressed form only when it saves this fraction of the raw bytes. */
export const SAVING_MIN = 0.03;

const deflateRaw = promisify(zlib.deflateRaw);
const inflateRaw = promisify(zlib.inflateRaw);

export function parseCodec(name: string): CodecName {
  if ((CODEC_NAMES as readonly string[]).includes(name)) return name as CodecName;
  throw invalidArgument(`unknown compression "${name}": use ${CODEC_NAMES.join(", ")}`);
}

/** The bytes to store for `raw` and the codec they are in (none when compression does not pay). */
export async function encodeFrame(raw: Buffer, codec: CodecName): Promise<{ codecId: number; stored: Buffer }> {
  if (codec === "none" || raw.length === 0) return { codecId: CodecId.none, stored: raw };
  const packed = codec === "zstd" ? withContentSize(await zstdCompress(raw), raw.length) : await deflateRaw(raw, { level: DEFLATE_LEVEL });
  if (packed.length > raw.length * (1 - SAVING_MIN)) return { codecId: CodecId.none, stored: raw };
  return { codecId: CodecId[codec], stored: packed };
}

/**
 * The raw bytes of a stored frame. `rawBytes` is what the (checksummed) frame header promised:
 * a payload that decodes to anything else is CORRUPT, and decoding never yields more than that.
 */
export async function decodeFrame(stored: Buffer, codecId: number, rawBytes: number): Promise<Buffer> {
  let raw: Buffer;
  try {
    if (codecId === CodecId.none) raw = stored;
    else if (codecId === CodecId.zstd) {
      checkZstdContentSize(stored, rawBytes);
      raw = await zstdDecompress(stored);
    } else if (codecId === CodecId.deflate) raw = await inflateRaw(stored, { maxOutputLength: rawBytes });
    else throw new SnaplogError(ErrorCodes.UNSUPPORTED, `frame codec ${codecId} is not known to this version`);
  } catch (error) {
    if (error instanceof SnaplogError) throw error;
    throw new SnaplogError(ErrorCodes.BAD_STREAM, `a frame does not decompress: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (raw.length !== rawBytes) {
    throw new SnaplogError(ErrorCodes.BAD_STREAM, `a frame decodes to ${raw.length} bytes where its header says ${rawBytes}`);
  }
  return raw;
}

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * A zstd frame names its decoded size in its header, and the decoder allocates that much: a
 * hostile frame could ask for gigabytes. So the header is read first (RFC 8878 §3.1.1.1) and
 * must promise exactly the size the frame header promised (our writer always records it).
 */
function checkZstdContentSize(stored: Buffer, rawBytes: number): void {
  const corrupt = (why: string) => new SnaplogError(ErrorCodes.BAD_STREAM, `a zstd frame is not acceptable: ${why}`);
  if (stored.length < 6 || stored.readUInt32LE(0) !== ZSTD_MAGIC) throw corrupt("no zstd frame header");
  const descriptor = stored[4];
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 3];
  const fcsBytes = [singleSegment, 2, 4, 8][fcsFlag];
  if (fcsBytes === 0) throw corrupt("it does not record its decoded size");
  const at = 5 + (singleSegment ? 0 : 1) + dictionaryIdBytes;
  if (stored.length < at + fcsBytes) throw corrupt("its header is cut short");
  let size: number;
  if (fcsBytes === 1) size = stored[at];
  else if (fcsBytes === 2) size = stored.readUInt16LE(at) + 256;
  else if (fcsBytes === 4) size = stored.readUInt32LE(at);
  else size = stored.readUInt32LE(at) + stored.readUInt32LE(at + 4) * 2 ** 32;
  if (size !== rawBytes) throw corrupt(`it decodes to ${size} bytes where the frame header says ${rawBytes}`);
}

/**
 * The library's streaming compressor leaves the decoded size out of the frame header; it is put
 * in (4 bytes, RFC 8878 Frame_Content_Size) so that every reader can bound the decode by it,
 * and the decoder, which allocates exactly that, fails on a frame that decodes to more.
 */
function withContentSize(frame: Buffer, rawBytes: number): Buffer {
  const descriptor = frame[4];
  if (frame.readUInt32LE(0) !== ZSTD_MAGIC || descriptor >> 6 !== 0 || ((descriptor >> 5) & 1) === 1) return frame;
  const at = 5 + 1 + [0, 1, 2, 4][descriptor & 3];
  const size = Buffer.alloc(4);
  size.writeUInt32LE(rawBytes);
  return Buffer.concat([frame.subarray(0, 4), Buffer.from([descriptor | 0x80]), frame.subarray(5, at), size, frame.subarray(at)]);
}
