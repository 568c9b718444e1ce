/**
 * Exact-length reads from a socket for the handshake (not the hot path: a few dozen small reads
 * per connection). The socket stays paused unless a read is waiting for bytes, so a client that
 * floods the handshake costs at most one socket chunk of memory beyond the current read.
 * When the handshake ends, detach() hands the unread chunks to the transmission parser.
 */
import type { Socket } from "node:net";
import { SnaplogError, ErrorCodes } from "../util/errors.js";

export class SocketReader {
  private readonly socket: Socket;
  private readonly chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private waitBytes = 0;
  private waitResolve: (() => void) | null = null;
  private waitReject: ((error: Error) => void) | null = null;
  private ended = false;

  constructor(socket: Socket) {
    this.socket = socket;
    this.onData = this.onData.bind(this);
    this.onEnd = this.onEnd.bind(this);
    socket.pause();
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
  }

  /** Resolves with exactly `lengthBytes` bytes (a copy), rejects with CLOSED if the peer goes away. */
  async read(lengthBytes: number): Promise<Buffer> {
    await this.waitFor(lengthBytes);
    return this.take(lengthBytes);
  }

  /** Reads and drops `lengthBytes` bytes without holding them all in memory. */
  async skip(lengthBytes: number): Promise<void> {
    let remainingBytes = lengthBytes;
    while (remainingBytes > 0) {
      await this.waitFor(1);
      const stepBytes = Math.min(remainingBytes, this.bufferedBytes);
      this.drop(stepBytes);
      remainingBytes -= stepBytes;
    }
  }

  /** Stops listening and returns the bytes received but not yet read, as chunks. */
  detach(): Buffer[] {
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("close", this.onEnd);
    this.socket.pause();
    const chunks = this.chunks.splice(0, this.chunks.length);
    this.bufferedBytes = 0;
    return chunks;
  }

  private waitFor(lengthBytes: number): Promise<void> {
    if (this.bufferedBytes >= lengthBytes) return Promise.resolve();
    if (this.ended) return Promise.reject(peerClosed());
    this.waitBytes = lengthBytes;
    const promise = new Promise<void>((resolve, reject) => {
      this.waitResolve = resolve;
      this.waitReject = reject;
    });
    this.socket.resume();
    return promise;
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.waitResolve === null || this.bufferedBytes < this.waitBytes) return;
    this.socket.pause();
    const resolve = this.waitResolve;
    this.clearWaiter();
    resolve();
  }

  private onEnd(): void {
    this.ended = true;
    const reject = this.waitReject;
    if (reject === null) return;
    this.clearWaiter();
    reject(peerClosed());
  }

  private clearWaiter(): void {
    this.waitResolve = null;
    this.waitReject = null;
    this.waitBytes = 0;
  }

  private take(lengthBytes: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= lengthBytes) {
      const result = Buffer.from(first.subarray(0, lengthBytes));
      this.drop(lengthBytes);
      return result;
    }
    const result = Buffer.allocUnsafe(lengthBytes);
    let filledBytes = 0;
    while (filledBytes < lengthBytes) {
      const chunk = this.chunks[0];
      const stepBytes = Math.min(chunk.length, lengthBytes - filledBytes);
      chunk.copy(result, filledBytes, 0, stepBytes);
      filledBytes += stepBytes;
      this.drop(stepBytes);
    }
    return result;
  }

  private drop(lengthBytes: number): void {
    let remainingBytes = lengthBytes;
    while (remainingBytes > 0) {
      const chunk = this.chunks[0];
      if (chunk.length <= remainingBytes) {
        this.chunks.shift();
        remainingBytes -= chunk.length;
      } else {
        this.chunks[0] = chunk.subarray(remainingBytes);
        remainingBytes = 0;
      }
    }
    this.bufferedBytes -= lengthBytes;
  }
}

function peerClosed(): SnaplogError {
  return new SnaplogError(ErrorCodes.CLOSED, "client closed the connection during the handshake");
}
