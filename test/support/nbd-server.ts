/**
 * Test helpers for the NBD server: start one in-process on an ephemeral TCP port and a temp unix
 * socket (startTestServer), find client tools (requireTool: skip loudly, fail under CI), and a raw
 * protocol client over node:net (RawNbdClient) for hostile-client and backpressure tests. The raw
 * client is written from the protocol document independently of src/nbd, so it checks the server
 * rather than agreeing with it.
 */
import * as net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import type { VolumeResolver } from "../../src/store/volume.js";
import { NbdServer, type NbdServerOptions } from "../../src/nbd/server.js";

export interface TestServer {
  server: NbdServer;
  port: number;
  socketPath: string;
  /** nbd://127.0.0.1:PORT/NAME */
  uri(exportName: string): string;
  /** nbd+unix:///NAME?socket=PATH */
  unixUri(exportName: string): string;
  close(): Promise<void>;
}

export async function startTestServer(resolver: VolumeResolver, options: Partial<NbdServerOptions> = {}): Promise<TestServer> {
  const server = new NbdServer({ resolver, ...options });
  const directory = await mkdtemp(join(tmpdir(), "snaplog-nbd-"));
  const socketPath = join(directory, "nbd.sock");
  const address = await server.listen({ host: "127.0.0.1", port: 0 });
  await server.listen({ path: socketPath });
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  return {
    server,
    port,
    socketPath,
    uri: (exportName) => `nbd://127.0.0.1:${port}/${encodeURIComponent(exportName)}`,
    unixUri: (exportName) => `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socketPath}`,
    close: async () => {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Returns true when `tool` is on PATH. Otherwise logs a loud SKIP line and returns false, or
 * throws when process.env.CI is set (CI must have every tool). `packages`: the Debian packages
 * that provide it, named in the message.
 */
export function requireTool(tool: string, packages = "qemu-utils libnbd-bin python3-libnbd"): boolean {
  try {
    execFileSync("which", [tool], { stdio: "ignore" });
    return true;
  } catch {
    const message = `${tool} is not installed (apt-get install ${packages})`;
    if (process.env.CI) throw new Error(`CI: ${message}`);
    console.error(`\n*** SKIP: ${message} ***\n`);
    return false;
  }
}

// ---- Raw protocol client ----------------------------------------------------------------------

export const NBDMAGIC = Buffer.from("NBDMAGIC");
export const IHAVEOPT = Buffer.from("IHAVEOPT");
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const OPTION_REPLY_MAGIC = Buffer.from("0003e889045565a9", "hex");

export interface OptionReply {
  option: number;
  replyType: number;
  payload: Buffer;
}

export interface SimpleReply {
  magic: number;
  errno: number;
  cookie: bigint;
}

/** A minimal NBD client that can also misbehave on purpose. */
export class RawNbdClient {
  readonly socket: net.Socket;
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  static connect(port: number): Promise<RawNbdClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => resolve(new RawNbdClient(socket)));
      socket.once("error", reject);
    });
  }

  static connectUnix(socketPath: string): Promise<RawNbdClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path: socketPath }, () => resolve(new RawNbdClient(socket)));
      socket.once("error", reject);
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  /** Exactly n bytes; rejects if the server closes first or after timeoutMs. */
  async read(lengthBytes: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered.length < lengthBytes) {
      if (this.closed) throw new Error(`server closed the connection (wanted ${lengthBytes} bytes, had ${this.buffered.length})`);
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw new Error(`timed out waiting for ${lengthBytes} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remainingMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const result = this.buffered.subarray(0, lengthBytes);
    this.buffered = this.buffered.subarray(lengthBytes);
    return result;
  }

  /** Resolves true when the server closes the connection within timeoutMs. */
  async waitClosed(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.closed;
  }

  write(data: Buffer): boolean {
    return this.socket.write(data);
  }

  /** Reads the greeting and sends client flags (FIXED_NEWSTYLE | NO_ZEROES by default). */
  async greet(clientFlags = 3): Promise<number> {
    const greeting = await this.read(18);
    if (!greeting.subarray(0, 8).equals(NBDMAGIC) || !greeting.subarray(8, 16).equals(IHAVEOPT)) throw new Error("bad greeting");
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(clientFlags);
    this.write(flags);
    return greeting.readUInt16BE(16);
  }

  sendOption(option: number, payload: Buffer = Buffer.alloc(0), declaredBytes = payload.length): void {
    const header = Buffer.alloc(16);
    IHAVEOPT.copy(header, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(declaredBytes, 12);
    this.write(Buffer.concat([header, payload]));
  }

  async readOptionReply(): Promise<OptionReply> {
    const header = await this.read(20);
    if (!header.subarray(0, 8).equals(OPTION_REPLY_MAGIC)) throw new Error("bad option reply magic");
    const payload = await this.read(header.readUInt32BE(16));
    return { option: header.readUInt32BE(8), replyType: header.readUInt32BE(12), payload: Buffer.from(payload) };
  }

  /** Replies up to and including the ACK or the first error. */
  async readOptionReplies(): Promise<OptionReply[]> {
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.readOptionReply();
      replies.push(reply);
      if (reply.replyType === 1 || reply.replyType >= 0x80000000) return replies;
    }
  }

  /** Greets, optionally negotiates structured replies and base:allocation, then NBD_OPT_GO. */
  async open(
    exportName: string,
    options: { structured?: boolean; baseAllocation?: boolean } = {},
  ): Promise<{ sizeBytes: number; flags: number }> {
    await this.greet();
    if (options.structured) {
      this.sendOption(8);
      await this.expectAck();
    }
    if (options.baseAllocation) {
      const name = Buffer.from(exportName);
      const query = Buffer.from("base:allocation");
      const payload = Buffer.alloc(4 + name.length + 4 + 4 + query.length);
      payload.writeUInt32BE(name.length, 0);
      name.copy(payload, 4);
      payload.writeUInt32BE(1, 4 + name.length);
      payload.writeUInt32BE(query.length, 8 + name.length);
      query.copy(payload, 12 + name.length);
      this.sendOption(10, payload);
      const replies = await this.readOptionReplies();
      if (replies.length !== 2 || replies[0].replyType !== 4) throw new Error("base:allocation not selected");
    }
    this.sendOption(7, RawNbdClient.infoPayload(exportName));
    const replies = await this.readOptionReplies();
    const last = replies[replies.length - 1];
    if (last.replyType !== 1) throw new Error(`NBD_OPT_GO failed: ${last.replyType.toString(16)} ${last.payload.toString()}`);
    const exportInfo = replies.find((reply) => reply.replyType === 3 && reply.payload.readUInt16BE(0) === 0);
    if (exportInfo === undefined) throw new Error("no NBD_INFO_EXPORT");
    return { sizeBytes: Number(exportInfo.payload.readBigUInt64BE(2)), flags: exportInfo.payload.readUInt16BE(10) };
  }

  /** The payload of NBD_OPT_INFO and NBD_OPT_GO: the export name, and no information requests. */
  static infoPayload(exportName: string): Buffer {
    const name = Buffer.from(exportName);
    const payload = Buffer.alloc(4 + name.length + 2);
    payload.writeUInt32BE(name.length, 0);
    name.copy(payload, 4);
    return payload;
  }

  async expectAck(): Promise<void> {
    const reply = await this.readOptionReply();
    if (reply.replyType !== 1) throw new Error(`expected ACK, got ${reply.replyType.toString(16)}`);
  }

  static requestHeader(command: number, flags: number, cookie: bigint, offsetBytes: number, lengthBytes: number): Buffer {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(REQUEST_MAGIC, 0);
    header.writeUInt16BE(flags, 4);
    header.writeUInt16BE(command, 6);
    header.writeBigUInt64BE(cookie, 8);
    header.writeBigUInt64BE(BigInt(offsetBytes), 16);
    header.writeUInt32BE(lengthBytes, 24);
    return header;
  }

  request(command: number, flags: number, cookie: bigint, offsetBytes: number, lengthBytes: number, payload?: Buffer): boolean {
    const header = RawNbdClient.requestHeader(command, flags, cookie, offsetBytes, lengthBytes);
    return this.write(payload === undefined ? header : Buffer.concat([header, payload]));
  }

  async readSimpleReply(timeoutMs?: number): Promise<SimpleReply> {
    const header = await this.read(16, timeoutMs);
    const magic = header.readUInt32BE(0);
    if (magic !== SIMPLE_REPLY_MAGIC) throw new Error(`bad simple reply magic ${magic.toString(16)}`);
    return { magic, errno: header.readUInt32BE(4), cookie: header.readBigUInt64BE(8) };
  }
}
