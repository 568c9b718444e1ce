/**
 * Goal: the TCP faces (the API and replication's port) speak HTTPS with serve's certificate; a
 * wrong or missing bearer token is 401, does nothing and is counted in /metrics per face; and
 * `snaplog token rotate` puts a new token in force at once, without a restart (the old one is
 * refused from the next request), or rewrites the file when no server runs. Method: a real
 * `snaplog serve` with --tls-cert/--tls-key, node:https requests that trust the test's CA
 * (certificates made by openssl), the CLI as a user runs it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import path from "node:path";
import { makeTlsFixture, type TlsFixture } from "./support/tls-certs.js";
import { requireTool } from "./support/nbd-server.js";
import { snaplogCli, snaplogMainPath } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { runOk } from "./support/interop-tools.js";

const hasOpenssl = requireTool("openssl", "openssl");
const certs: TlsFixture = hasOpenssl ? makeTlsFixture() : ({} as TlsFixture);
const store = path.join(tempDir("api-https"), "store");
const tokenPath = path.join(store, "api.token");
let child: ChildProcessWithoutNullStreams;
let apiPort = 0;
let replicationPort = 0;
let nbdPort = 0;

function request(
  port: number,
  route: string,
  options: { token?: string; method?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const call = https.request(
      {
        host: "127.0.0.1",
        port,
        path: route,
        method: options.method ?? "GET",
        ca: readFileSync(certs.caCert),
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    call.once("error", reject);
    call.end();
  });
}

const token = () => readFileSync(tokenPath, "utf8").trim();

before(async () => {
  if (!hasOpenssl) return;
  assert.equal((await snaplogCli(store, ["init"])).code, 0);
  assert.equal((await snaplogCli(store, ["disk", "create", "d", "--size", "8M"])).code, 0);
  child = spawn(
    process.execPath,
    [
      snaplogMainPath,
      "--store",
      store,
      "serve",
      "--nbd",
      "127.0.0.1:0",
      "--api",
      "127.0.0.1:0",
      "--replication",
      "127.0.0.1:0",
      "--tls-cert",
      certs.serverCert,
      "--tls-key",
      certs.serverKey,
    ],
    { env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" } },
  );
  let stdout = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const api = /^api: https:\/\/127\.0\.0\.1:(\d+) /m.exec(stdout);
      const replication = /^replication: snaplogs:\/\/127\.0\.0\.1:(\d+)\/DISK /m.exec(stdout);
      const nbd = /^nbd: nbds:\/\/127\.0\.0\.1:(\d+)$/m.exec(stdout);
      if (api !== null && replication !== null && nbd !== null) {
        nbdPort = Number(nbd[1]);
        apiPort = Number(api[1]);
        replicationPort = Number(replication[1]);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`serve exited ${code}: ${stdout}`)));
  });
});

after(async () => {
  if (child === undefined || child.exitCode !== null) return;
  child.kill("SIGTERM");
  await once(child, "exit");
});

test("the API and the replication port answer over HTTPS with the token; plain HTTP gets no answer", { skip: !hasOpenssl }, async () => {
  const disks = await request(apiPort, "/v1/disks", { token: token() });
  assert.equal(disks.status, 200, disks.body);
  assert.equal((JSON.parse(disks.body) as { name: string }[])[0].name, "d");
  assert.equal((await request(replicationPort, "/v1/disks", { token: token() })).status, 200);
  const plain = await new Promise<string>((resolve) => {
    const call = http.get(
      { host: "127.0.0.1", port: apiPort, path: "/v1/disks", headers: { authorization: `Bearer ${token()}` } },
      (response) => resolve(`answered ${response.statusCode}`),
    );
    call.once("error", (error) => resolve(`refused: ${(error as NodeJS.ErrnoException).code}`));
    call.setTimeout(5000, () => call.destroy(new Error("timeout")));
  });
  assert.doesNotMatch(plain, /answered 200/, "no API answer without TLS");
});

test("a wrong or missing token: 401, nothing done, counted per face in /metrics", { skip: !hasOpenssl }, async () => {
  const before = (await snaplogCli(store, ["disk", "list", "--json"])).stdout;
  assert.equal((await request(apiPort, "/v1/disks/d", { method: "DELETE" })).status, 401);
  assert.equal((await request(apiPort, "/v1/disks/d", { method: "DELETE", token: "0".repeat(64) })).status, 401);
  assert.equal((await request(replicationPort, "/v1/disks", { token: "wrong" })).status, 401);
  assert.equal((await snaplogCli(store, ["disk", "list", "--json"])).stdout, before, "nothing deleted");
  const metrics = await request(apiPort, "/metrics", { token: token() });
  assert.equal(metrics.status, 200);
  const count = (face: string) =>
    Number(new RegExp(`^snaplog_api_unauthorized_total\\{face="${face}"\\} (\\d+)$`, "m").exec(metrics.body)?.[1] ?? 0);
  assert.ok(count("api") >= 2, `401s on the API counted: ${count("api")}`);
  assert.ok(count("replication") >= 1, `401s on the replication port counted: ${count("replication")}`);
});

test(
  "token rotate through the running server: the new token works at once, the old one is refused, the file holds the new one",
  { skip: !hasOpenssl },
  async () => {
    const old = token();
    const rotated = await snaplogCli(store, ["token", "rotate"]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const fresh = rotated.stdout.trim();
    assert.match(fresh, /^[0-9a-f]{64}$/);
    assert.notEqual(fresh, old);
    assert.equal(token(), fresh, "the file holds the new token");
    assert.equal(statSync(tokenPath).mode & 0o777, 0o600, "readable by the owner only");
    assert.equal((await request(apiPort, "/v1/disks", { token: old })).status, 401, "the old token is refused at once");
    assert.equal((await request(replicationPort, "/v1/disks", { token: old })).status, 401);
    assert.equal((await request(apiPort, "/v1/disks", { token: fresh })).status, 200, "the new one works without a restart");
    assert.equal((await request(replicationPort, "/v1/disks", { token: fresh })).status, 200);
    assert.equal(
      (await request(apiPort, "/v1/token/rotate", { method: "POST", token: fresh })).status,
      404,
      "rotation is not offered on TCP",
    );
  },
);

test(
  "replication and an appliance vault over snaplogs:// to this HTTPS server (the sender trusts the CA through NODE_EXTRA_CA_CERTS)",
  { skip: !hasOpenssl || !requireTool("nbdcopy") },
  async () => {
    const work = tempDir("api-https-sender");
    const senderStore = path.join(work, "store");
    const image = path.join(work, "image.raw");
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let at = 0; at < data.length; at += 4) data.writeUInt32LE((at * 2246822519) >>> 0, at);
    writeFileSync(image, data);
    const tokenFile = path.join(work, "peer.token");
    writeFileSync(tokenFile, `${token()}\n`);
    assert.equal((await snaplogCli(senderStore, ["init"])).code, 0);
    assert.equal((await snaplogCli(senderStore, ["disk", "create", "s", "--size", "4M", "--from", image])).code, 0);
    const sender = spawn(
      process.execPath,
      [snaplogMainPath, "--store", senderStore, "serve", "--nbd", "127.0.0.1:0", "--nbd-socket", path.join(work, "nbd.sock")],
      {
        env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn", NODE_EXTRA_CA_CERTS: certs.caCert },
      },
    );
    try {
      let stdout = "";
      await new Promise<void>((resolve, reject) => {
        sender.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          if (/^api: unix:/m.test(stdout)) resolve();
        });
        sender.once("exit", (code) => reject(new Error(`sender exited ${code}`)));
      });
      const replicate = await snaplogCli(senderStore, [
        "replicate",
        "s",
        "--to",
        `snaplogs://127.0.0.1:${replicationPort}/r`,
        "--token-file",
        tokenFile,
      ]);
      assert.equal(replicate.code, 0, replicate.stderr);
      for (let waited = 0; ; waited++) {
        const list = JSON.parse((await snaplogCli(senderStore, ["replicate", "--list", "--json"])).stdout) as {
          state: string;
          lagBytes: number;
          ackedLsn: number | null;
        }[];
        if (list[0]?.state === "connected" && list[0].lagBytes === 0 && list[0].ackedLsn !== null) break;
        assert.ok(waited < 120, `the relation catches up over TLS: ${JSON.stringify(list)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const replica = path.join(work, "replica.raw");
      await runOk("nbdcopy", [`nbds://127.0.0.1:${nbdPort}/r?tls-certificates=${certs.noClientCertDir}`, replica]);
      assert.ok(readFileSync(replica).equals(data), "the replica holds the source's bytes");

      const added = await snaplogCli(senderStore, ["vault", "add", "peer", `snaplogs://127.0.0.1:${apiPort}`, "--token-file", tokenFile]);
      assert.equal(added.code, 0, added.stderr);
      const archived = await snaplogCli(senderStore, ["archive", "s", "--vault", "peer"]);
      assert.equal(archived.code, 0, archived.stderr);
      const restored = await snaplogCli(senderStore, ["vault", "restore", "peer", "s", "--as", "s2"]);
      assert.equal(restored.code, 0, restored.stderr);
      const back = path.join(work, "back.raw");
      await runOk("nbdcopy", [`nbd+unix:///s2?socket=${path.join(work, "nbd.sock")}`, back]);
      assert.ok(readFileSync(back).equals(data), "archived to the peer over HTTPS and restored byte-exact");
    } finally {
      sender.kill("SIGTERM");
      await once(sender, "exit");
    }
  },
);

test("token rotate with no server running rewrites the file; the next serve uses it", { skip: !hasOpenssl }, async () => {
  child.kill("SIGTERM");
  await once(child, "exit");
  const old = token();
  const rotated = await snaplogCli(store, ["token", "rotate", "--json"]);
  assert.equal(rotated.code, 0, rotated.stderr);
  const answer = JSON.parse(rotated.stdout) as { path: string; token: string; server: boolean };
  assert.equal(answer.server, false);
  assert.equal(answer.path, tokenPath);
  assert.notEqual(answer.token, old);
  assert.equal(token(), answer.token);
  assert.equal(statSync(tokenPath).mode & 0o777, 0o600);
});
