/**
 * The transmission phase of one connection: request parsing, validation, dispatch and replies.
 *
 * Lifecycle of a request:
 *   header parsed (from a socket chunk in place, or gathered in a 28-byte scratch when it spans
 *   chunks) → validateRequest (every check, returns an errno) → for WRITE, the payload is taken as a
 *   slice of one chunk or copied once into its own buffer, pooled when large (a rejected payload is read and dropped)
 *   → runRequest (a module-level async function, one per request, no closures) calls the volume →
 *   complete() sends the reply. Requests run concurrently; replies go out as each finishes, batched
 *   per event-loop turn with cork/uncork.
 *
 * Backpressure: `inflightBytes` counts WRITE payloads held and READ data not yet handed to the
 * socket. Between requests, the parser stops (and pauses the socket, so the kernel's TCP window
 * closes) while inflightBytes > inflightBytesMax or the socket's write buffer needs a drain, and
 * resumes when a request completes or the socket drains. At most one request beyond the limit is
 * accepted, so memory per connection stays under inflightBytesMax + requestBytesMax + one chunk.
 *
 * Ending: DISC, a client half-close, a fatal protocol error (bad magic, oversized WRITE) or server
 * shutdown stop the input; requests in flight finish and are answered; then the socket is ended.
 * If the client vanishes, requests in flight still finish (their replies are dropped).
 */
import type { Socket } from "node:net";
import type { StatusExtent, Volume, WriteOptions, ZeroOptions } from "../store/volume.js";
import { internalError } from "../util/errors.js";
import { nbdErrnoForError, NBD_ERRNO_NAMES } from "./errno.js";
import { writeUInt64, type HandshakeLogger, type Negotiated } from "./handshake.js";
import * as P from "./protocol.js";
import { givePayload, takePayload } from "../util/payload-pool.js";
import type { DiskRequestStats, RequestStatsByDisk } from "./disk-request-stats.js";

/** Server-wide counters, for metrics. */
export interface NbdCounters {
  /** Requests parsed (every command, including rejected ones). */
  requestCount: number;
  /** Data bytes answered to successful READs. */
  readBytes: number;
  /** Payload bytes of successful WRITEs. */
  writtenBytes: number;
  /** Requests answered with an error, plus connections closed for protocol violations. */
  errorCount: number;
  /** Connections accepted since start. */
  connectionCountTotal: number;
  /** Connections closed at once because connectionsMax were open. */
  connectionRefusedCount: number;
  /** High-water mark of one connection's held bytes (in-flight payloads and read data + socket write buffer). */
  bufferedBytesMax: number;
  /** Times a connection stopped reading because of backpressure. */
  backpressurePauseCount: number;
}

export interface TransmissionHost {
  readonly logger: HandshakeLogger;
  readonly counters: NbdCounters;
  readonly requestBytesMax: number;
  readonly inflightBytesMax: number;
  /** Called once per connection, before its first WRITE, TRIM or WRITE_ZEROES runs. */
  volumeWritten(volume: Volume): void;
  /** Per-disk request figures (/metrics). */
  readonly statsByDisk: RequestStatsByDisk;
}

/** What validateRequest needs to know about the connection. */
export interface RequestLimits {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly structuredReplies: boolean;
  readonly baseAllocation: boolean;
  readonly requestBytesMax: number;
}

/** One parsed request; fixed shape (one hidden class). The 64-bit cookie is kept as two halves. */
export class NbdRequest {
  commandFlags: number;
  commandType: number;
  cookieHigh: number;
  cookieLow: number;
  offsetBytes: number;
  lengthBytes: number;
  /** WRITE: the payload; READ: the data read; BLOCK_STATUS: the encoded reply chunk. */
  payload: Buffer | null = null;
  /** The payload came from payload-pool.ts and goes back there when the request completes. */
  pooledPayload = false;
  /** Validation result for a WRITE whose payload is being discarded. */
  errno = 0;
  /** When it was parsed (performance.now()), for the latency figures. */
  readonly startedMs = performance.now();

