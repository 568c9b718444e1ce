/**
 * A Buffer-backed Volume and VolumeResolver for NBD protocol tests only (not the store).
 * Each block has a state — data, allocated zeros or a hole (which reads as zeros too) —
 * so block status answers are honest: a fresh volume is one hole; writes make data; WRITE_ZEROES
 * makes holes (or allocated zeros with noHole) of whole blocks; TRIM makes holes of whole blocks.
 * Counters (callCount, flushCount, fuaCount, writeCount) and knobs (delayMs, failWith) let tests observe
 * and disturb what the server does.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ExportInfo, StatusExtent, Volume, VolumeResolver, WriteOptions, ZeroOptions } from "../../src/store/volume.js";
import { ErrorCodes, SnaplogError, notFound } from "../../src/util/errors.js";

/** Block states in blockStates (this volume's own numbering). */
const STATE_DATA = 0;
const STATE_ZERO = 1;
const STATE_HOLE_ZERO = 2;

export interface MemoryVolumeOptions {
  name: string;
  sizeBytes: number;
  blockSizeBytes?: number;
  readOnly?: boolean;
  description?: string;
}

export class MemoryVolume implements Volume {
  readonly name: string;
  readonly description: string;
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly readOnly: boolean;
  readonly data: Buffer;
  readonly blockStates: Uint8Array;
  /** Calls that reached the volume (counted before delayMs: in flight or done). */
  callCount = 0;
  flushCount = 0;
  fuaCount = 0;
  writeCount = 0;
  /** Times a connection let go of this volume (after NBD_OPT_INFO, or at its end). */
  releaseCount = 0;
  /** Every volume call waits this long first (slow medium). */
  delayMs = 0;
  /** When set, every call fails with it. */
  failWith: SnaplogError | null = null;

  constructor(options: MemoryVolumeOptions) {
    this.name = options.name;
    this.sizeBytes = options.sizeBytes;
    this.blockSizeBytes = options.blockSizeBytes ?? 4096;
    this.readOnly = options.readOnly ?? false;
    this.description = options.description ?? `memory volume ${options.name}`;
    this.data = Buffer.alloc(options.sizeBytes);
    this.blockStates = new Uint8Array(Math.ceil(options.sizeBytes / this.blockSizeBytes)).fill(STATE_HOLE_ZERO);
  }

  /** Test setup: writes even to a read-only volume. */
  load(offsetBytes: number, data: Buffer): void {
    data.copy(this.data, offsetBytes);
    this.markBlocks(offsetBytes, data.length, STATE_DATA, false);
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    await this.enter(offsetBytes, lengthBytes, false);
    return Buffer.from(this.data.subarray(offsetBytes, offsetBytes + lengthBytes));
  }

  async write(offsetBytes: number, data: Buffer, options: WriteOptions): Promise<void> {
    await this.enter(offsetBytes, data.length, true);
    data.copy(this.data, offsetBytes);
    this.markBlocks(offsetBytes, data.length, STATE_DATA, false);
    this.writeCount++;
    if (options.fua) this.fuaCount++;
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, options: ZeroOptions): Promise<void> {
    await this.enter(offsetBytes, lengthBytes, true);
    this.data.fill(0, offsetBytes, offsetBytes + lengthBytes);
    this.markBlocks(offsetBytes, lengthBytes, options.noHole ? STATE_ZERO : STATE_HOLE_ZERO, true);
    if (options.fua) this.fuaCount++;
  }

  async trim(offsetBytes: number, lengthBytes: number, options: WriteOptions): Promise<void> {
    await this.enter(offsetBytes, lengthBytes, true);
    const [blockFirst, blockEnd] = this.wholeBlocks(offsetBytes, lengthBytes);
    if (blockEnd > blockFirst) {
      this.data.fill(0, blockFirst * this.blockSizeBytes, Math.min(blockEnd * this.blockSizeBytes, this.sizeBytes));
      this.blockStates.fill(STATE_HOLE_ZERO, blockFirst, blockEnd);
    }
    if (options.fua) this.fuaCount++;
  }

  async flush(): Promise<void> {
    await this.enter(0, 0, false);
    this.flushCount++;
  }

  release(): void {
    this.releaseCount++;
  }

  async blockStatus(offsetBytes: number, lengthBytes: number): Promise<StatusExtent[]> {
    await this.enter(offsetBytes, lengthBytes, false);
    const extents: StatusExtent[] = [];
    const endBytes = offsetBytes + lengthBytes;
    let positionBytes = offsetBytes;
    while (positionBytes < endBytes) {
      const blockIndex = Math.floor(positionBytes / this.blockSizeBytes);
      const stepBytes = Math.min((blockIndex + 1) * this.blockSizeBytes, endBytes) - positionBytes;
      const state = this.blockStates[blockIndex];
      const hole = state === STATE_HOLE_ZERO;
      const zero = state !== STATE_DATA;
      const last = extents[extents.length - 1];
      if (last !== undefined && last.hole === hole && last.zero === zero) last.lengthBytes += stepBytes;
      else extents.push({ lengthBytes: stepBytes, hole, zero });
      positionBytes += stepBytes;
    }
    return extents;
  }

  private async enter(offsetBytes: number, lengthBytes: number, isWrite: boolean): Promise<void> {
    this.callCount++;
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (this.failWith !== null) throw this.failWith;
    if (isWrite && this.readOnly) throw new SnaplogError(ErrorCodes.READ_ONLY, `${this.name} is read-only`);
    if (offsetBytes < 0 || lengthBytes < 0 || offsetBytes + lengthBytes > this.sizeBytes) {
      throw new SnaplogError(ErrorCodes.OUT_OF_RANGE, `${offsetBytes}+${lengthBytes} past the end of ${this.name}`);
    }
  }

  /** [first, end) of the blocks entirely inside the range. */
  private wholeBlocks(offsetBytes: number, lengthBytes: number): [number, number] {
    const blockFirst = Math.ceil(offsetBytes / this.blockSizeBytes);
    const endBytes = offsetBytes + lengthBytes;
    const blockEnd = endBytes === this.sizeBytes ? this.blockStates.length : Math.floor(endBytes / this.blockSizeBytes);
    return [blockFirst, Math.max(blockFirst, blockEnd)];
  }

  /** Whole blocks take `state`; partly covered ones become data unless `wholeOnly`. */
  private markBlocks(offsetBytes: number, lengthBytes: number, state: number, wholeOnly: boolean): void {
    if (lengthBytes === 0) return;
    const [blockFirst, blockEnd] = this.wholeBlocks(offsetBytes, lengthBytes);
    this.blockStates.fill(state, blockFirst, blockEnd);
    if (wholeOnly) return;
    const touchedFirst = Math.floor(offsetBytes / this.blockSizeBytes);
    const touchedLast = Math.floor((offsetBytes + lengthBytes - 1) / this.blockSizeBytes);
    if (touchedFirst < blockFirst) this.blockStates[touchedFirst] = STATE_DATA;
    if (touchedLast >= blockEnd) this.blockStates[touchedLast] = STATE_DATA;
  }
}

export class MemoryResolver implements VolumeResolver {
  readonly volumes = new Map<string, Volume>();
  defaultExport?: string;

  add(volume: Volume): this {
    this.volumes.set(volume.name, volume);
    return this;
  }

  resolve(exportName: string): Volume {
    const volume = this.volumes.get(exportName);
    if (volume === undefined) throw notFound(`no export named "${exportName}"`);
    return volume;
  }

  list(): ExportInfo[] {
    return [...this.volumes.values()].map((volume) => ({ name: volume.name, description: volume.description }));
  }
}
