/**
 * Goal: remote copy (issue 11, SPEC §5.4, docs/replication.md) keeps a replica that is always a
 * consistent earlier state of its source, catches up by itself after faults without re-sending
 * what was acknowledged, fails over and back, and refuses hostile peers. Method: two real
 * `snaplog serve` processes on loopback (the receiver with `--replication 127.0.0.1:PORT`),
 * relations set up with the real CLI, writes over NBD, comparisons with `qemu-img compare` of
 * the replica against the source's `DISK@lsn:N` at the acknowledged LSN (the replica's own
 * STORE/disks/…/disk.json says which N it holds), faults by SIGKILL / SIGTERM and a tmpfs that
 * fills up, hostile batches POSTed with fetch and a fast-check fuzz of mutated valid batches.
 */
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs, mkdirSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { ApiClient } from "../src/api/client.js";
import type { RelationInfo } from "../src/store/operations/index.js";
import { MAX_LOAD_PERCENT_DEFAULT } from "../src/store/replication/relations.js";
import { Store } from "../src/store/store.js";
import { withCauseShown } from "./support/fast-check-report.js";
import { hashExport, NbdClient } from "./support/nbd-client.js";
import { snaplogMainPath, type CliRun } from "./support/serve-child.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

const BLOCK = 4096;
const MiB = 1024 * 1024;
const children = new Set<ChildProcessWithoutNullStreams>();
after(() => {
  for (const child of children) child.kill("SIGKILL");
});

// ---- helpers ------------------------------------------------------------------------------

function cli(storePath: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [snaplogMainPath, "--store", storePath, ...args],
      { timeout: 120_000, env: { ...process.env, SNAPLOG_STORE: "", SNAPLOG_REPLICATION_TOKEN: "", ...env }, maxBuffer: 64 * MiB },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function ok(storePath: string, args: string[]): Promise<string> {
  const run = await cli(storePath, args);
  assert.equal(run.code, 0, `snaplog ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

/** A TCP port nothing listens on now (the kernel's pick, released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

interface Server {
  store: string;
  sock: string;
  /** The --replication port (fixed across restarts), if served. */
  replicationPort?: number;
  api: ApiClient;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `snaplog serve` on STORE (NBD on a unix socket in its own directory), with `--replication 127.0.0.1:PORT` when given. */
async function serve(store: string, replicationPort?: number): Promise<Server> {
  const sock = path.join(path.dirname(store), "nbd.sock");
  const args = ["--store", store, "serve", "--nbd", "127.0.0.1:0", "--nbd-socket", sock];
  if (replicationPort !== undefined) args.push("--replication", `127.0.0.1:${replicationPort}`);
  const child = spawn(process.execPath, [snaplogMainPath, ...args], { env: { ...process.env, SNAPLOG_LOG_LEVEL: "warn" } });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      children.delete(child);
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^api: unix:/m.test(stdout) && (replicationPort === undefined || /^replication: /m.test(stdout))) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`serve exited: ${stderr}`));
    });
  });
  const api = await ApiClient.connectIfRunning(store);
  assert.ok(api !== undefined, "the API answers");
  return {
    store,
    sock,
    replicationPort,
    api,
    kill: async () => {
      child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

// Made at load time: tempDir's cleanup hook belongs to the file, not to the hook or test that asks.
const root = tempDir("replication");

async function newStore(prefix: string): Promise<string> {
  const storePath = path.join(await fs.mkdtemp(path.join(root, `${prefix}-`)), "store");
  await Store.init(storePath);
  return storePath;
}

/** Random 4 KiB writes at `blocks` (QD 32), flushed. */
async function writeBlocks(server: Server, disk: string, blocks: number[]): Promise<void> {
  const client = await NbdClient.connect({ path: server.sock }, disk);
  try {
    for (let index = 0; index < blocks.length; index += 32) {
      await Promise.all(blocks.slice(index, index + 32).map((block) => client.write(block * BLOCK, randomBytes(BLOCK))));
    }
    await client.flush();
  } finally {
    await client.disconnect().catch(() => client.destroy());
  }
}

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => from + index);
}

/** Writes random blocks of the first `spanBlocks` until stopped (or the server goes away). */
function backgroundWriter(server: Server, disk: string, spanBlocks: number): { stop: () => Promise<number> } {
  let stopped = false;
  let written = 0;
  const running = (async () => {
    try {
      const client = await NbdClient.connect({ path: server.sock }, disk);
      while (!stopped) {
        const blocks = Array.from({ length: 16 }, () => Math.floor(Math.random() * spanBlocks));
        await Promise.all(blocks.map((block) => client.write(block * BLOCK, randomBytes(BLOCK))));
        written += blocks.length;
        await sleep(5);
      }
      await client.flush();
      await client.disconnect();
    } catch {
      // the server was killed under it
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await running;
      return written;
    },
  };
}

async function relationOf(server: Server, disk: string): Promise<RelationInfo> {
  const relation = (await server.api.listRelations()).find((candidate) => candidate.disk === disk);
  assert.ok(relation !== undefined, `a relation for ${disk}`);
  return relation;
}

async function lsnLast(server: Server, disk: string): Promise<number> {
  return (await server.api.showDisk(disk)).lsnLast;
}

/** The replica's disk.json on the receiver: the source LSN it holds. */
interface ReplicaMetaSeen {
  ackedLsn: number;
  promotedAt?: string;
  /** A batch whose acknowledgement could not be written yet (docs/replication.md "Acknowledgements"). */
  pending?: { toLsn: number };
}

async function replicaMeta(store: string, disk: string): Promise<ReplicaMetaSeen | undefined> {
  for (const entry of await fs.readdir(path.join(store, "disks"))) {
    const file = path.join(store, "disks", entry, "disk.json");
    const parsed = JSON.parse(await fs.readFile(file, "utf8").catch(() => "{}")) as {
      body?: { name: string; replica?: ReplicaMetaSeen };
    };
    if (parsed.body?.name === disk) return parsed.body.replica;
  }
  return undefined;
}

/** The relation is connected and has everything the source wrote. */
async function caughtUp(source: Server, disk: string, timeoutMs = 30_000): Promise<RelationInfo> {
  let last: RelationInfo | undefined;
  await waitFor(
    `${disk} caught up`,
    async () => {
      last = await relationOf(source, disk);
      return last.state === "connected" && last.ackedLsn !== null && last.ackedLsn === (await lsnLast(source, disk));
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(last)}`);
  });
  return last!;
}