  constructor(commandFlags: number, commandType: number, cookieHigh: number, cookieLow: number, offsetBytes: number, lengthBytes: number) {
    this.commandFlags = commandFlags;
    this.commandType = commandType;
    this.cookieHigh = cookieHigh;
    this.cookieLow = cookieLow;
    this.offsetBytes = offsetBytes;
    this.lengthBytes = lengthBytes;
  }
}

// ---- Validation -------------------------------------------------------------------------------

/** Flags each command accepts, indexed by command type; commands past the end are unknown. */
const FLAGS_ALLOWED_BY_COMMAND: readonly number[] = [
  /* READ */ P.CMD_FLAG_DF,
  /* WRITE */ P.CMD_FLAG_FUA,
  /* DISC */ 0,
  /* FLUSH */ 0,
  /* TRIM */ P.CMD_FLAG_FUA,
  /* CACHE (not supported) */ -1,
  /* WRITE_ZEROES */ P.CMD_FLAG_FUA | P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO,
  /* BLOCK_STATUS */ P.CMD_FLAG_REQ_ONE,
];

/**
 * Every check a request must pass, in one place; returns 0 or the NBD errno to answer.
 * A WRITE longer than requestBytesMax also gets EINVAL, and the caller then closes the connection
 * (its payload is too long to skip).
 */
export function validateRequest(limits: RequestLimits, request: NbdRequest): number {
  const commandType = request.commandType;
  const flagsAllowed = commandType < FLAGS_ALLOWED_BY_COMMAND.length ? FLAGS_ALLOWED_BY_COMMAND[commandType] : -1;
  if (flagsAllowed < 0) return P.NBD_EINVAL;
  if ((request.commandFlags & ~flagsAllowed) !== 0) return P.NBD_EINVAL;
  if ((request.commandFlags & P.CMD_FLAG_DF) !== 0 && !limits.structuredReplies) return P.NBD_EINVAL;
  const pastEnd = request.offsetBytes > limits.sizeBytes || request.lengthBytes > limits.sizeBytes - request.offsetBytes;
  switch (commandType) {
    case P.CMD_READ:
      if (request.lengthBytes > limits.requestBytesMax) return P.NBD_EINVAL;
      return pastEnd ? P.NBD_EINVAL : 0;
    case P.CMD_BLOCK_STATUS:
      if (!limits.baseAllocation || request.lengthBytes === 0) return P.NBD_EINVAL;
      return pastEnd ? P.NBD_EINVAL : 0;
    case P.CMD_WRITE:
    case P.CMD_TRIM:
    case P.CMD_WRITE_ZEROES:
      if (commandType === P.CMD_WRITE && request.lengthBytes > limits.requestBytesMax) return P.NBD_EINVAL;
      if (limits.readOnly) return P.NBD_EPERM;
      return pastEnd ? P.NBD_ENOSPC : 0;
    default:
      return 0; // DISC, FLUSH
  }
}

// ---- Precomputed ------------------------------------------------------------------------------

const WRITE_PLAIN: WriteOptions = Object.freeze({ fua: false });
const WRITE_FUA: WriteOptions = Object.freeze({ fua: true });
/** Indexed by (fua ? 1 : 0) | (noHole ? 2 : 0). */
const ZERO_OPTIONS: readonly ZeroOptions[] = [
  Object.freeze({ fua: false, noHole: false }),
  Object.freeze({ fua: true, noHole: false }),
  Object.freeze({ fua: false, noHole: true }),
  Object.freeze({ fua: true, noHole: true }),
];
const EMPTY_BUFFER = Buffer.alloc(0);
/** ERROR chunk messages, one per errno, encoded once. */
const ERROR_MESSAGES = new Map<number, Buffer>(
  Object.entries(NBD_ERRNO_NAMES).map(([errno, name]) => [Number(errno), Buffer.from(name, "utf8")]),
);
const COMMAND_NAMES = ["READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE", "WRITE_ZEROES", "BLOCK_STATUS"];
/** A client that never closes its side after we ended ours is destroyed after this long. */
const END_GRACE_MS = 5_000;

