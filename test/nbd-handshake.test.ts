/**
 * Goal: the handshake's refusals and volume ownership. An export the resolver refuses gets the
 * reply NBD_EXPORT_REFUSAL_BY_CODE names for its code (CLOSED: NBD_REP_ERR_SHUTDOWN) and a
 * warning in the server's log only when the table says the server is at fault, never for a
 * client's typo or a passing state; every volume an option resolves is released once that
 * option is answered (metadata context queries included), the chosen one when the
 * connection ends.
 * Method: raw node:net clients against an in-process server with a resolver that fails on cue
 * and a logger that records warnings.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { NBD_EXPORT_REFUSAL_BY_CODE } from "../src/nbd/errno.js";
import * as P from "../src/nbd/protocol.js";
import type { ExportInfo, Volume, VolumeResolver } from "../src/store/volume.js";
import { ErrorCodes, SnaplogError, type ErrorCode } from "../src/util/errors.js";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import { runOk } from "./support/interop-tools.js";
import { RawNbdClient, requireTool, startTestServer } from "./support/nbd-server.js";

const MiB = 1024 * 1024;

/** Resolves "ok"; any other name fails with the code it names ("SNAPLOG_IO"), or a plain Error for "bug". */
class FailingResolver implements VolumeResolver {
  constructor(private readonly volume: Volume) {}

  resolve(exportName: string): Volume {
    if (exportName === "ok") return this.volume;
    if (exportName === "bug") throw new Error("not a SnaplogError");
    throw new SnaplogError(exportName as ErrorCode, `refused with ${exportName}`);
  }

  list(): ExportInfo[] {
    return [];
  }
}

function recordingLogger(): {
  warnings: string[];
  logger: { info(): void; warn(object: object | string, message?: string): void; error(): void };
} {
  const warnings: string[] = [];
  return {
    warnings,
    logger: {
      info() {},
      warn(object: object | string, message?: string) {
        warnings.push(`${message ?? ""} ${JSON.stringify(object)}`);
      },
      error() {},
    },
  };
}

test("every error code has a refusal; only the server's own trouble is logged", () => {
  for (const code of Object.values(ErrorCodes))
    assert.equal(typeof NBD_EXPORT_REFUSAL_BY_CODE[code]?.reply, "number", `no refusal for ${code}`);
  assert.equal(Object.keys(NBD_EXPORT_REFUSAL_BY_CODE).length, Object.keys(ErrorCodes).length);
  for (const code of [
    ErrorCodes.NOT_FOUND,
    ErrorCodes.INVALID_ARGUMENT,
    ErrorCodes.OUTSIDE_WINDOW,
    ErrorCodes.CONFLICT,
    ErrorCodes.CLOSED,
  ]) {
    assert.equal(NBD_EXPORT_REFUSAL_BY_CODE[code].logged, false, code);
  }
  for (const code of [ErrorCodes.IO, ErrorCodes.CORRUPT, ErrorCodes.INTERNAL])
    assert.equal(NBD_EXPORT_REFUSAL_BY_CODE[code].logged, true, code);
  assert.equal(NBD_EXPORT_REFUSAL_BY_CODE[ErrorCodes.CLOSED].reply, P.REP_ERR_SHUTDOWN);
  assert.equal(NBD_EXPORT_REFUSAL_BY_CODE[ErrorCodes.NOT_FOUND].reply, P.REP_ERR_UNKNOWN);
});

test("a refused NBD_OPT_GO gets the table's reply with the export's name and reason; typos and passing states are not logged", async () => {
  const { warnings, logger } = recordingLogger();
  const server = await startTestServer(new FailingResolver(new MemoryVolume({ name: "ok", sizeBytes: MiB })), { logger });
  try {
    const client = await RawNbdClient.connect(server.port);
    await client.greet();
    const cases: Array<{ name: string; reply: number; logged: boolean }> = [
      { name: ErrorCodes.NOT_FOUND, reply: P.REP_ERR_UNKNOWN, logged: false },
      { name: ErrorCodes.INVALID_ARGUMENT, reply: P.REP_ERR_UNKNOWN, logged: false },
      { name: ErrorCodes.OUTSIDE_WINDOW, reply: P.REP_ERR_UNKNOWN, logged: false },
      { name: ErrorCodes.CONFLICT, reply: P.REP_ERR_UNKNOWN, logged: false },
      { name: ErrorCodes.CLOSED, reply: P.REP_ERR_SHUTDOWN, logged: false },
      { name: ErrorCodes.IO, reply: P.REP_ERR_UNKNOWN, logged: true },
      { name: "bug", reply: P.REP_ERR_UNKNOWN, logged: true },
    ];
    for (const { name, reply, logged } of cases) {
      const warningsBefore = warnings.length;
      client.sendOption(P.OPT_GO, RawNbdClient.infoPayload(name));
      const answer = await client.readOptionReply();
      assert.equal(answer.replyType, reply, name);
      assert.match(answer.payload.toString(), new RegExp(`^export "${name}": `), name);
      assert.equal(warnings.length - warningsBefore, logged ? 1 : 0, `${name}: ${warnings.slice(warningsBefore).join("; ")}`);
    }
    // The session goes on after every refusal.
    client.sendOption(P.OPT_GO, RawNbdClient.infoPayload("ok"));
    assert.equal((await client.readOptionReplies()).at(-1)?.replyType, P.REP_ACK);
    client.socket.destroy();
  } finally {
    await server.close();
  }
});

