/**
 * Page-aligned memory for O_DIRECT I/O. Node's buffers are only 16-byte aligned, and the kernel
 * wants the memory of a direct write aligned to the device's DMA alignment (512 bytes here, 4 KiB
 * on some devices). The memory of a WebAssembly.Memory is mapped by V8 on its own pages, so its
 * start is page-aligned: the one aligned allocation a plain Node process has.
 *
 * Each such memory also reserves address space (not memory) for V8's bounds checks, so callers
 * allocate a few large arenas and carve them, never one per buffer.
 */

/** The alignment this memory guarantees (and O_DIRECT offsets and lengths use). */
export const PAGE_BYTES = 4096;
const WASM_PAGE_BYTES = 65536;

/** The one WebAssembly type used here (the project's lib settings have no WebAssembly declarations). */
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };

const arenas = new WeakSet<ArrayBuffer>();

/** A page-aligned arena of `bytes` (rounded up to 64 KiB), fixed in size. */
export function allocateAligned(bytes: number): Buffer {
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  // maximum = initial: growing would detach every view handed out.
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  arenas.add(memory.buffer);
  return Buffer.from(memory.buffer, 0, bytes);
}

/** Whether `view` starts on a page of an aligned arena (and so may be handed to O_DIRECT as is). */
export function isPageAligned(view: Uint8Array): boolean {
  return view.byteOffset % PAGE_BYTES === 0 && arenas.has(view.buffer as ArrayBuffer);
}