const PARSE_HEADER = 0;
const PARSE_PAYLOAD = 1;
const PARSE_DISCARD = 2;

// ---- The connection ---------------------------------------------------------------------------

export class Transmission implements RequestLimits {
  readonly socket: Socket;
  readonly volume: Volume;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly structuredReplies: boolean;
  readonly baseAllocation: boolean;
  readonly requestBytesMax: number;
  private readonly inflightBytesMax: number;
  private readonly host: TransmissionHost;
  private readonly diskStats: DiskRequestStats;

  /** Received chunks not yet parsed; the first is parsed from headOffsetBytes. */
  private readonly queue: Buffer[] = [];
  private headOffsetBytes = 0;
  private parseState = PARSE_HEADER;
  private readonly headerScratch = Buffer.allocUnsafe(P.REQUEST_HEADER_BYTES);
  private headerFilledBytes = 0;
  /** The WRITE whose payload is being received or discarded. */
  private payloadRequest: NbdRequest | null = null;
  private payloadBuffer: Buffer | null = null;
  private payloadFilledBytes = 0;

  inflightBytes = 0;
  inflightRequestCount = 0;
  /** This connection's high-water mark of inflightBytes + socket write buffer. */
  bufferedBytesMax = 0;
  /** The parser waits for in-flight bytes or the socket's write buffer to drain. */
  inputBlocked = false;
  /** No more requests will be read (DISC, end of input, fatal error, shutdown, socket closed). */
  private inputStopped = false;
  private socketClosed = false;
  private ending = false;
  private corked = false;
  private wroteVolume = false;
  private settledResolve: (() => void) | null = null;
  /** Resolves when the socket is closed and no request is in flight. */
  readonly settled: Promise<void>;

  constructor(socket: Socket, negotiated: Negotiated, host: TransmissionHost, initialChunks: Buffer[]) {
    this.socket = socket;
    this.volume = negotiated.volume;
    this.sizeBytes = negotiated.volume.sizeBytes;
    this.readOnly = negotiated.volume.readOnly;
    this.structuredReplies = negotiated.structuredReplies;
    this.baseAllocation = negotiated.baseAllocation;
    this.requestBytesMax = host.requestBytesMax;
    this.inflightBytesMax = host.inflightBytesMax;
    this.host = host;
    this.diskStats = host.statsByDisk.for(negotiated.volume.diskName ?? negotiated.volume.name);
    this.settled = new Promise((resolve) => {
      this.settledResolve = resolve;
    });
    this.onData = this.onData.bind(this);
    this.onDrain = this.onDrain.bind(this);
    this.onEnd = this.onEnd.bind(this);
    this.onClose = this.onClose.bind(this);
    for (const chunk of initialChunks) this.queue.push(chunk);
  }

  /** Starts reading requests (after the handshake reader detached). */
  start(): void {
    this.socket.on("drain", this.onDrain);
    this.socket.on("end", this.onEnd);
    this.socket.on("close", this.onClose);
    if (this.socket.destroyed) {
      this.onClose();
      return;
    }
    this.socket.on("data", this.onData);
    this.consume();
    if (!this.inputBlocked && !this.inputStopped) this.socket.resume();
  }

  /** Server shutdown: read nothing more, answer what is in flight, then end the connection. */
  shutdown(): void {
    this.stopInput();
    this.finishIfIdle();
  }

  // ---- Input ----

  private onData(chunk: Buffer): void {
    if (this.inputStopped) return;
    this.queue.push(chunk);
    this.consume();
  }

  private onEnd(): void {
    this.stopInput();
    this.finishIfIdle();
  }

