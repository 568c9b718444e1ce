import { crc32c } from "../../util/crc32c.js";
import { fromSystemError } from "../../util/errors.js";
import { groupOf, noop, type Batch } from "./commit-batch.js";

/** What merging partial ops needs: the disk's block size, and the committed current volume. */
export interface PartialMergeContext {
  diskName: string;
  blockSizeBytes: number;
  /** Reads whole blocks of the committed log (here: one block of the current volume, lsnView Infinity). */
  readBlocks(lbaFirst: number, blockCount: number, lsnView: number): Promise<Buffer>;
}

/**
 * At commit time, turns each partial op of a batch into a whole-block write: the block's newest
 * content is the last earlier op of this batch that wrote it, else what the committed log holds
 * (every earlier batch is complete, and this one is the only batch committing). The ops of one
 * client request form a group: if an edge's read fails, every op of the group fails (answered
 * now, replaced by a void op) and none is written — and the merges are redone without them,
 * since later ops may have merged on top of their bytes.
 */
export async function mergePartials(batch: Batch, context: PartialMergeContext): Promise<void> {
  const committed = new Map<number, Buffer>();
  let merged: Map<number, Buffer> | undefined;
  while (merged === undefined) merged = await tryMerge(batch, committed, context);
  for (let index = 0; index < batch.ops.length; index++) {
    const op = batch.ops[index];
    const failure = groupOf(op)?.failure;
    if (failure !== undefined) {
      op.reject(failure);
      batch.ops[index] = { type: "void", resolve: noop, reject: noop };
    } else if (op.type === "partial") {
      const data = merged.get(index)!;
      batch.ops[index] = {
        type: "write",
        lbaFirst: op.lba,
        blockCount: 1,
        data,
        crcs: new Uint32Array([crc32c(data)]),
        group: undefined, // as before the merge: a failed group was answered above
        resolve: op.resolve,
        reject: op.reject,
      };
    }
  }
}

/** One merge pass over the batch without failed groups: the merged block per partial op's index, or undefined when a group just failed. */
async function tryMerge(
  batch: Batch,
  committed: Map<number, Buffer>,
  context: PartialMergeContext,
): Promise<Map<number, Buffer> | undefined> {
  const blockSizeBytes = context.blockSizeBytes;
  const written = new Map<number, Buffer | null>(); // null: zeros
  const merged = new Map<number, Buffer>();
  for (let index = 0; index < batch.ops.length; index++) {
    const op = batch.ops[index];
    if (groupOf(op)?.failure !== undefined) continue;
    if (op.type === "write") {
      for (let block = 0; block < op.blockCount; block++)
        written.set(op.lbaFirst + block, op.data.subarray(block * blockSizeBytes, (block + 1) * blockSizeBytes));
    } else if (op.type === "zero" || op.type === "trim") {
      for (let block = 0; block < op.blockCount; block++) written.set(op.lbaFirst + block, null);
    } else if (op.type === "partial") {
      const block = Buffer.alloc(blockSizeBytes);
      const newest = written.has(op.lba)
        ? written.get(op.lba)!
        : await committedBlock(op.lba, committed, context).catch((error: unknown) => error);
      if (newest instanceof Error || (newest !== null && !(newest instanceof Buffer))) {
        op.group.failure = fromSystemError(newest, { disk: context.diskName });
        return undefined;
      }
      if (newest !== null) newest.copy(block);
      op.data.copy(block, op.offsetBytes);
      merged.set(index, block);
      written.set(op.lba, block);
    }
  }
  return merged;
}

/** The committed content of block `lba`, read once per merge (kept in `committed`). */
async function committedBlock(lba: number, committed: Map<number, Buffer>, context: PartialMergeContext): Promise<Buffer> {
  let block = committed.get(lba);
  if (block === undefined) {
    block = await context.readBlocks(lba, 1, Infinity);
    committed.set(lba, block);
  }
  return block;
}
