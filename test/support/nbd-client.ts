/**
 * A small NBD client for tests that need a real, pipelining client in a separate process (the
 * crash test's writer and checker). Written from the NBD protocol document, not from src/nbd, so
 * that it checks the server instead of agreeing with it.
 *
 *   connect → fixed newstyle greeting → client flags (FIXED_NEWSTYLE | NO_ZEROES)
 *           → NBD_OPT_GO(name) → NBD_REP_INFO(export: size, flags)… → NBD_REP_ACK
 *           → transmission: simple replies only (no NBD_OPT_STRUCTURED_REPLY).
 *
 * Requests are pipelined: each gets a fresh cookie (handle) and a pending entry; replies may
 * come in any order and are matched by cookie. A READ reply is followed by exactly the
 * requested number of bytes. When the connection closes, every pending request is rejected
 * with NbdClosedError (the caller cannot know whether it ran).
 *
 * hashExport: the SHA-256 of a whole export, for tests that compare views before and after.
 */
import { createHash } from "node:crypto";
import * as net from "node:net";

const NBD_MAGIC = Buffer.from("NBDMAGIC");
const IHAVEOPT = Buffer.from("IHAVEOPT");
const OPTION_REPLY_MAGIC = Buffer.from("0003e889045565a9", "hex");
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;

const FLAG_FIXED_NEWSTYLE = 1;
const CLIENT_FLAGS = 1 | 2; // FIXED_NEWSTYLE | NO_ZEROES
const OPT_GO = 7;
const REP_ACK = 1;
const REP_INFO = 3;
const INFO_EXPORT = 0;

export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_WRITE_ZEROES = 6;
export const CMD_FLAG_FUA = 1;
export const CMD_FLAG_NO_HOLE = 2;

export const TFLAG_READ_ONLY = 1 << 1;
export const TFLAG_SEND_FLUSH = 1 << 2;
export const TFLAG_SEND_FUA = 1 << 3;
export const TFLAG_SEND_TRIM = 1 << 5;
export const TFLAG_SEND_WRITE_ZEROES = 1 << 6;

const HASH_READ_BYTES = 1024 * 1024;
const REQUEST_HEADER_BYTES = 28;
const REPLY_HEADER_BYTES = 16;
const CONNECT_TIMEOUT_MS = 10_000;

export type NbdTarget = { host: string; port: number } | { path: string };

/** The server answered a request with a nonzero NBD errno. */
export class NbdRequestError extends Error {
  constructor(
    readonly errno: number,
    readonly command: number,
  ) {
    super(`NBD command ${command} failed with errno ${errno}`);
  }
}

/** The connection closed before the reply came. */
export class NbdClosedError extends Error {}

interface Pending {
  command: number;
  lengthBytes: number;
  resolve(data: Buffer): void;
  reject(error: Error): void;
}

/** Collects socket bytes and hands out exact-length pieces. */
class ByteQueue {
  private chunks: Buffer[] = [];
  lengthBytes = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.lengthBytes += chunk.length;
  }

  /** Exactly `count` bytes from the front; the caller checked lengthBytes. */
  take(count: number): Buffer {
    this.lengthBytes -= count;
    const first = this.chunks[0];
    if (first.length === count) {
      this.chunks.shift();
      return first;
    }
    if (first.length > count) {
      this.chunks[0] = first.subarray(count);
      return first.subarray(0, count);
    }
    const target = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[0];
      const step = Math.min(chunk.length, count - filled);
      chunk.copy(target, filled, 0, step);
      filled += step;
      if (step === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(step);
    }
    return target;
  }
}

export class NbdClient {
  readonly sizeBytes: number;
  readonly transmissionFlags: number;
  private readonly socket: net.Socket;
  private readonly queue: ByteQueue;
  private readonly pending = new Map<number, Pending>();
  private cookieNext = 1;
  /** The reply whose READ data is still being received. */
  private dataFor: Pending | undefined;
  private closedError: Error | undefined;

  private constructor(socket: net.Socket, queue: ByteQueue, sizeBytes: number, transmissionFlags: number) {
    this.socket = socket;
    this.queue = queue;
    this.sizeBytes = sizeBytes;
    this.transmissionFlags = transmissionFlags;
  }