  private onClose(): void {
    this.socketClosed = true;
    this.stopInput();
    this.checkSettled();
  }

  private onDrain(): void {
    this.unblockInput();
  }

  private isOverBudget(): boolean {
    return this.inflightBytes > this.inflightBytesMax || this.socket.writableNeedDrain;
  }

  /** Parses queued chunks until they run out, the budget is exceeded, or input stops. */
  private consume(): void {
    while (this.queue.length > 0 && !this.inputStopped) {
      if (this.parseState === PARSE_HEADER && this.isOverBudget()) {
        this.inputBlocked = true;
        this.host.counters.backpressurePauseCount++;
        this.socket.pause();
        return;
      }
      const chunk = this.queue[0];
      this.headOffsetBytes += this.consumeFrom(chunk, this.headOffsetBytes);
      if (this.headOffsetBytes === chunk.length) {
        this.queue.shift();
        this.headOffsetBytes = 0;
      }
    }
  }

  private unblockInput(): void {
    if (!this.inputBlocked || this.inputStopped || this.isOverBudget()) return;
    this.inputBlocked = false;
    this.consume();
    if (!this.inputBlocked && !this.inputStopped) this.socket.resume();
  }

  private stopInput(): void {
    if (this.inputStopped) return;
    this.inputStopped = true;
    this.socket.pause();
    this.queue.length = 0;
    this.headOffsetBytes = 0;
    if (this.parseState === PARSE_PAYLOAD && this.payloadRequest !== null) {
      this.inflightBytes -= this.payloadRequest.lengthBytes;
    }
    this.payloadRequest = null;
    this.payloadBuffer = null;
    this.parseState = PARSE_HEADER;
  }

  /** Parses from chunk[offsetBytes..]; returns the bytes used (at least 1). */
  private consumeFrom(chunk: Buffer, offsetBytes: number): number {
    if (this.parseState === PARSE_HEADER) return this.consumeHeader(chunk, offsetBytes);
    if (this.parseState === PARSE_PAYLOAD) return this.consumePayload(chunk, offsetBytes);
    return this.consumeDiscard(chunk, offsetBytes);
  }

  private consumeHeader(chunk: Buffer, offsetBytes: number): number {
    const availableBytes = chunk.length - offsetBytes;
    if (this.headerFilledBytes === 0 && availableBytes >= P.REQUEST_HEADER_BYTES) {
      this.onHeader(chunk, offsetBytes);
      return P.REQUEST_HEADER_BYTES;
    }
    const stepBytes = Math.min(P.REQUEST_HEADER_BYTES - this.headerFilledBytes, availableBytes);
    chunk.copy(this.headerScratch, this.headerFilledBytes, offsetBytes, offsetBytes + stepBytes);
    this.headerFilledBytes += stepBytes;
    if (this.headerFilledBytes === P.REQUEST_HEADER_BYTES) {
      this.headerFilledBytes = 0;
      this.onHeader(this.headerScratch, 0);
    }
    return stepBytes;
  }

  private consumePayload(chunk: Buffer, offsetBytes: number): number {
    const request = this.payloadRequest as NbdRequest;
    const availableBytes = chunk.length - offsetBytes;
    const neededBytes = request.lengthBytes - this.payloadFilledBytes;
    if (this.payloadFilledBytes === 0 && availableBytes >= neededBytes) {
      request.payload = chunk.subarray(offsetBytes, offsetBytes + neededBytes);
      this.payloadDone(request);
      return neededBytes;
    }
    if (this.payloadBuffer === null) {
      this.payloadBuffer = takePayload(request.lengthBytes);
      request.pooledPayload = true;
    }
    const stepBytes = Math.min(neededBytes, availableBytes);
    chunk.copy(this.payloadBuffer, this.payloadFilledBytes, offsetBytes, offsetBytes + stepBytes);
    this.payloadFilledBytes += stepBytes;
    if (this.payloadFilledBytes === request.lengthBytes) {
      request.payload = this.payloadBuffer;
      this.payloadDone(request);
    }
    return stepBytes;
  }

