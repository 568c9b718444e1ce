/**
 * Engine limits and format constants, defined once. The checks at the bottom run at import:
 * if these sizes stop fitting together, nothing starts.
 */
export const BLOCK_SIZE_BYTES_MIN = 512;
export const BLOCK_SIZE_BYTES_MAX = 64 * 1024;
export const BLOCK_SIZE_BYTES_DEFAULT = 4096;

/** Data segment files hold a fixed number of slots; space returns to the file system a segment at a time. */
export const SEGMENT_SIZE_BYTES = 32 * 1024 * 1024;

/** Slot numbers are Uint32; the two highest values mark entries without data. */
export const SLOT_ZERO = 0xffff_ffff;
export const SLOT_TRIM = 0xffff_fffe;
export const SLOT_COUNT_MAX = 0xffff_fff0;

/** Entry ids are Uint32 in chunked tables; id 0 means "none" in prev/latest links. */
export const ENTRY_CHUNK_SIZE = 64 * 1024;
export const ENTRY_COUNT_MAX = 0xffff_fff0;

/** Blocks per page of the latest-entry index (Uint32Array pages, allocated where written). */
export const INDEX_PAGE_BLOCKS = 4096;

/** A disk of more blocks than this cannot be addressed by the Float64 lba column exactly. */
export const DISK_BLOCK_COUNT_MAX = 2 ** 48;

/** Start a new checkpoint once the journal passes this size, so that opening replays little. */
export const JOURNAL_CHECKPOINT_BYTES = 64 * 1024 * 1024;

/** Unsynced data is synced in the background past this many bytes or milliseconds, which bounds what recovery must verify. */
export const UNSYNCED_BYTES_MAX = 256 * 1024 * 1024;
export const UNSYNCED_MS_MAX = 2000;

/** Entry times outside the history window are kept to this resolution (TimeIndex.thinBefore). */
export const TIME_RESOLUTION_OUTSIDE_WINDOW_MS = 1000;
/**
 * The write path thins the time index once it holds this many points, then again each time it
 * doubles: points outside the window would otherwise grow with every batch for as long as the
 * disk is written and never compacted (one per millisecond of writing).
 */
export const TIME_POINTS_THIN_MIN = 64 * 1024;

/** Journal record layout, see docs/on-disk-format.md. */
export const JOURNAL_MAGIC = 0x524a_4c53; // "SLJR" little-endian
export const JOURNAL_HEADER_BYTES = 32;
export const JOURNAL_ENTRY_BYTES = 16;
export const CHECKPOINT_MAGIC = 0x4b43_4c53; // "SLCK"
export const CHECKPOINT_VERSION = 2;
export const FORMAT_VERSION = 1;

function checkConstants(): void {
  if (SEGMENT_SIZE_BYTES % BLOCK_SIZE_BYTES_MAX !== 0) throw new Error("segment size must hold whole blocks");
  if (INDEX_PAGE_BLOCKS & (INDEX_PAGE_BLOCKS - 1)) throw new Error("index page must be a power of two");
  if (ENTRY_CHUNK_SIZE & (ENTRY_CHUNK_SIZE - 1)) throw new Error("entry chunk must be a power of two");
  if (JOURNAL_HEADER_BYTES % 8 !== 0 || JOURNAL_ENTRY_BYTES % 8 !== 0) throw new Error("journal fields must stay 8-aligned");
  if (SLOT_COUNT_MAX >= SLOT_TRIM) throw new Error("slot numbers must not reach the markers");
}
checkConstants();

/** Whether an entry's slot holds data, rather than marking a zero or trim entry (SLOT_ZERO, SLOT_TRIM). */
export function isDataSlot(slot: number): boolean {
  return slot !== SLOT_ZERO && slot !== SLOT_TRIM;
}

export function isValidBlockSize(blockSizeBytes: number): boolean {
  return (
    Number.isInteger(blockSizeBytes) &&
    blockSizeBytes >= BLOCK_SIZE_BYTES_MIN &&
    blockSizeBytes <= BLOCK_SIZE_BYTES_MAX &&
    (blockSizeBytes & (blockSizeBytes - 1)) === 0
  );
}
