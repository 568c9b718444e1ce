import { blockCrcsOf } from "../../util/crc32c.js";
import { assert } from "../../util/errors.js";
import { checkBlockRange, type DiskGeometry } from "../engine-options.js";
import { noop, type OpGroup } from "./commit-batch.js";
import type { CommitPipeline } from "./commit-pipeline.js";

/**
 * Splits writes and zeroings of byte ranges into the block ops the commit pipeline takes: whole
 * blocks as they are, a partial block at either edge as a `partial` op that the pipeline merges
 * with the block's newest content at commit time. All ops of one request share an OpGroup and
 * are queued in one synchronous run (so they share one batch): all of them land, or none.
 */
export class ByteRangeWriter {
  constructor(
    private readonly geometry: DiskGeometry,
    private readonly pipeline: CommitPipeline,
  ) {}

  /**
   * Writes bytes at any offset, all of them or none: whole blocks as they are, a partial block
   * at either edge merged with that block's newest content at commit time (in queue order: a
   * read-modify-write no concurrent write to the block can interleave with). If an edge's read
   * fails, nothing of the request is written.
   */
  writeBytes(offsetBytes: number, data: Buffer, fua: boolean): Promise<void> {
    const group: OpGroup = { failure: undefined };
    return this.queueBytes(offsetBytes, data, fua, group);
  }

  /**
   * WRITE_ZEROES (`zero`) or TRIM (`trim`) of any byte range, all of it or none: whole blocks
   * as zero/trim entries, the partial edges as zero bytes merged into their blocks.
   */
  zeroBytes(offsetBytes: number, lengthBytes: number, kind: "zero" | "trim", options: { fua: boolean; noHole: boolean }): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const end = offsetBytes + lengthBytes;
    const wholeFirst = Math.ceil(offsetBytes / blockSizeBytes);
    const wholeEnd = Math.floor(end / blockSizeBytes);
    const group: OpGroup = { failure: undefined };
    if (wholeEnd <= wholeFirst) return this.queueBytes(offsetBytes, Buffer.alloc(lengthBytes), options.fua, group);
    checkBlockRange(this.geometry, wholeFirst, wholeEnd - wholeFirst, kind);
    const work: Promise<void>[] = [];
    if (offsetBytes < wholeFirst * blockSizeBytes)
      work.push(this.queueBytes(offsetBytes, Buffer.alloc(wholeFirst * blockSizeBytes - offsetBytes), options.fua, group));
    work.push(
      this.pipeline.enqueue(
        { type: kind, lbaFirst: wholeFirst, blockCount: wholeEnd - wholeFirst, noHole: options.noHole, group, resolve: noop, reject: noop },
        wholeEnd - wholeFirst,
        options.fua,
      ),
    );
    if (end > wholeEnd * blockSizeBytes)
      work.push(this.queueBytes(wholeEnd * blockSizeBytes, Buffer.alloc(end - wholeEnd * blockSizeBytes), options.fua, group));
    return Promise.all(work).then(noop);
  }

  /** Queues the parts of a byte-range write into `group`: partial edges, whole blocks. */
  private queueBytes(offsetBytes: number, data: Buffer, fua: boolean, group: OpGroup): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    const end = offsetBytes + data.length;
    const wholeFirst = Math.ceil(offsetBytes / blockSizeBytes);
    const wholeEnd = Math.floor(end / blockSizeBytes);
    // Whole blocks only (what NBD clients send): no edges to merge, so no promise to combine.
    if (offsetBytes === wholeFirst * blockSizeBytes && end === wholeEnd * blockSizeBytes && wholeEnd > wholeFirst)
      return this.queueBlocks(wholeFirst, data, fua, group);
    const partial = (lba: number, offsetInBlock: number, bytes: Buffer) => {
      checkBlockRange(this.geometry, lba, 1, "write");
      return this.pipeline.enqueue(
        { type: "partial", lba, offsetBytes: offsetInBlock, data: bytes, group, resolve: noop, reject: noop },
        1,
        fua,
      );
    };
    if (wholeEnd < wholeFirst) return partial(wholeEnd, offsetBytes - wholeEnd * blockSizeBytes, data);
    const work: Promise<void>[] = [];
    const headBytes = wholeFirst * blockSizeBytes - offsetBytes;
    if (headBytes > 0) work.push(partial(wholeFirst - 1, blockSizeBytes - headBytes, data.subarray(0, headBytes)));
    if (wholeEnd > wholeFirst)
      work.push(this.queueBlocks(wholeFirst, data.subarray(headBytes, headBytes + (wholeEnd - wholeFirst) * blockSizeBytes), fua, group));
    const tailBytes = end - wholeEnd * blockSizeBytes;
    if (tailBytes > 0) work.push(partial(wholeEnd, 0, data.subarray(data.length - tailBytes)));
    return Promise.all(work).then(noop);
  }

  /** Queues whole blocks (`data.length` a multiple of the block size) with their checksums. */
  private queueBlocks(lbaFirst: number, data: Buffer, fua: boolean, group: OpGroup): Promise<void> {
    const blockSizeBytes = this.geometry.blockSizeBytes;
    assert(data.length % blockSizeBytes === 0, "queueBlocks takes whole blocks");
    const blockCount = data.length / blockSizeBytes;
    checkBlockRange(this.geometry, lbaFirst, blockCount, "write");
    const crcs = blockCrcsOf(data, blockSizeBytes);
    return this.pipeline.enqueue({ type: "write", lbaFirst, blockCount, data, crcs, group, resolve: noop, reject: noop }, blockCount, fua);
  }
}
