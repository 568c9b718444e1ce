import { crc32c as nativeCrc32c } from "@node-rs/crc32";

/**
 * CRC32C (Castagnoli) of `bytes`, continuing from `previous` when given.
 * Native SIMD implementation: a 4 KiB block costs well under a microsecond.
 */
export function crc32c(bytes: Uint8Array, previous?: number): number {
  return nativeCrc32c(bytes, previous) >>> 0;
}
