/**
 * Goal: hostile or broken clients get the protocol's error answer or lose their own connection,
 * and never crash the server, desynchronise the stream, or change data they had no right to.
 * Method: raw node:net clients (test/support/nbd-server.ts RawNbdClient) misbehave one way each;
 * after each, a second, well-behaved client on a new connection must find the data intact and be
 * served normally.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import * as P from "../src/nbd/protocol.js";
import type { NbdServerOptions } from "../src/nbd/server.js";
import { RawNbdClient, startTestServer, type TestServer } from "./support/nbd-server.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const EPERM = 1;
const EINVAL = 22;
const ENOSPC = 28;
const REP_ACK = 1;
const REP_ERR_UNSUP = 0x80000001;
const REP_ERR_INVALID = 0x80000003;
const REP_ERR_UNKNOWN = 0x80000006;
const REP_ERR_TOO_BIG = 0x80000009;
const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_BLOCK_STATUS = 7;

const PATTERN = Buffer.alloc(64 * KiB, 0xc3);
let server: TestServer;
let disk: MemoryVolume;
let big: MemoryVolume;
let slow: MemoryVolume;
let frozen: MemoryVolume;

before(async () => {
  disk = new MemoryVolume({ name: "disk", sizeBytes: MiB });
  disk.load(0, PATTERN);
  big = new MemoryVolume({ name: "big", sizeBytes: 64 * MiB });
  slow = new MemoryVolume({ name: "slow", sizeBytes: MiB });
  frozen = new MemoryVolume({ name: "frozen", sizeBytes: MiB, readOnly: true });
  frozen.load(0, PATTERN);
  server = await startTestServer(new MemoryResolver().add(disk).add(big).add(slow).add(frozen));
});

after(async () => {
  await server.close();
});

/** A well-behaved client still gets the pattern back, over simple and structured replies. */
async function assertServerHealthy(): Promise<void> {
  for (const structured of [false, true]) {
    const client = await RawNbdClient.connect(server.port);
    const { sizeBytes } = await client.open("disk", { structured });
    assert.equal(sizeBytes, MiB);
    client.request(CMD_READ, 0, 7n, 0, PATTERN.length);
    if (structured) {
      const header = await client.read(20);
      assert.equal(header.readUInt16BE(6), 1, "OFFSET_DATA chunk");
      assert.equal(header.readUInt32BE(16), 8 + PATTERN.length);
      assert.equal(header.readBigUInt64BE(8), 7n);
      assert.equal((await client.read(8)).readBigUInt64BE(0), 0n);
    } else {
      const reply = await client.readSimpleReply();
      assert.deepEqual([reply.errno, reply.cookie], [0, 7n]);
    }
    assert.ok((await client.read(PATTERN.length)).equals(PATTERN), "data intact");
    client.request(CMD_DISC, 0, 8n, 0, 0);
    assert.ok(await client.waitClosed(), "DISC closes the connection");
  }
  assert.ok(disk.data.subarray(0, PATTERN.length).equals(PATTERN));
  assert.ok(disk.data.subarray(PATTERN.length).equals(Buffer.alloc(MiB - PATTERN.length)));
}

test("garbage instead of a handshake closes the connection", async () => {
  const client = await RawNbdClient.connect(server.port);
  client.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  assert.ok(await client.waitClosed());
  const second = await RawNbdClient.connect(server.port);
  await second.greet();
  second.write(Buffer.alloc(64, 0xee)); // bad IHAVEOPT magic
  assert.ok(await second.waitClosed());
  await assertServerHealthy();
});

test("a client without FIXED_NEWSTYLE, or with unknown flags, is closed", async () => {
  for (const clientFlags of [0, 2, 1 | 0x100]) {
    const client = await RawNbdClient.connect(server.port);
    await client.greet(clientFlags);
    assert.ok(await client.waitClosed(), `client flags ${clientFlags}`);
  }
  await assertServerHealthy();
});

