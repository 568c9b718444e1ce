/**
 * Goal: the server's own contracts — the errno table, validateRequest, listeners (TCP, unix, a
 * stale socket replaced, a live one or a regular file refused), the handshake variants real
 * clients exercise less (EXPORT_NAME with and without NO_ZEROES, the default export, metadata
 * context queries, zero-length reads), volume errors logged then mapped, and close(): in-flight
 * requests answered, handshakes dropped, written volumes flushed once.
 * Method: direct calls for the pure parts; raw node:net clients against an in-process server.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, rm, writeFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { NBD_ERRNO_BY_CODE, nbdErrnoForError } from "../src/nbd/errno.js";
import { NbdRequest, validateRequest, type RequestLimits } from "../src/nbd/transmission.js";
import { NbdServer } from "../src/nbd/server.js";
import * as P from "../src/nbd/protocol.js";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import { RawNbdClient, startTestServer } from "./support/nbd-server.js";
import { waitFor } from "./support/wait-for.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;

test("errno table: every error code has a row, mapped as documented", () => {
  for (const code of Object.values(ErrorCodes)) {
    assert.equal(typeof NBD_ERRNO_BY_CODE[code], "number", `missing NBD errno for ${code}`);
  }
  assert.equal(Object.keys(NBD_ERRNO_BY_CODE).length, Object.keys(ErrorCodes).length);
  const errorOf = (code: (typeof ErrorCodes)[keyof typeof ErrorCodes]) => new SnaplogError(code, "x");
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.OUT_OF_RANGE), false), P.NBD_EINVAL);
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.OUT_OF_RANGE), true), P.NBD_ENOSPC);
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.READ_ONLY), true), P.NBD_EPERM);
  for (const code of [ErrorCodes.CORRUPT, ErrorCodes.IO, ErrorCodes.INTERNAL, ErrorCodes.NOT_FOUND]) {
    assert.equal(nbdErrnoForError(errorOf(code), false), P.NBD_EIO, code);
  }
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.NO_SPACE), true), P.NBD_ENOSPC);
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.INVALID_ARGUMENT), false), P.NBD_EINVAL);
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.UNSUPPORTED), false), P.NBD_ENOTSUP);
  assert.equal(nbdErrnoForError(errorOf(ErrorCodes.CLOSED), false), P.NBD_ESHUTDOWN);
  assert.equal(nbdErrnoForError(new Error("plain"), false), P.NBD_EIO);
});

test("validateRequest: one errno per rule", () => {
  const limits: RequestLimits = {
    sizeBytes: MiB,
    readOnly: false,
    structuredReplies: false,
    baseAllocation: false,
    requestBytesMax: 32 * MiB,
  };
  const check = (type: number, flags: number, offset: number, length: number, overrides: Partial<RequestLimits> = {}) =>
    validateRequest({ ...limits, ...overrides }, new NbdRequest(flags, type, 0, 0, offset, length));
  assert.equal(check(P.CMD_READ, 0, 0, MiB), 0);
  assert.equal(check(P.CMD_READ, 0, MiB, 0), 0, "empty read at the end");
  assert.equal(check(P.CMD_READ, 0, MiB - 1, 2), P.NBD_EINVAL);
  assert.equal(check(P.CMD_READ, 0, 2 ** 64 - 1, 1), P.NBD_EINVAL);
  assert.equal(check(P.CMD_READ, 0, 0, 33 * MiB, { sizeBytes: 64 * MiB }), P.NBD_EINVAL, "oversized read");
  assert.equal(check(P.CMD_READ, P.CMD_FLAG_DF, 0, 1), P.NBD_EINVAL, "DF needs structured replies");
  assert.equal(check(P.CMD_READ, P.CMD_FLAG_DF, 0, 1, { structuredReplies: true }), 0);
  assert.equal(check(P.CMD_READ, P.CMD_FLAG_FUA, 0, 1), P.NBD_EINVAL, "FUA on a read");
  assert.equal(check(P.CMD_WRITE, P.CMD_FLAG_FUA, MiB - 1, 1), 0);
  assert.equal(check(P.CMD_WRITE, 0, MiB - 1, 2), P.NBD_ENOSPC);
  assert.equal(check(P.CMD_TRIM, 0, MiB, 1), P.NBD_ENOSPC);
  assert.equal(check(P.CMD_WRITE_ZEROES, P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO | P.CMD_FLAG_FUA, 0, MiB), 0);
  assert.equal(check(P.CMD_WRITE_ZEROES, 0, MiB, 1), P.NBD_ENOSPC);
  assert.equal(check(P.CMD_WRITE, 0, 0, 1, { readOnly: true }), P.NBD_EPERM);
  assert.equal(check(P.CMD_TRIM, 0, 0, 1, { readOnly: true }), P.NBD_EPERM);
  assert.equal(check(P.CMD_WRITE, 0, 0, 33 * MiB, { sizeBytes: 64 * MiB }), P.NBD_EINVAL, "oversized write");
  assert.equal(check(P.CMD_BLOCK_STATUS, 0, 0, 1), P.NBD_EINVAL, "no base:allocation");
  assert.equal(check(P.CMD_BLOCK_STATUS, P.CMD_FLAG_REQ_ONE, 0, 1, { baseAllocation: true }), 0);
  assert.equal(check(P.CMD_BLOCK_STATUS, 0, 0, 0, { baseAllocation: true }), P.NBD_EINVAL, "empty block status");
  assert.equal(check(P.CMD_FLUSH, 0, 0, 0), 0);
  assert.equal(check(P.CMD_FLUSH, P.CMD_FLAG_FUA, 0, 0), P.NBD_EINVAL);
  assert.equal(check(P.CMD_CACHE, 0, 0, 1), P.NBD_EINVAL);
  assert.equal(check(999, 0, 0, 1), P.NBD_EINVAL);
});

test("listeners: several TCP and unix sockets; a stale socket is replaced; a live one or a file is refused", async () => {
  const directory = await mkdtemp(join(tmpdir(), "snaplog-nbd-listen-"));
  const resolver = new MemoryResolver().add(new MemoryVolume({ name: "d", sizeBytes: MiB }));
  const first = new NbdServer({ resolver });
  const second = new NbdServer({ resolver });
  try {
    const stalePath = join(directory, "stale.sock");
    await run("python3", ["-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stalePath)})`]);
    assert.ok((await stat(stalePath)).isSocket());
    assert.equal(await first.listen({ path: stalePath }), stalePath);
    const addressA = await first.listen({ host: "127.0.0.1", port: 0 });
    const addressB = await first.listen({ host: "127.0.0.1", port: 0 });
    assert.match(addressA, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(addressA, addressB);

    await assert.rejects(
      second.listen({ path: stalePath }),
      (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CONFLICT,
    );
    const filePath = join(directory, "file");
    await writeFile(filePath, "not a socket");
    await assert.rejects(
      second.listen({ path: filePath }),
      (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CONFLICT,
    );

    for (const connect of [
      () => net.connect({ path: stalePath }),
      () => net.connect({ host: "127.0.0.1", port: Number(addressB.split(":")[1]) }),
    ]) {
      const socket = connect();
      const [greeting] = (await new Promise((resolve) => socket.once("data", (data) => resolve([data])))) as Buffer[];
      assert.equal(greeting.subarray(0, 8).toString(), "NBDMAGIC");
      socket.destroy();
    }
  } finally {
    await first.close();
    await second.close();
    await rm(directory, { recursive: true, force: true });
  }
});

test("handshake variants: EXPORT_NAME with and without NO_ZEROES, default export, meta context queries", async () => {
  const volume = new MemoryVolume({ name: "main", sizeBytes: 3 * MiB });
  const resolver = new MemoryResolver().add(volume);
  resolver.defaultExport = "main";
  const server = await startTestServer(resolver);
  try {
    for (const [clientFlags, padBytes] of [
      [1, 124],
      [3, 0],
    ]) {
      const client = await RawNbdClient.connect(server.port);
      await client.greet(clientFlags);
      client.sendOption(P.OPT_EXPORT_NAME, Buffer.from(""));
      const answer = await client.read(10 + padBytes);
      assert.equal(Number(answer.readBigUInt64BE(0)), 3 * MiB);
      assert.ok(answer.subarray(10).equals(Buffer.alloc(padBytes)));
      client.request(P.CMD_READ, 0, 1n, 0, 4);
      assert.equal((await client.readSimpleReply()).errno, 0);
      assert.ok((await client.read(4)).equals(Buffer.alloc(4)));
      client.socket.destroy();
    }

    const client = await RawNbdClient.connect(server.port);
    await client.greet();
    const metaQuery = (queries: string[]): Buffer => {
      const parts = [Buffer.alloc(4), Buffer.from("main"), Buffer.alloc(4)];
      parts[0].writeUInt32BE(4);
      parts[2].writeUInt32BE(queries.length);
      for (const query of queries) {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(Buffer.byteLength(query));
        parts.push(length, Buffer.from(query));
      }
      return Buffer.concat(parts);
    };
    const contextsOf = async (option: number, queries: string[]): Promise<string[]> => {
      client.sendOption(option, metaQuery(queries));
      const replies = await client.readOptionReplies();
      assert.equal(replies[replies.length - 1].replyType, P.REP_ACK);
      return replies.filter((reply) => reply.replyType === P.REP_META_CONTEXT).map((reply) => reply.payload.subarray(4).toString());
    };
    assert.deepEqual(await contextsOf(P.OPT_LIST_META_CONTEXT, []), ["base:allocation"]);
    assert.deepEqual(await contextsOf(P.OPT_LIST_META_CONTEXT, ["base:"]), ["base:allocation"]);
    assert.deepEqual(await contextsOf(P.OPT_LIST_META_CONTEXT, ["qemu:dirty-bitmap:x"]), []);
    client.sendOption(P.OPT_STRUCTURED_REPLY);
    await client.expectAck();
    assert.deepEqual(await contextsOf(P.OPT_SET_META_CONTEXT, ["qemu:x", "base:allocation"]), ["base:allocation"]);
    client.sendOption(P.OPT_GO, RawNbdClient.infoPayload("")); // "" → the default export
    const replies = await client.readOptionReplies();
    assert.equal(replies[replies.length - 1].replyType, P.REP_ACK);

    client.request(P.CMD_READ, 0, 2n, 0, 0);
    const none = await client.read(20);
    assert.deepEqual([none.readUInt16BE(4), none.readUInt16BE(6), none.readUInt32BE(16)], [P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, 0]);
    client.request(P.CMD_BLOCK_STATUS, P.CMD_FLAG_REQ_ONE, 3n, 0, MiB);
    const status = await client.read(20 + 12);
    assert.equal(status.readUInt16BE(6), P.REPLY_TYPE_BLOCK_STATUS);
    assert.equal(status.readUInt32BE(20), P.META_ID_BASE_ALLOCATION);
    assert.deepEqual([status.readUInt32BE(24), status.readUInt32BE(28)], [MiB, 3]);
    client.socket.destroy();
  } finally {
    await server.close();
  }
});

test("volume errors are logged with the real error, then sent as the NBD errno", async () => {
  const volume = new MemoryVolume({ name: "bad", sizeBytes: MiB });
  const logged: unknown[] = [];
  const logger = { info() {}, warn: (object: unknown) => void logged.push(object), error() {} };
  const server = await startTestServer(new MemoryResolver().add(volume), { logger });
  try {
    volume.failWith = new SnaplogError(ErrorCodes.CORRUPT, "checksum mismatch in block 3");
    const client = await RawNbdClient.connect(server.port);
    await client.open("bad", { structured: true });
    client.request(P.CMD_READ, 0, 1n, 0, 4096);
    const chunk = await client.read(20);
    assert.equal(chunk.readUInt16BE(6), P.REPLY_TYPE_ERROR);
    const payload = await client.read(chunk.readUInt32BE(16));
    assert.equal(payload.readUInt32BE(0), P.NBD_EIO);
    volume.failWith = new SnaplogError(ErrorCodes.NO_SPACE, "medium full");
    client.request(P.CMD_WRITE, 0, 2n, 0, 4, Buffer.from("data"));
    assert.equal((await client.readSimpleReply()).errno, P.NBD_ENOSPC);
    assert.ok(logged.some((entry) => (entry as { err?: SnaplogError }).err?.message === "checksum mismatch in block 3"));
    client.socket.destroy();
  } finally {
    await server.close();
  }
});

test("close(): answers in-flight requests, drops handshakes, flushes each written volume once", async () => {
  const written = new MemoryVolume({ name: "written", sizeBytes: MiB });
  const readOnly = new MemoryVolume({ name: "ro", sizeBytes: MiB, readOnly: true });
  const server = await startTestServer(new MemoryResolver().add(written).add(readOnly));
  const writers = await Promise.all([RawNbdClient.connect(server.port), RawNbdClient.connect(server.port)]);
  for (const writer of writers) await writer.open("written");
  const reader = await RawNbdClient.connect(server.port);
  await reader.open("ro");
  const handshaking = await RawNbdClient.connect(server.port);
  await handshaking.greet();
  written.delayMs = 100;
  writers[0].request(P.CMD_WRITE, 0, 1n, 0, 4, Buffer.from("abcd"));
  writers[1].request(P.CMD_WRITE, 0, 2n, 4, 4, Buffer.from("efgh"));
  // Both writes in the volume (each held there delayMs) before close() starts.
  await waitFor("both writes to reach the volume", () => written.callCount >= 2);
  assert.equal(server.server.connectionCount, 4);
  const closing = server.close();
  for (const [index, writer] of writers.entries()) {
    const reply = await writer.readSimpleReply();
    assert.deepEqual([reply.cookie, reply.errno], [BigInt(index + 1), 0]);
    assert.ok(await writer.waitClosed());
  }
  assert.ok(await handshaking.waitClosed());
  assert.ok(await reader.waitClosed());
  await closing;
  assert.equal(written.data.toString("latin1", 0, 8), "abcdefgh");
  assert.equal(written.flushCount, 1, "flushed once at close");
  assert.equal(readOnly.flushCount, 0, "never written, never flushed");
  assert.equal(server.server.connectionCount, 0);
  await assert.rejects(RawNbdClient.connect(server.port));
});

test("a resolved volume is released once: right after NBD_OPT_INFO, and when a connection that chose it ends (however it ends)", async () => {
  const volume = new MemoryVolume({ name: "point", sizeBytes: MiB, readOnly: true });
  const server = await startTestServer(new MemoryResolver().add(volume));
  // A release may follow the event that causes it (a reply sent, a socket closed) by a turn of the event loop.
  const releasedAfter = async (expected: number): Promise<void> => {
    await waitFor(`release #${expected}`, () => volume.releaseCount >= expected);
    assert.equal(volume.releaseCount, expected);
  };
  try {
    // NBD_OPT_INFO: resolved to answer, released at once; the session goes on.
    const client = await RawNbdClient.connect(server.port);
    await client.greet();
    client.sendOption(P.OPT_INFO, RawNbdClient.infoPayload("point"));
    await client.readOptionReplies();
    await releasedAfter(1);
    client.socket.destroy();
    // NBD_OPT_GO, then a clean disconnect.
    const user = await RawNbdClient.connect(server.port);
    await user.open("point");
    // A read answered on the connection: the server still uses the volume it chose.
    user.request(P.CMD_READ, 0, 1n, 0, 4);
    const reply = await user.readSimpleReply();
    assert.deepEqual([reply.cookie, reply.errno], [1n, 0]);
    assert.deepEqual(await user.read(4), volume.data.subarray(0, 4));
    assert.equal(volume.releaseCount, 1, "not released while the connection uses it");
    user.request(P.CMD_DISC, 0, 2n, 0, 0);
    await user.waitClosed();
    await releasedAfter(2);
    // A client that vanishes mid-transmission releases it too.
    const vanishing = await RawNbdClient.connect(server.port);
    await vanishing.open("point");
    vanishing.socket.destroy();
    await releasedAfter(3);
  } finally {
    await server.close();
  }
  assert.equal(volume.releaseCount, 3, "released exactly once per use");
});
