/**
 * Reads a stream from any source of chunks (a file, stdin, a socket, vault parts), checking as
 * it goes: the header's checksum and fields, each frame header before its payload is read (so
 * no size is trusted unchecked: a frame claiming 4 GiB is refused at 32 bytes), each payload's
 * CRC32C before it is decompressed, each run's data CRC32C, the frame sequence (reordered or
 * dropped frames), and at the end the trailer's counts and the SHA-256 of every byte before
 * it. Anything after the trailer is refused. Memory: one frame (≤ 8 MiB decoded) at a time.
 */
import { createHash } from "node:crypto";
import { CodecId, decodeFrame } from "./codec.js";
import {
  corruptStream,
  decodeCut,
  decodeEntries,
  decodeFrameHeader,
  decodeHeaderFixed,
  decodeHeaderRest,
  decodeTrailer,
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FRAME_TYPE_OPTIONAL_BIT,
  FrameType,
  HEADER_FIXED_BYTES,
  RUN_DESCRIPTOR_BYTES,
  TRAILER_BYTES,
  TRAILER_MAGIC,
  type EntryRun,
  type FrameHeader,
  type StreamCut,
  type StreamHeader,
  type StreamTrailer,
} from "./stream-format.js";
import { crc32c } from "../util/crc32c.js";

export type StreamItem = { type: "runs"; runs: EntryRun[] } | { type: "cut"; cut: StreamCut };

/** Exactly-n-byte reads over an async source of chunks. */
class ChunkQueue {
  private readonly iterator: AsyncIterator<Buffer | Uint8Array | string>;
  private chunks: Buffer[] = [];
  private queuedBytes = 0;
  private ended = false;
  /** Bytes consumed so far. */
  position = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async fill(bytes: number): Promise<boolean> {
    while (this.queuedBytes < bytes && !this.ended) {
      const next = await this.iterator.next();
      if (next.done === true) this.ended = true;
      else {
        const chunk =
          typeof next.value === "string"
            ? Buffer.from(next.value)
            : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
        if (chunk.length === 0) continue;
        this.chunks.push(chunk);
        this.queuedBytes += chunk.length;
      }
    }
    return this.queuedBytes >= bytes;
  }