test("truncated handshakes: the client vanishes mid-greeting and mid-option", async () => {
  const first = await RawNbdClient.connect(server.port);
  await first.read(18);
  first.write(Buffer.from([0, 0]));
  first.socket.end();
  const second = await RawNbdClient.connect(server.port);
  await second.greet();
  second.sendOption(7, Buffer.alloc(0), 100); // declares 100 bytes, sends none
  second.socket.destroy();
  assert.ok(await first.waitClosed());
  await assertServerHealthy();
});

test("rejected options get error replies and the stream stays in sync", async () => {
  const client = await RawNbdClient.connect(server.port);
  await client.greet();
  const expectReply = async (replyType: number, label: string): Promise<Buffer> => {
    const replies = await client.readOptionReplies();
    assert.equal(replies[replies.length - 1].replyType, replyType, label);
    return replies[replies.length - 1].payload;
  };
  client.sendOption(99, Buffer.alloc(10, 1));
  await expectReply(REP_ERR_UNSUP, "unknown option");
  client.sendOption(5);
  await expectReply(REP_ERR_UNSUP, "STARTTLS without TLS");
  client.sendOption(3, Buffer.alloc(3));
  await expectReply(REP_ERR_INVALID, "LIST with data");
  client.sendOption(8, Buffer.alloc(1));
  await expectReply(REP_ERR_INVALID, "STRUCTURED_REPLY with data");
  const badGo = Buffer.alloc(12);
  badGo.writeUInt32BE(1000, 0); // name length past the end
  client.sendOption(7, badGo);
  await expectReply(REP_ERR_INVALID, "GO with a bad name length");
  const badCount = Buffer.alloc(4 + 4 + 2);
  badCount.writeUInt32BE(4, 0);
  badCount.write("disk", 4);
  badCount.writeUInt16BE(5, 8); // five info requests, none sent
  client.sendOption(6, badCount);
  await expectReply(REP_ERR_INVALID, "INFO with a bad request count");
  client.sendOption(7, RawNbdClient.infoPayload("nothere"));
  const message = await expectReply(REP_ERR_UNKNOWN, "GO to an unknown export");
  assert.match(message.toString(), /nothere/);
  const meta = Buffer.alloc(8 + 4);
  meta.writeUInt32BE(4, 0);
  meta.write("disk", 4);
  client.sendOption(10, meta);
  await expectReply(REP_ERR_INVALID, "SET_META_CONTEXT before STRUCTURED_REPLY");
  client.sendOption(99, Buffer.alloc(100 * KiB, 2));
  await expectReply(REP_ERR_TOO_BIG, "oversized option is skipped");
  client.sendOption(3);
  const listing = await client.readOptionReplies();
  assert.equal(listing.filter((reply) => reply.replyType === 2).length, 4, "LIST still works");
  assert.equal(listing[listing.length - 1].replyType, REP_ACK);
  client.socket.destroy();
  await assertServerHealthy();
});

test("an option too long to skip or an unknown NBD_OPT_EXPORT_NAME close the connection", async () => {
  const huge = await RawNbdClient.connect(server.port);
  await huge.greet();
  huge.sendOption(99, Buffer.alloc(0), 1024 * MiB);
  assert.ok(await huge.waitClosed(), "1 GiB option");

  const exportName = await RawNbdClient.connect(server.port);
  await exportName.greet();
  exportName.sendOption(1, Buffer.from("nothere"));
  assert.ok(await exportName.waitClosed(), "EXPORT_NAME to an unknown export");
  await assertServerHealthy();
});

test("NBD_OPT_ABORT is acknowledged, then the connection closes, and is not counted as an error", async () => {
  const errorsBefore = server.server.counters.errorCount;
  const client = await RawNbdClient.connect(server.port);
  await client.greet();
  client.sendOption(2);
  assert.equal((await client.readOptionReply()).replyType, REP_ACK);
  assert.ok(await client.waitClosed());
  assert.equal(server.server.counters.errorCount, errorsBefore, "a normal abort (as after nbdinfo --list) is no error");
});

