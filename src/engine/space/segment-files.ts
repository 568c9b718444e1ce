import { SEGMENT_SIZE_BYTES } from "../constants.js";
import type { Medium, MediumFile } from "../medium.js";

/**
 * The data slots of one disk, in segment files of SEGMENT_SIZE_BYTES: slot s lies in segment
 * floor(s / slotsPerSegment) at byte (s mod slotsPerSegment) × blockSize. Files are opened on
 * first use and kept open; written segments are remembered until the next sync.
 */
export class SegmentFiles {
  readonly slotsPerSegment: number;
  readonly segmentSizeBytes: number;
  private readonly files = new Map<number, MediumFile>();
  /** Segment files on the medium (found at open, created since, minus released). */
  private readonly present = new Set<number>();
  /** Segments whose file is being removed: opening one waits for that. */
  private readonly releasing = new Map<number, Promise<void>>();
  private readonly opening = new Map<number, Promise<MediumFile>>();
  private readonly dirty = new Set<number>();
  /** A segment file was created since the last sync: its directory entry must be made durable too. */
  private directoryDirty = false;
  private syncInFlight: Promise<void> | undefined;

  constructor(
    private readonly medium: Medium,
    readonly blockSizeBytes: number,
    segmentSizeBytes: number = SEGMENT_SIZE_BYTES,
    /** A segment file was created (the file system gave the disk a segment more). */
    private readonly onCreated?: (segmentIndex: number) => void,
  ) {
    this.slotsPerSegment = segmentSizeBytes / blockSizeBytes;
    this.segmentSizeBytes = segmentSizeBytes;
  }

  /**
   * Learns which segment files exist (at open). Their directory entries may not be durable yet
   * (a file created just before a crash or a clean close whose directory was not synced), so the
   * first sync also syncs the directory: acknowledged data never lives in a file that a power
   * cut can unlink.
   */
  async discover(): Promise<void> {
    for (const name of await this.medium.list()) {
      const match = /^segment-(\d{8})\.dat$/.exec(name);
      if (match) this.present.add(Number(match[1]));
    }
    this.directoryDirty = true;
  }

  get fileCount(): number {
    return this.present.size;
  }

  /** The file and byte offset of a slot. */
  locate(slot: number): { file: string; offsetBytes: number } {
    return {
      file: SegmentFiles.fileName(Math.floor(slot / this.slotsPerSegment)),
      offsetBytes: (slot % this.slotsPerSegment) * this.blockSizeBytes,
    };
  }

  /** Bytes of every segment file on the medium (a file is as long as its highest written slot). */
  async totalBytes(): Promise<number> {
    const sizes = await Promise.all([...this.present].map(async (segmentIndex) => (await this.file(segmentIndex)).sizeBytes()));
    return sizes.reduce((sum, size) => sum + size, 0);
  }

  exists(segmentIndex: number): boolean {
    return this.present.has(segmentIndex);
  }

  /**
   * Hands a segment's file back to the file system. The caller guarantees that none of its
   * slots is live or being written; a later write to it creates the file again.
   */
  async release(segmentIndex: number): Promise<void> {
    this.dirty.delete(segmentIndex);
    const removal = (async () => {
      // A sync under way may hold the file; it finishes first.
      await this.syncInFlight?.catch(() => undefined);
      const file = this.files.get(segmentIndex) ?? (await this.opening.get(segmentIndex)?.catch(() => undefined));
      this.files.delete(segmentIndex);
      await file?.close();
      await this.medium.remove(SegmentFiles.fileName(segmentIndex));
      this.present.delete(segmentIndex);
    })();
    this.releasing.set(segmentIndex, removal);
    try {
      await removal;
    } finally {
      this.releasing.delete(segmentIndex);
    }
  }

  static fileName(segmentIndex: number): string {
    return `segment-${String(segmentIndex).padStart(8, "0")}.dat`;
  }

  /** Writes buffers holding consecutive slots starting at `slotFirst`, all inside one segment. */
  async writeRun(slotFirst: number, buffers: Uint8Array[]): Promise<void> {
    const segmentIndex = Math.floor(slotFirst / this.slotsPerSegment);
    const file = await this.file(segmentIndex);
    await file.writev(buffers, (slotFirst % this.slotsPerSegment) * this.blockSizeBytes);
    // Dirty only once written: a sync that started while this write was in flight may not
    // cover it, so the segment must stay dirty for the next one.
    this.dirty.add(segmentIndex);
  }

  /**
   * Reads consecutive slots (inside one segment) into `target`. Bytes past the file's end read as
   * zeros, and so does a segment whose file does not exist: a read never creates a file (recovery
   * checking a torn tail's data would otherwise leave an empty segment file behind).
   */
  async readRun(slotFirst: number, target: Uint8Array): Promise<void> {
    const segmentIndex = Math.floor(slotFirst / this.slotsPerSegment);
    if (this.releasing.has(segmentIndex) || (!this.present.has(segmentIndex) && !this.opening.has(segmentIndex))) {
      target.fill(0);
      return;
    }
    // An open file is used at once: the read (from the page cache, when it is there) starts in the caller's turn.
    const opened = this.file(segmentIndex);
    const file = opened instanceof Promise ? await opened : opened;
    const readBytes = await file.read(target, (slotFirst % this.slotsPerSegment) * this.blockSizeBytes);
    if (readBytes < target.length) target.fill(0, readBytes);
  }

  /** Makes every segment written since the last call durable. */
  /**
   * Makes every segment written before the call durable. A sync already in flight (a
   * background one) took some dirty segments with it, so this one also waits for it.
   */
  async syncDirty(): Promise<void> {
    const previous = this.syncInFlight;
    if (this.dirty.size === 0) {
      await previous;
      return;
    }
    const segments = [...this.dirty];
    this.dirty.clear();
    const directory = this.directoryDirty;
    this.directoryDirty = false;
    const current = (async () => {
      await Promise.all(segments.map(async (segmentIndex) => (await this.file(segmentIndex)).sync()));
      if (directory) await this.medium.syncDirectory();
    })();
    const both = Promise.all([previous, current]).then(() => undefined);
    this.syncInFlight = both;
    try {
      await both;
    } finally {
      if (this.syncInFlight === both) this.syncInFlight = undefined;
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.opening.values(), this.syncInFlight]);
    await Promise.all([...this.files.values()].map((file) => file.close()));
    this.files.clear();
    this.opening.clear();
  }

  private file(segmentIndex: number): Promise<MediumFile> | MediumFile {
    const open = this.files.get(segmentIndex);
    if (open !== undefined) return open;
    let pending = this.opening.get(segmentIndex);
    if (pending === undefined) {
      const removal = this.releasing.get(segmentIndex);
      pending = (removal ?? Promise.resolve())
        .then(() => this.medium.open(SegmentFiles.fileName(segmentIndex), { create: true, writeAround: true }))
        .then((file) => {
          const created = !this.present.has(segmentIndex);
          if (created) this.directoryDirty = true;
          this.present.add(segmentIndex);
          this.files.set(segmentIndex, file);
          this.opening.delete(segmentIndex);
          if (created) this.onCreated?.(segmentIndex);
          return file;
        });
      pending.catch(() => this.opening.delete(segmentIndex));
      this.opening.set(segmentIndex, pending);
    }
    return pending;
  }
}
