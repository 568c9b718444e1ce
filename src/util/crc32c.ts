import { crc32c as portableCrc32c } from "@node-rs/crc32";
import { createRequire } from "node:module";

type Crc32cFunction = (bytes: Uint8Array, previous?: number) => number;

/** The shape of sse4_crc32's module (it ships no types). */
interface Sse42Module {
  hardware_support: boolean;
  sse42_crc: Crc32cFunction;
}

/**
 * The x86 CRC32 instruction (sse4_crc32, built from source at install: an optional dependency)
 * runs at about 8 GB/s here, twice @node-rs/crc32 (4.5 GB/s on 64 KiB, 3.5 on 4 KiB), and
 * checksums are a third of the event loop on sequential I/O (docs/performance.md). When the
 * addon did not build or the CPU lacks SSE 4.2, @node-rs/crc32 computes the same values.
 */
function loadCrc32c(): { implementation: string; compute: Crc32cFunction } {
  try {
    const sse42 = createRequire(import.meta.url)("sse4_crc32") as Sse42Module;
    const sse42Crc = sse42.sse42_crc;
    // It refuses an explicit `undefined` for the initial value: pass one argument then.
    const compute: Crc32cFunction = (bytes, previous) => (previous === undefined ? sse42Crc(bytes) : sse42Crc(bytes, previous));
    if (sse42.hardware_support) return { implementation: "sse4_crc32", compute };
  } catch {
    // not built on this machine: the portable one below
  }
  return { implementation: "@node-rs/crc32", compute: portableCrc32c };
}

const loaded = loadCrc32c();
const computeCrc32c = loaded.compute;

/** Which native CRC32C this process uses ("sse4_crc32" or "@node-rs/crc32"). */
export const crc32cImplementation = loaded.implementation;

/** CRC32C (Castagnoli) of `bytes`, continuing from `previous` when given. */
export function crc32c(bytes: Uint8Array, previous?: number): number {
  return computeCrc32c(bytes, previous) >>> 0;
}

/** The CRC32C of each `blockSizeBytes` block of `data` (whole blocks): what the log keeps per block. */
export function blockCrcsOf(data: Uint8Array, blockSizeBytes: number): Uint32Array {
  const crcs = new Uint32Array(Math.floor(data.length / blockSizeBytes));
  for (let index = 0; index < crcs.length; index++)
    crcs[index] = crc32c(data.subarray(index * blockSizeBytes, (index + 1) * blockSizeBytes));
  return crcs;
}

/**
 * The CRC32C of A followed by B from crc32c(A), crc32c(B) and B's length, without reading
 * either: an export's runs and frames take their checksums from the block checksums the log
 * already holds (and checked), instead of passing over every byte twice more.
 *
 * CRC is linear over GF(2): the register after A followed by B equals the register after A
 * advanced over len(B) zero bytes, xor the CRC of B (the initial and final inversions cancel).
 * Advancing over n zero bytes is a 32×32 bit matrix, built by squaring and cached per length.
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB === 0) return crcA >>> 0;
  return (matrixTimes(zerosOperator(lengthB), crcA) ^ crcB) >>> 0;
}

/** The CRC32C of consecutive blocks of `blockSizeBytes` each, from their CRCs. */
export function crc32cOfBlocks(blockCrcs: ArrayLike<number>, blockSizeBytes: number): number {
  let crc = blockCrcs.length > 0 ? blockCrcs[0] >>> 0 : 0;
  for (let index = 1; index < blockCrcs.length; index++) crc = crc32cCombine(crc, blockCrcs[index], blockSizeBytes);
  return crc;
}

const zeroBlockCrcs = new Map<number, number>();

/** The CRC32C of a block of `blockSizeBytes` zeros. */
export function zeroBlockCrc(blockSizeBytes: number): number {
  let crc = zeroBlockCrcs.get(blockSizeBytes);
  if (crc === undefined) zeroBlockCrcs.set(blockSizeBytes, (crc = crc32c(Buffer.alloc(blockSizeBytes))));
  return crc;
}

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL = 0x82f63b78;
/** Lengths whose operators are kept: runs and frames come in few sizes (whole blocks, descriptor areas). */
const OPERATORS_KEPT_MAX = 512;
const operators = new Map<number, Uint32Array>();

/** matrix (32 columns, column i the image of bit i) times vector. */
function matrixTimes(matrix: Uint32Array, vector: number): number {
  let sum = 0;
  for (let bit = 0; vector !== 0; bit++, vector >>>= 1) if (vector & 1) sum ^= matrix[bit];
  return sum >>> 0;
}

/** first ∘ second: the matrix that applies second, then first. */
function compose(first: Uint32Array, second: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let bit = 0; bit < 32; bit++) out[bit] = matrixTimes(first, second[bit]);
  return out;
}

/** The operator advancing a CRC register over `lengthBytes` zero bytes. */
function zerosOperator(lengthBytes: number): Uint32Array {
  const kept = operators.get(lengthBytes);
  if (kept !== undefined) return kept;
  // One zero bit: the register shifts right, the polynomial folded in when the low bit was set.
  let power: Uint32Array = new Uint32Array(32);
  power[0] = POLYNOMIAL;
  for (let bit = 1; bit < 32; bit++) power[bit] = 1 << (bit - 1);
  for (let squaring = 0; squaring < 3; squaring++) power = compose(power, power); // one zero byte
  let result: Uint32Array | undefined;
  for (let rest = lengthBytes; rest > 0; rest = Math.floor(rest / 2)) {
    if (rest % 2 === 1) result = result === undefined ? power : compose(power, result);
    if (rest > 1) power = compose(power, power);
  }
  if (operators.size >= OPERATORS_KEPT_MAX) operators.clear();
  operators.set(lengthBytes, result as Uint32Array);
  return result as Uint32Array;
}
