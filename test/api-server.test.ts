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
import { setImmediate as nextTurn } from "node:timers/promises";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import * as net from "node:net";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../src/api/client.js";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { API_BODY_BYTES_MAX, API_CONNECTIONS_MAX, buildApiApp, startApiServer, type ApiServer } from "../src/api/server.js";
import {
  checkRestoreRequest,
  type CompactRequest,
  type CompactResult,
  type CreateDiskRequest,
  type CreateSnapshotRequest,
  type DeleteSnapshotResult,
  type DiffRequest,
  type DiffRun,
  type DiskDetail,
  type DiskInfo,
  type DiskPolicy,
  type LogEntry,
  type LogRequest,
  type Operations,
  type PolicyUpdate,
  type PruneRequest,
  type PruneResult,
  type StoreEvent,
  type ProgressCallback,
  type RestoreRequest,
  type RestoreResult,
  type ScrubRequest,
  type ScrubResult,
  type MirrorResyncResult,
  type MirrorStatus,
  type SnapshotInfo,
  type StoreStatus,
} from "../src/store/operations/index.js";
import { apiSocketPath, apiTokenPath } from "../src/store/paths.js";
import { defaultSettings } from "../src/store/policy/policy-settings.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { collect, parseNdjson } from "./support/ndjson.js";
import { waitFor } from "./support/wait-for.js";

/** How the long-running operations behave: a test sets it to report progress, wait or fail. */
type LongRun = (onProgress: ProgressCallback | undefined) => Promise<void>;

/**
 * Just enough of a store to answer every route; counts calls that would change it. The log
 * and diff streams are generated (logEntryCount items, or endless), can fail after
 * `streamFailAfter` items, and record how many items were pulled and whether the stream was
 * closed, so tests can see backpressure and a disconnect reach the store.
 */
class MemoryOperations implements Operations {
  readonly disks = new Map<string, DiskDetail>();
  mutationCount = 0;
  longRun: LongRun = async () => undefined;
  logEntryCount = 3;
  streamFailAfter: number | undefined;
  itemsPulled = 0;
  streamClosed = false;