function nbdUri(server: Server, exportName: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${server.sock}`;
}

/** `qemu-img compare` of two exports: exit 0 when identical. */
function qemuCompareQuiet(a: string, b: string): boolean {
  return spawnSync("qemu-img", ["compare", "-q", "-f", "raw", "-F", "raw", a, b], { timeout: 120_000 }).status === 0;
}

function qemuCompare(a: string, b: string): void {
  const run = spawnSync("qemu-img", ["compare", "-f", "raw", "-F", "raw", a, b], { encoding: "utf8", timeout: 120_000 });
  assert.equal(run.status, 0, `qemu-img compare ${a} ${b}: ${run.stdout}${run.stderr}`);
}

/**
 * The replica equals the source at the LSN it acknowledged — or, while a batch's acknowledgement
 * could not be written (a full file system), at that batch's end: a batch is applied whole or not.
 */
async function replicaMatches(source: Server, disk: string, receiver: Server, replica: string): Promise<number> {
  const meta = await replicaMeta(receiver.store, replica);
  assert.ok(meta !== undefined, `${replica} is a replica`);
  if (meta.pending !== undefined && qemuCompareQuiet(nbdUri(source, `${disk}@lsn:${meta.pending.toLsn}`), nbdUri(receiver, replica)))
    return meta.pending.toLsn;
  qemuCompare(nbdUri(source, `${disk}@lsn:${meta.ackedLsn}`), nbdUri(receiver, replica));
  return meta.ackedLsn;
}

async function eventsOf(server: Server, disk?: string): Promise<{ type: string; message: string }[]> {
  const events: { type: string; message: string }[] = [];
  for await (const event of server.api.readEvents({ disk })) events.push(event);
  return events;
}

async function tokenFile(receiver: Server): Promise<string> {
  return path.join(receiver.store, "api.token");
}

async function replicateTo(source: Server, disk: string, receiver: Server, replica: string, extra: string[] = []): Promise<void> {
  await ok(source.store, [
    "replicate",
    disk,
    "--to",
    `snaplog://127.0.0.1:${receiver.replicationPort}/${replica}`,
    "--token-file",
    await tokenFile(receiver),
    ...extra,
  ]);
}

async function snapshotNames(server: Server, disk: string): Promise<string[]> {
  const list = JSON.parse(await ok(server.store, ["--json", "snapshot", "list", disk])) as { name: string; lsn: number }[];
  return list.map((snapshot) => snapshot.name);
}

// ---- a. continuous, b. compacted ------------------------------------------------------------

