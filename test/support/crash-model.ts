/**
 * What the crash test's writer (crash-writer.ts, a child process) and checker (crash-sigkill.test.ts)
 * share: the seeded PRNG, the content of every sector any write ever puts on a disk, the writer's
 * configuration and the journal line format.
 *
 * Sector content. Every WRITE covers whole 512-byte sectors. Each sector it writes starts with a
 * header naming the version — magic, disk tag, round, write id, absolute sector number — and the
 * rest is pseudo-random bytes derived from (seed, disk, round, id, sector). So a checker that reads
 * any sector can tell which write put it there and regenerate the exact bytes to compare; a sector
 * that is neither such a version, zeros, nor the disk's baseline is bytes nobody wrote.
 *
 * Journal. The writer appends one line per event, with a logical clock that orders every event it
 * saw (sending a request, receiving a reply, a snapshot command starting or returning). An "issued"
 * line is written (write(2), synchronously) before the request leaves the process, so after a kill
 * the journal names every request the server can have seen; reply lines may be missing at the end,
 * which only makes the check more lenient. Lines:
 *
 *   R <clock>                                     the writer is connected and starts the load
 *   I <disk> <id> <clock> <W|Z|T|F> <offset> <length> <flags>   request sent (flags: NBD command flags)
 *   A <disk> <id> <clock> <errno>                 reply received
 *   S <disk> <name> <clock> <api|cli>             snapshot create started
 *   SD <disk> <name> <clock> <lsn>                snapshot create returned success
 *   SE <disk> <name> <clock> <message…>           snapshot create failed
 *   SH <disk> <name> <sha256>                     the writer read the whole snapshot right after creating it
 *   X <message…>                                  the writer hit something unexpected
 */

export const SECTOR_BYTES = 512;
/** "SLCW" — marks a sector written by the crash writer. */
export const SECTOR_MAGIC = 0x534c4357;
const SECTOR_HEADER_BYTES = 20;
/** Write ids per round must stay below this (they are packed with the round into one number). */
export const ID_LIMIT = 2 ** 20;

/** Version keys: 0 zeros, 1 the baseline image, otherwise a write (round, id). */
export const KEY_ZERO = 0;
export const KEY_BASELINE = 1;
export function versionKey(round: number, id: number): number {
  return 2 + round * ID_LIMIT + id;
}
export function describeKey(key: number): string {
  if (key === KEY_ZERO) return "zeros";
  if (key === KEY_BASELINE) return "baseline";
  const packed = key - 2;
  return `write r${Math.floor(packed / ID_LIMIT)}#${packed % ID_LIMIT}`;
}

// ---- PRNG ---------------------------------------------------------------------------------------

/** 32-bit hash of several integers (murmur3-style finalizer over a running mix). */
export function mix(...values: number[]): number {
  let hash = 0x9e3779b9;
  for (const value of values) {
    hash = Math.imul(hash ^ (value >>> 0), 0x85ebca6b);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35);
    hash ^= hash >>> 16;
    // Values past 32 bits (round * large) still count.
    if (value > 0xffffffff) hash = Math.imul(hash ^ Math.floor(value / 2 ** 32), 0x27d4eb2d);
  }
  return hash >>> 0;
}

/** sfc32: small, fast, good enough for test data; deterministic from the seed. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = mix(seed, 1);
    this.b = mix(seed, 2);
    this.c = mix(seed, 3);
    this.d = 1;
    for (let index = 0; index < 12; index++) this.next();
  }

  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next() / 2 ** 32;
  }

  /** Uniform integer in [0, limit). */
  below(limit: number): number {
    return Math.floor(this.float() * limit);
  }

  /** Uniform integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.below(high - low + 1);
  }

  chance(probability: number): boolean {
    return this.float() < probability;
  }
}

// ---- Content ------------------------------------------------------------------------------------

/** Fills target[offset, +512) with the content of `sector` as written by write (round, id). */
export function fillSector(target: Buffer, offset: number, seed: number, diskTag: number, round: number, id: number, sector: number): void {
  target.writeUInt32LE(SECTOR_MAGIC, offset);
  target.writeUInt32LE(diskTag, offset + 4);
  target.writeUInt32LE(round, offset + 8);
  target.writeUInt32LE(id, offset + 12);
  target.writeUInt32LE(sector, offset + 16);
  let state = mix(seed, diskTag, round, id, sector);
  for (let position = offset + SECTOR_HEADER_BYTES; position < offset + SECTOR_BYTES; position += 4) {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    target.writeUInt32LE(state >>> 0, position);
  }
}