  /** `assemble`: where bytes that span chunks are copied to (default a new buffer). */
  async read(bytes: number, what: string, assemble?: (bytes: number) => Buffer): Promise<Buffer> {
    if (!(await this.fill(bytes)))
      throw corruptStream(`it ends after ${this.position + this.queuedBytes} bytes, inside ${what} (truncated)`);
    let out: Buffer;
    const first = this.chunks[0];
    if (first.length >= bytes) {
      out = first.subarray(0, bytes);
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      out = assemble?.(bytes) ?? Buffer.allocUnsafe(bytes);
      let at = 0;
      while (at < bytes) {
        const chunk = this.chunks[0];
        const take = Math.min(chunk.length, bytes - at);
        chunk.copy(out, at, 0, take);
        at += take;
        if (take === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(take);
      }
    }
    this.queuedBytes -= bytes;
    this.position += bytes;
    return out;
  }

  /** The next 4 bytes as a little-endian u32, not consumed; undefined when the stream ends first. */
  async peekUInt32LE(): Promise<number | undefined> {
    if (!(await this.fill(4))) return undefined;
    const first = this.chunks[0];
    if (first.length >= 4) return first.readUInt32LE(0);
    const head = Buffer.alloc(4);
    let at = 0;
    for (const chunk of this.chunks) {
      at += chunk.copy(head, at, 0, Math.min(chunk.length, 4 - at));
      if (at === 4) break;
    }
    return head.readUInt32LE(0);
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}

export interface StreamGeometry {
  blockSizeBytes: number;
  blockCount: number;
}

/**
 * Where frame payloads that span the source's chunks are assembled: a caller that keeps the
 * decoded runs until they are written (a replication receiver) lends reused memory, in which
 * `alignAt` (the data of an entries frame stored raw) falls on a page.
 */
export interface PayloadMemory {
  take(lengthBytes: number, alignAt: number): Buffer;
}

export class StreamReader {
  private readonly queue: ChunkQueue;
  private readonly hash = createHash("sha256");
  private headerRead: StreamHeader | undefined;
  trailer: StreamTrailer | undefined;

  constructor(
    source: AsyncIterable<Buffer | Uint8Array | string>,
    private readonly payloadMemory?: PayloadMemory,
  ) {
    this.queue = new ChunkQueue(source);
  }

  /** Bytes read so far. */
  get bytesRead(): number {
    return this.queue.position;
  }

  private async take(bytes: number, what: string, assemble?: (bytes: number) => Buffer): Promise<Buffer> {
    const chunk = await this.queue.read(bytes, what, assemble);
    this.hash.update(chunk);
    return chunk;
  }

  async readHeader(): Promise<StreamHeader> {
    const fixed = await this.take(HEADER_FIXED_BYTES, "the header");
    const jsonBytes = decodeHeaderFixed(fixed);
    this.headerRead = decodeHeaderRest(fixed, await this.take(jsonBytes + 4, "the header"));
    return this.headerRead;
  }

  /** The stream's frames as runs and cuts; returns after the trailer and the end of input checked out. */
  async *items(): AsyncGenerator<StreamItem> {
    const header = this.headerRead ?? (await this.readHeader());
    const geometry = { blockSizeBytes: header.blockSizeBytes, blockCount: header.sizeBytes / header.blockSizeBytes };
    const counts = { runCount: 0, blockCount: 0, cutCount: 0 };
    let seq = 0;
    for (;;) {
      const bytesBefore = this.queue.position;
      const shaBefore = this.hash.copy().digest();
      const head = await this.queue.read(4, `frame ${seq}`);
      const magic = head.readUInt32LE(0);
      if (magic === TRAILER_MAGIC) {
        const trailer = decodeTrailer(Buffer.concat([head, await this.queue.read(TRAILER_BYTES - 4, "the trailer")]));
        this.checkTrailer(trailer, { frameCount: seq, ...counts, bytesBefore, sha256: shaBefore });
        if (!(await this.queue.atEnd())) throw corruptStream("bytes follow the trailer");
        this.trailer = trailer;
        return;
      }
      if (magic !== FRAME_MAGIC) throw corruptStream(`no frame header where frame ${seq} belongs (at byte ${bytesBefore})`);
      this.hash.update(head);
      const frame = decodeFrameHeader(Buffer.concat([head, await this.take(FRAME_HEADER_BYTES - 4, `frame ${seq}`)]), seq);
      const stored = await this.take(frame.storedBytes, `frame ${seq}'s payload`, await this.assemblerFor(frame));
      if (crc32c(stored) !== frame.payloadCrc32c) throw corruptStream(`frame ${seq}: payload checksum mismatch`);
      seq++;
      if (frame.type === FrameType.ENTRIES) {
        const runs = decodeEntries(await decodeFrame(stored, frame.codecId, frame.rawBytes), geometry, frame.seq);
        counts.runCount += runs.length;
        for (const run of runs) counts.blockCount += run.blockCount;
        yield { type: "runs", runs };
      } else if (frame.type === FrameType.CUT) {
        counts.cutCount++;
        yield { type: "cut", cut: decodeCut(await decodeFrame(stored, frame.codecId, frame.rawBytes), frame.seq) };
      } else if ((frame.type & FRAME_TYPE_OPTIONAL_BIT) === 0) {
        throw corruptStream(`frame ${frame.seq} has type ${frame.type}, which this version does not know and may not skip`);
      }
    }
  }

  /** With lent memory: an entries frame stored raw has its data (after the run descriptors) page-aligned. */
  private async assemblerFor(frame: FrameHeader): Promise<((bytes: number) => Buffer) | undefined> {
    const memory = this.payloadMemory;
    if (memory === undefined) return undefined;
    let alignAt = 0;
    if (frame.type === FrameType.ENTRIES && frame.codecId === CodecId.none) {
      const runCount = await this.queue.peekUInt32LE();
      const dataAt = runCount === undefined ? 0 : 8 + runCount * RUN_DESCRIPTOR_BYTES;
      if (dataAt <= frame.storedBytes) alignAt = dataAt;
    }
    return (bytes) => memory.take(bytes, alignAt);
  }

  private checkTrailer(trailer: StreamTrailer, seen: StreamTrailer): void {
    for (const field of ["frameCount", "runCount", "blockCount", "cutCount", "bytesBefore"] as const) {
      if (trailer[field] !== seen[field])
        throw corruptStream(`the trailer says ${trailer[field]} for ${field}, the stream holds ${seen[field]}`);
    }
    if (!trailer.sha256.equals(seen.sha256)) throw corruptStream("the whole-stream SHA-256 does not match the trailer");
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