describe("continuous and compacted relations", () => {
  let source: Server;
  let receiver: Server;
  before(async () => {
    source = await serve(await newStore("repl-src"));
    receiver = await serve(await newStore("repl-dst"), await freePort());
  });
  after(async () => {
    await source?.stop();
    await receiver?.stop();
  });

  test("continuous: writes, cuts and deletes arrive in order; the replica equals DISK@lsn:acked and is read-only", async () => {
    await ok(source.store, ["disk", "create", "d1", "--size", "16M"]);
    await writeBlocks(source, "d1", range(0, 512));
    await replicateTo(source, "d1", receiver, "r1");
    assert.equal((await caughtUp(source, "d1")).maxLoadPercent, MAX_LOAD_PERCENT_DEFAULT, "without --max-load: the default share");
    qemuCompare(nbdUri(source, "d1"), nbdUri(receiver, "r1"));

    // Writes while replicating, with cuts and a delete in between.
    await writeBlocks(source, "d1", range(100, 300));
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s1"]);
    await writeBlocks(source, "d1", range(1000, 200));
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s2"]);
    await writeBlocks(source, "d1", range(2000, 200));
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s3"]);
    await writeBlocks(source, "d1", range(3000, 100));
    await ok(source.store, ["snapshot", "delete", "d1", "s2"]);
    const relation = await caughtUp(source, "d1");
    await waitFor("s2 deleted on the replica", async () => !(await snapshotNames(receiver, "r1")).includes("s2"));
    assert.deepEqual(await snapshotNames(receiver, "r1"), ["s1", "s3"]);
    // s2 arrived (cut on the replica) before its delete did; the cuts keep the source's names, times and order.
    const receiverEvents = await eventsOf(receiver, "r1");
    assert.ok(
      receiverEvents.some((event) => event.type === "snapshot-deleted" && event.message.includes("s2")),
      `s2 was cut there, then deleted: ${receiverEvents.map((event) => `${event.type}: ${event.message}`).join(" | ")}`,
    );
    const times = async (server: Server, disk: string) =>
      (JSON.parse(await ok(server.store, ["--json", "snapshot", "list", disk])) as { name: string; createdAt: string }[]).map(
        (snapshot) => `${snapshot.name}@${snapshot.createdAt}`,
      );
    assert.deepEqual(await times(receiver, "r1"), await times(source, "d1"));
    for (const snapshot of ["s1", "s3"]) qemuCompare(nbdUri(source, `d1@${snapshot}`), nbdUri(receiver, `r1@${snapshot}`));
    qemuCompare(nbdUri(source, "d1"), nbdUri(receiver, "r1"));
    assert.equal(await replicaMatches(source, "d1", receiver, "r1"), relation.ackedLsn);
    assert.ok(relation.bytesShipped > 512 * BLOCK, `random data shipped: ${relation.bytesShipped}`);
    // When the replica last acknowledged: just now (what an operator alerts on when it grows old).
    assert.ok(
      relation.lastAckAt !== null && Math.abs(Date.now() - Date.parse(relation.lastAckAt)) < 120_000,
      `last ack ${relation.lastAckAt}`,
    );

    // Read-only: no NBD write, no snapshot of its own.
    const write = spawnSync("qemu-io", ["-f", "raw", "-c", "write -P 0x55 0 4k", nbdUri(receiver, "r1")], { encoding: "utf8" });
    assert.ok(write.status !== 0 || /denied|read-only|failed/i.test(write.stdout + write.stderr), `write refused: ${write.stdout}`);
    const snapshot = await cli(receiver.store, ["snapshot", "create", "r1", "--name", "mine"]);
    assert.notEqual(snapshot.code, 0);
    assert.match(snapshot.stderr, /replica/);
    qemuCompare(nbdUri(source, "d1"), nbdUri(receiver, "r1"));
  });

  test("compacted --interval 1s: the replica equals the source at the acked LSN; a hot set ships < 0.3x of continuous", async () => {
    for (const disk of ["hc", "hk"]) await ok(source.store, ["disk", "create", disk, "--size", "16M"]);
    await replicateTo(source, "hc", receiver, "rc");
    await replicateTo(source, "hk", receiver, "rk", ["--mode", "compacted", "--interval", "1s"]);
    await caughtUp(source, "hc");
    await caughtUp(source, "hk");
    const before = { hc: (await relationOf(source, "hc")).bytesShipped, hk: (await relationOf(source, "hk")).bytesShipped };
    // A 1 MiB hot set overwritten 10 times, the same on both disks (random data: no help from compression).
    for (let round = 0; round < 10; round++) {
      await Promise.all([writeBlocks(source, "hc", range(0, 256)), writeBlocks(source, "hk", range(0, 256))]);
    }
    const continuous = await caughtUp(source, "hc");
    const compacted = await caughtUp(source, "hk", 15_000);
    await replicaMatches(source, "hk", receiver, "rk");
    qemuCompare(nbdUri(source, "hk"), nbdUri(receiver, "rk"));
    qemuCompare(nbdUri(source, "hc"), nbdUri(receiver, "rc"));
    const shippedContinuous = continuous.bytesShipped - before.hc;
    const shippedCompacted = compacted.bytesShipped - before.hk;
    assert.ok(shippedContinuous >= 9 * MiB, `continuous shipped every write: ${shippedContinuous}`);
    assert.ok(
      shippedCompacted < 0.3 * shippedContinuous,
      `compacted shipped ${shippedCompacted} bytes, continuous ${shippedContinuous} (ratio ${(shippedCompacted / shippedContinuous).toFixed(3)})`,
    );
  });
});

