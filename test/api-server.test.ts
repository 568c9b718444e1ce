/**
 * Goal: the HTTP API keeps SPEC §3.3 and §2 "Bad input": the OpenAPI document is served,
 * TCP needs the bearer token, bad bodies get a 4xx with a one-line message and change
 * nothing, store errors map to the status table and back to the same SnaplogError in
 * ApiClient, /metrics speaks the Prometheus text format, and a stale socket is replaced
 * while a live one is refused. Method: a real server on a unix socket (and TCP on an
 * ephemeral port) in front of an in-memory Operations, so these tests do not need the Store.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../src/api/client.js";
import { startApiServer, type ApiServer } from "../src/api/server.js";
import type {
  CreateDiskRequest,
  CreateSnapshotRequest,
  DiskDetail,
  DiskInfo,
  Operations,
  SnapshotInfo,
  StoreStatus,
} from "../src/store/operations.js";
import { apiSocketPath, apiTokenPath } from "../src/store/paths.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";

/** Just enough of a store to answer every route; counts calls that would change it. */
class MemoryOperations implements Operations {
  readonly disks = new Map<string, DiskDetail>();
  mutationCount = 0;

  async listDisks(): Promise<DiskInfo[]> {
    return [...this.disks.values()].map(({ snapshots: _snapshots, ...info }) => info);
  }
  async showDisk(name: string): Promise<DiskDetail> {
    const disk = this.disks.get(name);
    if (disk === undefined) throw new SnaplogError(ErrorCodes.NOT_FOUND, `no disk "${name}"`, { hint: "see snaplog disk list" });
    return disk;
  }
  async createDisk(request: CreateDiskRequest): Promise<DiskInfo> {
    if (this.disks.has(request.name)) throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `disk "${request.name}" exists`);
    this.mutationCount += 1;
    const disk: DiskDetail = {
      name: request.name,
      sizeBytes: request.sizeBytes,
      blockSizeBytes: request.blockSizeBytes ?? 4096,
      lun: this.disks.size,
      historySeconds: request.historySeconds ?? 3600,
      createdAt: new Date(0).toISOString(),
      hasBaseline: request.fromImage !== undefined,
      entryCount: 0,
      logBytes: 0,
      segmentBytes: 0,
      journalBytes: 0,
      lsnLast: 0,
      snapshotCount: 0,
      snapshots: [],
    };
    this.disks.set(request.name, disk);
    return (await this.listDisks()).find((info) => info.name === request.name)!;
  }
  async deleteDisk(name: string): Promise<void> {
    await this.showDisk(name);
    this.mutationCount += 1;
    this.disks.delete(name);
  }
  async createSnapshot(request: CreateSnapshotRequest): Promise<SnapshotInfo> {
    const disk = await this.showDisk(request.disk);
    this.mutationCount += 1;
    const snapshot = { disk: disk.name, name: request.name ?? `snap-${disk.snapshots.length}`, lun: request.lun ?? 100, lsn: 0, createdAt: new Date(0).toISOString() };
    disk.snapshots.push(snapshot);
    disk.snapshotCount += 1;
    return snapshot;
  }
  async listSnapshots(disk: string): Promise<SnapshotInfo[]> {
    return (await this.showDisk(disk)).snapshots;
  }
  async status(): Promise<StoreStatus> {
    return {
      path: "/memory",
      version: "0.1.0",
      pid: process.pid,
      mode: "server",
      uptimeSeconds: 1,
      diskCount: this.disks.size,
      snapshotCount: 0,
      usedBytes: 0,
      freeBytes: 0,
      checksumErrors: 0,
      nbd: [],
      disks: await this.listDisks(),
    };
  }
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function send(target: { socketPath: string } | { host: string; port: number }, method: string, path: string, options: { body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ ...target, method, path, headers: options.headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString() }));
    });
    request.on("error", reject);
    request.end(options.body);
  });
}

const json = { "content-type": "application/json" };
const directory = mkdtempSync(join(tmpdir(), "snaplog-api-"));
const socketPath = apiSocketPath(directory);
const tokenPath = apiTokenPath(directory);
const operations = new MemoryOperations();
let server: ApiServer;

before(async () => {
  server = await startApiServer({ operations, storePath: directory, tcp: { host: "127.0.0.1", port: 0 } });
});
after(async () => {
  await server?.close();
  rmSync(directory, { recursive: true, force: true });
});

test("the OpenAPI document lists every route", async () => {
  const answer = await send({ socketPath }, "GET", "/v1/openapi.json");
  assert.equal(answer.status, 200);
  const document = JSON.parse(answer.text) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.match(document.openapi, /^3\./);
  assert.deepEqual(Object.keys(document.paths["/v1/disks"]).sort(), ["get", "post"]);
  assert.deepEqual(Object.keys(document.paths["/v1/disks/{name}"]).sort(), ["delete", "get"]);
  assert.deepEqual(Object.keys(document.paths["/v1/disks/{name}/snapshots"]).sort(), ["get", "post"]);
  assert.ok(document.paths["/v1/status"].get);
});

test("the socket and the token file are private (0600)", () => {
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  assert.equal(statSync(tokenPath).mode & 0o777, 0o600);
  assert.match(readFileSync(tokenPath, "utf8").trim(), /^[0-9a-f]{64}$/);
});

