/**
 * Reused buffers for large WRITE payloads.
 *
 * Why: V8 answers every freshly allocated ArrayBuffer of 512 KiB or more with old-space
 * accounting that starts a full mark-compact every few hundred megabytes; at 1 GB/s of 1 MiB
 * writes that was about 20 % of the server's CPU (perf, BENCHMARKS.md "Sequential writes").
 * Payloads that span socket chunks are assembled into a buffer anyway, so taking that buffer
 * from a free list costs nothing and keeps V8 out of it. Smaller payloads stay plain allocations
 * (young-generation scavenges handle them cheaply).
 *
 * A payload is given back when its request has completed: the volume's write has resolved, and
 * nothing below it keeps the bytes (the engine copies or writes them before it settles; the
 * mirror leg waits for both legs).
 */

/** Payloads above this size come from the pool. */
export const POOLED_PAYLOAD_BYTES_MIN = 256 * 1024;
/** Idle pooled bytes kept for reuse; what is given back beyond this is left to the GC. */
const IDLE_BYTES_MAX = 64 * 1024 * 1024;

const idleBySize = new Map<number, Buffer[]>();
let idleBytes = 0;

/** Size class of a payload: the next power of two, so that near sizes share buffers. */
function sizeClassOf(lengthBytes: number): number {
  return 2 ** Math.ceil(Math.log2(lengthBytes));
}

/** A buffer of exactly `lengthBytes` for a payload: from the pool when it is large. */
export function takePayload(lengthBytes: number): Buffer {
  if (lengthBytes <= POOLED_PAYLOAD_BYTES_MIN) return Buffer.allocUnsafe(lengthBytes);
  const sizeClass = sizeClassOf(lengthBytes);
  const whole = idleBySize.get(sizeClass)?.pop();
  if (whole === undefined) return Buffer.allocUnsafeSlow(sizeClass).subarray(0, lengthBytes);
  idleBytes -= sizeClass;
  return whole.subarray(0, lengthBytes);
}

/** Gives a payload from takePayload back once nothing uses it any more. */
export function givePayload(payload: Buffer): void {
  if (payload.length <= POOLED_PAYLOAD_BYTES_MIN) return;
  const sizeClass = sizeClassOf(payload.length);
  if (payload.byteOffset !== 0 || payload.buffer.byteLength !== sizeClass || idleBytes + sizeClass > IDLE_BYTES_MAX) return;
  let idle = idleBySize.get(sizeClass);
  if (idle === undefined) {
    idle = [];
    idleBySize.set(sizeClass, idle);
  }
  idle.push(Buffer.from(payload.buffer, 0, sizeClass));
  idleBytes += sizeClass;
}