// ---- c. setup refusals ----------------------------------------------------------------------

describe("setup refusals at replicate time", () => {
  test("wrong token, unreachable host, a name taken there: refused with the reason, nothing persisted", async () => {
    const source = await serve(await newStore("repl-ref-src"));
    const receiver = await serve(await newStore("repl-ref-dst"), await freePort());
    try {
      await ok(source.store, ["disk", "create", "d1", "--size", "4M"]);
      await ok(receiver.store, ["disk", "create", "taken", "--size", "4M"]);
      const wrongToken = path.join(path.dirname(source.store), "wrong.token");
      await fs.writeFile(wrongToken, "not-the-token\n");
      const closed = await freePort();
      const toR1 = ["--to", `snaplog://127.0.0.1:${receiver.replicationPort}/r1`, "--token-file", await tokenFile(receiver)];
      const cases: [string[], RegExp][] = [
        [["--to", `snaplog://127.0.0.1:${receiver.replicationPort}/r1`, "--token-file", wrongToken], /refused the token/],
        [["--to", `snaplog://127.0.0.1:${closed}/r1`, "--token-file", await tokenFile(receiver)], /unreachable.*ECONNREFUSED/],
        [["--to", `snaplog://127.0.0.1:${receiver.replicationPort}/taken`, "--token-file", await tokenFile(receiver)], /exists here/],
        [[...toR1, "--max-load", "0"], /whole percent from 1 to 100/],
        [[...toR1, "--max-load", "150"], /whole percent from 1 to 100/],
        [[...toR1, "--mode", "compacted", "--max-load", "50"], /--max-load goes with --mode continuous/],
      ];
      for (const [args, reason] of cases) {
        const run = await cli(source.store, ["replicate", "d1", ...args]);
        assert.notEqual(run.code, 0, `refused: ${args.join(" ")}`);
        assert.match(run.stderr, reason);
        assert.deepEqual(await source.api.listRelations(), []);
        assert.deepEqual(await fs.readdir(path.join(source.store, "replication-secrets")).catch(() => []), []);
      }
      assert.deepEqual(
        (await receiver.api.listDisks()).map((disk) => disk.name),
        ["taken"],
      );
      assert.equal(await replicaMeta(receiver.store, "taken"), undefined, "the disk there is untouched");
      // A valid share is kept and listed.
      await ok(source.store, ["replicate", "d1", ...toR1, "--max-load", "100%"]);
      const listed = JSON.parse(await ok(source.store, ["--json", "replicate", "--list"])) as RelationInfo[];
      assert.equal(listed[0]?.maxLoadPercent, 100);
    } finally {
      await source.stop();
      await receiver.stop();
    }
  });
});

// ---- d. faults -------------------------------------------------------------------------------

