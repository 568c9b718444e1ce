/**
 * The NBD server: listeners (TCP and unix sockets, any number), connections, shutdown.
 *
 * Lifecycle of a connection:
 *   accepted → handshake (handshake.ts; bounded in time by HANDSHAKE_TIMEOUT_MS idle and the
 *   HANDSHAKE_DEADLINE_MS deadline (plus an allowance per export asked about), in bytes by
 *   HANDSHAKE_OPTION_BYTES_MAX and HANDSHAKE_REPLY_BYTES_MAX)
 *   → transmission (transmission.ts) → settled (socket closed and no request in flight).
 * Anything a client sends can at worst close its own connection: every connection catches its own
 * errors, and socket 'error' events are always handled.
 *
 * Lifecycle of the server: listen() as often as needed → close(): stop accepting, drop connections
 * still in the handshake, let each transmission finish and answer its in-flight requests, end the
 * connections, then flush every volume that was written through this server.
 *
 * The server never opens a file: volumes come from the VolumeResolver. (The one exception is a
 * stale unix socket file, which listen() replaces.)
 */
import * as net from "node:net";
import { lstat, unlink } from "node:fs/promises";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import type { Volume, VolumeResolver } from "../store/volume.js";
import { negotiate, type HandshakeLink, type HandshakeLogger, type HandshakeOptions, type Negotiated } from "./handshake.js";
import type { NbdTls } from "./tls.js";
import { RequestStatsByDisk } from "./disk-request-stats.js";
import { SocketReader } from "./socket-reader.js";
import { Transmission, type NbdCounters, type TransmissionHost } from "./transmission.js";
import { CONNECTIONS_MAX_DEFAULT, HANDSHAKE_TIMEOUT_MS, INFLIGHT_BYTES_MAX_DEFAULT, REQUEST_BYTES_MAX_DEFAULT } from "./protocol.js";

export type NbdLogger = HandshakeLogger;
export type { NbdCounters } from "./transmission.js";

export interface NbdServerOptions {
  resolver: VolumeResolver;
  /** pino-compatible; defaults to silence. */
  logger?: NbdLogger;
  /** Largest READ/WRITE payload (default 32 MiB); advertised as the maximum block size. */
  maxRequestBytes?: number;
  /** Bytes one connection may hold in flight before it stops reading (default 64 MiB). */
  inflightBytesMax?: number;
  /** Open connections (all listeners) past which a new one is closed at once (default CONNECTIONS_MAX_DEFAULT). */
  connectionsMax?: number;
  /**
   * The handshake's limits (default HANDSHAKE_TIMEOUT_MS, HANDSHAKE_DEADLINE_MS, HANDSHAKE_EXPORT_ALLOWANCE_MS,
   * HANDSHAKE_OPTION_BYTES_MAX, HANDSHAKE_REPLY_BYTES_MAX); tests make them small.
   */
  handshakeTimeoutMs?: number;
  handshakeDeadlineMs?: number;
  handshakeExportAllowanceMs?: number;
  handshakeOptionBytesMax?: number;
  handshakeReplyBytesMax?: number;
  /** TLS (STARTTLS on every listener) when given; `loadNbdTls` makes it from the certificate files. */
  tls?: NbdTls;
}

export type ListenTarget = { host: string; port: number } | { path: string };

interface ConnectionRecord {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  transmission: Transmission | null;
}

const SILENT_LOGGER: NbdLogger = { info() {}, warn() {}, error() {} };

export class NbdServer implements TransmissionHost {
  readonly resolver: VolumeResolver;
  readonly logger: NbdLogger;
  readonly requestBytesMax: number;
  readonly inflightBytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly connectionsMax: number;
  readonly counters: NbdCounters = {
    requestCount: 0,
    readBytes: 0,
    writtenBytes: 0,
    errorCount: 0,
    connectionCountTotal: 0,
    connectionRefusedCount: 0,
    bufferedBytesMax: 0,
    backpressurePauseCount: 0,
  };
  readonly statsByDisk = new RequestStatsByDisk();
  private readonly listeners: net.Server[] = [];
  private readonly connections = new Map<ConnectionRecord, Promise<void>>();
  private readonly writtenVolumes = new Set<Volume>();
  private readonly handshakeOptions: HandshakeOptions;
  private closing = false;
  private refusalLoggedMs = 0;
  private closePromise: Promise<void> | null = null;

