/**
 * Reused, page-aligned buffers for large WRITE payloads (NBD requests, and the frames of a
 * replication batch the receiver keeps until it has applied them: PayloadLease).
 *
 * Why reused: V8 answers every freshly allocated ArrayBuffer of 512 KiB or more with old-space
 * accounting that starts a full mark-compact every few hundred megabytes; at 1 GB/s of 1 MiB
 * writes that was about a fifth of the server's CPU (perf, BENCHMARKS.md analysis). Payloads that
 * span socket chunks are assembled into a buffer anyway, so taking it from a free list costs
 * nothing. Why aligned: the log writes large runs with O_DIRECT (util/direct-write.ts), which
 * takes a payload carved from an aligned arena as it is instead of copying it first.
 * Smaller payloads stay plain allocations (young-generation scavenges handle them cheaply).
 *
 * A payload is given back when its request has completed: the volume's write has resolved, and
 * nothing below it keeps the bytes (the engine writes them before it settles; the mirror leg
 * waits for both legs).
 */
import { allocateAligned, PAGE_BYTES } from "./aligned-memory.js";

/** Payloads above this size come from the pool. */
export const POOLED_PAYLOAD_BYTES_MIN = 256 * 1024;
/** Idle pooled bytes kept for reuse; what is given back beyond this is left to the GC. */
const IDLE_BYTES_MAX = 64 * 1024 * 1024;
/** Aligned arenas are carved in slabs of this size, at most SLAB_COUNT_MAX of them; past that, plain buffers. */
const SLAB_BYTES = 16 * 1024 * 1024;
const SLAB_COUNT_MAX = 8;

const idleBySize = new Map<number, Buffer[]>();
/** The whole size-class buffer behind each payload handed out (a payload is cut to its length). */
const wholeOf = new WeakMap<Buffer, Buffer>();
let idleBytes = 0;
let slab: Buffer | undefined;
let slabUsedBytes = 0;
let slabCount = 0;

/** Size class of a payload: the next power of two, so that near sizes share buffers. */
function sizeClassOf(lengthBytes: number): number {
  return 2 ** Math.ceil(Math.log2(lengthBytes));
}

/** A new buffer of one size class: carved from an aligned slab while there are slabs to carve. */
function newWhole(sizeClass: number): Buffer {
  if (sizeClass > SLAB_BYTES) return Buffer.allocUnsafeSlow(sizeClass);
  if (slab === undefined || slabUsedBytes + sizeClass > SLAB_BYTES) {
    if (slabCount === SLAB_COUNT_MAX) return Buffer.allocUnsafeSlow(sizeClass);
    // The rest of a slab too small for this class stays unused: classes are powers of two, so little is.
    slab = allocateAligned(SLAB_BYTES);
    slabUsedBytes = 0;
    slabCount += 1;
  }
  const whole = slab.subarray(slabUsedBytes, slabUsedBytes + sizeClass);
  slabUsedBytes += sizeClass;
  return whole;
}

/** A buffer of exactly `lengthBytes` for a payload: from the pool when it is large. */
export function takePayload(lengthBytes: number): Buffer {
  if (lengthBytes <= POOLED_PAYLOAD_BYTES_MIN) return Buffer.allocUnsafe(lengthBytes);
  const sizeClass = sizeClassOf(lengthBytes);
  let whole = idleBySize.get(sizeClass)?.pop();
  if (whole === undefined) whole = newWhole(sizeClass);
  else idleBytes -= sizeClass;
  const payload = whole.subarray(0, lengthBytes);
  wholeOf.set(payload, whole);
  return payload;
}

/** Gives a payload from takePayload back once nothing uses it any more. */
export function givePayload(payload: Buffer): void {
  const whole = wholeOf.get(payload);
  if (whole === undefined) return;
  wholeOf.delete(payload);
  if (idleBytes + whole.length > IDLE_BYTES_MAX) return;
  let idle = idleBySize.get(whole.length);
  if (idle === undefined) {
    idle = [];
    idleBySize.set(whole.length, idle);
  }
  idle.push(whole);
  idleBytes += whole.length;
}

/**
 * Payloads taken for one piece of work and given back together once it has completed and
 * nothing uses them (a replication batch: applied or refused). `alignAt` is an offset inside the
 * payload that should fall on a page: the data of a stream frame, which then goes to O_DIRECT as
 * it is. After giveBack, takes are plain buffers.
 */
export class PayloadLease {
  private readonly taken: Buffer[] = [];
  private open = true;

  take(lengthBytes: number, alignAt = 0): Buffer {
    if (!this.open || lengthBytes <= POOLED_PAYLOAD_BYTES_MIN) return Buffer.allocUnsafe(lengthBytes);
    const pad = (PAGE_BYTES - (alignAt % PAGE_BYTES)) % PAGE_BYTES;
    const payload = takePayload(pad + lengthBytes);
    this.taken.push(payload);
    return payload.subarray(pad, pad + lengthBytes);
  }

  giveBack(): void {
    this.open = false;
    for (const payload of this.taken.splice(0)) givePayload(payload);
  }
}