/** The payload of write (round, id) at offsetBytes (sector-aligned) of lengthBytes. */
export function writePayload(seed: number, diskTag: number, round: number, id: number, offsetBytes: number, lengthBytes: number): Buffer {
  const payload = Buffer.allocUnsafe(lengthBytes);
  const sectorFirst = offsetBytes / SECTOR_BYTES;
  for (let index = 0; index < lengthBytes / SECTOR_BYTES; index++) {
    fillSector(payload, index * SECTOR_BYTES, seed, diskTag, round, id, sectorFirst + index);
  }
  return payload;
}

export interface SectorHeader {
  diskTag: number;
  round: number;
  id: number;
  sector: number;
}

export function readSectorHeader(source: Buffer, offset: number): SectorHeader | undefined {
  if (source.readUInt32LE(offset) !== SECTOR_MAGIC) return undefined;
  return {
    diskTag: source.readUInt32LE(offset + 4),
    round: source.readUInt32LE(offset + 8),
    id: source.readUInt32LE(offset + 12),
    sector: source.readUInt32LE(offset + 16),
  };
}

const scratchSector = Buffer.alloc(SECTOR_BYTES);

/** Whether source[offset, +512) is exactly what write (round, id) puts in `sector`. */
export function sectorIsVersion(
  source: Buffer,
  offset: number,
  seed: number,
  diskTag: number,
  round: number,
  id: number,
  sector: number,
): boolean {
  fillSector(scratchSector, 0, seed, diskTag, round, id, sector);
  return scratchSector.equals(source.subarray(offset, offset + SECTOR_BYTES));
}

export function isZero(source: Buffer, offset: number, lengthBytes: number): boolean {
  for (let position = offset; position < offset + lengthBytes; position += 8) {
    if (source.readBigUInt64LE(position) !== 0n) return false;
  }
  return true;
}

/** The raw image the baseline disk is created from: random bytes, deterministic from the seed. */
export function baselineImage(seed: number, lengthBytes: number): Buffer {
  const image = Buffer.allocUnsafe(lengthBytes);
  const prng = new Prng(mix(seed, 0xba5e));
  let position = 0;
  for (; position + 4 <= lengthBytes; position += 4) image.writeUInt32LE(prng.next(), position);
  for (; position < lengthBytes; position++) image[position] = prng.next() & 0xff;
  return image;
}

// ---- Writer configuration ------------------------------------------------------------------------

export type NbdTargetConfig = { host: string; port: number } | { path: string };

export interface WriterDiskConfig {
  name: string;
  /** Written into every sector header, so a sector of one disk cannot pass for another's. */
  diskTag: number;
  target: NbdTargetConfig;
}

export interface WriterConfig {
  seed: number;
  round: number;
  journalPath: string;
  storePath: string;
  /** dist/src/cli/main.js */
  cliPath: string;
  apiSocketPath: string;
  disks: WriterDiskConfig[];
  /** Requests in flight per disk at most. */
  depthMax: number;
  /**
   * Snapshot creations this round: at these delays (ms after ready), of these disks, via API or
   * CLI. A quiesced one waits until the disk has no request in flight and sends none until the
   * create returned, so the snapshot's content is known exactly.
   */
  snapshots: { delayMs: number; disk: string; name: string; via: "api" | "cli"; quiesce: boolean }[];
}

export const WRITER_CONFIG_FLAG = "--crash-writer-config";