  private consumeDiscard(chunk: Buffer, offsetBytes: number): number {
    const request = this.payloadRequest as NbdRequest;
    const stepBytes = Math.min(request.lengthBytes - this.payloadFilledBytes, chunk.length - offsetBytes);
    this.payloadFilledBytes += stepBytes;
    if (this.payloadFilledBytes === request.lengthBytes) {
      this.resetPayload();
      this.replyError(request, request.errno);
    }
    return stepBytes;
  }

  private payloadDone(request: NbdRequest): void {
    this.resetPayload();
    this.dispatch(request);
  }

  private resetPayload(): void {
    this.parseState = PARSE_HEADER;
    this.payloadRequest = null;
    this.payloadBuffer = null;
    this.payloadFilledBytes = 0;
  }

  // ---- Requests ----

  private onHeader(buffer: Buffer, offsetBytes: number): void {
    if (buffer.readUInt32BE(offsetBytes) !== P.REQUEST_MAGIC) {
      this.fail("bad request magic");
      return;
    }
    const request = new NbdRequest(
      buffer.readUInt16BE(offsetBytes + 4),
      buffer.readUInt16BE(offsetBytes + 6),
      buffer.readUInt32BE(offsetBytes + 8),
      buffer.readUInt32BE(offsetBytes + 12),
      buffer.readUInt32BE(offsetBytes + 16) * 0x100000000 + buffer.readUInt32BE(offsetBytes + 20),
      buffer.readUInt32BE(offsetBytes + 24),
    );
    this.host.counters.requestCount++;
    const errno = validateRequest(this, request);
    if (request.commandType === P.CMD_WRITE) {
      this.startPayload(request, errno);
    } else if (errno !== 0) {
      this.replyError(request, errno);
    } else if (request.commandType === P.CMD_DISC) {
      this.stopInput();
      this.finishIfIdle();
    } else {
      this.dispatch(request);
    }
  }

  private startPayload(request: NbdRequest, errno: number): void {
    if (request.lengthBytes > this.requestBytesMax) {
      this.replyError(request, errno);
      this.fail("WRITE payload larger than the maximum request size");
      return;
    }
    if (request.lengthBytes === 0) {
      if (errno !== 0) this.replyError(request, errno);
      else this.dispatchWrite(request, EMPTY_BUFFER);
      return;
    }
    this.payloadRequest = request;
    this.payloadFilledBytes = 0;
    if (errno !== 0) {
      request.errno = errno;
      this.parseState = PARSE_DISCARD;
      return;
    }
    this.parseState = PARSE_PAYLOAD;
    this.reserve(request.lengthBytes);
  }

  private dispatchWrite(request: NbdRequest, payload: Buffer): void {
    request.payload = payload;
    this.dispatch(request);
  }

  private dispatch(request: NbdRequest): void {
    const commandType = request.commandType;
    if (commandType === P.CMD_READ) this.reserve(request.lengthBytes);
    if (!this.wroteVolume && (commandType === P.CMD_WRITE || commandType === P.CMD_TRIM || commandType === P.CMD_WRITE_ZEROES)) {
      this.wroteVolume = true;
      this.host.volumeWritten(this.volume);
    }
    this.inflightRequestCount++;
    void runRequest(this, request);
  }

  private reserve(lengthBytes: number): void {
    this.inflightBytes += lengthBytes;
    this.noteBuffered();
  }

  /** Updates the high-water marks of held bytes: in flight plus the socket's write buffer. */
  private noteBuffered(): void {
    const bufferedBytes = this.inflightBytes + this.socket.writableLength;
    if (bufferedBytes > this.bufferedBytesMax) this.bufferedBytesMax = bufferedBytes;
    if (bufferedBytes > this.host.counters.bufferedBytesMax) this.host.counters.bufferedBytesMax = bufferedBytes;
  }