test("TCP answers 401 without the right bearer token, 200 with it", async () => {
  const tcp = server.tcp!;
  const token = readFileSync(tokenPath, "utf8").trim();
  for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: token }] as Array<Record<string, string>>) {
    const answer = await send(tcp, "GET", "/v1/disks", { headers });
    assert.equal(answer.status, 401);
    assert.equal(JSON.parse(answer.text).error.message, "missing or wrong bearer token");
  }
  const denied = await send(tcp, "POST", "/v1/disks", { headers: json, body: JSON.stringify({ name: "tcp", sizeBytes: 4096 }) });
  assert.equal(denied.status, 401);
  assert.equal(operations.disks.has("tcp"), false);
  const allowed = await send(tcp, "GET", "/v1/disks", { headers: { authorization: `Bearer ${token}` } });
  assert.equal(allowed.status, 200);
});

test("bad bodies get 400 with a one-line message and change nothing", async () => {
  const before = operations.mutationCount;
  const cases: Array<{ path: string; body: string }> = [
    { path: "/v1/disks", body: JSON.stringify({ name: "a b", sizeBytes: 4096 }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "..", sizeBytes: 4096 }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "x".repeat(65), sizeBytes: 4096 }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "ok", sizeBytes: "abc" }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "ok", sizeBytes: "4096" }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "ok", sizeBytes: 0 }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "ok", sizeBytes: -1 }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "ok", sizeBytes: 1.5 }) },
    { path: "/v1/disks", body: JSON.stringify({ name: "ok", sizeBytes: 4096, surprise: true }) },
    { path: "/v1/disks", body: JSON.stringify({ sizeBytes: 4096 }) },
    { path: "/v1/disks", body: "{not json" },
    { path: "/v1/disks", body: "[]" },
    { path: "/v1/disks/nothere/snapshots", body: JSON.stringify({ lun: -3 }) },
  ];
  for (const { path, body } of cases) {
    const answer = await send({ socketPath }, "POST", path, { headers: json, body });
    assert.equal(answer.status, 400, `${body} → ${answer.text}`);
    const parsed = JSON.parse(answer.text) as { error: { code: string; message: string } };
    assert.equal(parsed.error.code, ErrorCodes.INVALID_ARGUMENT);
    assert.ok(parsed.error.message.length > 0 && !parsed.error.message.includes("\n"), parsed.error.message);
  }
  const badName = await send({ socketPath }, "GET", "/v1/disks/a%20b");
  assert.equal(badName.status, 400);
  assert.equal(operations.mutationCount, before);
  assert.equal(operations.disks.size, 0);
});

test("store errors map to their HTTP status, and ApiClient turns them back", async () => {
  const missing = await send({ socketPath }, "GET", "/v1/disks/nothere");
  assert.equal(missing.status, 404);
  assert.deepEqual(JSON.parse(missing.text), { error: { code: ErrorCodes.NOT_FOUND, message: 'no disk "nothere"', hint: "see snaplog disk list" } });
  const noRoute = await send({ socketPath }, "GET", "/v2/nothing");
  assert.equal(noRoute.status, 404);

  const client = (await ApiClient.connectIfRunning(directory))!;
  assert.ok(client);
  const created = await client.createDisk({ name: "vm1", sizeBytes: 1 << 20 });
  assert.equal(created.name, "vm1");
  await assert.rejects(client.createDisk({ name: "vm1", sizeBytes: 1 << 20 }), (error: unknown) => {
    assert.ok(error instanceof SnaplogError);
    assert.equal(error.code, ErrorCodes.ALREADY_EXISTS);
    assert.equal(error.message, 'disk "vm1" exists');
    return true;
  });
  await assert.rejects(client.showDisk("ghost"), (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND && error.hint === "see snaplog disk list");
  await assert.rejects(client.createDisk({ name: "bad/name", sizeBytes: 1 }), (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.INVALID_ARGUMENT);
  const snapshot = await client.createSnapshot({ disk: "vm1", name: "first", lun: 7 });
  assert.deepEqual({ name: snapshot.name, lun: snapshot.lun }, { name: "first", lun: 7 });
  assert.equal((await client.listSnapshots("vm1")).length, 1);
  assert.equal((await client.showDisk("vm1")).snapshots[0].name, "first");
  assert.equal((await client.status()).mode, "server");
  await client.deleteDisk("vm1");
  assert.deepEqual(await client.listDisks(), []);
});

test("/metrics is in the Prometheus text format", async () => {
  const answer = await send({ socketPath }, "GET", "/metrics");
  assert.equal(answer.status, 200);
  assert.match(String(answer.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  assert.match(answer.text, /^# HELP process_cpu_user_seconds_total /m);
  assert.match(answer.text, /^# TYPE snaplog_api_requests_total counter$/m);
  assert.match(answer.text, /^snaplog_api_requests_total\{method="GET",route="\/v1\/disks\/:name",status="404"\} \d+$/m);
});

test("connectIfRunning answers undefined when nothing listens", async () => {
  assert.equal(await ApiClient.connectIfRunning(join(directory, "none")), undefined);
});

test("a live socket is refused with CONFLICT, a stale one is replaced", async () => {
  await assert.rejects(
    startApiServer({ operations, storePath: directory }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CONFLICT,
  );
  assert.ok(existsSync(socketPath), "the live server's socket is left alone");
  assert.equal((await send({ socketPath }, "GET", "/v1/disks")).status, 200);

  // A process killed with SIGKILL leaves its socket file behind.
  const stalePath = join(directory, "stale.sock");
  const child = spawn(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(stalePath)}, () => console.log("up"))`], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve) => child.stdout.once("data", resolve));
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  assert.ok(existsSync(stalePath));
  assert.equal(await ApiClient.connectToSocketIfRunning(stalePath), undefined);
  const second = await startApiServer({ operations, storePath: directory, socketPath: stalePath });
  try {
    assert.equal((await send({ socketPath: stalePath }, "GET", "/v1/disks")).status, 200);
  } finally {
    await second.close();
  }
  assert.equal(existsSync(stalePath), false, "close removes the socket");
});
