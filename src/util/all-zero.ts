/** Whether every byte is zero: compared against a zero buffer in native code, a chunk at a time. */
const ZERO_CHUNK = Buffer.alloc(1024 * 1024);

export function isAllZero(data: Uint8Array): boolean {
  for (let at = 0; at < data.length; at += ZERO_CHUNK.length) {
    const length = Math.min(ZERO_CHUNK.length, data.length - at);
    if (Buffer.compare(data.subarray(at, at + length), ZERO_CHUNK.subarray(0, length)) !== 0) return false;
  }
  return true;
}
