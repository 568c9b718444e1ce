/**
 * Goal: NBD over TLS (SPEC §7) as stock clients use it. With a certificate, STARTTLS upgrades a
 * connection on TCP and on the unix socket; in `required` mode every other option before it is
 * answered NBD_REP_ERR_TLS_REQD and NBD_OPT_EXPORT_NAME closes, so a plaintext client gets no
 * export; with `--tls-ca`, a client without a certificate, with an expired one, or with one from
 * another CA under the same subject is refused, the server stays up and other clients carry on;
 * what was negotiated before STARTTLS is forgotten. Method: an in-process server on loopback,
 * certificates made by openssl (test/support/tls-certs.ts), libnbd's nbdinfo and nbdcopy with
 * nbds:// URIs, qemu-img and qemu-io with tls-creds-x509, and a raw client for the protocol
 * details (option replies, the TLS handshake with node:tls, the reply kind after it).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as tls from "node:tls";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadNbdTls, parsePskFile } from "../src/nbd/tls.js";
import { MemoryResolver, MemoryVolume } from "./support/memory-volume.js";
import { RawNbdClient, requireTool, startTestServer, SIMPLE_REPLY_MAGIC, type TestServer } from "./support/nbd-server.js";
import { makeTlsFixture, type TlsFixture } from "./support/tls-certs.js";
import { runOk, runTool } from "./support/interop-tools.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";
import { snaplogCli, snaplogMainPath } from "./support/serve-child.js";
import { spawn } from "node:child_process";
import { once } from "node:events";

const MiB = 1024 * 1024;
const OPT_EXPORT_NAME = 1;
const OPT_LIST = 3;
const OPT_STARTTLS = 5;
const OPT_GO = 7;
const OPT_STRUCTURED_REPLY = 8;
const REP_ACK = 1;
const REP_ERR_UNSUP = 0x80000001;
const REP_ERR_TLS_REQD = 0x80000005;

const hasTools = requireTool("nbdinfo") && requireTool("nbdcopy") && requireTool("qemu-img") && requireTool("openssl", "openssl");

// Made at load: the suites' hooks run before a file-level before() would.
const certs: TlsFixture = hasTools ? makeTlsFixture() : ({} as TlsFixture);
const disk = new MemoryVolume({ name: "d", sizeBytes: 16 * MiB, description: "disk d, LUN 1" });
const resolver = new MemoryResolver().add(disk);

const nbds = (server: TestServer, dir: string) => `nbds://127.0.0.1:${server.port}/d?tls-certificates=${dir}`;
const nbdsUnix = (server: TestServer, dir: string) =>
  `nbds+unix:///d?socket=${server.socketPath}&tls-certificates=${dir}&tls-hostname=localhost`;

function qemuTls(dir: string, server: TestServer): string[] {
  return [
    "--object",
    `tls-creds-x509,id=tls0,dir=${dir},endpoint=client`,
    "--image-opts",
    `driver=nbd,host=127.0.0.1,port=${server.port},export=d,tls-creds=tls0`,
  ];
}

/** A plaintext client asks for the export the usual way; returns the reply type. */
async function plaintextGo(server: TestServer): Promise<number> {
  const client = await RawNbdClient.connect(server.port);
  try {
    await client.greet();
    const name = Buffer.from("d");
    const payload = Buffer.alloc(4 + name.length + 2);
    payload.writeUInt32BE(name.length, 0);
    name.copy(payload, 4);
    client.sendOption(OPT_GO, payload);
    return (await client.readOptionReply()).replyType;
  } finally {
    client.socket.destroy();
  }
}