test("bad requests get errors and the connection keeps serving", async () => {
  const client = await RawNbdClient.connect(server.port);
  await client.open("big");
  const cases: Array<[string, Buffer, number]> = [
    ["unknown command", RawNbdClient.requestHeader(42, 0, 1n, 0, 512), EINVAL],
    ["CACHE is not advertised", RawNbdClient.requestHeader(5, 0, 2n, 0, 512), EINVAL],
    ["unknown flag", RawNbdClient.requestHeader(CMD_READ, 1 << 9, 3n, 0, 512), EINVAL],
    ["DF without structured replies", RawNbdClient.requestHeader(CMD_READ, 1 << 2, 4n, 0, 512), EINVAL],
    ["read past the end", RawNbdClient.requestHeader(CMD_READ, 0, 5n, 64 * MiB - 256, 512), EINVAL],
    ["read at 2^63", RawNbdClient.requestHeader(CMD_READ, 0, 6n, 2 ** 62, 512), EINVAL],
    ["oversized read", RawNbdClient.requestHeader(CMD_READ, 0, 7n, 0, 33 * MiB), EINVAL],
    ["block status without base:allocation", RawNbdClient.requestHeader(CMD_BLOCK_STATUS, 0, 8n, 0, 512), EINVAL],
    [
      "write past the end, payload follows",
      Buffer.concat([RawNbdClient.requestHeader(CMD_WRITE, 0, 9n, 64 * MiB - 100, 200), Buffer.alloc(200, 9)]),
      ENOSPC,
    ],
  ];
  // Pipelined, with headers split across writes to exercise reassembly.
  const stream = Buffer.concat(cases.map(([, bytes]) => bytes));
  for (let offset = 0; offset < stream.length; offset += 7) {
    client.write(stream.subarray(offset, offset + 7));
    await sleep(0);
  }
  const replies = new Map<bigint, number>();
  for (let index = 0; index < cases.length; index++) {
    const reply = await client.readSimpleReply();
    replies.set(reply.cookie, reply.errno);
  }
  cases.forEach(([label, , errno], index) => assert.equal(replies.get(BigInt(index + 1)), errno, label));
  client.request(CMD_WRITE, 0, 100n, 4096, 4, Buffer.from("okay"));
  assert.deepEqual(await client.readSimpleReply(), { magic: 0x67446698, errno: 0, cookie: 100n });
  assert.equal(big.data.toString("latin1", 4096, 4100), "okay");
  assert.ok(big.data.subarray(64 * MiB - 100).equals(Buffer.alloc(100)), "nothing written past the end");
  client.socket.destroy();
  await assertServerHealthy();
});

test("writes to a read-only export are refused with EPERM, payload skipped", async () => {
  const client = await RawNbdClient.connect(server.port);
  const { flags } = await client.open("frozen");
  assert.ok((flags & 2) !== 0, "READ_ONLY flag");
  client.request(CMD_WRITE, 0, 1n, 0, 4096, Buffer.alloc(4096, 0x11));
  client.request(CMD_READ, 0, 2n, 0, 16);
  assert.equal((await client.readSimpleReply()).errno, EPERM);
  const reply = await client.readSimpleReply();
  assert.deepEqual([reply.cookie, reply.errno], [2n, 0]);
  assert.ok((await client.read(16)).equals(PATTERN.subarray(0, 16)));
  assert.ok(frozen.data.subarray(0, PATTERN.length).equals(PATTERN));
  client.socket.destroy();
});

