/**
 * Goal: `snaplog serve` keeps SPEC §2 "One owner" and the shutdown promise of §3.2: endpoint
 * lines show the real ports, the CLI goes through the running server (and works directly
 * without one), a second serve fails at once with STORE_LOCKED, a SIGKILLed server leaves
 * nothing that stops the next serve (stale lock and stale socket are replaced), and SIGTERM
 * shuts down cleanly with exit 0. Method: spawn the real binary as a child on ephemeral
 * ports (--nbd 127.0.0.1:0 --api 127.0.0.1:0) in a temp store; every child is killed in after().
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliForStore, runCli } from "./support/cli.js";
import { snaplogMainPath } from "./support/serve-child.js";

const directory = mkdtempSync(join(tmpdir(), "snaplog-serve-"));
const storePath = join(directory, "store");
const startTimeoutMs = 20_000;
const children = new Set<ChildProcessWithoutNullStreams>();

after(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(directory, { recursive: true, force: true });
});

const snaplog = cliForStore(storePath, { cwd: directory });

interface Server {
  child: ChildProcessWithoutNullStreams;
  /** Endpoint lines printed on stdout. */
  endpoints: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns serve and waits for its endpoint lines (the last one is the API's unix socket, or TCP with --api). */
async function startServe(args: string[] = ["--nbd", "127.0.0.1:0", "--api", "127.0.0.1:0"]): Promise<Server> {
  const child = spawn(process.execPath, [snaplogMainPath, "--store", storePath, "serve", ...args], {
    cwd: directory,
    env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" },
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const expectedLines = args.includes("--api") ? 3 : 2;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), startTimeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.split("\n").filter((line) => line.length > 0).length >= expectedLines) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${stderr}`));
    });
  });
  return { child, endpoints: stdout.trim().split("\n"), stderr: () => stderr, exited };
}

function nbdPort(server: Server): number {
  const line = server.endpoints.find((endpoint) => endpoint.startsWith("nbd: "));
  const match = /^nbd: nbd:\/\/127\.0\.0\.1:(\d+)/.exec(line ?? "");
  assert.ok(match, `nbd endpoint line: ${server.endpoints.join(" | ")}`);
  return Number(match[1]);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, headers }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
      })
      .on("error", reject);
  });
}

test("serve: endpoints, CLI through the server, one owner, SIGKILL recovery, SIGTERM", async () => {
  assert.equal(snaplog("init").code, 0);
  assert.equal(snaplog("disk", "create", "vm1", "--size", "4M").code, 0);

  const first = await startServe();
  const port = nbdPort(first);
  assert.notEqual(port, 0, "the endpoint line shows the real port");
  assert.ok(await canConnect(port), "NBD listens on the printed port");
  assert.ok(first.endpoints.includes(`api: unix:${join(storePath, "api.sock")}`), first.endpoints.join(" | "));
  const apiLine = first.endpoints.find((endpoint) => endpoint.startsWith("api: http://"))!;
  const apiPort = Number(/:(\d+) /.exec(apiLine)![1]);

  // The CLI goes through the running server (the store is locked, so direct mode could not work).
  const status = JSON.parse(snaplog("--json", "status").stdout);
  assert.equal(status.mode, "server");
  assert.equal(status.pid, first.child.pid);
  assert.deepEqual(status.nbd, [`nbd://127.0.0.1:${port}`]);
  const created = snaplog("--json", "disk", "create", "vm2", "--size", "8M");
  assert.equal(created.code, 0, created.stderr);
  assert.equal(JSON.parse(created.stdout).name, "vm2");
  const snapshot = JSON.parse(snaplog("--json", "snapshot", "create", "vm2", "--name", "s1").stdout);
  assert.equal(snapshot.name, "s1");
  // What a refused command must not change (the journal's length is not: background maintenance may append a record).
  const diskState = () =>
    (JSON.parse(snaplog("--json", "disk", "list").stdout) as Record<string, unknown>[]).map(
      ({ journalBytes: _journalBytes, ...rest }) => rest,
    );
  const listBefore = diskState();
  for (const [args, code] of [
    [["disk", "create", "vm2", "--size", "1M"], 4],
    [["snapshot", "create", "nodisk"], 3],
    [["snapshot", "create", "vm2", "--name", "s1"], 4],
  ] as const) {
    const result = snaplog(...args);
    assert.equal(result.code, code, result.stderr);
    assert.match(result.stderr, /^snaplog: [^\n]+\n(hint: [^\n]+\n)?$/);
  }
  assert.deepEqual(diskState(), listBefore);

  // TCP API: bearer token required.
  assert.equal((await get(apiPort, "/v1/disks")).status, 401);
  const token = readFileSync(join(storePath, "api.token"), "utf8").trim();
  assert.equal((await get(apiPort, "/v1/disks", { authorization: `Bearer ${token}` })).status, 200);
  const metrics = await get(apiPort, "/metrics", { authorization: `Bearer ${token}` });
  assert.match(metrics.text, /^snaplog_nbd_connections_total \d+$/m);

  // A second server on the same store fails at once, with a clear message.
  const startedAtMs = Date.now();
  const second = snaplog("serve", "--nbd", "127.0.0.1:0");
  assert.equal(second.code, 5, second.stderr);
  assert.match(second.stderr, new RegExp(`^snaplog: store .* is in use by process ${first.child.pid}`));
  assert.ok(Date.now() - startedAtMs < 10_000);
  assert.equal(second.stdout, "");

  // SIGKILL leaves a stale lock and a stale socket; the next serve replaces both.
  first.child.kill("SIGKILL");
  await first.exited;
  assert.ok(existsSync(join(storePath, "api.sock")), "SIGKILL left the socket behind");
  const third = await startServe(["--nbd", "127.0.0.1:0"]);
  assert.deepEqual(
    JSON.parse(snaplog("--json", "disk", "list").stdout).map((disk: { name: string }) => disk.name),
    ["vm1", "vm2"],
  );
  assert.equal(JSON.parse(snaplog("--json", "status").stdout).pid, third.child.pid);

  // SIGTERM: clean shutdown, exit 0, lock and socket gone; the CLI then works directly.
  third.child.kill("SIGTERM");
  assert.deepEqual(await third.exited, { code: 0, signal: null }, third.stderr());
  assert.equal(existsSync(join(storePath, "api.sock")), false);
  assert.equal(existsSync(join(storePath, "store.lock")), false);
  const direct = JSON.parse(snaplog("--json", "status").stdout);
  assert.equal(direct.mode, "direct");
  assert.deepEqual(
    JSON.parse(snaplog("--json", "snapshot", "list", "vm2").stdout).map((s: { name: string }) => s.name),
    ["s1"],
  );
});