describe("NBD TLS required, client certificates checked", { skip: !hasTools }, () => {
  let server: TestServer;
  before(async () => {
    const nbdTls = await loadNbdTls({ certPath: certs.serverCert, keyPath: certs.serverKey, caPath: certs.caCert });
    server = await startTestServer(resolver, { tls: nbdTls });
  });
  after(() => server.close());

  test("nbdinfo and nbdcopy attach over nbds:// on TCP and the unix socket; the bytes round-trip", async () => {
    const info = await runOk("nbdinfo", ["--json", nbds(server, certs.clientDir)]);
    assert.equal(JSON.parse(info.stdout).exports[0]["export-size"], 16 * MiB);
    assert.match((await runOk("nbdinfo", [nbdsUnix(server, certs.clientDir)])).stdout, /with TLS/);
    const scratch = tempDir("nbd-tls");
    const input = path.join(scratch, "in.raw");
    const output = path.join(scratch, "out.raw");
    const data = Buffer.alloc(4 * MiB);
    for (let at = 0; at < data.length; at += 4) data.writeUInt32LE((at * 2654435761) >>> 0, at);
    writeFileSync(input, data);
    await runOk("nbdcopy", [input, nbds(server, certs.clientDir)]);
    await runOk("nbdcopy", [nbdsUnix(server, certs.clientDir), output]);
    assert.ok(readFileSync(output).subarray(0, data.length).equals(data), "what went in over TCP comes back over the unix socket");
  });

  test("qemu-img and qemu-io attach with tls-creds-x509", async () => {
    assert.match((await runOk("qemu-img", ["info", ...qemuTls(certs.clientDir, server)])).stdout, /virtual size: 16 MiB/);
    const io = await runOk("qemu-io", [...qemuTls(certs.clientDir, server), "-c", "write -P 0xa5 1M 64k", "-c", "read -P 0xa5 1M 64k"]);
    assert.doesNotMatch(io.stdout + io.stderr, /Pattern verification failed/);
  });

  test("a plaintext client: TLS_REQD for every option, EXPORT_NAME closes, nbdinfo without TLS fails", async () => {
    assert.equal(await plaintextGo(server), REP_ERR_TLS_REQD);
    const client = await RawNbdClient.connect(server.port);
    await client.greet();
    client.sendOption(OPT_LIST);
    assert.equal((await client.readOptionReply()).replyType, REP_ERR_TLS_REQD);
    client.sendOption(OPT_STRUCTURED_REPLY);
    assert.equal((await client.readOptionReply()).replyType, REP_ERR_TLS_REQD);
    client.sendOption(OPT_EXPORT_NAME, Buffer.from("d"));
    assert.ok(await client.waitClosed(), "NBD_OPT_EXPORT_NAME without TLS closes the connection");
    const plain = await runTool("nbdinfo", [`nbd://127.0.0.1:${server.port}/d`]);
    assert.notEqual(plain.code, 0, "nbdinfo without TLS gets no export");
  });

  test("no client certificate, an expired one, one from another CA with the same subject: refused; the server carries on", async () => {
    for (const [what, dir] of [
      ["no client certificate", certs.noClientCertDir],
      ["an expired client certificate", certs.expiredClientDir],
      ["a certificate from another CA", certs.otherCaClientDir],
    ] as const) {
      const refused = await runTool("nbdinfo", [nbds(server, dir)]);
      assert.notEqual(refused.code, 0, `${what}: refused`);
      assert.doesNotMatch(refused.stdout, /export-size/, `${what}: nothing about the export`);
    }
    // qemu refuses its own expired certificate before connecting; the other CA reaches the server.
    const impostor = await runTool("qemu-img", ["info", ...qemuTls(certs.otherCaClientDir, server)]);
    assert.notEqual(impostor.code, 0, "qemu-img with a certificate from another CA is refused");
    assert.match((await runOk("nbdinfo", [nbds(server, certs.clientDir)])).stdout, /export-size/, "a good client still attaches");
    // The client has exited; the server sees its socket close a moment later (on a loaded machine, not at once).
    await waitFor("no refused connection to linger", () => server.server.connectionCount === 0, 5_000);
  });
});