  /** Connects and negotiates `exportName` with NBD_OPT_GO. */
  static async connect(target: NbdTarget, exportName: string): Promise<NbdClient> {
    const socket = await openSocket(target);
    const queue = new ByteQueue();
    const handshake = new HandshakeReader(socket, queue);
    try {
      const greeting = await handshake.read(18);
      if (!greeting.subarray(0, 8).equals(NBD_MAGIC) || !greeting.subarray(8, 16).equals(IHAVEOPT)) throw new Error("nbd: bad greeting");
      if ((greeting.readUInt16BE(16) & FLAG_FIXED_NEWSTYLE) === 0) throw new Error("nbd: server is not fixed newstyle");
      const flags = Buffer.alloc(4);
      flags.writeUInt32BE(CLIENT_FLAGS);
      socket.write(flags);
      const name = Buffer.from(exportName, "utf8");
      const payload = Buffer.alloc(4 + name.length + 2);
      payload.writeUInt32BE(name.length, 0);
      name.copy(payload, 4);
      const header = Buffer.alloc(16);
      IHAVEOPT.copy(header, 0);
      header.writeUInt32BE(OPT_GO, 8);
      header.writeUInt32BE(payload.length, 12);
      socket.write(Buffer.concat([header, payload]));
      let sizeBytes = -1;
      let transmissionFlags = 0;
      for (;;) {
        const replyHeader = await handshake.read(20);
        if (!replyHeader.subarray(0, 8).equals(OPTION_REPLY_MAGIC)) throw new Error("nbd: bad option reply magic");
        const replyType = replyHeader.readUInt32BE(12);
        const body = await handshake.read(replyHeader.readUInt32BE(16));
        if (replyType === REP_ACK) break;
        if (replyType >= 0x80000000)
          throw new Error(`nbd: NBD_OPT_GO ${exportName} refused (0x${replyType.toString(16)}): ${body.toString("utf8")}`);
        if (replyType === REP_INFO && body.readUInt16BE(0) === INFO_EXPORT) {
          sizeBytes = Number(body.readBigUInt64BE(2));
          transmissionFlags = body.readUInt16BE(10);
        }
      }
      if (sizeBytes < 0) throw new Error("nbd: no NBD_INFO_EXPORT before the ACK");
      handshake.detach();
      const client = new NbdClient(socket, queue, sizeBytes, transmissionFlags);
      client.start();
      return client;
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }

  get inflightCount(): number {
    return this.pending.size;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.request(CMD_READ, 0, offsetBytes, lengthBytes);
  }

  async write(offsetBytes: number, data: Buffer, options: { fua?: boolean } = {}): Promise<void> {
    await this.request(CMD_WRITE, options.fua === true ? CMD_FLAG_FUA : 0, offsetBytes, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(CMD_FLUSH, 0, 0, 0);
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, options: { fua?: boolean; noHole?: boolean } = {}): Promise<void> {
    const flags = (options.fua === true ? CMD_FLAG_FUA : 0) | (options.noHole === true ? CMD_FLAG_NO_HOLE : 0);
    await this.request(CMD_WRITE_ZEROES, flags, offsetBytes, lengthBytes);
  }

  async trim(offsetBytes: number, lengthBytes: number, options: { fua?: boolean } = {}): Promise<void> {
    await this.request(CMD_TRIM, options.fua === true ? CMD_FLAG_FUA : 0, offsetBytes, lengthBytes);
  }

  /** Sends any command (for callers that build their own); resolves with READ data or an empty buffer. */
  request(command: number, flags: number, offsetBytes: number, lengthBytes: number, payload?: Buffer): Promise<Buffer> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    const cookie = this.cookieNext++;
    const header = Buffer.allocUnsafe(REQUEST_HEADER_BYTES);
    header.writeUInt32BE(REQUEST_MAGIC, 0);
    header.writeUInt16BE(flags, 4);
    header.writeUInt16BE(command, 6);
    header.writeUInt32BE(0, 8);
    header.writeUInt32BE(cookie, 12);
    header.writeUInt32BE(Math.floor(offsetBytes / 0x1_0000_0000), 16);
    header.writeUInt32BE(offsetBytes >>> 0, 20);
    header.writeUInt32BE(lengthBytes, 24);
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(cookie, { command, lengthBytes, resolve, reject });
      this.socket.write(header);
      if (payload !== undefined && payload.length > 0) this.socket.write(payload);
    });
  }

  /** NBD_CMD_DISC, then waits for the server to close (bounded). */
  async disconnect(): Promise<void> {
    if (this.closedError !== undefined) return;
    const header = Buffer.alloc(REQUEST_HEADER_BYTES);
    header.writeUInt32BE(REQUEST_MAGIC, 0);
    header.writeUInt16BE(CMD_DISC, 6);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 5_000);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end(header);
    });
  }

  /** Drops the connection at once (pending requests are rejected). */
  destroy(): void {
    this.socket.destroy();
  }

  private start(): void {
    this.socket.on("data", (chunk: Buffer) => {
      this.queue.push(chunk);
      try {
        this.parse();
      } catch (error) {
        this.fail(error as Error);
        this.socket.destroy();
      }
    });
    this.socket.on("error", (error) => this.fail(new NbdClosedError(`nbd: connection error: ${error.message}`)));
    this.socket.on("close", () => this.fail(new NbdClosedError("nbd: connection closed")));
    this.socket.resume();
    if (this.queue.lengthBytes > 0) this.parse();
  }

  private parse(): void {
    for (;;) {
      if (this.dataFor !== undefined) {
        const waiting = this.dataFor;
        if (this.queue.lengthBytes < waiting.lengthBytes) return;
        this.dataFor = undefined;
        waiting.resolve(this.queue.take(waiting.lengthBytes));
        continue;
      }
      if (this.queue.lengthBytes < REPLY_HEADER_BYTES) return;
      const header = this.queue.take(REPLY_HEADER_BYTES);
      const magic = header.readUInt32BE(0);
      if (magic !== SIMPLE_REPLY_MAGIC) throw new Error(`nbd: bad reply magic 0x${magic.toString(16)}`);
      const errno = header.readUInt32BE(4);
      const cookie = header.readUInt32BE(12);
      const request = this.pending.get(cookie);
      if (request === undefined || header.readUInt32BE(8) !== 0) throw new Error(`nbd: reply to unknown cookie ${cookie}`);
      this.pending.delete(cookie);
      if (errno !== 0) {
        request.reject(new NbdRequestError(errno, request.command));
      } else if (request.command === CMD_READ && request.lengthBytes > 0) {
        this.dataFor = request;
      } else {
        request.resolve(Buffer.alloc(0));
      }
    }
  }

  private fail(error: Error): void {
    if (this.closedError === undefined) this.closedError = error;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    if (this.dataFor !== undefined && !waiting.includes(this.dataFor)) waiting.push(this.dataFor);
    this.dataFor = undefined;
    for (const request of waiting) request.reject(this.closedError);
  }
}