describe("faults: SIGKILL of either side or both, a cut link", () => {
  test("the relation resumes by itself, the acked LSN never goes back, nothing acknowledged is sent again", async () => {
    const sourceStore = await newStore("repl-fault-src");
    const receiverStore = await newStore("repl-fault-dst");
    const port = await freePort();
    let source = await serve(sourceStore);
    let receiver = await serve(receiverStore, port);
    try {
      await ok(source.store, ["disk", "create", "d1", "--size", "16M"]);
      await writeBlocks(source, "d1", range(0, 256));
      await replicateTo(source, "d1", receiver, "r1");
      await caughtUp(source, "d1");
      let acked = (await replicaMeta(receiverStore, "r1"))!.ackedLsn;
      for (const fault of ["sender", "receiver", "both", "link"] as const) {
        const writer = backgroundWriter(source, "d1", 4096);
        await sleep(400);
        if (fault === "sender" || fault === "both") {
          await source.kill();
          await writer.stop();
        }
        if (fault === "receiver" || fault === "both") await receiver.kill();
        if (fault === "link") await receiver.stop();
        if (fault === "receiver" || fault === "link") {
          await waitFor(`${fault}: retrying`, async () => (await relationOf(source, "d1")).state === "retrying", 15_000);
          const retrying = await relationOf(source, "d1");
          assert.match(retrying.reason ?? "", /unreachable|ECONNREFUSED|HTTP 503/, `${fault}: the reason`);
          await sleep(fault === "link" ? 3000 : 300);
          await writer.stop();
        }
        const meta = (await replicaMeta(receiverStore, "r1"))!;
        assert.ok(meta.ackedLsn >= acked, `${fault}: the replica's acked LSN ${meta.ackedLsn} did not go back from ${acked}`);
        if (fault === "sender" || fault === "both") source = await serve(sourceStore);
        if (fault !== "sender") receiver = await serve(receiverStore, port);
        const relation = await caughtUp(source, "d1", 60_000);
        assert.ok(relation.ackedLsn! >= acked, `${fault}: acked ${relation.ackedLsn} >= ${acked}`);
        acked = await replicaMatches(source, "d1", receiver, "r1");
        qemuCompare(nbdUri(source, "d1"), nbdUri(receiver, "r1"));
      }
      const refused = (await eventsOf(receiver, "r1")).filter((event) => event.type === "replica-batch-refused");
      assert.deepEqual(
        refused.filter((event) => /old or replayed|starts at source LSN/.test(event.message)),
        [],
        "no batch ever started before (or after) the replica's acknowledged LSN",
      );
    } finally {
      await source.stop().catch(() => undefined);
      await receiver.stop().catch(() => undefined);
    }
  });

  test("a full receiver file system: retrying with NO_SPACE, the replica stays consistent, it catches up once there is room", async (t) => {
    const parent = await fs.mkdtemp(path.join(root, "full-"));
    const mountPoint = path.join(parent, "mnt");
    mkdirSync(mountPoint);
    const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", mountPoint], { encoding: "utf8" });
    if (mount.status !== 0) {
      if (process.env.CI !== undefined) assert.fail(`mount tmpfs failed: ${mount.stderr}`);
      t.skip(`SKIPPED LOUDLY: cannot mount a tmpfs (${mount.stderr.trim()}); run as root or in CI`);
      return;
    }
    t.after(() => spawnSync("umount", ["-l", mountPoint]));
    const receiverStore = path.join(mountPoint, "store");
    await Store.init(receiverStore);
    const source = await serve(await newStore("repl-full-src"));
    const receiver = await serve(receiverStore, await freePort());
    try {
      await ok(source.store, ["disk", "create", "d1", "--size", "96M"]);
      await writeBlocks(source, "d1", range(0, 1024));
      await replicateTo(source, "d1", receiver, "r1");
      await caughtUp(source, "d1");
      // 64 MiB of random data: more than the tmpfs holds.
      for (let start = 1024; start < 1024 + 16384; start += 2048) await writeBlocks(source, "d1", range(start, 2048));
      await waitFor("NO_SPACE", async () => /NO_SPACE/.test((await relationOf(source, "d1")).reason ?? ""), 60_000);
      const relation = await relationOf(source, "d1");
      assert.equal(relation.state, "retrying");
      // While the file system is full: with the relation stopped (its last batch answered), the
      // replica is the source as of its acknowledged LSN (or a noted batch's end), never a mix.
      // (A mismatch here, under load, led to the medium finishing short writes.)
      await ok(source.store, ["replicate", "d1", "--stop"]);
      await replicaMatches(source, "d1", receiver, "r1");
      const remount = spawnSync("mount", ["-o", "remount,size=512m", mountPoint], { encoding: "utf8" });
      assert.equal(remount.status, 0, remount.stderr);
      // Set up again, the relation goes on from the acknowledged point.
      await replicateTo(source, "d1", receiver, "r1");
      await caughtUp(source, "d1", 90_000);
      await replicaMatches(source, "d1", receiver, "r1");
      qemuCompare(nbdUri(source, "d1"), nbdUri(receiver, "r1"));
    } finally {
      await source.stop().catch(() => undefined);
      await receiver.stop().catch(() => undefined);
    }
  });
});