test("NBD_OPT_INFO and metadata context queries release what they resolved once answered; the chosen volume is released when the connection ends", async () => {
  const volume = new MemoryVolume({ name: "point", sizeBytes: MiB, readOnly: true });
  const server = await startTestServer(new MemoryResolver().add(volume));
  const releasedAfter = async (expected: number, what: string): Promise<void> => {
    for (let attempt = 0; attempt < 100 && volume.releaseCount < expected; attempt++) await sleep(10);
    assert.equal(volume.releaseCount, expected, what);
  };
  try {
    const asker = await RawNbdClient.connect(server.port);
    await asker.greet();
    asker.sendOption(P.OPT_INFO, RawNbdClient.infoPayload("point"));
    assert.equal((await asker.readOptionReplies()).at(-1)?.replyType, P.REP_ACK);
    await releasedAfter(1, "after INFO, while the session goes on");
    asker.socket.destroy();
    // SET_META_CONTEXT resolves the export to check it, then NBD_OPT_GO chooses it.
    const user = await RawNbdClient.connect(server.port);
    await user.open("point", { structured: true, baseAllocation: true });
    await releasedAfter(2, "after SET_META_CONTEXT");
    await sleep(50);
    assert.equal(volume.releaseCount, 2, "the chosen volume is kept while the connection uses it");
    user.request(P.CMD_DISC, 0, 1n, 0, 0);
    await user.waitClosed();
    await releasedAfter(3, "after the connection ended");
  } finally {
    await server.close();
  }
  assert.equal(volume.releaseCount, 3, "released exactly once per resolve");
});

test("a connection that sends no option is closed after the handshake timeout, and each limit is logged by name", async () => {
  const { warnings, logger } = recordingLogger();
  const server = await startTestServer(new MemoryResolver().add(new MemoryVolume({ name: "d", sizeBytes: MiB })), {
    logger,
    handshakeTimeoutMs: 300,
    handshakeDeadlineMs: 2000,
    handshakeOptionBytesMax: 1024,
  });
  try {
    const silent = await RawNbdClient.connect(server.port);
    await silent.greet();
    const startedMs = Date.now();
    assert.ok(await silent.waitClosed(3000), "closed while silent");
    assert.ok(Date.now() - startedMs < 1500, "by the idle timeout, before the deadline");
    assert.ok(
      warnings.some((warning) => warning.includes("nbd: handshake timed out")),
      warnings.join("; "),
    );

    const busy = await RawNbdClient.connect(server.port);
    await busy.greet();
    for (let index = 0; index < 100 && !busy.closed; index++) {
      busy.sendOption(99, Buffer.alloc(40));
      await sleep(5);
    }
    assert.ok(await busy.waitClosed());
    assert.ok(
      warnings.some((warning) => warning.includes("nbd: handshake used up its option or reply bytes")),
      warnings.join("; "),
    );
  } finally {
    await server.close();
  }
});

test("nbdinfo --list over TCP (about 200 ms per export in libnbd 1.14) lists every export past the bare deadline", async (t) => {
  if (!requireTool("nbdinfo")) return t.skip("nbdinfo is not installed");
  const resolver = new MemoryResolver();
  for (let index = 0; index < 12; index++) resolver.add(new MemoryVolume({ name: `e${index}`, sizeBytes: MiB }));
  const server = await startTestServer(resolver, { handshakeDeadlineMs: 1000 });
  try {
    const startedMs = Date.now();
    const listing = await runOk("nbdinfo", ["--list", "--json", `nbd://127.0.0.1:${server.port}`]);
    const names = (JSON.parse(listing.stdout) as { exports: Array<{ "export-name": string }> }).exports.map((item) => item["export-name"]);
    assert.deepEqual(
      names,
      resolver.list().map((info) => info.name),
    );
    t.diagnostic(`nbdinfo --list of 12 exports over TCP: ${Date.now() - startedMs} ms`);
  } finally {
    await server.close();
  }
});
