/**
 * The block-size rule, for every layer above the engine (the API schema, the CLI, the store):
 * the limits are the engine's (engine/constants.ts), re-exported here because only the store
 * may import the engine; the check and its one message are here.
 */
import { BLOCK_SIZE_BYTES_DEFAULT, BLOCK_SIZE_BYTES_MAX, BLOCK_SIZE_BYTES_MIN, isValidBlockSize } from "../engine/index.js";
import { invalidArgument } from "../util/errors.js";
import { parseSize } from "../util/parse.js";

export { BLOCK_SIZE_BYTES_DEFAULT, BLOCK_SIZE_BYTES_MAX, BLOCK_SIZE_BYTES_MIN };

/** Returns `blockSizeBytes` when it is a power of two within the limits; INVALID_ARGUMENT otherwise. */
export function checkBlockSize(blockSizeBytes: number): number {
  if (!isValidBlockSize(blockSizeBytes)) {
    throw invalidArgument(
      `invalid block size ${blockSizeBytes}: must be a power of two from ${BLOCK_SIZE_BYTES_MIN} to ${BLOCK_SIZE_BYTES_MAX} bytes`,
    );
  }
  return blockSizeBytes;
}

/** A block size as people type it (`4096`, `4K`, `64KiB`), checked by the rule above. */
export function parseBlockSize(text: string): number {
  return checkBlockSize(parseSize(text, "block size"));
}