  /** Logs the real error once, and returns the lossy NBD errno. */
  errnoForFailure(error: unknown, request: NbdRequest): number {
    const commandType = request.commandType;
    const isWrite = commandType === P.CMD_WRITE || commandType === P.CMD_TRIM || commandType === P.CMD_WRITE_ZEROES;
    const errno = nbdErrnoForError(error, isWrite);
    this.host.logger.warn(
      {
        err: error,
        exportName: this.volume.name,
        command: COMMAND_NAMES[commandType],
        offsetBytes: request.offsetBytes,
        lengthBytes: request.lengthBytes,
        errno: NBD_ERRNO_NAMES[errno],
      },
      "nbd: request failed",
    );
    return errno;
  }

  /** Called by runRequest when the volume call finished. */
  complete(request: NbdRequest, errno: number): void {
    this.inflightRequestCount--;
    this.diskStats.record(request.commandType, request.lengthBytes, (performance.now() - request.startedMs) / 1000, errno === 0);
    const counters = this.host.counters;
    if (errno !== 0) counters.errorCount++;
    else if (request.commandType === P.CMD_READ) counters.readBytes += request.lengthBytes;
    else if (request.commandType === P.CMD_WRITE) counters.writtenBytes += request.lengthBytes;
    if (errno === 0) this.sendSuccess(request);
    else this.sendError(request, errno);
    if (request.commandType === P.CMD_READ || request.commandType === P.CMD_WRITE) this.inflightBytes -= request.lengthBytes;
    this.noteBuffered();
    // The write has resolved: nothing holds its payload any more (payload-pool.ts).
    if (request.pooledPayload === true && request.payload !== null) givePayload(request.payload);
    request.payload = null;
    this.unblockInput();
    this.finishIfIdle();
    this.checkSettled();
  }

  /** A request rejected before it ran (validation). */
  private replyError(request: NbdRequest, errno: number): void {
    this.host.counters.errorCount++;
    this.sendError(request, errno);
  }

  /** A protocol violation: stop reading, answer what is in flight, close. */
  private fail(reason: string): void {
    this.host.counters.errorCount++;
    this.host.logger.warn({ exportName: this.volume.name, reason }, "nbd: closing connection after protocol error");
    this.stopInput();
    this.finishIfIdle();
  }

  private finishIfIdle(): void {
    if (!this.inputStopped || this.inflightRequestCount > 0 || this.ending) return;
    this.ending = true;
    if (!this.socketClosed) {
      this.socket.end();
      // Drain (and drop) whatever the client still sends, so its FIN is seen and 'close' follows.
      this.socket.resume();
      setTimeout(destroySocket, END_GRACE_MS, this.socket).unref();
    }
    this.checkSettled();
  }

  private checkSettled(): void {
    if (!this.socketClosed || this.inflightRequestCount > 0 || this.settledResolve === null) return;
    const resolve = this.settledResolve;
    this.settledResolve = null;
    resolve();
  }

  // ---- Replies ----

  private canSend(): boolean {
    return !this.socketClosed && this.socket.writable;
  }

  private corkForTick(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(uncorkTransmission, this);
  }

  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  private sendSuccess(request: NbdRequest): void {
    if (!this.canSend()) return;
    this.corkForTick();
    const commandType = request.commandType;
    if (!this.structuredReplies) {
      this.socket.write(simpleReplyHeader(request, 0));
      if (commandType === P.CMD_READ && request.lengthBytes > 0) this.socket.write(request.payload as Buffer);
    } else if (commandType === P.CMD_READ) {
      this.sendStructuredRead(request);
    } else if (commandType === P.CMD_BLOCK_STATUS) {
      this.socket.write(request.payload as Buffer);
    } else {
      this.socket.write(simpleReplyHeader(request, 0));
    }
  }