  async listDisks(): Promise<DiskInfo[]> {
    return [...this.disks.values()].map(({ snapshots: _snapshots, space: _space, policy: _policy, ...info }) => info);
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
      space: {
        baselineBytes: 0,
        logLiveBytes: 0,
        logDeadBytes: 0,
        logFreeBytes: 0,
        segmentBytes: 0,
        liveEntries: 0,
        deadEntries: 0,
        window: { lsnFirst: 0, timeFirst: null, lsnLast: 0 },
      },
      policy: { ...defaultSettings(request.historySeconds ?? 3600), nextScheduledRun: null, retentionWouldDelete: [] },
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
    const snapshot = {
      disk: disk.name,
      name: request.name ?? `snap-${disk.snapshots.length}`,
      lun: request.lun ?? 100,
      lsn: 0,
      createdAt: new Date(0).toISOString(),
      scheduled: false,
    };
    disk.snapshots.push(snapshot);
    disk.snapshotCount += 1;
    return snapshot;
  }
  async listSnapshots(disk: string): Promise<SnapshotInfo[]> {
    return (await this.showDisk(disk)).snapshots;
  }
  async deleteSnapshot(diskName: string, name: string): Promise<DeleteSnapshotResult> {
    const disk = await this.showDisk(diskName);
    const index = disk.snapshots.findIndex((snapshot) => snapshot.name === name);
    if (index === -1) throw new SnaplogError(ErrorCodes.NOT_FOUND, `disk ${diskName} has no snapshot named "${name}"`);
    this.mutationCount += 1;
    const [snapshot] = disk.snapshots.splice(index, 1);
    disk.snapshotCount -= 1;
    return { ...snapshot, entriesFreed: 2, bytesFreed: 8192 };
  }
  async showPolicy(disk: string): Promise<DiskPolicy> {
    return (await this.showDisk(disk)).policy;
  }
  async setPolicy({ disk, hooksAdd: _add, hooksRemove: _remove, ...changes }: PolicyUpdate): Promise<DiskPolicy> {
    const detail = await this.showDisk(disk);
    this.mutationCount += 1;
    detail.policy = { ...detail.policy, ...changes };
    return detail.policy;
  }
  async prunePolicy(request: PruneRequest): Promise<PruneResult> {
    await this.showDisk(request.disk);
    return { disk: request.disk, dryRun: request.dryRun === true, deleted: [] };
  }
  async *readEvents(): AsyncGenerator<StoreEvent> {
    yield { seq: 1, time: new Date(0).toISOString(), type: "snapshot-created", message: "made by the memory store" };
  }
  async mirrorStatus(disk: string): Promise<MirrorStatus> {
    await this.showDisk(disk);
    return { disk, path: "/mirror.img", state: "in-sync", bytesCopied: 0, blocksRepaired: 0, dirtyBytes: 0, regionBytes: 1048576 };
  }
  async resyncMirror(disk: string, onProgress?: ProgressCallback): Promise<MirrorResyncResult> {
    await this.showDisk(disk);
    await this.longRun(onProgress);
    return { disk, path: "/mirror.img", state: "in-sync", bytesCopied: 0, regionsChecked: 0 };
  }
  async compact(request: CompactRequest, onProgress?: ProgressCallback): Promise<CompactResult> {
    await this.showDisk(request.disk);
    this.mutationCount += 1;
    await this.longRun(onProgress);
    const mode = request.intoBaseline === true ? "into-baseline" : "in-place";
    return {
      disk: request.disk,
      mode,
      entriesFreed: 5,
      bytesFreed: 20480,
      bytesMoved: 0,
      entriesScanned: 9,
      bytesScanned: 36864,
      segmentsReleased: 1,
      lsnFold: 0,
      scanMs: 1,
      durationMs: 1.5,
      corruptBlocks: [],
    };
  }
  // Archive streams are tested against a real store (test/archive-stream.test.ts): here they only exist.
  async exportStream(request: { disk: string }): Promise<never> {
    await this.showDisk(request.disk);
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no streams in memory");
  }
  async importStream(request: { disk: string }): Promise<never> {
    await this.showDisk(request.disk);
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no streams in memory");
  }
  // Vaults are tested against real targets (test/vault-archive.test.ts).
  async addVault(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no vaults in memory");
  }
  async listVaults(): Promise<[]> {
    return [];
  }
  async removeVault(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no vaults in memory");
  }
  async listVaultChains(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no vaults in memory");
  }
  async archive(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no vaults in memory");
  }
  async restoreFromVault(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no vaults in memory");
  }
  // Replication is tested between real servers (test/replication.test.ts).
  async replicaHello(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async replicaBatch(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async replicaResync(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async replicaDeleteSnapshots(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async promoteDisk(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async replicate(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async stopReplication(): Promise<never> {
    throw new SnaplogError(ErrorCodes.UNSUPPORTED, "no replication in memory");
  }
  async listRelations(): Promise<[]> {
    return [];
  }

  async restore(request: RestoreRequest, onProgress?: ProgressCallback): Promise<RestoreResult> {
    // The Store's own check of a request's fields (shared with the CLI).
    checkRestoreRequest(request);
    await this.showDisk(request.disk);
    if (request.at === "lsn:999") throw new SnaplogError(ErrorCodes.OUTSIDE_WINDOW, "LSN 999 is in the future");
    this.mutationCount += 1;
    await this.longRun(onProgress);
    return { disk: request.disk, mode: "file", lsn: 7, time: null, file: { path: request.to ?? "", sizeBytes: 4096, bytesWritten: 4096 } };
  }
  /** Every disk scrubs clean, except those named here, which report one damaged entry at block 3. */
  readonly damagedDisks = new Set<string>();
  scrubRequests: ScrubRequest[] = [];
  async scrub(request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult> {
    const names = request.disk === undefined ? [...this.disks.keys()] : [(await this.showDisk(request.disk)).name];
    this.scrubRequests.push(request);
    await this.longRun(onProgress);
    const disks = names.map((disk) => {
      const corrupt = this.damagedDisks.has(disk)
        ? [
            {
              block: 3,
              lsn: 9,
              offsetBytes: 3 * 4096,
              file: `disks/${disk}/segment-00000000.dat`,
              fileOffsetBytes: 8192,
              reason: "checksum mismatch",
            },
          ]
        : [];
      return {
        disk,
        entriesChecked: 4,
        bytesChecked: 4 * 4096,
        corrupt,
        repaired: [],
        baselineUnknownBlocks: [],
        ok: corrupt.length === 0,
      };
    });
    return { disks, ok: disks.every((disk) => disk.ok), durationMs: 2 };
  }
  async *readLog(request: LogRequest): AsyncIterable<LogEntry> {
    await this.showDisk(request.disk);
    if (request.since === "lsn:999") throw new SnaplogError(ErrorCodes.OUTSIDE_WINDOW, "LSN 999 is in the future");
    yield* this.generate((index) => ({
      kind: "write",
      lsnFirst: index + 1,
      lsnLast: index + 1,
      time: new Date(index * 1000).toISOString(),
      block: index,
      blockCount: 1,
      offsetBytes: index * 4096,
      lengthBytes: 4096,
      ...(request.data === true ? { data: Buffer.from(`entry ${index}`).toString("base64") } : {}),
    }));
  }
  async *diff(request: DiffRequest): AsyncIterable<DiffRun> {
    await this.showDisk(request.disk);
    if (request.from === request.to) throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, "FROM and TO are the same");
    yield* this.generate((index) => ({ block: index * 2, blockCount: 1, offsetBytes: index * 8192, lengthBytes: 4096 }));
  }
  private async *generate<T>(item: (index: number) => T): AsyncGenerator<T> {
    this.itemsPulled = 0;
    this.streamClosed = false;
    try {
      for (let index = 0; index < this.logEntryCount; index++) {
        if (index === this.streamFailAfter)
          throw new SnaplogError(ErrorCodes.IO, "I/O error: the medium went away", { hint: "check the disk" });
        this.itemsPulled += 1;
        // A real store reads files here; yield to the event loop the same way.
        if (index % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
        yield item(index);
      }
    } finally {
      this.streamClosed = true;
    }
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
      disks: await this.listDisks(),
      replication: [],
      mirrors: [],
    };
  }
}

/** The parts of the OpenAPI document the tests look at. */
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function send(
  target: { socketPath: string } | { host: string; port: number },
  method: string,
  path: string,
  options: { body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ ...target, method, path, headers: options.headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString() }),
      );
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
  const document = JSON.parse(answer.text) as OpenApiDocument;
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

test("a JSON body past API_BODY_BYTES_MAX is 413 with a one-line message, and changes nothing", async () => {
  const before = operations.mutationCount;
  const body = JSON.stringify({ name: "big", sizeBytes: 4096, padding: "x".repeat(API_BODY_BYTES_MAX) });
  const answer = await send({ socketPath }, "POST", "/v1/disks", { headers: json, body });
  assert.equal(answer.status, 413, answer.text);
  const parsed = JSON.parse(answer.text) as { error: { code: string; message: string } };
  assert.match(parsed.error.message, /body/i);
  assert.ok(!parsed.error.message.includes("\n"));
  assert.equal(operations.mutationCount, before);
});

test("past API_CONNECTIONS_MAX open connections on a listener a new one is closed at once; a freed place is taken again", async () => {
  const tcp = server.tcp!;
  const open = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: tcp.host, port: tcp.port }, () => resolve(socket));
      socket.once("error", reject);
    });
  const held: net.Socket[] = [];
  try {
    for (let index = 0; index < API_CONNECTIONS_MAX; index++) held.push(await open());
    // Let the server count them all before the next one comes.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await open();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      refused.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
      refused.on("error", () => {});
    });
    assert.ok(closed, "the connection past the limit is closed");
    held.pop()?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answer = await send(tcp, "GET", "/v1/disks", { headers: { authorization: `Bearer ${readFileSync(tokenPath, "utf8").trim()}` } });
    assert.equal(answer.status, 200);
  } finally {
    for (const socket of held) socket.destroy();
  }
});

