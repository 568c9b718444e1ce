import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { BlockSource, type DiskEngine } from "../engine/index.js";
import type { MirrorLeg } from "./mirror/mirror-leg.js";
import type { StatusExtent, Volume, WriteOptions, ZeroOptions } from "./volume.js";

/** Where the current volume finds its disk's mirror leg at each request (attached and detached by policy). */
export interface MirrorHolder {
  readonly mirror?: MirrorLeg;
}

type Allocation = Pick<StatusExtent, "hole" | "zero">;
const DATA: Allocation = { hole: false, zero: false };
const ZEROES: Allocation = { hole: false, zero: true };
const HOLE: Allocation = { hole: true, zero: true };

/** The allocation of each BlockSource (baseline: data unless the disk has no baseline). */
function allocationOf(source: number, hasBaseline: boolean): Allocation {
  if (source === BlockSource.SLOT) return DATA;
  if (source === BlockSource.ZERO) return ZEROES;
  if (source === BlockSource.TRIM) return HOLE;
  return hasBaseline ? DATA : HOLE;
}

/**
 * Whether what a volume shows still exists. The store ends a life once, with the error every
 * later request of the volume gets: when the disk or snapshot is deleted, when the disk is
 * rolled back (the current volume's connections made before), or when the store closes.
 * Volumes read `ended` once per request: a field read, nothing looked up.
 */
export class VolumeLife {
  /** The error of every request from now on; set by end() only. */
  ended: SnaplogError | undefined;

  /** Later requests fail with `error`; the first end wins. */
  end(error: SnaplogError): void {
    this.ended ??= error;
  }
}

/** Longest block-status answer, in blocks: bounds the work per request. */
const STATUS_BLOCKS_MAX = 1 << 20;

/**
 * A volume of a disk: the disk at one LSN. The current volume reads at Infinity and takes
 * writes; a snapshot reads at its cut; the baseline reads at LSN 0. Byte offsets in, whole
 * blocks and byte ranges to the engine (which merges unaligned edges at commit time).
 */
export class DiskVolume implements Volume {
  readonly sizeBytes: number;
  readonly blockSizeBytes: number;
  readonly diskName: string;

  constructor(
    private readonly engine: DiskEngine,
    readonly name: string,
    readonly description: string,
    private readonly lsnView: number,
    readonly readOnly: boolean,
    /** Ended by the store when what this volume shows goes away (see VolumeLife). */
    private readonly life: VolumeLife,
    /** Drops what attaching took (a point-in-time volume's pin); see release(). */
    private readonly onRelease?: () => void,
    /** The current volume's disk: its writes go to the mirror leg too, when it has one (docs/mirror.md). */
    private readonly mirrorHolder?: MirrorHolder,
  ) {
    this.sizeBytes = engine.geometry.sizeBytes;
    this.diskName = engine.geometry.name;
    this.blockSizeBytes = engine.geometry.blockSizeBytes;
  }

  release(): void {
    this.onRelease?.();
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    this.checkRequest(offsetBytes, lengthBytes, "read", false);
    if (lengthBytes === 0) return Buffer.alloc(0);
    const { lbaFirst, blockCount } = this.blocksCovering(offsetBytes, lengthBytes);
    const blocks = await this.readOrHeal(lbaFirst, blockCount);
    const skipBytes = offsetBytes - lbaFirst * this.blockSizeBytes;
    return skipBytes === 0 && blocks.length === lengthBytes ? blocks : blocks.subarray(skipBytes, skipBytes + lengthBytes);
  }

  /** The current volume's blocks; a checksum failure is healed from an in-sync mirror when there is one (docs/mirror.md). */
  private async readOrHeal(lbaFirst: number, blockCount: number): Promise<Buffer> {
    try {
      return await this.engine.readBlocks(lbaFirst, blockCount, this.lsnView);
    } catch (error) {
      const mirror = this.mirrorHolder?.mirror;
      if (!(error instanceof SnaplogError) || error.code !== ErrorCodes.CORRUPT || mirror === undefined || this.lsnView !== Infinity)
        throw error;
      const blockSize = this.blockSizeBytes;
      const healed = await mirror.healCurrent(this.engine, lbaFirst * blockSize, blockCount * blockSize);
      if (healed === undefined) throw error;
      return healed;
    }
  }

