/**
 * Writes a stream (stream-format.ts) to a sink: the header, entry runs packed into frames of
 * about `frameDataBytes`, cuts, the trailer. The output is a function of the input alone (no
 * clock, no randomness below the header), which is what lets an interrupted archive regenerate
 * its parts and check them against what the vault holds. Frames compress side by side on the
 * libuv pool while earlier ones are written, in order: the reader of the source keeps going.
 */
import { CodecId, encodeFrame, type CodecName } from "./codec.js";
import {
  encodeCut,
  encodeEntriesParts,
  encodeFrameHeader,
  encodeHeader,
  encodeTrailer,
  FrameType,
  RUN_DESCRIPTOR_BYTES,
  type EntryRun,
  type StreamCut,
  type StreamHeader,
  type StreamTrailer,
} from "./stream-format.js";
import { crc32c } from "../util/crc32c.js";
import { timedBy, type LoopClock } from "../util/loop-clock.js";
import { streamHash, type StreamHash } from "../util/stream-hash.js";

export const FRAME_DATA_BYTES_DEFAULT = 1024 * 1024;
const FRAME_RUNS_MAX = 8192;
/** Frames compressed at once: the pool has 4 threads; memory stays a few MiB. */
const FRAMES_IN_FLIGHT_MAX = 4;
/** While frames do not compress, only one in this many is tried (a probe); the rest go raw at no cost. */
const PROBE_EVERY = 16;

export interface StreamWriterOptions {
  codec: CodecName;
  /** A frame closes once its data reaches this (default 1 MiB; at most FRAME_RAW_BYTES_MAX with its descriptors). */
  frameDataBytes?: number;
  /** Hash the stream on a worker thread (util/stream-hash.ts): for a writer sharing its loop with host I/O. */
  hashOffThread?: boolean;
  /** Counts the writer's work on the event loop: framing, and handing frames to the sink. */
  loopClock?: LoopClock;
}

export type StreamSink = (chunk: Buffer) => Promise<void>;

export class StreamWriter {
  private readonly hash: StreamHash;
  private readonly frameDataBytes: number;
  private pending: EntryRun[] = [];
  private pendingBytes = 0;
  private seq = 0;
  private tail: Promise<void> = Promise.resolve();
  /** Frames compressing or waiting to be written, oldest first. */
  private readonly inFlight: Promise<void>[] = [];
  private counts = { runCount: 0, blockCount: 0, cutCount: 0 };
  /** The newest frames tried, by seq modulo its length: whether compressing each paid. */
  private readonly paid: { seq: number; paid: boolean }[] = new Array<{ seq: number; paid: boolean }>(FRAMES_IN_FLIGHT_MAX + PROBE_EVERY);
  /** Bytes handed to the sink so far. */
  bytesWritten = 0;
  /** Frames compression was tried on (the rest went raw without trying). */
  framesTried = 0;

  constructor(
    private readonly header: StreamHeader,
    private readonly options: StreamWriterOptions,
    private readonly sink: StreamSink,
  ) {
    this.frameDataBytes = options.frameDataBytes ?? FRAME_DATA_BYTES_DEFAULT;
    this.hash = streamHash(options.hashOffThread ?? false);
  }

  async start(): Promise<void> {
    await this.write(encodeHeader(this.header));
  }

  /** A run; long ones are split at frame boundaries (LSNs and blocks stay consecutive). */
  async addRun(run: EntryRun): Promise<void> {
    const blockSize = this.header.blockSizeBytes;
    let rest = run;
    while (this.mustSplit(rest)) {
      const room = this.roomBlocks();
      await this.pushRun(slice(rest, 0, room, blockSize));
      rest = slice(rest, room, rest.blockCount - room, blockSize);
    }
    await this.pushRun(rest);
  }

  /** Runs in order, as addRun each; runs that need no split and fill no frame are added without waiting. */
  async addRuns(runs: readonly EntryRun[]): Promise<void> {
    let index = 0;
    // Takes runs up to one that must be split or that fills the frame: timed, since it also runs after waits.
    const takeRuns = (): "split" | "full" | "done" => {
      for (; index < runs.length; index++) {
        if (this.mustSplit(runs[index])) return "split";
        this.take(runs[index]);
        if (this.frameFull()) {
          index++;
          return "full";
        }
      }
      return "done";
    };
    for (;;) {
      const stop = this.timed(takeRuns);
      if (stop === "done") return;
      if (stop === "split") await this.addRun(runs[index++]);
      else await this.flushEntries();
    }
  }

  async addCut(cut: StreamCut): Promise<void> {
    await this.flushEntries();
    this.counts.cutCount++;
    const payload = encodeCut(cut);
    await this.emitFrame(FrameType.CUT, [payload], payload.length);
  }

  /** Flushes the last frame and writes the trailer; returns it. */
  async finish(): Promise<StreamTrailer> {
    await this.flushEntries();
    await this.tail;
    const trailer: StreamTrailer = {
      frameCount: this.seq,
      ...this.counts,
      bytesBefore: this.bytesWritten,
      sha256: await this.hash.digest(),
    };
    await this.sink(encodeTrailer(trailer));
    this.bytesWritten += 84;
    return trailer;
  }