test(
  "fio's nbd engine writes and verifies over nbds:// against a server that requires TLS (fio cannot hand libnbd a certificate directory)",
  { skip: !hasTools || !requireTool("fio", "fio") },
  async () => {
    // fio passes its URI to libnbd without nbd_set_uri_allow_local_file, so `?tls-certificates=DIR`
    // is refused: fio gets encryption (and the certificates of libnbd's default directory), not client certificates.
    const server = await startTestServer(resolver, { tls: await loadNbdTls({ certPath: certs.serverCert, keyPath: certs.serverKey }) });
    try {
      const job = (uri: string) => [
        "--name=tls",
        "--ioengine=nbd",
        `--uri=${uri}`,
        "--rw=write",
        "--bs=64k",
        "--size=4M",
        "--verify=crc32c",
      ];
      const tls = await runOk("fio", job(`nbds://127.0.0.1:${server.port}/d`));
      assert.match(tls.stdout, /err= 0/);
      assert.doesNotMatch(tls.stdout + tls.stderr, /verify: bad|crc32c: verify failed/);
      const plain = await runTool("fio", job(`nbd://127.0.0.1:${server.port}/d`));
      assert.match(plain.stdout + plain.stderr, /requires TLS/, "without TLS fio is refused");
    } finally {
      await server.close();
    }
  },
);

describe("NBD TLS optional, no client CA", { skip: !hasTools }, () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(resolver, {
      tls: await loadNbdTls({ certPath: certs.serverCert, keyPath: certs.serverKey, mode: "optional" }),
    });
  });
  after(() => server.close());

  test("plaintext and TLS clients both attach; TLS needs no client certificate", async () => {
    assert.match((await runOk("nbdinfo", [`nbd://127.0.0.1:${server.port}/d`])).stdout, /without TLS/);
    assert.match((await runOk("nbdinfo", [nbds(server, certs.noClientCertDir)])).stdout, /with TLS/);
  });

  test("structured replies asked for before STARTTLS are forgotten: replies after it are simple", async () => {
    const client = await RawNbdClient.connect(server.port);
    await client.greet();
    client.sendOption(OPT_STRUCTURED_REPLY);
    assert.equal((await client.readOptionReply()).replyType, REP_ACK);
    client.sendOption(OPT_STARTTLS);
    assert.equal((await client.readOptionReply()).replyType, REP_ACK);
    const secure = tls.connect({ socket: client.socket, ca: readFileSync(certs.caCert), servername: "localhost" });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
    });
    const received: Buffer[] = [];
    secure.on("data", (chunk: Buffer) => received.push(chunk));
    const readBytes = async (count: number): Promise<Buffer> => {
      for (let waited = 0; Buffer.concat(received).length < count; waited++) {
        if (waited > 500) throw new Error(`timed out waiting for ${count} bytes`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const all = Buffer.concat(received);
      received.length = 0;
      received.push(all.subarray(count));
      return all.subarray(0, count);
    };
    const option = (code: number, payload: Buffer) => {
      const header = Buffer.alloc(16);
      Buffer.from("IHAVEOPT").copy(header, 0);
      header.writeUInt32BE(code, 8);
      header.writeUInt32BE(payload.length, 12);
      secure.write(Buffer.concat([header, payload]));
    };
    const goPayload = Buffer.alloc(4 + 1 + 2);
    goPayload.writeUInt32BE(1, 0);
    goPayload.write("d", 4);
    option(OPT_GO, goPayload);
    for (;;) {
      const header = await readBytes(20);
      const type = header.readUInt32BE(12);
      await readBytes(header.readUInt32BE(16));
      if (type === REP_ACK) break;
      assert.ok(type < 0x80000000, `GO refused: ${type.toString(16)}`);
    }
    const request = Buffer.alloc(28);
    request.writeUInt32BE(0x25609513, 0);
    request.writeUInt16BE(0, 6); // NBD_CMD_READ
    request.writeBigUInt64BE(7n, 8);
    request.writeBigUInt64BE(0n, 16);
    request.writeUInt32BE(512, 24);
    secure.write(request);
    const reply = await readBytes(16);
    assert.equal(
      reply.readUInt32BE(0),
      SIMPLE_REPLY_MAGIC,
      "a simple reply: the structured-reply choice made in plaintext did not survive STARTTLS",
    );
    await readBytes(512);
    secure.destroy();
  });
});

