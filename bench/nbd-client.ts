/**
 * A minimal NBD client for the benchmark runner: fixed-newstyle handshake with
 * NBD_OPT_EXPORT_NAME, then pipelined NBD_CMD_WRITE / NBD_CMD_FLUSH with simple replies.
 * It only puts data between snapshots (bench/snapshots.ts); the measuring is done by fio.
 * Written from the protocol document, independently of src/nbd.
 */
import * as net from "node:net";

const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const OPT_EXPORT_NAME = 1;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_FLUSH = 3;

export class NbdWriter {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: { bytes: number; resolve: (data: Buffer) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;
  private nextHandle = 1n;
  sizeBytes = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.pump();
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.reject(this.failure);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("NBD connection closed")));
  }

  /** Connects to a unix socket and opens `exportName` read-write. */
  static async connect(socketPath: string, exportName: string): Promise<NbdWriter> {
    const socket = net.createConnection({ path: socketPath });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new NbdWriter(socket);
    const greeting = await client.read(18);
    if (greeting.readBigUInt64BE(0) !== NBDMAGIC || greeting.readBigUInt64BE(8) !== IHAVEOPT) throw new Error("not a newstyle NBD server");
    const serverFlags = greeting.readUInt16BE(16);
    const noZeroes = (serverFlags & FLAG_NO_ZEROES) !== 0;
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | (noZeroes ? FLAG_NO_ZEROES : 0));
    const name = Buffer.from(exportName, "utf8");
    const option = Buffer.alloc(16);
    option.writeBigUInt64BE(IHAVEOPT, 0);
    option.writeUInt32BE(OPT_EXPORT_NAME, 8);
    option.writeUInt32BE(name.length, 12);
    socket.write(Buffer.concat([clientFlags, option, name]));
    const reply = await client.read(10 + (noZeroes ? 0 : 124));
    client.sizeBytes = Number(reply.readBigUInt64BE(0));
    return client;
  }

  /** Sends every write at once (pipelined), then waits for all replies. */
  async writeMany(writes: ReadonlyArray<{ offsetBytes: number; data: Buffer }>): Promise<void> {
    const frames: Buffer[] = [];
    for (const write of writes) frames.push(this.header(CMD_WRITE, write.offsetBytes, write.data.length), write.data);
    this.socket.write(Buffer.concat(frames));
    for (let index = 0; index < writes.length; index++) await this.reply();
  }

  async flush(): Promise<void> {
    this.socket.write(this.header(CMD_FLUSH, 0, 0));
    await this.reply();
  }

  async close(): Promise<void> {
    if (this.failure === undefined) this.socket.end(this.header(CMD_DISC, 0, 0));
    await new Promise<void>((resolve) => {
      if (this.socket.closed) resolve();
      else this.socket.once("close", () => resolve());
    });
  }

  private header(type: number, offsetBytes: number, lengthBytes: number): Buffer {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(REQUEST_MAGIC, 0);
    header.writeUInt16BE(0, 4);
    header.writeUInt16BE(type, 6);
    header.writeBigUInt64BE(this.nextHandle++, 8);
    header.writeBigUInt64BE(BigInt(offsetBytes), 16);
    header.writeUInt32BE(lengthBytes, 24);
    return header;
  }

  private async reply(): Promise<void> {
    const reply = await this.read(16);
    if (reply.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error("unexpected NBD reply magic");
    const error = reply.readUInt32BE(4);
    if (error !== 0) throw new Error(`NBD request failed with error ${error}`);
  }

  private read(bytes: number): Promise<Buffer> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { bytes, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    const waiter = this.waiter;
    if (waiter === undefined || this.buffered.length < waiter.bytes) return;
    const data = this.buffered.subarray(0, waiter.bytes);
    this.buffered = this.buffered.subarray(waiter.bytes);
    this.waiter = undefined;
    waiter.resolve(data);
  }
}