  private async pushRun(run: EntryRun): Promise<void> {
    this.take(run);
    if (this.frameFull()) await this.flushEntries();
  }

  /** Whole blocks the frame being filled still has room for (at least one: a frame holds at least a block). */
  private roomBlocks(): number {
    return Math.max(1, Math.floor((this.frameDataBytes - this.pendingBytes) / this.header.blockSizeBytes));
  }

  private mustSplit(run: EntryRun): boolean {
    return run.kind === "write" && run.blockCount > this.roomBlocks();
  }

  private frameFull(): boolean {
    return this.pendingBytes >= this.frameDataBytes || this.pending.length >= FRAME_RUNS_MAX;
  }

  /** The run joins the frame being filled. */
  private take(run: EntryRun): void {
    this.pending.push(run);
    this.counts.runCount++;
    this.counts.blockCount += run.blockCount;
    this.pendingBytes += RUN_DESCRIPTOR_BYTES + (run.kind === "write" ? run.blockCount * this.header.blockSizeBytes : 0);
  }

  private flushEntries(): Promise<void> {
    return this.timed(() => {
      if (this.pending.length === 0) return Promise.resolve();
      const { parts, bytes, crc32c: rawCrc } = encodeEntriesParts(this.pending, this.header.blockSizeBytes);
      this.pending = [];
      this.pendingBytes = 0;
      return this.emitFrame(FrameType.ENTRIES, parts, bytes, rawCrc);
    });
  }

  /**
   * Starts compressing now (on the libuv pool, so frames compress side by side); frames are
   * written in order; returns once fewer than FRAMES_IN_FLIGHT_MAX frames are unwritten. The
   * payload comes in pieces (`rawBytes` in all): joined only to be compressed.
   */
  private async emitFrame(type: number, parts: Buffer[], rawBytes: number, rawCrc?: number): Promise<void> {
    const seq = this.seq++;
    const codec = this.codecFor(seq);
    const encoded =
      codec === "none"
        ? Promise.resolve({ codecId: CodecId.none, stored: parts })
        : encodeFrame(parts.length === 1 ? parts[0] : Buffer.concat(parts), codec).then((result) => {
            this.paid[seq % this.paid.length] = { seq, paid: result.codecId !== CodecId.none };
            return { codecId: result.codecId, stored: [result.stored] };
          });
    if (codec !== "none") this.framesTried++;
    // Whoever awaits sees a failure; none is left unhandled if nobody does.
    encoded.catch(() => undefined);
    const previous = this.tail;
    this.tail = (async () => {
      await previous;
      const { codecId, stored } = await encoded;
      // A frame stored as it is has the checksum its runs gave (known without reading it again).
      const storedBytes = codecId === CodecId.none ? rawBytes : stored[0].length;
      const payloadCrc32c = codecId === CodecId.none && rawCrc !== undefined ? rawCrc : crc32cOfParts(stored);
      // Runs after the frame's turn came (not inside the caller's timed step): timed on its own.
      await this.timed(() => this.write(encodeFrameHeader({ type, codecId, seq, rawBytes, storedBytes, payloadCrc32c })));
      for (const part of stored) await this.timed(() => this.write(part));
    })();
    this.tail.catch(() => undefined);
    this.inFlight.push(this.tail);
    if (this.inFlight.length >= FRAMES_IN_FLIGHT_MAX) await this.inFlight.shift();
  }

  /**
   * Incompressible data (encrypted or already compressed disks) is not compressed frame after
   * frame for nothing: when the newest frame tried did not compress, only every PROBE_EVERY-th
   * frame is tried. Decided from frames already written (at least FRAMES_IN_FLIGHT_MAX back),
   * so the output still depends on the input alone.
   */
  private codecFor(seq: number): CodecName {
    if (this.options.codec === "none" || seq % PROBE_EVERY === 0) return this.options.codec;
    for (let before = seq - FRAMES_IN_FLIGHT_MAX; before >= 0 && before > seq - FRAMES_IN_FLIGHT_MAX - PROBE_EVERY; before--) {
      const tried = this.paid[before % this.paid.length];
      if (tried?.seq === before) return tried.paid ? this.options.codec : "none";
    }
    return this.options.codec;
  }

  private timed<T>(work: () => T): T {
    return timedBy(this.options.loopClock, work);
  }

  private async write(chunk: Buffer): Promise<void> {
    const behind = this.hash.update(chunk);
    if (behind !== undefined) await behind;
    this.bytesWritten += chunk.length;
    await this.sink(chunk);
  }
}

function crc32cOfParts(parts: readonly Buffer[]): number {
  let crc: number | undefined;
  for (const part of parts) crc = crc32c(part, crc);
  return crc ?? crc32c(Buffer.alloc(0));
}

function slice(run: EntryRun, blockFirst: number, blockCount: number, blockSizeBytes: number): EntryRun {
  return {
    ...run,
    lsn: run.lsn === 0 ? 0 : run.lsn + blockFirst,
    lba: run.lba + blockFirst,
    blockCount,
    data: run.data?.subarray(blockFirst * blockSizeBytes, (blockFirst + blockCount) * blockSizeBytes),
    blockCrcs: run.blockCrcs?.subarray(blockFirst, blockFirst + blockCount),
  };
}