test("bad request magic and an oversized WRITE close the connection, in-flight replies first", async () => {
  const client = await RawNbdClient.connect(server.port);
  await client.open("disk");
  client.request(CMD_READ, 0, 1n, 0, 16);
  client.write(Buffer.alloc(28, 0x55));
  const reply = await client.readSimpleReply();
  assert.deepEqual([reply.cookie, reply.errno], [1n, 0]);
  await client.read(16);
  assert.ok(await client.waitClosed());

  const writer = await RawNbdClient.connect(server.port);
  await writer.open("disk");
  writer.request(CMD_WRITE, 0, 2n, 0, 33 * MiB, Buffer.alloc(64 * KiB, 0x66));
  assert.equal((await writer.readSimpleReply()).errno, EINVAL);
  assert.ok(await writer.waitClosed());
  await assertServerHealthy();
});

test("a client that vanishes mid-WRITE payload changes nothing; in-flight requests still finish", async () => {
  const client = await RawNbdClient.connect(server.port);
  await client.open("disk");
  client.request(CMD_WRITE, 0, 1n, 0, 64 * KiB, Buffer.alloc(1000, 0x99));
  await sleep(20);
  client.socket.destroy();

  slow.delayMs = 100;
  const slowClient = await RawNbdClient.connect(server.port);
  await slowClient.open("slow");
  slowClient.request(CMD_WRITE, 0, 2n, 4096, 512, Buffer.alloc(512, 0x77));
  await sleep(20);
  slowClient.socket.destroy();
  await sleep(250);
  assert.equal(slow.writeCount, 1, "the in-flight write completed");
  assert.ok(slow.data.subarray(4096, 4608).equals(Buffer.alloc(512, 0x77)));
  slow.delayMs = 0;
  await assertServerHealthy();
});

test("DISC waits for in-flight requests and answers them", async () => {
  slow.delayMs = 50;
  const client = await RawNbdClient.connect(server.port);
  await client.open("slow");
  client.request(CMD_WRITE, 1, 1n, 0, 512, Buffer.alloc(512, 0x31));
  client.request(CMD_DISC, 0, 2n, 0, 0);
  client.request(CMD_WRITE, 0, 3n, 512, 512, Buffer.alloc(512, 0x32)); // after DISC: ignored
  const reply = await client.readSimpleReply();
  assert.deepEqual([reply.cookie, reply.errno], [1n, 0]);
  assert.ok(await client.waitClosed());
  assert.ok(slow.data.subarray(512, 1024).equals(Buffer.alloc(512)), "nothing after DISC is executed");
  slow.delayMs = 0;
});

test("the server counted the trouble and holds no stray connections", async () => {
  await sleep(50);
  assert.ok(server.server.counters.errorCount > 10);
  assert.equal(server.server.connectionCount, 0);
});

/** An in-process server over `exportCount` exports, with the handshake limits given; closed by the caller. */
async function limitedServer(
  exportCount: number,
  limits: Partial<NbdServerOptions>,
): Promise<{ test: TestServer; listCount: () => number }> {
  const resolver = new MemoryResolver();
  for (let index = 0; index < exportCount; index++) resolver.add(new MemoryVolume({ name: `export-${index}`, sizeBytes: MiB }));
  let listCount = 0;
  const list = resolver.list.bind(resolver);
  resolver.list = () => {
    listCount++;
    return list();
  };
  return { test: await startTestServer(resolver, limits), listCount: () => listCount };
}

test("an honest client may send thousands of options: no count limit (nbdinfo --list sends a few per export)", async () => {
  const chatty = await RawNbdClient.connect(server.port);
  await chatty.greet();
  for (let index = 0; index < 3000; index++) {
    chatty.sendOption(99);
    chatty.sendOption(6, RawNbdClient.infoPayload("frozen"));
  }
  for (let index = 0; index < 3000; index++) {
    assert.equal((await chatty.readOptionReply()).replyType, REP_ERR_UNSUP);
    const info = await chatty.readOptionReplies();
    assert.equal(info[info.length - 1].replyType, REP_ACK, `INFO ${index}`);
  }
  chatty.sendOption(7, RawNbdClient.infoPayload("disk"));
  const go = await chatty.readOptionReplies();
  assert.equal(go[go.length - 1].replyType, REP_ACK, "GO after 6,000 options");
  chatty.request(CMD_READ, 0, 1n, 0, 4 * KiB);
  const reply = await chatty.readSimpleReply();
  assert.equal(reply.errno, 0);
  assert.deepEqual(await chatty.read(4 * KiB), PATTERN.subarray(0, 4 * KiB));
  chatty.socket.destroy();
});