test(
  "garbage under the TLS layer after STARTTLS, during the handshake and during transmission: that connection ends, the server stays up",
  { skip: !hasTools },
  async () => {
    const server = await startTestServer(resolver, {
      tls: await loadNbdTls({ certPath: certs.serverCert, keyPath: certs.serverKey, mode: "optional" }),
    });
    try {
      for (const phase of ["handshake", "transmission"] as const) {
        const client = await RawNbdClient.connect(server.port);
        await client.greet();
        client.sendOption(OPT_STARTTLS);
        assert.equal((await client.readOptionReply()).replyType, REP_ACK);
        client.socket.removeAllListeners("data");
        const secure = tls.connect({ socket: client.socket, ca: readFileSync(certs.caCert), servername: "localhost" });
        secure.on("error", () => undefined);
        await new Promise<void>((resolve, reject) => {
          secure.once("secureConnect", resolve);
          secure.once("error", reject);
        });
        if (phase === "transmission") {
          const go = Buffer.alloc(16 + 4 + 1 + 2);
          go.write("IHAVEOPT", 0, "latin1");
          go.writeUInt32BE(OPT_GO, 8);
          go.writeUInt32BE(7, 12);
          go.writeUInt32BE(1, 16);
          go.write("d", 20);
          secure.write(go);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        client.socket.write(Buffer.alloc(512, 0x41)); // not a TLS record
        // The server ends that connection (its TLS session is broken); the client's side is the test's to drop.
        for (let waited = 0; server.server.connectionCount > 0; waited++) {
          assert.ok(waited < 100, `${phase}: the broken connection ends`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        secure.destroy();
      }
      assert.match((await runOk("nbdinfo", [`nbd://127.0.0.1:${server.port}/d`])).stdout, /export-size/, "the server still serves");
    } finally {
      await server.close();
    }
  },
);

test("without a certificate STARTTLS is answered unsupported and the connection goes on", async () => {
  const server = await startTestServer(resolver);
  try {
    const client = await RawNbdClient.connect(server.port);
    await client.greet();
    client.sendOption(OPT_STARTTLS);
    assert.equal((await client.readOptionReply()).replyType, REP_ERR_UNSUP);
    assert.notEqual(await plaintextGo(server), REP_ERR_TLS_REQD);
    client.socket.destroy();
  } finally {
    await server.close();
  }
});

test("loadNbdTls refuses a key that is not the certificate's, and a missing file, with clear errors", async () => {
  await assert.rejects(loadNbdTls({ certPath: certs.serverCert, keyPath: path.join(certs.dir, "client-key.pem") }), /cannot be used/);
  await assert.rejects(loadNbdTls({ certPath: path.join(certs.dir, "nope.pem"), keyPath: certs.serverKey }), /nope\.pem/);
});

test(
  "snaplog serve with --tls-cert and --tls-key prints nbds:// endpoints that nbdinfo attaches to; half the options are refused",
  { skip: !hasTools },
  async () => {
    const store = path.join(tempDir("nbd-tls-serve"), "store");
    assert.equal((await snaplogCli(store, ["init"])).code, 0);
    assert.equal((await snaplogCli(store, ["disk", "create", "d", "--size", "8M"])).code, 0);
    const alone = await snaplogCli(store, ["serve", "--nbd", "127.0.0.1:0", "--tls-cert", certs.serverCert]);
    assert.equal(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /--tls-cert and --tls-key go together/);
    const badMode = await snaplogCli(store, [
      "serve",
      "--nbd",
      "127.0.0.1:0",
      "--tls-cert",
      certs.serverCert,
      "--tls-key",
      certs.serverKey,
      "--tls",
      "maybe",
    ]);
    assert.equal(badMode.code, 2, badMode.stderr);
    const child = spawn(
      process.execPath,
      [snaplogMainPath, "--store", store, "serve", "--nbd", "127.0.0.1:0", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey],
      {
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    try {
      let stdout = "";
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          const found = /^nbd: (nbds:\/\/\S+)$/m.exec(stdout);
          if (found !== null) resolve(found[1]);
        });
        child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${stdout}`)));
      });
      const info = await runOk("nbdinfo", [`${url}/d?tls-certificates=${certs.noClientCertDir}`]);
      assert.match(info.stdout, /with TLS/);
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  },
);

describe("NBD TLS with pre-shared keys (--tls-psk)", { skip: !hasTools }, () => {
  let server: TestServer;
  const dir = tempDir("nbd-tls-psk");
  const key = "0123456789abcdef".repeat(4);
  const serverKeys = path.join(dir, "server.psk");
  const qemuDir = path.join(dir, "qemu");
  const wrongKey = path.join(dir, "wrong.psk");
  const otherUser = path.join(dir, "bob.psk");
  before(async () => {
    writeFileSync(serverKeys, `alice:${key}\n`);
    mkdirSync(qemuDir);
    writeFileSync(path.join(qemuDir, "keys.psk"), `alice:${key}\n`);
    writeFileSync(wrongKey, `alice:${"f".repeat(64)}\n`);
    writeFileSync(otherUser, `bob:${key}\n`);
    server = await startTestServer(resolver, { tls: await loadNbdTls({ pskPath: serverKeys }) });
  });
  after(() => server.close());

  test("nbdinfo (TCP and unix socket) and qemu-img with tls-creds-psk attach with the right key", async () => {
    assert.match((await runOk("nbdinfo", [`nbds://alice@127.0.0.1:${server.port}/d?tls-psk-file=${serverKeys}`])).stdout, /with TLS/);
    assert.match(
      (await runOk("nbdinfo", [`nbds+unix://alice@/d?socket=${server.socketPath}&tls-psk-file=${serverKeys}`])).stdout,
      /with TLS/,
    );
    const qemu = await runOk("qemu-img", [
      "info",
      "--object",
      `tls-creds-psk,id=tls0,dir=${qemuDir},username=alice,endpoint=client`,
      "--image-opts",
      `driver=nbd,host=127.0.0.1,port=${server.port},export=d,tls-creds=tls0`,
    ]);
    assert.match(qemu.stdout, /virtual size: 16 MiB/);
  });

  test("a wrong key, a user the server does not know, or no TLS: refused; the server carries on", async () => {
    assert.notEqual((await runTool("nbdinfo", [`nbds://alice@127.0.0.1:${server.port}/d?tls-psk-file=${wrongKey}`])).code, 0);
    assert.notEqual((await runTool("nbdinfo", [`nbds://bob@127.0.0.1:${server.port}/d?tls-psk-file=${otherUser}`])).code, 0);
    assert.equal(await plaintextGo(server), REP_ERR_TLS_REQD);
    assert.match((await runOk("nbdinfo", [`nbds://alice@127.0.0.1:${server.port}/d?tls-psk-file=${serverKeys}`])).stdout, /export-size/);
  });

  test("a PSK file that is not username:hexkey is refused with the line named", () => {
    assert.throws(() => parsePskFile("alice:00ff\n", "k.psk"), /k\.psk line 1 is not username:hexkey/);
    assert.throws(() => parsePskFile("alice 0123456789abcdef0123456789abcdef\n", "k.psk"), /line 1/);
    assert.throws(() => parsePskFile("\n", "k.psk"), /no username:hexkey line/);
    assert.equal(parsePskFile(`alice:${key}\nbob:${key}\n`, "k.psk").size, 2);
  });
});