  constructor(options: NbdServerOptions) {
    this.resolver = options.resolver;
    this.logger = options.logger ?? SILENT_LOGGER;
    this.requestBytesMax = options.maxRequestBytes ?? REQUEST_BYTES_MAX_DEFAULT;
    this.inflightBytesMax = options.inflightBytesMax ?? INFLIGHT_BYTES_MAX_DEFAULT;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.connectionsMax = options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT;
    if (!(Number.isInteger(this.connectionsMax) && this.connectionsMax > 0)) {
      throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `connectionsMax must be a positive integer: ${this.connectionsMax}`);
    }
    if (!(Number.isInteger(this.requestBytesMax) && this.requestBytesMax >= 512 && this.requestBytesMax <= 0x80000000)) {
      throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `maxRequestBytes must be an integer in [512, 2 GiB]: ${this.requestBytesMax}`);
    }
    if (!(Number.isInteger(this.inflightBytesMax) && this.inflightBytesMax > 0)) {
      throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `inflightBytesMax must be a positive integer: ${this.inflightBytesMax}`);
    }
    this.handshakeOptions = {
      resolver: this.resolver,
      logger: this.logger,
      requestBytesMax: this.requestBytesMax,
      isClosing: () => this.closing,
      optionBytesMax: options.handshakeOptionBytesMax,
      replyBytesMax: options.handshakeReplyBytesMax,
      deadlineMs: options.handshakeDeadlineMs,
      exportAllowanceMs: options.handshakeExportAllowanceMs,
      tls: options.tls,
    };
  }

  /** Open connections, in handshake or transmission. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Starts accepting on a TCP address or a unix socket. Resolves with the address: "host:port"
   * (the real port when 0 was asked) or the socket path. A stale unix socket file (nothing
   * answers: ECONNREFUSED) is replaced; a live one throws CONFLICT.
   */
  async listen(target: ListenTarget): Promise<string> {
    if (this.closing) throw new SnaplogError(ErrorCodes.CLOSED, "the NBD server is closed");
    const listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    listener.on("connection", (socket: net.Socket) => this.accept(socket));
    if ("path" in target) await this.listenUnix(listener, target.path);
    else await listenOn(listener, { host: target.host, port: target.port });
    // Registered once listening: errors while binding (a stale socket) are handled above, not logged.
    listener.on("error", (error: Error) => this.logger.error({ err: error }, "nbd: listener error"));
    this.listeners.push(listener);
    const address = listener.address();
    if (address === null || typeof address === "string") return "path" in target ? target.path : String(address);
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    this.logger.info({ address: `${host}:${address.port}` }, "nbd: listening");
    return `${host}:${address.port}`;
  }

  private async listenUnix(listener: net.Server, path: string): Promise<void> {
    try {
      await listenOn(listener, { path });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    }
    await assertStaleSocket(path);
    this.logger.warn({ path }, "nbd: replacing stale unix socket");
    await unlink(path);
    await listenOn(listener, { path });
  }

  /** Stops accepting, finishes in-flight requests, ends connections, flushes written volumes. */
  close(): Promise<void> {
    if (this.closePromise === null) this.closePromise = this.closeNow();
    return this.closePromise;
  }

  private async closeNow(): Promise<void> {
    this.closing = true;
    const listenersClosed = this.listeners.map((listener) => new Promise<void>((resolve) => listener.close(() => resolve())));
    for (const record of this.connections.keys()) {
      if (record.transmission === null) record.socket.destroy();
      else record.transmission.shutdown();
    }
    await Promise.all([...listenersClosed, ...this.connections.values()]);
    await this.flushWrittenVolumes();
    this.logger.info({ counters: this.counters }, "nbd: server closed");
  }

  private async flushWrittenVolumes(): Promise<void> {
    const volumes = [...this.writtenVolumes];
    this.writtenVolumes.clear();
    await Promise.all(volumes.map((volume) => flushQuietly(volume, this.logger)));
  }

  /** TransmissionHost: remembers volumes to flush at close. */
  volumeWritten(volume: Volume): void {
    this.writtenVolumes.add(volume);
  }

  private accept(socket: net.Socket): void {
    socket.on("error", (error: Error) => this.logger.info({ err: error }, "nbd: socket error"));
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.connectionsMax) {
      this.counters.connectionRefusedCount++;
      // Once per 10 s at most: a flood must not flood the log too.
      if (Date.now() - this.refusalLoggedMs > 10_000) {
        this.refusalLoggedMs = Date.now();
        this.logger.warn(
          { connectionsMax: this.connectionsMax, refused: this.counters.connectionRefusedCount, remote: socket.remoteAddress },
          "nbd: too many connections; new ones are closed",
        );
      }
      socket.destroy();
      return;
    }
    this.counters.connectionCountTotal++;
    const record: ConnectionRecord = {
      socket,
      closed: new Promise<void>((resolve) => socket.once("close", () => resolve())),
      transmission: null,
    };
    const settled = this.serve(record).catch((error: unknown) => {
      this.logger.error({ err: error }, "nbd: connection failed");
      socket.destroy();
      return record.closed;
    });
    this.connections.set(
      record,
      settled.finally(() => this.connections.delete(record)),
    );
  }

  private async serve(record: ConnectionRecord): Promise<void> {
    const negotiated = await this.handshake(record.socket);
    if (negotiated === null) {
      endSoon(record.socket);
      return record.closed;
    }
    // After STARTTLS, transmission runs on the TLS socket.
    const socket = negotiated.socket;
    // The negotiated volume is this connection's until it ends, however it ends.
    try {
      if (socket.destroyed) return await record.closed;
      record.transmission = new Transmission(socket, negotiated.result, this, negotiated.chunks);
      record.transmission.start();
      if (this.closing) record.transmission.shutdown();
      await record.transmission.settled;
    } finally {
      negotiated.result.volume.release();
    }
  }

  private async handshake(socket: net.Socket): Promise<{ result: Negotiated; chunks: Buffer[]; socket: net.Socket } | null> {
    const link: HandshakeLink = { socket, reader: new SocketReader(socket) };
    const onTimeout = (): void => {
      this.logger.warn("nbd: handshake timed out");
      socket.destroy();
    };
    socket.setTimeout(this.handshakeTimeoutMs, onTimeout);
    let result: Negotiated | "aborted" | null = null;
    try {
      result = await negotiate(link, this.handshakeOptions);
    } catch (error) {
      this.logger.info({ err: error }, "nbd: handshake ended");
    }
    socket.setTimeout(0);
    socket.off("timeout", onTimeout);
    const chunks = link.reader.detach();
    if (result === null) this.counters.errorCount++;
    if (result === null || result === "aborted") return null;
    return { result, chunks, socket: link.socket };
  }
}