// ---- e. failover and back ---------------------------------------------------------------------

describe("failover", () => {
  test("promote ends the relation; the old source becomes the replica of the new primary from the newest common snapshot", async () => {
    const storeA = await newStore("repl-fo-a");
    const storeB = await newStore("repl-fo-b");
    const a = await serve(storeA, await freePort());
    const b = await serve(storeB, await freePort());
    try {
      await ok(a.store, ["disk", "create", "d1", "--size", "16M"]);
      await writeBlocks(a, "d1", range(0, 2048)); // 8 MiB of random data: a full copy would ship it all
      await replicateTo(a, "d1", b, "r1");
      await ok(a.store, ["snapshot", "create", "d1", "--name", "common"]);
      await writeBlocks(a, "d1", range(3000, 16));
      await caughtUp(a, "d1");

      await ok(b.store, ["disk", "promote", "r1"]);
      await waitFor("the relation ended", async () => (await relationOf(a, "d1")).state === "ended", 15_000);
      const ended = await relationOf(a, "d1");
      assert.match(ended.reason ?? "", /promoted/);
      // The new primary is read-write; the old source goes on on its own past the common snapshot.
      await writeBlocks(b, "r1", range(500, 64));
      await writeBlocks(a, "d1", range(3500, 64));
      const hashBefore = await hashExport({ path: a.sock }, "d1");

      await ok(a.store, ["replicate", "--stop", "d1"]);
      await replicateTo(b, "r1", a, "d1");
      await caughtUp(b, "r1");
      const back = await relationOf(b, "r1");
      assert.ok(back.bytesShipped < 2 * MiB, `a resync, not a full copy of 8 MiB: shipped ${back.bytesShipped}`);
      const aEvents = await eventsOf(a, "d1");
      assert.ok(!aEvents.some((event) => event.type === "import" && /full/.test(event.message)), "no full stream on the old source");
      const kept = (await snapshotNames(a, "d1")).find((name) => name.startsWith("before-resync-"));
      assert.ok(kept !== undefined, "the old source kept what it had past the common snapshot");
      assert.equal(await hashExport({ path: a.sock }, `d1@${kept}`), hashBefore);
      qemuCompare(nbdUri(b, "r1"), nbdUri(a, "d1"));
      await replicaMatches(b, "r1", a, "d1");
    } finally {
      await a.stop().catch(() => undefined);
      await b.stop().catch(() => undefined);
    }
  });
});

// ---- f. hostile peers -------------------------------------------------------------------------