test("store errors map to their HTTP status, and ApiClient turns them back", async () => {
  const missing = await send({ socketPath }, "GET", "/v1/disks/nothere");
  assert.equal(missing.status, 404);
  assert.deepEqual(JSON.parse(missing.text), {
    error: { code: ErrorCodes.NOT_FOUND, message: 'no disk "nothere"', hint: "see snaplog disk list" },
  });
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
  await assert.rejects(
    client.showDisk("ghost"),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND && error.hint === "see snaplog disk list",
  );
  await assert.rejects(
    client.createDisk({ name: "bad/name", sizeBytes: 1 }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.INVALID_ARGUMENT,
  );
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
  const child = spawn(
    process.execPath,
    ["-e", `require("node:net").createServer().listen(${JSON.stringify(stalePath)}, () => console.log("up"))`],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
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

// ---- history operations: snapshot delete, policy, compact, restore, log, diff ---------------
//
// Goal: the routes added for the history operations keep SPEC §3.3 and the streaming
// contract in src/api/ndjson.ts: plain JSON where the answer is small; NDJSON for the log, a
// diff and the progress of compact/restore; an error before anything was sent keeps its HTTP
// status, one after ends the stream with an {"error"} line; streams follow the client's pace
// and stop the store's reader when it disconnects. Method: inject() against an app over its
// own MemoryOperations, and a second real server on its own socket for ApiClient and for
// backpressure and disconnects, which inject() cannot show.

const historyOperations = new MemoryOperations();
const historySocketPath = join(directory, "history.sock");
let historyApp: FastifyInstance;
let historyServer: ApiServer;

before(async () => {
  // Every progress report is a line (no throttle): the tests below see exactly what the operation reported.
  historyApp = await buildApiApp({ operations: historyOperations, metrics: new Registry(), progress: { intervalMs: 0 } });
  historyServer = await startApiServer({
    operations: historyOperations,
    storePath: directory,
    socketPath: historySocketPath,
    progress: { intervalMs: 0 },
  });
  await historyOperations.createDisk({ name: "vm1", sizeBytes: 1 << 20 });
  await historyOperations.createSnapshot({ disk: "vm1", name: "s1", lun: 5 });
  await historyOperations.createSnapshot({ disk: "vm1", name: "s2", lun: 6 });
});
after(async () => {
  await historyApp?.close();
  await historyServer?.close();
});

/** Each test starts from the default behaviour of the long operations and streams. */
function resetHistoryBehaviour(): void {
  historyOperations.longRun = async () => undefined;
  historyOperations.damagedDisks.clear();
  historyOperations.scrubRequests = [];
  historyOperations.logEntryCount = 3;
  historyOperations.streamFailAfter = undefined;
}

/** Reports progress `steps` times (step × 4096 of steps × 4096), a turn of the event loop apart, then optionally fails. */
function progressing(steps: number, failure?: Error): LongRun {
  return async (onProgress) => {
    for (let step = 1; step <= steps; step++) {
      onProgress?.(step * 4096, steps * 4096);
      await nextTurn();
    }
    if (failure !== undefined) throw failure;
  };
}

/** The progress lines `progressing(steps)` makes when every report is a line. */
function progressLines(steps: number): Array<{ progress: { done: number; total: number } }> {
  return Array.from({ length: steps }, (_, index) => ({ progress: { done: (index + 1) * 4096, total: steps * 4096 } }));
}

/** The value once it stays the same for `turns` turns of the event loop: nothing is left to move it. */
async function settledValue(read: () => number, turns = 200): Promise<number> {
  let settled = -1;
  await waitFor(`a value that stays the same for ${turns} turns`, async () => {
    const before = read();
    for (let turn = 0; turn < turns; turn++) await nextTurn();
    settled = read();
    return settled === before;
  });
  return settled;
}

test("the OpenAPI document lists the history routes, with NDJSON answers for the streams", async () => {
  const answer = await historyApp.inject({ method: "GET", url: "/v1/openapi.json" });
  const document = JSON.parse(answer.body) as OpenApiDocument;
  assert.deepEqual(Object.keys(document.paths["/v1/disks/{name}/snapshots/{snapshot}"]), ["delete"]);
  assert.deepEqual(Object.keys(document.paths["/v1/disks/{name}/policy"]).sort(), ["get", "patch"]);
  for (const [path, method] of [
    ["compact", "post"],
    ["restore", "post"],
    ["log", "get"],
    ["diff", "get"],
  ] as const) {
    const content = document.paths[`/v1/disks/{name}/${path}`][method].responses["200"].content ?? {};
    assert.deepEqual(Object.keys(content), ["application/x-ndjson"], path);
  }
  assert.match(JSON.stringify(document.paths["/v1/disks/{name}/compact"].post.responses["200"]), /corruptBlocks/);
  const detail = JSON.stringify(document.paths["/v1/disks/{name}"].get.responses["200"]);
  assert.match(detail, /logDeadBytes/);
  assert.match(detail, /compactOnDelete/);
});

test("GET /v1/disks/:name carries space and policy", async () => {
  const answer = await historyApp.inject({ method: "GET", url: "/v1/disks/vm1" });
  assert.equal(answer.statusCode, 200);
  const detail = JSON.parse(answer.body) as DiskDetail;
  assert.equal(detail.sizeBytes, 1 << 20);
  assert.deepEqual(detail.space.window, { lsnFirst: 0, timeFirst: null, lsnLast: 0 });
  assert.deepEqual(pick(detail.policy, ["historySeconds", "autoCompact", "compactOnDelete"]), {
    historySeconds: 3600,
    autoCompact: true,
    compactOnDelete: true,
  });
});

test("DELETE a snapshot answers what was deleted and freed; an unknown one is 404", async () => {
  const deleted = await historyApp.inject({ method: "DELETE", url: "/v1/disks/vm1/snapshots/s2" });
  assert.equal(deleted.statusCode, 200, deleted.body);
  assert.deepEqual(JSON.parse(deleted.body), {
    disk: "vm1",
    name: "s2",
    lun: 6,
    lsn: 0,
    createdAt: new Date(0).toISOString(),
    scheduled: false,
    entriesFreed: 2,
    bytesFreed: 8192,
  });
  const again = await historyApp.inject({ method: "DELETE", url: "/v1/disks/vm1/snapshots/s2" });
  assert.equal(again.statusCode, 404);
  assert.equal(JSON.parse(again.body).error.code, ErrorCodes.NOT_FOUND);
});

test("policy: GET shows it, PATCH changes only the fields given and answers the whole policy", async () => {
  const shown = await historyApp.inject({ method: "GET", url: "/v1/disks/vm1/policy" });
  const basics = ["historySeconds", "autoCompact", "compactOnDelete", "lunPolicy", "snapshotEverySeconds"];
  assert.deepEqual(pick(JSON.parse(shown.body), basics), {
    historySeconds: 3600,
    autoCompact: true,
    compactOnDelete: true,
    lunPolicy: "sequential",
    snapshotEverySeconds: null,
  });
  const changed = await historyApp.inject({
    method: "PATCH",
    url: "/v1/disks/vm1/policy",
    payload: { autoCompact: false, historySeconds: 60 },
  });
  assert.equal(changed.statusCode, 200, changed.body);
  assert.deepEqual(pick(JSON.parse(changed.body), basics), {
    historySeconds: 60,
    autoCompact: false,
    compactOnDelete: true,
    lunPolicy: "sequential",
    snapshotEverySeconds: null,
  });
  const missing = await historyApp.inject({ method: "GET", url: "/v1/disks/nothere/policy" });
  assert.equal(missing.statusCode, 404);
});

test("bad history bodies and queries get 400 with a one-line message and change nothing", async () => {
  resetHistoryBehaviour();
  const before = historyOperations.mutationCount;
  const cases: Array<{ method: "PATCH" | "POST" | "GET" | "DELETE"; url: string; payload?: unknown }> = [
    { method: "PATCH", url: "/v1/disks/vm1/policy", payload: {} },
    { method: "PATCH", url: "/v1/disks/vm1/policy", payload: { historySeconds: -1 } },
    { method: "PATCH", url: "/v1/disks/vm1/policy", payload: { historySeconds: "1h" } },
    { method: "PATCH", url: "/v1/disks/vm1/policy", payload: { autoCompact: "yes" } },
    { method: "PATCH", url: "/v1/disks/vm1/policy", payload: { mergeOldest: true } },
    { method: "POST", url: "/v1/disks/vm1/compact", payload: { intoBaseline: "true" } },
    { method: "POST", url: "/v1/disks/vm1/compact", payload: { snapshot: "a b" } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { to: "/tmp/x.raw" } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "", rollback: true } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:1", rollback: true, lun: 0 } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:1", asSnapshot: "../x" } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:1", to: "/tmp/x.raw", asSnapshot: "both" } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:1", to: "/tmp/x.raw", lun: 3 } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:1", to: "relative.raw" } },
    { method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:1", asSnapshot: "x", name: "y" } },
    { method: "GET", url: "/v1/disks/vm1/log?data=yes" },
    { method: "GET", url: "/v1/disks/vm1/log?bogus=1" },
    { method: "GET", url: "/v1/disks/vm1/log?snapshot=a%20b" },
    { method: "GET", url: "/v1/disks/vm1/diff?from=s1" },
    { method: "GET", url: "/v1/disks/vm1/diff?from=s1&to=s1" },
    { method: "DELETE", url: "/v1/disks/vm1/snapshots/a%20b" },
  ];
  for (const { method, url, payload } of cases) {
    const answer = await historyApp.inject({ method, url, payload: payload as Record<string, unknown> | undefined });
    assert.equal(answer.statusCode, 400, `${method} ${url} ${JSON.stringify(payload)} → ${answer.body}`);
    assert.match(String(answer.headers["content-type"]), /^application\/json/);
    const parsed = JSON.parse(answer.body) as { error: { code: string; message: string } };
    assert.equal(parsed.error.code, ErrorCodes.INVALID_ARGUMENT);
    assert.ok(parsed.error.message.length > 0 && !parsed.error.message.includes("\n"), parsed.error.message);
  }
  assert.equal(historyOperations.mutationCount, before);
});

test("progress lines are throttled on the server's clock: one per interval at most, then one result line", async () => {
  // 30 reports 20 ms apart on a clock the test moves: a line goes out once 100 ms have passed
  // since the last one (or since the start), so at reports 5, 10, ..., 30, and never between.
  let nowMs = 0;
  const app = await buildApiApp({
    operations: historyOperations,
    metrics: new Registry(),
    progress: { intervalMs: 100, now: () => nowMs },
  });
  try {
    historyOperations.longRun = async (onProgress) => {
      for (let step = 1; step <= 30; step++) {
        nowMs += 20;
        onProgress?.(step * 4096, 30 * 4096);
      }
    };
    const answer = await app.inject({ method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:7", to: "/tmp/vm1.raw" } });
    assert.equal(answer.statusCode, 200);
    assert.match(String(answer.headers["content-type"]), /^application\/x-ndjson/);
    const lines = parseNdjson(answer.body) as Array<{ progress?: { done: number; total: number }; result?: RestoreResult }>;
    assert.deepEqual(
      lines.slice(0, -1),
      [5, 10, 15, 20, 25, 30].map((step) => ({ progress: { done: step * 4096, total: 30 * 4096 } })),
    );
    assert.deepEqual(lines.at(-1)?.result?.file, { path: "/tmp/vm1.raw", sizeBytes: 4096, bytesWritten: 4096 });
  } finally {
    await app.close();
  }

  resetHistoryBehaviour();
  const quick = await historyApp.inject({ method: "POST", url: "/v1/disks/vm1/compact" });
  assert.equal(quick.statusCode, 200, quick.body);
  assert.match(String(quick.headers["content-type"]), /^application\/x-ndjson/);
  const quickLines = parseNdjson(quick.body) as Array<{ result?: CompactResult }>;
  assert.equal(quickLines.length, 1, "a quick operation answers with the result line alone");
  assert.equal(quickLines[0].result?.mode, "in-place");
});

test("compact and restore: an error before any line keeps its status; after, it is the final line", async () => {
  resetHistoryBehaviour();
  const notFound = await historyApp.inject({ method: "POST", url: "/v1/disks/nothere/compact", payload: { intoBaseline: true } });
  assert.equal(notFound.statusCode, 404);
  assert.equal(JSON.parse(notFound.body).error.code, ErrorCodes.NOT_FOUND);
  const twoTargets = await historyApp.inject({
    method: "POST",
    url: "/v1/disks/vm1/restore",
    payload: { at: "lsn:1", rollback: true, to: "/tmp/x.raw" },
  });
  assert.equal(twoTargets.statusCode, 400);
  const future = await historyApp.inject({ method: "POST", url: "/v1/disks/vm1/restore", payload: { at: "lsn:999", rollback: true } });
  assert.equal(future.statusCode, 410);
  assert.equal(JSON.parse(future.body).error.code, ErrorCodes.OUTSIDE_WINDOW);

  historyOperations.longRun = progressing(0, new SnaplogError(ErrorCodes.NO_SPACE, "no space left"));
  const early = await historyApp.inject({ method: "POST", url: "/v1/disks/vm1/compact", payload: {} });
  assert.equal(early.statusCode, 507);
  assert.match(String(early.headers["content-type"]), /^application\/json/);

  historyOperations.longRun = progressing(5, new SnaplogError(ErrorCodes.IO, "I/O error: gone", { hint: "check the medium" }));
  const late = await historyApp.inject({ method: "POST", url: "/v1/disks/vm1/compact", payload: { snapshot: "s1" } });
  assert.equal(late.statusCode, 200, "the status was sent with the first progress line");
  assert.deepEqual(parseNdjson(late.body), [
    ...progressLines(5),
    { error: { code: ErrorCodes.IO, message: "I/O error: gone", hint: "check the medium" } },
  ]);
});

test("a failure that is no SnaplogError is INTERNAL (500) before the first line, and the same body as the final line after", async () => {
  resetHistoryBehaviour();
  const internal = { error: { code: ErrorCodes.INTERNAL, message: "internal error: boom; on two lines" } };
  historyOperations.longRun = progressing(0, new Error("boom\non two lines"));
  const early = await historyApp.inject({ method: "POST", url: "/v1/disks/vm1/compact" });
  assert.equal(early.statusCode, 500);
  assert.deepEqual(JSON.parse(early.body), internal);
  historyOperations.longRun = progressing(2, new Error("boom\non two lines"));
  const late = await historyApp.inject({ method: "POST", url: "/v1/disks/vm1/compact" });
  assert.equal(late.statusCode, 200);
  assert.deepEqual(parseNdjson(late.body), [...progressLines(2), internal]);
});

test("log and diff stream one item per line; errors before the first item keep their status", async () => {
  resetHistoryBehaviour();
  const log = await historyApp.inject({
    method: "GET",
    url: "/v1/disks/vm1/log?since=lsn:1&until=2026-11-25T10:00:00Z&snapshot=s1&data=true",
  });
  assert.equal(log.statusCode, 200, log.body);
  assert.match(String(log.headers["content-type"]), /^application\/x-ndjson/);
  const entries = parseNdjson(log.body) as LogEntry[];
  assert.deepEqual(
    entries.map((entry) => [entry.lsnFirst, entry.block, Buffer.from(entry.data ?? "", "base64").toString()]),
    [
      [1, 0, "entry 0"],
      [2, 1, "entry 1"],
      [3, 2, "entry 2"],
    ],
  );
  const withoutData = parseNdjson((await historyApp.inject({ method: "GET", url: "/v1/disks/vm1/log" })).body) as LogEntry[];
  assert.equal(withoutData.length, 3);
  assert.ok(withoutData.every((entry) => entry.data === undefined));

  const diff = await historyApp.inject({ method: "GET", url: "/v1/disks/vm1/diff?from=s1&to=current" });
  assert.equal(diff.statusCode, 200, diff.body);
  assert.deepEqual(
    parseNdjson(diff.body),
    [0, 1, 2].map((index) => ({ block: index * 2, blockCount: 1, offsetBytes: index * 8192, lengthBytes: 4096 })),
  );

  historyOperations.logEntryCount = 0;
  const empty = await historyApp.inject({ method: "GET", url: "/v1/disks/vm1/log" });
  assert.equal(empty.statusCode, 200);
  assert.equal(empty.body, "");

  for (const [url, status, code] of [
    ["/v1/disks/nothere/log", 404, ErrorCodes.NOT_FOUND],
    ["/v1/disks/vm1/log?since=lsn:999", 410, ErrorCodes.OUTSIDE_WINDOW],
    ["/v1/disks/nothere/diff?from=s1&to=current", 404, ErrorCodes.NOT_FOUND],
  ] as const) {
    const answer = await historyApp.inject({ method: "GET", url });
    assert.equal(answer.statusCode, status, `${url}: ${answer.body}`);
    assert.match(String(answer.headers["content-type"]), /^application\/json/);
    assert.equal(JSON.parse(answer.body).error.code, code);
  }
});

test("log and diff: a failure midway ends the stream with an error line after the items before it", async () => {
  resetHistoryBehaviour();
  historyOperations.logEntryCount = 10;
  historyOperations.streamFailAfter = 2;
  for (const url of ["/v1/disks/vm1/log", "/v1/disks/vm1/diff?from=baseline&to=current"]) {
    const answer = await historyApp.inject({ method: "GET", url });
    assert.equal(answer.statusCode, 200);
    const lines = parseNdjson(answer.body) as Array<Record<string, unknown>>;
    assert.equal(lines.length, 3, answer.body);
    assert.ok(!("error" in lines[0]) && !("error" in lines[1]));
    assert.deepEqual(lines[2], { error: { code: ErrorCodes.IO, message: "I/O error: the medium went away", hint: "check the disk" } });
  }
});

test("a log stream follows the client's pace, and a client that disconnects stops the store's reader", async () => {
  resetHistoryBehaviour();
  historyOperations.logEntryCount = Number.POSITIVE_INFINITY;
  const request = http.request({ socketPath: historySocketPath, method: "GET", path: "/v1/disks/vm1/log" });
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    request.on("response", resolve).on("error", reject).end();
  });
  assert.equal(response.statusCode, 200);
  await new Promise((resolve) => response.once("data", resolve));
  response.pause();
  // The server stops pulling once the socket and stream buffers are full: wait until it has.
  const pulledWhilePaused = await settledValue(() => historyOperations.itemsPulled);
  // About 150 bytes a line: what fits in the socket and stream buffers (~3500 when written), not the endless log.
  assert.ok(pulledWhilePaused < 20_000, `pulled ${pulledWhilePaused} items`);
  assert.equal(historyOperations.streamClosed, false);
  request.on("error", () => undefined);
  request.destroy();
  await waitFor("the store's log reader to be closed", () => historyOperations.streamClosed);
});

test("ApiClient: log and diff yield items as they come; error lines and error answers become SnaplogError", async () => {
  resetHistoryBehaviour();
  const client = new ApiClient(historySocketPath);
  const entries: LogEntry[] = [];
  for await (const entry of client.readLog({ disk: "vm1", since: "lsn:1", data: true })) entries.push(entry);
  assert.deepEqual(
    entries.map((entry) => Buffer.from(entry.data ?? "", "base64").toString()),
    ["entry 0", "entry 1", "entry 2"],
  );
  const runs: DiffRun[] = [];
  for await (const run of client.diff({ disk: "vm1", from: "s1", to: "current" })) runs.push(run);
  assert.deepEqual(
    runs.map((run) => run.block),
    [0, 2, 4],
  );

  await assert.rejects(
    collect(client.readLog({ disk: "nothere" })),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND,
  );
  await assert.rejects(
    collect(client.readLog({ disk: "vm1", since: "lsn:999" })),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.OUTSIDE_WINDOW,
  );

  historyOperations.logEntryCount = 10;
  historyOperations.streamFailAfter = 2;
  const before: LogEntry[] = [];
  await assert.rejects(
    async () => {
      for await (const entry of client.readLog({ disk: "vm1" })) before.push(entry);
    },
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.IO && error.hint === "check the disk",
  );
  assert.equal(before.length, 2, "the items before the failure arrive first");
});

test("ApiClient: leaving a log early closes the connection and the store's reader", async () => {
  resetHistoryBehaviour();
  historyOperations.logEntryCount = Number.POSITIVE_INFINITY;
  const client = new ApiClient(historySocketPath);
  let count = 0;
  for await (const entry of client.readLog({ disk: "vm1" })) {
    assert.equal(entry.lsnFirst, count + 1);
    if (++count === 1000) break;
  }
  await waitFor("the store's log reader to be closed", () => historyOperations.streamClosed);
});

test("ApiClient: compact and restore report progress and return the result; a late failure is thrown", async () => {
  resetHistoryBehaviour();
  const client = new ApiClient(historySocketPath);
  historyOperations.longRun = progressing(6);
  const seen: Array<[number, number]> = [];
  const result = await client.compact({ disk: "vm1", intoBaseline: true }, (done, total) => seen.push([done, total]));
  assert.equal(result.mode, "into-baseline");
  assert.deepEqual(
    seen,
    progressLines(6).map(({ progress }) => [progress.done, progress.total]),
  );

  historyOperations.longRun = progressing(3, new SnaplogError(ErrorCodes.CORRUPT, "checksum error at block 9"));
  await assert.rejects(
    client.restore({ disk: "vm1", at: "lsn:3", asSnapshot: "x" }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CORRUPT && error.message === "checksum error at block 9",
  );
  resetHistoryBehaviour();
  await assert.rejects(
    client.restore({ disk: "vm1", at: "lsn:3", asSnapshot: "x", rollback: true }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.INVALID_ARGUMENT,
  );
  const restored = await client.restore({ disk: "vm1", at: "lsn:3", to: "/tmp/y.raw" });
  assert.equal(restored.file?.path, "/tmp/y.raw");
});

test("ApiClient: snapshot delete, policy show and set, disk detail", async () => {
  resetHistoryBehaviour();
  const client = new ApiClient(historySocketPath);
  await client.createSnapshot({ disk: "vm1", name: "gone", lun: 9 });
  const deleted = await client.deleteSnapshot("vm1", "gone");
  assert.deepEqual([deleted.name, deleted.lun, deleted.entriesFreed, deleted.bytesFreed], ["gone", 9, 2, 8192]);
  await assert.rejects(
    client.deleteSnapshot("vm1", "gone"),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND,
  );
  const policy = await client.setPolicy({ disk: "vm1", compactOnDelete: false });
  assert.equal(policy.compactOnDelete, false);
  assert.deepEqual(await client.showPolicy("vm1"), policy);
  assert.deepEqual((await client.showDisk("vm1")).policy, policy);
});

// ---- scrub ------------------------------------------------------------------------------------
//
// Goal: POST /v1/scrub follows the progress-stream contract of compact and restore, takes an
// optional {disk} (none or an empty body: every disk), reports damage in the result (200,
// ok: false) rather than as an error, and is in the OpenAPI document. Method: inject() and
// ApiClient against MemoryOperations, as above.

test("the OpenAPI document lists POST /v1/scrub with an NDJSON answer and the ScrubResult fields", async () => {
  const answer = await historyApp.inject({ method: "GET", url: "/v1/openapi.json" });
  const document = JSON.parse(answer.body) as OpenApiDocument;
  assert.deepEqual(Object.keys(document.paths["/v1/scrub"]), ["post"]);
  const content = document.paths["/v1/scrub"].post.responses["200"].content ?? {};
  assert.deepEqual(Object.keys(content), ["application/x-ndjson"]);
  const described = JSON.stringify(content);
  for (const field of ["baselineUnknownBlocks", "offsetBytes", "fileOffsetBytes", "offlineReason", "entriesChecked"])
    assert.match(described, new RegExp(field));
});

test("POST /v1/scrub: no body, an empty body or {disk} scrubs; damage is a 200 result with ok false", async () => {
  resetHistoryBehaviour();
  await historyOperations.createDisk({ name: "vm2", sizeBytes: 1 << 20 });
  historyOperations.damagedDisks.add("vm2");
  for (const payload of [undefined, {}]) {
    const answer = await historyApp.inject({ method: "POST", url: "/v1/scrub", ...(payload === undefined ? {} : { payload }) });
    assert.equal(answer.statusCode, 200, answer.body);
    assert.match(String(answer.headers["content-type"]), /^application\/x-ndjson/);
    const [line] = parseNdjson(answer.body) as Array<{ result?: ScrubResult }>;
    assert.deepEqual(
      line.result?.disks.map((disk) => [disk.disk, disk.ok]),
      [
        ["vm1", true],
        ["vm2", false],
      ],
    );
    assert.equal(line.result?.ok, false);
    assert.deepEqual(line.result?.disks[1].corrupt[0], {
      block: 3,
      lsn: 9,
      offsetBytes: 12288,
      file: "disks/vm2/segment-00000000.dat",
      fileOffsetBytes: 8192,
      reason: "checksum mismatch",
    });
  }
  const one = await historyApp.inject({ method: "POST", url: "/v1/scrub", payload: { disk: "vm1" } });
  assert.equal(one.statusCode, 200, one.body);
  const [oneLine] = parseNdjson(one.body) as Array<{ result?: ScrubResult }>;
  assert.deepEqual(
    oneLine.result?.disks.map((disk) => disk.disk),
    ["vm1"],
  );
  assert.equal(oneLine.result?.ok, true);
  assert.deepEqual(historyOperations.scrubRequests, [{}, {}, { disk: "vm1" }]);
});

test("POST /v1/scrub: bad bodies get 400, an unknown disk 404, and nothing reaches the store", async () => {
  resetHistoryBehaviour();
  for (const payload of [{ disk: "a b" }, { disk: "" }, { disk: 7 }, { disks: ["vm1"] }, [] as unknown]) {
    const answer = await historyApp.inject({ method: "POST", url: "/v1/scrub", payload: payload as Record<string, unknown> });
    assert.equal(answer.statusCode, 400, `${JSON.stringify(payload)} → ${answer.body}`);
    const parsed = JSON.parse(answer.body) as { error: { code: string; message: string } };
    assert.equal(parsed.error.code, ErrorCodes.INVALID_ARGUMENT);
    assert.ok(!parsed.error.message.includes("\n"), parsed.error.message);
  }
  const missing = await historyApp.inject({ method: "POST", url: "/v1/scrub", payload: { disk: "nothere" } });
  assert.equal(missing.statusCode, 404);
  assert.match(String(missing.headers["content-type"]), /^application\/json/);
  assert.equal(JSON.parse(missing.body).error.code, ErrorCodes.NOT_FOUND);
  assert.deepEqual(historyOperations.scrubRequests, []);
});

test("POST /v1/scrub streams its progress, then the result; a late failure is the final line", async () => {
  resetHistoryBehaviour();
  historyOperations.longRun = progressing(12);
  const answer = await historyApp.inject({ method: "POST", url: "/v1/scrub" });
  assert.equal(answer.statusCode, 200);
  const lines = parseNdjson(answer.body) as Array<{ progress?: { done: number; total: number }; result?: ScrubResult }>;
  assert.deepEqual(lines.slice(0, -1), progressLines(12));
  assert.equal(lines.at(-1)?.result?.ok, true);

  historyOperations.longRun = progressing(4, new SnaplogError(ErrorCodes.CLOSED, "the scrub of disk vm1 was cut short"));
  const late = await historyApp.inject({ method: "POST", url: "/v1/scrub", payload: { disk: "vm1" } });
  assert.equal(late.statusCode, 200);
  assert.deepEqual((parseNdjson(late.body) as unknown[]).at(-1), {
    error: { code: ErrorCodes.CLOSED, message: "the scrub of disk vm1 was cut short" },
  });
});

test("ApiClient.scrub reports progress and returns the result, damage included; errors become SnaplogError", async () => {
  resetHistoryBehaviour();
  const client = new ApiClient(historySocketPath);
  historyOperations.longRun = progressing(5);
  historyOperations.damagedDisks.add("vm1");
  const seen: Array<[number, number]> = [];
  const result = await client.scrub({ disk: "vm1" }, (done, total) => seen.push([done, total]));
  assert.equal(result.ok, false);
  assert.deepEqual(
    result.disks[0].corrupt.map((damage) => damage.block),
    [3],
  );
  assert.deepEqual(
    seen,
    progressLines(5).map(({ progress }) => [progress.done, progress.total]),
  );
  resetHistoryBehaviour();
  assert.equal((await client.scrub({})).ok, true);
  await assert.rejects(
    client.scrub({ disk: "nothere" }),
    (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND,
  );
  assert.deepEqual(historyOperations.scrubRequests, [{}]);
});

/** The named fields of an object (answers carry more than a test looks at). */
function pick(value: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, (value as Record<string, unknown>)[key]]));
}