function listenOn(listener: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    listener.once("error", onError);
    listener.listen(options, () => {
      listener.off("error", onError);
      resolve();
    });
  });
}

/** Throws CONFLICT unless `path` is a unix socket nobody answers on. */
async function assertStaleSocket(path: string): Promise<void> {
  const stats = await lstat(path);
  if (!stats.isSocket()) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `${path} exists and is not a socket`, {
      path,
      hint: "remove it or choose another --nbd-socket",
    });
  }
  const answered = await new Promise<boolean>((resolve, reject) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED" || error.code === "ENOENT") resolve(false);
      else reject(error);
    });
  });
  if (answered) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `another server is listening on ${path}`, {
      path,
      hint: "stop it or choose another --nbd-socket",
    });
  }
}

async function flushQuietly(volume: Volume, logger: NbdLogger): Promise<void> {
  try {
    await volume.flush();
  } catch (error) {
    logger.error({ err: error, exportName: volume.name }, "nbd: flush at close failed");
  }
}

/** Ends the socket after pending writes; destroys it if the peer does not close in time. */
function endSoon(socket: net.Socket): void {
  if (socket.destroyed) return;
  socket.end();
  // Drain (and drop) whatever the client still sends, so its FIN is seen and 'close' follows.
  socket.resume();
  setTimeout(() => socket.destroy(), 2_000).unref();
}