/** SHA-256 (hex) of every byte of an export, read over its own connection in 1 MiB reads, two in flight. */
export async function hashExport(target: NbdTarget, exportName: string): Promise<string> {
  const client = await NbdClient.connect(target, exportName);
  try {
    const hash = createHash("sha256");
    for (let offset = 0; offset < client.sizeBytes; offset += 2 * HASH_READ_BYTES) {
      const starts = [offset, offset + HASH_READ_BYTES].filter((start) => start < client.sizeBytes);
      const reads = starts.map((start) => client.read(start, Math.min(HASH_READ_BYTES, client.sizeBytes - start)));
      for (const data of await Promise.all(reads)) hash.update(data);
    }
    return hash.digest("hex");
  } finally {
    client.destroy();
  }
}

function openSocket(target: NbdTarget): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = "path" in target ? net.connect({ path: target.path }) : net.connect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("nbd: connect timed out"));
    }, CONNECT_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", reject);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Awaitable exact reads during the handshake; detached before transmission starts. */
class HandshakeReader {
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.queue.push(chunk);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = new Error("nbd: server closed the connection during the handshake");
    this.wake();
  };
  private readonly onError = (error: Error): void => {
    this.ended = error;
    this.wake();
  };

  constructor(
    private readonly socket: net.Socket,
    private readonly queue: ByteQueue,
  ) {
    socket.on("data", this.onData);
    socket.on("close", this.onEnd);
    socket.on("error", this.onError);
  }

  async read(count: number): Promise<Buffer> {
    const deadline = Date.now() + CONNECT_TIMEOUT_MS;
    while (this.queue.lengthBytes < count) {
      if (this.ended !== undefined) throw this.ended;
      if (Date.now() > deadline) throw new Error("nbd: handshake timed out");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return count === 0 ? Buffer.alloc(0) : this.queue.take(count);
  }

  detach(): void {
    this.socket.pause();
    this.socket.removeListener("data", this.onData);
    this.socket.removeListener("close", this.onEnd);
    this.socket.removeListener("error", this.onError);
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
