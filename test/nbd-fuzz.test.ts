/**
 * Goal: the NBD parsers (handshake options and transmission requests) survive hostile bytes
 * (SPEC §7): random sessions and valid sessions mutated (bytes flipped, cut short, bytes
 * inserted, pieces repeated) each cost at most their own connection — the server stays up, no
 * connection lingers, memory stays bounded, a read-only export is unchanged, and a well-behaved
 * client is served afterwards. Method: fast-check against a live in-process server on loopback
 * with short handshake limits; each case is one TCP connection that sends its bytes, half-closes
 * and reads whatever comes back. Runs: SNAPLOG_FUZZ_RUNS (default 40; `npm run fuzz` runs 2,000).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as net from "node:net";
import fc from "fast-check";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import { RawNbdClient, startTestServer, type TestServer } from "./support/nbd-server.js";
import { withCauseShown } from "./support/fast-check-report.js";

const RUNS = Number(process.env.SNAPLOG_FUZZ_RUNS ?? 40);
const MiB = 1024 * 1024;
let server: TestServer;
const writable = new MemoryVolume({ name: "d", sizeBytes: 4 * MiB, description: "disk d" });
const readOnly = new MemoryVolume({ name: "d@s", sizeBytes: 4 * MiB, readOnly: true, description: "disk d, snapshot s" });
readOnly.load(0, Buffer.alloc(64 * 1024, 0x5a));

before(async () => {
  server = await startTestServer(new MemoryResolver().add(writable).add(readOnly), {
    handshakeTimeoutMs: 300,
    handshakeDeadlineMs: 1000,
  });
});
after(() => server.close());

/** One hostile connection: send, half-close, drain the answers; resolves when the socket is closed (or after 3 s). */
function session(bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port: server.port });
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("connect", () => socket.end(bytes));
  });
}

function option(code: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(16);
  header.write("IHAVEOPT", 0, "latin1");
  header.writeUInt32BE(code, 8);
  header.writeUInt32BE(payload.length, 12);
  return Buffer.concat([header, payload]);
}

function request(type: number, offset: number, length: number, flags = 0): Buffer {
  const header = Buffer.alloc(28);
  header.writeUInt32BE(0x25609513, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  header.writeBigUInt64BE(BigInt(offset), 16);
  header.writeUInt32BE(length, 24);
  return header;
}

/** A valid session: flags, structured replies, base:allocation, GO, then requests of every kind, DISC. */
function validSession(exportName: string): Buffer {
  const name = Buffer.from(exportName);
  const go = Buffer.alloc(4 + name.length + 2);
  go.writeUInt32BE(name.length, 0);
  name.copy(go, 4);
  const query = Buffer.from("base:allocation");
  const meta = Buffer.alloc(4 + name.length + 8 + query.length);
  meta.writeUInt32BE(name.length, 0);
  name.copy(meta, 4);
  meta.writeUInt32BE(1, 4 + name.length);
  meta.writeUInt32BE(query.length, 8 + name.length);
  query.copy(meta, 12 + name.length);
  return Buffer.concat([
    Buffer.from([0, 0, 0, 3]),
    option(3),
    option(8),
    option(10, meta),
    option(7, go),
    request(0, 0, 4096),
    request(1, 8192, 4096),
    Buffer.alloc(4096, 0xab),
    request(3, 0, 0),
    request(4, 16384, 4096),
    request(6, 32768, 4096),
    request(7, 0, 65536),
    request(2, 0, 0),
  ]);
}

type Mutation =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "cut"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "repeat"; at: number; length: number; times: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({
    kind: fc.constant("repeat" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 200 }),
    times: fc.integer({ min: 2, max: 50 }),
  }),
);

function mutate(
  valid: Buffer,
  changes: fc.Arbitrary<unknown> extends never ? never : Array<typeof mutation extends fc.Arbitrary<infer M> ? M : never>,
): Buffer {
  let bytes = Buffer.from(valid);
  for (const change of changes) {
    const at = change.at % (bytes.length + 1);
    if (change.kind === "flip" && at < bytes.length) bytes[at] ^= change.xor;
    else if (change.kind === "cut") bytes = bytes.subarray(0, at);
    else if (change.kind === "insert") bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(change.bytes), bytes.subarray(at)]);
    else if (change.kind === "repeat") {
      const piece = bytes.subarray(at, at + change.length);
      bytes = Buffer.concat([bytes.subarray(0, at), ...Array.from({ length: change.times }, () => piece), bytes.subarray(at)]);
    }
  }
  return bytes;
}

async function readOnlyHash(): Promise<string> {
  return createHash("sha256")
    .update(await readOnly.read(0, readOnly.sizeBytes))
    .digest("hex");
}

async function connectionsDrained(): Promise<void> {
  for (let waited = 0; server.server.connectionCount > 0; waited++) {
    assert.ok(waited < 100, `${server.server.connectionCount} connection(s) linger after their client left`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A good client is served: GO, a read of the read-only export. */
async function goodClientServed(): Promise<void> {
  const client = await RawNbdClient.connect(server.port);
  try {
    const { sizeBytes } = await client.open("d@s");
    assert.equal(sizeBytes, 4 * MiB);
  } finally {
    client.socket.destroy();
  }
}

test(`random and mutated NBD sessions (${RUNS} runs each) cost only their own connection`, { timeout: 30 * 60_000 }, async () => {
  const hashBefore = await readOnlyHash();
  const heapBefore = process.memoryUsage().heapUsed;
  await withCauseShown(async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 2048 }), async (bytes) => {
        await session(Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from(bytes)]));
      }),
      { numRuns: RUNS },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("d", "d@s", "nope"), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (name, changes) => {
        await session(mutate(validSession(name), changes));
      }),
      { numRuns: RUNS },
    );
  });
  await connectionsDrained();
  await goodClientServed();
  assert.equal(await readOnlyHash(), hashBefore, "the read-only export is unchanged");
  global.gc?.();
  const grownBytes = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(grownBytes < 64 * MiB, `memory bounded: the heap grew ${Math.round(grownBytes / MiB)} MiB`);
});