  private sendStructuredRead(request: NbdRequest): void {
    if (request.lengthBytes === 0) {
      this.socket.write(structuredHeader(request, P.REPLY_TYPE_NONE, 0, 0));
      return;
    }
    const header = structuredHeader(
      request,
      P.REPLY_TYPE_OFFSET_DATA,
      P.OFFSET_DATA_PREFIX_BYTES + request.lengthBytes,
      P.OFFSET_DATA_PREFIX_BYTES,
    );
    writeUInt64(header, request.offsetBytes, P.STRUCTURED_REPLY_HEADER_BYTES);
    this.socket.write(header);
    this.socket.write(request.payload as Buffer);
  }

  private sendError(request: NbdRequest, errno: number): void {
    if (!this.canSend()) return;
    this.corkForTick();
    const commandType = request.commandType;
    if (this.structuredReplies && (commandType === P.CMD_READ || commandType === P.CMD_BLOCK_STATUS)) {
      this.socket.write(errorChunk(request, errno));
    } else {
      this.socket.write(simpleReplyHeader(request, errno));
    }
  }
}

// ---- Module-level helpers (no closures per request) -------------------------------------------

/** Runs one request against the volume and hands the outcome to complete(). */
async function runRequest(transmission: Transmission, request: NbdRequest): Promise<void> {
  let errno = 0;
  try {
    await perform(transmission.volume, request);
  } catch (error) {
    errno = transmission.errnoForFailure(error, request);
  }
  transmission.complete(request, errno);
}

async function perform(volume: Volume, request: NbdRequest): Promise<void> {
  const fua = (request.commandFlags & P.CMD_FLAG_FUA) !== 0;
  switch (request.commandType) {
    case P.CMD_READ:
      request.payload = request.lengthBytes === 0 ? EMPTY_BUFFER : await volume.read(request.offsetBytes, request.lengthBytes);
      if (request.payload.length !== request.lengthBytes) throw internalError("volume read returned a short buffer");
      return;
    case P.CMD_WRITE:
      if (request.lengthBytes > 0) await volume.write(request.offsetBytes, request.payload as Buffer, fua ? WRITE_FUA : WRITE_PLAIN);
      return;
    case P.CMD_FLUSH:
      return volume.flush();
    case P.CMD_TRIM:
      if (request.lengthBytes > 0) await volume.trim(request.offsetBytes, request.lengthBytes, fua ? WRITE_FUA : WRITE_PLAIN);
      return;
    case P.CMD_WRITE_ZEROES: {
      const noHole = (request.commandFlags & P.CMD_FLAG_NO_HOLE) !== 0;
      if (request.lengthBytes > 0)
        await volume.writeZeroes(request.offsetBytes, request.lengthBytes, ZERO_OPTIONS[(fua ? 1 : 0) | (noHole ? 2 : 0)]);
      return;
    }
    case P.CMD_BLOCK_STATUS:
      request.payload = blockStatusChunk(
        request,
        await volume.blockStatus(request.offsetBytes, request.lengthBytes, request.commandFlags & P.CMD_FLAG_REQ_ONE ? 1 : undefined),
      );
      return;
    default:
      throw internalError(`dispatch of unvalidated command ${request.commandType}`);
  }
}