test("the handshake is bounded by the option bytes it receives", async () => {
  const limited = await limitedServer(1, { handshakeOptionBytesMax: 64 * KiB });
  try {
    const client = await RawNbdClient.connect(limited.test.port);
    await client.greet();
    let answered = 0;
    for (let index = 0; index < 64 * KiB; index++) {
      client.sendOption(99, Buffer.alloc(100));
      const reply = await client.readOptionReply().catch(() => undefined);
      if (reply === undefined) break;
      answered++;
    }
    assert.ok(await client.waitClosed(), "closed once past the option bytes");
    assert.equal(answered, Math.floor((64 * KiB) / 116), "every option within the bytes was answered");

    const oneBig = await RawNbdClient.connect(limited.test.port);
    await oneBig.greet();
    oneBig.sendOption(99, Buffer.alloc(0), 60 * KiB);
    oneBig.write(Buffer.alloc(60 * KiB));
    assert.equal((await oneBig.readOptionReply()).replyType, REP_ERR_UNSUP);
    oneBig.sendOption(99, Buffer.alloc(0), 8 * KiB);
    assert.ok(await oneBig.waitClosed(), "an option declared past the budget closes before its payload is read");
  } finally {
    await limited.test.close();
  }
});

test("the handshake is bounded by the reply bytes it causes: repeated listings end", async () => {
  const limited = await limitedServer(1000, { handshakeReplyBytesMax: 4 * MiB });
  try {
    const client = await RawNbdClient.connect(limited.test.port);
    await client.greet();
    let listings = 0;
    for (;;) {
      client.sendOption(3);
      const replies = await client.readOptionReplies().catch(() => undefined);
      if (replies === undefined) break;
      assert.equal(replies.length, 1001, "a whole listing");
      listings++;
    }
    assert.ok(await client.waitClosed());
    assert.ok(listings >= 50 && listings < 200, `${listings} listings of about 50 KiB each within 4 MiB`);
  } finally {
    await limited.test.close();
  }
});

test("a client that never reads its replies holds one queue of replies, not one per option", async () => {
  const limited = await limitedServer(20_000, {});
  try {
    const client = await RawNbdClient.connect(limited.test.port);
    await client.greet();
    client.socket.pause();
    for (let index = 0; index < 200; index++) client.sendOption(3);
    await sleep(1000);
    // Each listing is about 1 MiB; loopback buffers take a few, then the server waits for the client.
    assert.ok(limited.listCount() < 40, `${limited.listCount()} of 200 listings built while the client read nothing`);
    client.socket.destroy();
  } finally {
    await limited.test.close();
  }
});

test("the handshake has a deadline: a client that keeps sending options is closed when it passes", async () => {
  const limited = await limitedServer(1, { handshakeDeadlineMs: 800 });
  try {
    const client = await RawNbdClient.connect(limited.test.port);
    await client.greet();
    const startedMs = Date.now();
    while (!client.closed && Date.now() - startedMs < 5000) {
      client.sendOption(99);
      await sleep(50);
    }
    const elapsedMs = Date.now() - startedMs;
    assert.ok(client.closed, "closed");
    assert.ok(elapsedMs >= 700 && elapsedMs < 3000, `closed after ${elapsedMs} ms`);
    // A handshake that ends in time is not cut by the deadline later.
    const served = await RawNbdClient.connect(limited.test.port);
    await served.open("export-0");
    await sleep(1200);
    served.request(CMD_READ, 0, 1n, 0, 512);
    assert.equal((await served.readSimpleReply()).errno, 0, "transmission outlives the handshake deadline");
    served.socket.destroy();
  } finally {
    await limited.test.close();
  }
});