test("serve --demo creates the store and a 1 GiB disk demo, and names it in the endpoint line", async () => {
  const demoStore = join(directory, "demo-store");
  const child = spawn(process.execPath, [snaplogMainPath, "--store", demoStore, "serve", "--demo", "--nbd", "127.0.0.1:0"], {
    cwd: directory,
  });
  children.add(child as ChildProcessWithoutNullStreams);
  let stdout = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("serve --demo did not start")), startTimeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes("api: unix:")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  assert.match(stdout, /^nbd: nbd:\/\/127\.0\.0\.1:[1-9]\d*\/demo$/m);
  const list = runCli(["--store", demoStore, "--json", "disk", "list"]);
  assert.equal(list.code, 0, list.stderr);
  const disks = JSON.parse(list.stdout) as Array<{ name: string; sizeBytes: number }>;
  assert.deepEqual(
    disks.map((disk) => [disk.name, disk.sizeBytes]),
    [["demo", 1024 ** 3]],
  );
  child.kill("SIGINT");
  const code = await new Promise((resolve) => child.once("exit", resolve));
  assert.equal(code, 0);
});

test("serve refuses bad addresses with one line and exit 2", () => {
  for (const args of [
    ["--nbd", "nowhere"],
    ["--nbd", "127.0.0.1:99999"],
    ["--api", "x:y"],
  ]) {
    const result = snaplog("serve", ...args);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^snaplog: invalid address [^\n]+\n$/);
  }
});