describe("hostile peers on the replication port", () => {
  let source: Server;
  let receiver: Server;
  let token: string;
  before(async () => {
    source = await serve(await newStore("repl-host-src"));
    receiver = await serve(await newStore("repl-host-dst"), await freePort());
    token = (await fs.readFile(await tokenFile(receiver), "utf8")).trim();
    await ok(source.store, ["disk", "create", "d1", "--size", "4M"]);
    await ok(source.store, ["disk", "create", "other", "--size", "4M"]);
    await writeBlocks(source, "d1", range(0, 64));
    await writeBlocks(source, "other", range(0, 64));
    await ok(source.store, ["snapshot", "create", "other", "--name", "o1"]);
    await writeBlocks(source, "other", range(64, 8));
    await replicateTo(source, "d1", receiver, "r1");
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s1"]);
    await writeBlocks(source, "d1", range(100, 32));
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s2"]);
    await caughtUp(source, "d1");
    // The replica rests at s2's cut: stop the relation so that nothing moves it but the batches below.
    await ok(source.store, ["replicate", "--stop", "d1"]);
  });
  after(async () => {
    await source?.stop();
    await receiver?.stop();
  });

  async function exportFile(args: string[]): Promise<Buffer> {
    const file = path.join(path.dirname(source.store), `export-${randomBytes(4).toString("hex")}.slar`);
    await ok(source.store, ["export", ...args, "-o", file]);
    return fs.readFile(file);
  }

  /** POSTs a batch. A refusal must reach the client as an answer: a reset connection fails the test. */
  async function post(body: Buffer | string, bearer = token, disk = "r1"): Promise<Response> {
    return await fetch(`http://127.0.0.1:${receiver.replicationPort}/v1/replica/${disk}/batch`, {
      method: "POST",
      body,
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/octet-stream" },
    });
  }

  async function replicaState(): Promise<{ hash: string; acked: number; snapshots: string[] }> {
    return {
      hash: await hashExport({ path: receiver.sock }, "r1"),
      acked: (await replicaMeta(receiver.store, "r1"))!.ackedLsn,
      snapshots: await snapshotNames(receiver, "r1"),
    };
  }

  test("garbage, another disk's streams, a replayed batch, a wrong token: refused, the replica unchanged", async () => {
    const before = await replicaState();
    const cases: [string, () => Promise<{ status: number; text: () => Promise<string> }>, number[]][] = [
      ["garbage", () => post(randomBytes(10_000)), [400]],
      ["empty", () => post(Buffer.alloc(0)), [400, 415]],
      ["another disk, full", async () => post(await exportFile(["other"])), [409]],
      ["another disk, incremental", async () => post(await exportFile(["other", "--from", "o1"])), [409]],
      ["a replayed batch (s1 to s2)", async () => post(await exportFile(["d1", "--from", "s1", "--to", "s2"])), [409]],
      ["a wrong token", async () => post(await exportFile(["d1", "--from", "s2"]), "wrong"), [401]],
      ["no token", () => fetch(`http://127.0.0.1:${receiver.replicationPort}/v1/replica/r1/hello`, { method: "POST" }), [401]],
    ];
    for (const [what, send, statuses] of cases) {
      const response = await send();
      const text = await response.text();
      assert.ok(statuses.includes(response.status), `${what}: HTTP ${response.status} ${text}`);
      assert.deepEqual(await replicaState(), before, `${what}: the replica is unchanged`);
    }
    const events = (await eventsOf(receiver, "r1")).filter((event) => event.type === "replica-batch-refused");
    assert.ok(
      events.some((event) => /old or replayed/.test(event.message)),
      `the replay is named: ${events.map((event) => event.message).join(" | ")}`,
    );
    // The receiver is up and answers a real hello.
    const hello = await fetch(`http://127.0.0.1:${receiver.replicationPort}/v1/replica/r1/hello`, {
      method: "POST",
      body: JSON.stringify({ disk: "r1", source: { storeId: "x", diskId: "y", diskName: "z" }, snapshots: [] }),
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    });
    assert.equal(hello.status, 409, "a stranger's hello is refused by a live receiver");
  });

  test("a batch with a snapshot cut inside (senders end batches at cuts): read to its end, refused (400), the replica unchanged", async () => {
    const before = await replicaState();
    await writeBlocks(source, "d1", range(300, 8));
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s3"]);
    await writeBlocks(source, "d1", range(310, 8));
    const body = await exportFile(["d1", "--from", "s2"]);
    // Gone again, so that the next test's stream from s2 has no cut inside.
    await ok(source.store, ["snapshot", "delete", "d1", "s3"]);
    const response = await post(body);
    const text = await response.text();
    assert.equal(response.status, 400, text);
    assert.match(text, /snapshot cut inside/);
    assert.deepEqual(await replicaState(), before);
  });

  test("fuzz: mutated valid batches are refused whole and change nothing; the valid one then applies", async () => {
    await writeBlocks(source, "d1", range(200, 40));
    const valid = await exportFile(["d1", "--from", "s2"]);
    const before = await replicaState();
    await withCauseShown(() =>
      fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.record({ kind: fc.constant("flip" as const), at: fc.nat({ max: valid.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }),
            fc.record({ kind: fc.constant("truncate" as const), at: fc.nat({ max: valid.length - 1 }) }),
            fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
            fc.record({
              kind: fc.constant("splice" as const),
              at: fc.nat({ max: valid.length - 1 }),
              length: fc.integer({ min: 1, max: 512 }),
            }),
          ),
          async (mutation) => {
            let body: Buffer;
            if (mutation.kind === "flip") {
              body = Buffer.from(valid);
              body[mutation.at] ^= mutation.xor;
            } else if (mutation.kind === "truncate") body = valid.subarray(0, mutation.at);
            else if (mutation.kind === "append") body = Buffer.concat([valid, Buffer.from(mutation.bytes)]);
            else body = Buffer.concat([valid.subarray(0, mutation.at), valid.subarray(mutation.at + mutation.length)]);
            const started = Date.now();
            const response = await post(body);
            const text = await response.text();
            if (process.env.SNAPLOG_TEST_VERBOSE)
              console.error(JSON.stringify(mutation).slice(0, 60), response.status, Date.now() - started, "ms");
            assert.ok(
              (response.status >= 400 && response.status < 500) || response.status === 501,
              `${JSON.stringify(mutation)}: HTTP ${response.status} ${text}`,
            );
            assert.equal((await replicaMeta(receiver.store, "r1"))!.ackedLsn, before.acked);
          },
        ),
        { numRuns: Number(process.env.SNAPLOG_FUZZ_RUNS ?? 25) },
      ),
    );
    assert.deepEqual(await replicaState(), before, "after the fuzz the replica is unchanged");
    const response = await post(valid);
    assert.equal(response.status, 200, await response.text());
    assert.equal((await replicaMeta(receiver.store, "r1"))!.ackedLsn, await lsnLast(source, "d1"));
    qemuCompare(nbdUri(source, "d1"), nbdUri(receiver, "r1"));
  });

  /** POSTs a batch whose body is held back after `firstBytes` until `release()` (or cut off by `abort()`). */
  function postHeld(
    body: Buffer,
    firstBytes: number,
  ): { answer: Promise<{ status: number; text: string }>; release: () => void; abort: () => void } {
    const request = http.request({
      host: "127.0.0.1",
      port: receiver.replicationPort,
      method: "POST",
      path: "/v1/replica/r1/batch",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream", "content-length": body.length },
    });
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      request.once("response", (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.once("end", () => resolve({ status: response.statusCode ?? 0, text }));
      });
      request.once("error", reject);
    });
    answer.catch(() => undefined);
    request.write(body.subarray(0, firstBytes));
    return { answer, release: () => request.end(body.subarray(firstBytes)), abort: () => request.destroy() };
  }

  test("batches in flight side by side apply in LSN order: the second waits for the first; if the first never lands, it is refused", async () => {
    /** Two consecutive batches from snapshot `from`: writes, a snapshot, writes, a snapshot; each batch ends at one. */
    const twoBatches = async (from: string, middle: string, last: string, lba: number): Promise<[Buffer, Buffer]> => {
      await writeBlocks(source, "d1", range(lba, 16));
      await ok(source.store, ["snapshot", "create", "d1", "--name", middle]);
      await writeBlocks(source, "d1", range(lba + 20, 16));
      await ok(source.store, ["snapshot", "create", "d1", "--name", last]);
      return [
        await exportFile(["d1", "--from", from, "--to", middle, "--compression", "none"]),
        await exportFile(["d1", "--from", middle, "--to", last, "--compression", "none"]),
      ];
    };
    // The replica holds the source's newest LSN (the test before); s3 marks it on the source.
    await ok(source.store, ["snapshot", "create", "d1", "--name", "s3"]);
    const [first, second] = await twoBatches("s3", "s4", "s5", 300);
    const acked = (await replicaMeta(receiver.store, "r1"))!.ackedLsn;

    // The first batch's header arrives, its data does not yet; the second arrives whole.
    const held = postHeld(first, 4096);
    await sleep(300);
    let secondAnswered = false;
    const secondAnswer = post(second).then(async (response) => {
      secondAnswered = true;
      return { status: response.status, text: await response.text() };
    });
    await sleep(1000);
    assert.equal(secondAnswered, false, "the second batch waits for the first (not refused as 'a batch is missing')");
    assert.equal((await replicaMeta(receiver.store, "r1"))!.ackedLsn, acked, "nothing applied yet");
    held.release();
    const [firstDone, secondDone] = await Promise.all([held.answer, secondAnswer]);
    assert.equal(firstDone.status, 200, firstDone.text);
    assert.equal(secondDone.status, 200, secondDone.text);
    const sourceS5 = await lsnLast(source, "d1");
    assert.equal((await replicaMeta(receiver.store, "r1"))!.ackedLsn, sourceS5);
    assert.ok((await snapshotNames(receiver, "r1")).includes("s4") && (await snapshotNames(receiver, "r1")).includes("s5"));
    qemuCompare(nbdUri(source, "d1@s5"), nbdUri(receiver, "r1"));
    qemuCompare(nbdUri(source, "d1@s4"), nbdUri(receiver, "r1@s4"));

    // Now the first of two never lands (its connection is cut): the second is refused, nothing changes.
    const [lost, orphan] = await twoBatches("s5", "s6", "s7", 340);
    const before = await replicaState();
    const cut = postHeld(lost, 4096);
    await sleep(300);
    const orphanAnswer = post(orphan).then(async (response) => ({ status: response.status, text: await response.text() }));
    await sleep(300);
    cut.abort();
    const refused = await orphanAnswer;
    assert.equal(refused.status, 409, refused.text);
    assert.match(refused.text, /a batch is missing/);
    assert.deepEqual(await replicaState(), before, "the replica is unchanged");
  });
});