function uncorkTransmission(transmission: Transmission): void {
  transmission.uncork();
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

function simpleReplyHeader(request: NbdRequest, errno: number): Buffer {
  const header = Buffer.allocUnsafe(P.SIMPLE_REPLY_HEADER_BYTES);
  header.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
  header.writeUInt32BE(errno, 4);
  header.writeUInt32BE(request.cookieHigh, 8);
  header.writeUInt32BE(request.cookieLow, 12);
  return header;
}

/** A DONE chunk header with `extraBytes` of room after it; `payloadBytes` is the chunk length. */
function structuredHeader(request: NbdRequest, replyType: number, payloadBytes: number, extraBytes: number): Buffer {
  const header = Buffer.allocUnsafe(P.STRUCTURED_REPLY_HEADER_BYTES + extraBytes);
  header.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  header.writeUInt16BE(P.REPLY_FLAG_DONE, 4);
  header.writeUInt16BE(replyType, 6);
  header.writeUInt32BE(request.cookieHigh, 8);
  header.writeUInt32BE(request.cookieLow, 12);
  header.writeUInt32BE(payloadBytes, 16);
  return header;
}

function errorChunk(request: NbdRequest, errno: number): Buffer {
  const message = ERROR_MESSAGES.get(errno) ?? EMPTY_BUFFER;
  const prefixBytes = P.ERROR_CHUNK_PREFIX_BYTES;
  const chunk = structuredHeader(request, P.REPLY_TYPE_ERROR, prefixBytes + message.length, prefixBytes + message.length);
  chunk.writeUInt32BE(errno, P.STRUCTURED_REPLY_HEADER_BYTES);
  chunk.writeUInt16BE(message.length, P.STRUCTURED_REPLY_HEADER_BYTES + 4);
  message.copy(chunk, P.STRUCTURED_REPLY_HEADER_BYTES + prefixBytes);
  return chunk;
}

/**
 * The BLOCK_STATUS chunk for base:allocation: extents clipped to the request, adjacent runs with
 * equal flags merged, one descriptor only with REQ_ONE, at most BLOCK_STATUS_DESCRIPTOR_COUNT_MAX.
 */
export function blockStatusChunk(request: NbdRequest, extents: readonly StatusExtent[]): Buffer {
  const capacity = Math.min(extents.length, P.BLOCK_STATUS_DESCRIPTOR_COUNT_MAX);
  const startBytes = P.STRUCTURED_REPLY_HEADER_BYTES + 4;
  const chunk = Buffer.allocUnsafe(startBytes + capacity * P.BLOCK_STATUS_DESCRIPTOR_BYTES);
  const reqOne = (request.commandFlags & P.CMD_FLAG_REQ_ONE) !== 0;
  let count = 0;
  let coveredBytes = 0;
  let lastFlags = -1;
  for (const extent of extents) {
    const lengthBytes = Math.min(extent.lengthBytes, request.lengthBytes - coveredBytes);
    if (!(lengthBytes > 0)) continue;
    const flags = allocationBits(extent);
    const at = startBytes + (count - 1) * P.BLOCK_STATUS_DESCRIPTOR_BYTES;
    if (flags === lastFlags) {
      chunk.writeUInt32BE(chunk.readUInt32BE(at) + lengthBytes, at);
    } else {
      if (count === capacity || (reqOne && count === 1)) break;
      chunk.writeUInt32BE(lengthBytes, at + P.BLOCK_STATUS_DESCRIPTOR_BYTES);
      chunk.writeUInt32BE(flags, at + P.BLOCK_STATUS_DESCRIPTOR_BYTES + 4);
      count++;
      lastFlags = flags;
    }
    coveredBytes += lengthBytes;
    if (coveredBytes >= request.lengthBytes) break;
  }
  if (count === 0) throw internalError("volume answered block status with no extent");
  const payloadBytes = 4 + count * P.BLOCK_STATUS_DESCRIPTOR_BYTES;
  const header = structuredHeader(request, P.REPLY_TYPE_BLOCK_STATUS, payloadBytes, 0);
  header.copy(chunk, 0);
  chunk.writeUInt32BE(P.META_ID_BASE_ALLOCATION, P.STRUCTURED_REPLY_HEADER_BYTES);
  return chunk.subarray(0, startBytes + count * P.BLOCK_STATUS_DESCRIPTOR_BYTES);
}

/** The base:allocation bits of an extent: the one mapping of the store's allocation to the protocol. */
export function allocationBits(extent: Pick<StatusExtent, "hole" | "zero">): number {
  return (extent.hole ? P.STATE_HOLE : 0) | (extent.zero ? P.STATE_ZERO : 0);
}