test("each listed export asked about extends the deadline once: a slow honest listing ends, a loop on one export does not go on", async () => {
  const limited = await limitedServer(10, { handshakeDeadlineMs: 500, handshakeExportAllowanceMs: 250 });
  try {
    const client = await RawNbdClient.connect(limited.test.port);
    await client.greet();
    const startedMs = Date.now();
    client.sendOption(3);
    assert.equal((await client.readOptionReplies()).length, 11);
    for (let index = 0; index < 10; index++) {
      await sleep(120);
      client.sendOption(6, RawNbdClient.infoPayload(`export-${index}`));
      assert.equal((await client.readOptionReplies()).at(-1)?.replyType, REP_ACK, `INFO export-${index} at ${Date.now() - startedMs} ms`);
    }
    assert.ok(Date.now() - startedMs > 1000, "past the bare deadline, within its extension");
    while (!client.closed && Date.now() - startedMs < 10_000) {
      client.sendOption(6, RawNbdClient.infoPayload("export-0"));
      await sleep(50);
    }
    const elapsedMs = Date.now() - startedMs;
    assert.ok(client.closed && elapsedMs >= 2900 && elapsedMs < 5000, `closed at ${elapsedMs} ms: 500 + 10 × 250 ms`);

    // Exports that were not listed do not extend it.
    const unlisted = await RawNbdClient.connect(limited.test.port);
    await unlisted.greet();
    const unlistedStartMs = Date.now();
    for (let index = 0; !unlisted.closed && Date.now() - unlistedStartMs < 5000; index = (index + 1) % 10) {
      unlisted.sendOption(6, RawNbdClient.infoPayload(`export-${index}`));
      await sleep(50);
    }
    assert.ok(Date.now() - unlistedStartMs < 1500, "the bare deadline without a LIST");
  } finally {
    await limited.test.close();
  }
});

test("the handshake limits are named constants within the SPEC's bounds", () => {
  assert.ok(P.HANDSHAKE_TIMEOUT_MS <= 60_000 && P.HANDSHAKE_DEADLINE_MS <= 60_000, "SPEC §7: at most 60 s");
  assert.ok(P.HANDSHAKE_TIMEOUT_MS <= P.HANDSHAKE_DEADLINE_MS);
  // nbdinfo --list: LIST_META_CONTEXT and INFO per export, each under 300 bytes with 129-byte names.
  assert.ok(P.HANDSHAKE_OPTION_BYTES_MAX >= 10_000 * 600, "a listing of 10,000 exports fits");
  assert.equal("OPTION_COUNT_MAX" in P, false, "no count of options");
});

test("past connectionsMax open connections (TCP and unix socket together) a new one is closed at once and counted; a freed place is taken again", async () => {
  assert.equal(P.CONNECTIONS_MAX_DEFAULT, 256, "the documented default (docs/security.md)");
  const limited = await startTestServer(new MemoryResolver().add(new MemoryVolume({ name: "d", sizeBytes: MiB })), { connectionsMax: 3 });
  try {
    const tcp = await Promise.all([RawNbdClient.connect(limited.port), RawNbdClient.connect(limited.port)]);
    const unix = await RawNbdClient.connectUnix(limited.socketPath);
    const held = [...tcp, unix];
    for (const client of held) await client.greet();
    const refused = await RawNbdClient.connect(limited.port);
    assert.ok(await refused.waitClosed(), "the fourth connection is closed");
    assert.equal(limited.server.counters.connectionRefusedCount, 1);
    for (const client of held) assert.ok(!client.socket.destroyed, "the open ones are untouched");
    held[0].socket.destroy();
    await sleep(50);
    const next = await RawNbdClient.connect(limited.port);
    await next.greet();
    next.socket.destroy();
    for (const client of held) client.socket.destroy();
  } finally {
    await limited.close();
  }
});