  async write(offsetBytes: number, data: Buffer, options: WriteOptions): Promise<void> {
    this.checkRequest(offsetBytes, data.length, "write", true);
    if (data.length === 0) return;
    const mirror = this.mirrorHolder?.mirror;
    if (mirror !== undefined)
      return mirror.write(offsetBytes, data, options.fua, () => this.engine.writeBytes(offsetBytes, data, options.fua));
    return this.engine.writeBytes(offsetBytes, data, options.fua);
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, options: ZeroOptions): Promise<void> {
    return this.zeroRange(offsetBytes, lengthBytes, "zero", options.fua, options.noHole);
  }

  trim(offsetBytes: number, lengthBytes: number, options: WriteOptions): Promise<void> {
    return this.zeroRange(offsetBytes, lengthBytes, "trim", options.fua, false);
  }

  async flush(): Promise<void> {
    this.checkLife();
    if (this.readOnly) return;
    const mirror = this.mirrorHolder?.mirror;
    if (mirror !== undefined) await mirror.flush(() => this.engine.flush());
    else await this.engine.flush();
  }

  async blockStatus(offsetBytes: number, lengthBytes: number, extentCountMax?: number): Promise<StatusExtent[]> {
    this.checkRequest(offsetBytes, lengthBytes, "block status", false);
    if (lengthBytes === 0) return [];
    const blockSizeBytes = this.blockSizeBytes;
    const covering = this.blocksCovering(offsetBytes, lengthBytes);
    const blockCount = Math.min(covering.blockCount, STATUS_BLOCKS_MAX);
    const runs = this.engine.blockRuns(covering.lbaFirst, blockCount, this.lsnView, extentCountMax);
    const hasBaseline = this.engine.hasBaseline;
    const extents: StatusExtent[] = [];
    let position = covering.lbaFirst * blockSizeBytes;
    const end = offsetBytes + lengthBytes;
    for (const run of runs) {
      const runEnd = position + run.blockCount * blockSizeBytes;
      const start = Math.max(position, offsetBytes);
      const stop = Math.min(runEnd, end);
      if (stop > start) extents.push({ lengthBytes: stop - start, ...allocationOf(run.source, hasBaseline) });
      position = runEnd;
    }
    return extents;
  }

  private async zeroRange(offsetBytes: number, lengthBytes: number, kind: "zero" | "trim", fua: boolean, noHole: boolean): Promise<void> {
    this.checkRequest(offsetBytes, lengthBytes, kind === "zero" ? "write zeroes" : "trim", true);
    if (lengthBytes === 0) return;
    const mirror = this.mirrorHolder?.mirror;
    const toLog = () => this.engine.zeroBytes(offsetBytes, lengthBytes, kind, { fua, noHole });
    if (mirror !== undefined) return mirror.writeZeroes(offsetBytes, lengthBytes, fua, toLog);
    return toLog();
  }

  private blocksCovering(offsetBytes: number, lengthBytes: number): { lbaFirst: number; blockCount: number } {
    const lbaFirst = Math.floor(offsetBytes / this.blockSizeBytes);
    const lbaEnd = Math.ceil((offsetBytes + lengthBytes) / this.blockSizeBytes);
    return { lbaFirst, blockCount: lbaEnd - lbaFirst };
  }

  private checkLife(): void {
    const ended = this.life.ended;
    if (ended !== undefined) throw ended;
  }

  /** Every check of a request, once: the volume still alive, writable if it writes, the range inside it. */
  private checkRequest(offsetBytes: number, lengthBytes: number, what: string, writes: boolean): void {
    this.checkLife();
    if (writes && this.readOnly) throw new SnaplogError(ErrorCodes.READ_ONLY, `${this.name} is read-only`);
    if (
      !Number.isSafeInteger(offsetBytes) ||
      !Number.isSafeInteger(lengthBytes) ||
      offsetBytes < 0 ||
      lengthBytes < 0 ||
      offsetBytes + lengthBytes > this.sizeBytes
    ) {
      throw new SnaplogError(
        ErrorCodes.OUT_OF_RANGE,
        `${what} of [${offsetBytes}, +${lengthBytes}) is past the end of ${this.name} (${this.sizeBytes} bytes)`,
      );
    }
  }
}
