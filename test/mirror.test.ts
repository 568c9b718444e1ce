/**
 * Goal: the mirror leg (SPEC §6, docs/mirror.md) holds the current volume: writes, WRITE_ZEROES
 * and TRIM reach it; a failing mirror (a file on a small tmpfs that fills) degrades the leg
 * without failing a write, with an event; a resync copies only the dirty regions; after a crash
 * (the store abandoned, the mirror made to differ in a region in flight) the leg is resynced at
 * open; `--mirror off` leaves the file. Method: a real store in a temp directory, the current
 * volume as the NBD server resolves it, the mirror file read back and compared byte for byte.
 */
import { Readable } from "node:stream";
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, promises as fs } from "node:fs";
import * as path from "node:path";
import { Store } from "../src/store/store.js";
import type { MirrorStatus } from "../src/store/operations/index.js";
import { pattern } from "./support/data-pattern.js";
import { runCli } from "./support/cli.js";
import { qemuImgCompare } from "./support/interop-tools.js";
import { NbdClient } from "./support/nbd-client.js";
import { startServeChild } from "./support/serve-child.js";
import { firstSegmentPath, flipByte, storeWithDisk } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const MiB = 1024 * 1024;
process.env.SNAPLOG_MIRROR_RETRY_MS = "300";
const DISK_BYTES = 16 * MiB;

async function newStore(prefix: string): Promise<{ store: Store; storePath: string; directory: string }> {
  const directory = tempDir(prefix);
  const storePath = await storeWithDisk(path.join(directory, "store"), { name: "d", sizeBytes: DISK_BYTES }, [
    { offsetBytes: 3 * MiB, data: pattern(1, 64 * 1024) },
  ]);
  return { store: await Store.open(storePath), storePath, directory };
}

async function waitFor(store: Store, state: MirrorStatus["state"]): Promise<MirrorStatus> {
  for (let tries = 0; tries < 500; tries += 1) {
    const status = await store.mirrorStatus("d");
    if (status.state === state) return status;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`mirror never reached ${state}: ${JSON.stringify(await store.mirrorStatus("d"))}`);
}

async function assertLegsEqual(store: Store, mirrorPath: string, label: string): Promise<void> {
  const volume = await store.resolve("d").read(0, DISK_BYTES);
  const mirror = await fs.readFile(mirrorPath);
  assert.equal(mirror.length, DISK_BYTES, `${label}: mirror size`);
  assert.ok(volume.equals(mirror), `${label}: the mirror equals the current volume`);
}

test("a new mirror is built from the log; writes, zeroes, trims and flushes reach it; --mirror off leaves it", async () => {
  const { store, directory } = await newStore("mirror-basic");
  const mirrorPath = path.join(directory, "mirror.img");
  try {
    await store.setPolicy({ disk: "d", mirror: mirrorPath });
    const built = await waitFor(store, "in-sync");
    assert.equal(built.bytesCopied, MiB, "only the one region with data was written (the rest stay holes)");
    await assertLegsEqual(store, mirrorPath, "after the first sync");

    const volume = store.resolve("d");
    const writes: Promise<void>[] = [];
    for (let index = 0; index < 64; index += 1) {
      const offset = ((index * 7919) % 4000) * 4096;
      writes.push(volume.write(offset, pattern(100 + index, 4096), { fua: index % 8 === 0 }));
    }
    writes.push(volume.write(5 * MiB + 100, pattern(7, 3 * MiB), { fua: false })); // unaligned, spans regions
    await Promise.all(writes);
    await volume.writeZeroes(3 * MiB, 16 * 1024, { fua: false, noHole: false });
    await volume.trim(6 * MiB, MiB, { fua: true });
    await volume.flush();
    await assertLegsEqual(store, mirrorPath, "after writes, zeroes and a trim");

    for (const [bad, why] of [
      [path.join(directory, "no-such-dir", "m.img"), /cannot use it: .*ENOENT/],
      [directory, /cannot use it/],
      [path.join(store.path, "inside.img"), /inside the store/],
    ] as const) {
      await assert.rejects(store.setPolicy({ disk: "d", mirror: bad }), why, bad);
      assert.equal((await store.mirrorStatus("d")).path, mirrorPath, "the leg stays as it was");
    }
    const policy = await store.setPolicy({ disk: "d", mirror: null });
    assert.equal(policy.mirror, null);
    assert.ok(existsSync(mirrorPath), "--mirror off leaves the file");
    await assert.rejects(store.mirrorStatus("d"), /has no mirror/);
  } finally {
    await store.close();
  }
});

test("a mirror that fills degrades without failing a write, records an event, and resync copies only what differs", async (t) => {
  const { store, directory } = await newStore("mirror-degrade");
  const mount = path.join(directory, "small");
  mkdirSync(mount);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mount]);
  } catch {
    await store.close();
    t.skip("cannot mount a tmpfs here");
    return;
  }
  const mirrorPath = path.join(mount, "mirror.img");
  try {
    await store.setPolicy({ disk: "d", mirror: mirrorPath });
    await waitFor(store, "in-sync");
    const volume = store.resolve("d");
    // 4 MiB of data into a 2 MiB file system: the mirror fills; every write still succeeds.
    for (let index = 0; index < 4; index += 1) await volume.write(8 * MiB + index * MiB, pattern(20 + index, MiB), { fua: false });
    await volume.flush();
    const degraded = await store.mirrorStatus("d");
    assert.equal(degraded.state, "degraded");
    assert.match(degraded.reason ?? "", /ENOSPC|no space/i);
    const events = [];
    for await (const event of store.readEvents({ disk: "d" })) events.push(event);
    assert.ok(
      events.some((event) => event.type === "mirror-degraded"),
      "a mirror-degraded event is recorded",
    );
    // Written while degraded: only bits.
    await volume.write(MiB, pattern(30, 4096), { fua: true });
    assert.equal((await store.mirrorStatus("d")).state, "degraded");

    execFileSync("mount", ["-o", "remount,size=64m", mount]);
    // The leg answers again: the server's retry (every SNAPLOG_MIRROR_RETRY_MS, 300 ms here) resyncs it by itself.
    const result = await waitFor(store, "in-sync");
    assert.ok(result.bytesCopied > 0 && result.bytesCopied <= 6 * MiB, `copied ${result.bytesCopied} bytes of a ${DISK_BYTES}-byte disk`);
    await assertLegsEqual(store, mirrorPath, "after the resync");
    const restored = [];
    for await (const event of store.readEvents({ disk: "d" })) if (event.type === "mirror-restored") restored.push(event);
    assert.equal(restored.length, 1, "mirror-restored is recorded");
  } finally {
    await store.close();
    execFileSync("umount", [mount]);
  }
});

test("after a crash, the regions in flight are resynced from the log at open", async () => {
  const { store, storePath, directory } = await newStore("mirror-crash");
  const mirrorPath = path.join(directory, "mirror.img");
  await store.setPolicy({ disk: "d", mirror: mirrorPath });
  await waitFor(store, "in-sync");
  const volume = store.resolve("d");
  await volume.write(2 * MiB, pattern(40, 64 * 1024), { fua: false });
  await volume.flush();
  await volume.write(10 * MiB, pattern(41, 64 * 1024), { fua: true });
  await store.abandon();
  // As if the crash came between the legs' writes: the mirror holds bytes the log never took.
  const handle = await fs.open(mirrorPath, "r+");
  await handle.write(pattern(42, 4096), 0, 4096, 10 * MiB + 8192);
  await handle.close();

  const reopened = await Store.open(storePath);
  try {
    const status = await waitFor(reopened, "in-sync");
    assert.ok(status.bytesCopied <= 2 * MiB, `only regions in flight are rewritten (${status.bytesCopied} bytes)`);
    await assertLegsEqual(reopened, mirrorPath, "after the resync at open");
  } finally {
    await reopened.close();
  }
});

test("a mirror file that vanished (while the server was down, or unlinked under it) is rebuilt whole, not trusted as in sync", async () => {
  const { store, storePath, directory } = await newStore("mirror-vanished");
  const mirrorPath = path.join(directory, "mirror.img");
  await store.setPolicy({ disk: "d", mirror: mirrorPath });
  await waitFor(store, "in-sync");
  const volume = store.resolve("d");
  await volume.write(7 * MiB, pattern(50, 64 * 1024), { fua: true });
  volume.release();
  // An orderly close: the bitmap is clean, mirror.json says in sync.
  await store.close();
  await fs.rm(mirrorPath);

  const reopened = await Store.open(storePath);
  try {
    // The leg made a new, empty file: every region must be checked, not only the (clean) bitmap's.
    const status = await waitFor(reopened, "in-sync");
    assert.equal(status.bytesCopied, 2 * MiB, "the two regions holding data were copied into the new file");
    await assertLegsEqual(reopened, mirrorPath, "after rebuilding the vanished file");
    // Unlinked while the leg runs: a resync sees the path no longer names the file it holds, and rebuilds a new one whole.
    await fs.rm(mirrorPath);
    const rebuilt = await reopened.resyncMirror("d");
    assert.equal(rebuilt.bytesCopied, 2 * MiB, "the new file got every region with data");
    await waitFor(reopened, "in-sync");
    await assertLegsEqual(reopened, mirrorPath, "after the retry made a new file");
  } finally {
    await reopened.close();
  }
});

test("a rollback and an import change the current volume without the write path: the mirror is resynced whole and equals it again", async () => {
  const { store, directory } = await newStore("mirror-wholesale");
  const mirrorPath = path.join(directory, "mirror.img");
  try {
    await store.setPolicy({ disk: "d", mirror: mirrorPath });
    await waitFor(store, "in-sync");
    const volume = store.resolve("d");
    await store.createSnapshot({ disk: "d", name: "before" });
    await volume.write(8 * MiB, pattern(55, 2 * MiB), { fua: true });
    await assertLegsEqual(store, mirrorPath, "after writes");
    await store.restore({ disk: "d", at: "before", rollback: true, name: "r1" });
    await waitFor(store, "in-sync");
    await assertLegsEqual(store, mirrorPath, "after a rollback");
    // An incremental import onto the disk (its own stream, from `before` to a later snapshot).
    await store.resolve("d").write(1 * MiB, pattern(56, MiB), { fua: true });
    await store.createSnapshot({ disk: "d", name: "after" });
    const chunks: Buffer[] = [];
    await store.exportStream({ disk: "d", from: "before", to: "after" }, async (chunk) => {
      chunks.push(Buffer.from(chunk));
    });
    await store.restore({ disk: "d", at: "before", rollback: true, name: "r2" });
    for (const name of ["after", "r1"]) await store.deleteSnapshot("d", name);
    await waitFor(store, "in-sync");
    const written = await store.resolve("d").read(0, DISK_BYTES);
    await store.importStream({ disk: "d", force: true }, Readable.from([Buffer.concat(chunks)]));
    await waitFor(store, "in-sync");
    assert.ok(!(await store.resolve("d").read(0, DISK_BYTES)).equals(written), "the import changed the volume");
    await assertLegsEqual(store, mirrorPath, "after an import");
  } finally {
    await store.close();
  }
});

test("a block whose log copy fails its checksum is served from the in-sync mirror and written again in the log", async () => {
  const { store, storePath, directory } = await newStore("mirror-heal");
  const mirrorPath = path.join(directory, "mirror.img");
  try {
    const expected = pattern(1, 64 * 1024).subarray(0, 4096);
    // The first block written (at 3 MiB) lies in slot 0 of the first segment file.
    flipByte(firstSegmentPath(storePath, "d"), 10);
    await assert.rejects(store.resolve("d").read(3 * MiB, 4096), /failed its checksum/, "without a mirror the read fails");
    // The mirror's first sync copies what the log holds; the damaged block cannot be copied yet, so repair the
    // fixture's data first through a write, then damage the log again once the legs are in sync.
    await store.resolve("d").write(3 * MiB, expected, { fua: true });
    await store.setPolicy({ disk: "d", mirror: mirrorPath });
    await waitFor(store, "in-sync");
    const segment = firstSegmentPath(storePath, "d");
    const located = (await fs.readFile(segment)).indexOf(expected);
    assert.ok(located >= 0, "the block's newest copy is in the first segment file");
    flipByte(segment, located + 10);
    const read = await store.resolve("d").read(3 * MiB, 4096);
    assert.ok(read.equals(expected), "served from the mirror");
    const status = await store.mirrorStatus("d");
    assert.equal(status.blocksRepaired, 1);
    assert.ok((await store.resolve("d").read(3 * MiB, 4096)).equals(expected));
    // The event is appended to the event log behind the read's answer: looked for until it is there.
    let repairs: unknown[] = [];
    for (let tries = 0; repairs.length === 0 && tries < 100; tries++) {
      if (tries > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      repairs = [];
      for await (const event of store.readEvents({ disk: "d" })) if (event.type === "mirror-repair") repairs.push(event);
    }
    assert.equal(repairs.length, 1, "mirror-repair is recorded");
    // The log holds the block again: a read straight from the engine's current volume without the mirror works.
    await store.setPolicy({ disk: "d", mirror: null });
    assert.ok((await store.resolve("d").read(3 * MiB, 4096)).equals(expected), "repaired in the log");
  } finally {
    await store.close();
  }
});

test("scrub repairs damage in the current volume from an in-sync mirror and reports it as repaired; older damaged versions stay reported", async () => {
  const { store, storePath, directory } = await newStore("mirror-scrub");
  const mirrorPath = path.join(directory, "mirror.img");
  try {
    await store.setPolicy({ disk: "d", mirror: mirrorPath });
    await waitFor(store, "in-sync");
    const expected = pattern(60, 4096);
    await store.resolve("d").write(5 * MiB, expected, { fua: true });
    const segment = firstSegmentPath(storePath, "d");
    const located = (await fs.readFile(segment)).indexOf(expected);
    assert.ok(located >= 0);
    flipByte(segment, located + 100);

    const first = (await store.scrub({ disk: "d" })).disks[0];
    assert.deepEqual(
      first.repaired.map((damage) => damage.block),
      [(5 * MiB) / 4096],
      "the current volume's damaged block is repaired",
    );
    assert.deepEqual(first.corrupt, [], "nothing else is damaged");
    assert.equal(first.ok, true);
    await store.setPolicy({ disk: "d", mirror: null });
    assert.ok((await store.resolve("d").read(5 * MiB, 4096)).equals(expected), "the log holds the block again, without the mirror");
    // The damaged version is still history (the window keeps it): now not the current one, it is reported, not repairable.
    const second = (await store.scrub({ disk: "d" })).disks[0];
    assert.deepEqual(second.repaired, []);
    assert.deepEqual(
      second.corrupt.map((damage) => damage.block),
      [(5 * MiB) / 4096],
    );
  } finally {
    await store.close();
  }
});

test("a real server killed with SIGKILL during writes: at the next start the regions in flight are resynced and the mirror compares equal", async () => {
  const directory = tempDir("mirror-sigkill");
  const storePath = path.join(directory, "store");
  const socketPath = path.join(directory, "nbd.sock");
  const mirrorPath = path.join(directory, "mirror.img");
  const cli = (...args: string[]) => {
    const result = runCli(["--store", storePath, ...args]);
    assert.equal(result.code, 0, `snaplog ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };
  cli("init");
  cli("disk", "create", "d", "--size", "16M");
  cli("policy", "set", "d", "--mirror", mirrorPath);
  let server = await startServeChild(storePath, socketPath);
  try {
    // Writes in flight from a client while the server is killed.
    const client = await NbdClient.connect({ path: socketPath }, "d");
    const writes: Promise<unknown>[] = [];
    for (let index = 0; index < 400; index += 1) {
      writes.push(client.write(((index * 7919) % 4000) * 4096, pattern(500 + index, 4096)).catch(() => undefined));
      if (index === 200) await client.flush();
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
    await server.kill();
    await Promise.allSettled(writes);
    await client.disconnect().catch(() => undefined);
    server = await startServeChild(storePath, socketPath);
    for (let tries = 0; ; tries += 1) {
      const status = JSON.parse(cli("--json", "mirror", "status", "d")) as MirrorStatus;
      if (status.state === "in-sync") break;
      assert.ok(tries < 500, `the mirror never got in sync: ${JSON.stringify(status)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await qemuImgCompare(server.unixUri("d"), mirrorPath, "the mirror after SIGKILL and restart");
  } finally {
    await server.kill();
  }
});

test("a replica's incoming batches reach its mirror: the regions they touch are resynced", async () => {
  const source = await newStore("mirror-replica-source");
  const target = await newStore("mirror-replica-target");
  const mirrorPath = path.join(target.directory, "replica-mirror.img");
  const exported = async (request: Parameters<Store["exportStream"]>[0]) => {
    const chunks: Buffer[] = [];
    await source.store.exportStream(request, async (chunk) => {
      chunks.push(Buffer.from(chunk));
    });
    return Readable.from([Buffer.concat(chunks)]);
  };
  try {
    const first = source.store.resolve("d");
    await first.write(0, pattern(70, MiB), { fua: true });
    const lsnFirst = (await source.store.showDisk("d")).lsnLast;
    const made = await target.store.replicaBatch("r", await exported({ disk: "d", to: `lsn:${lsnFirst}`, compact: true, cutTo: false }));
    await target.store.setPolicy({ disk: "r", mirror: mirrorPath });
    const waitInSync = async () => {
      for (let tries = 0; (await target.store.mirrorStatus("r")).state !== "in-sync"; tries += 1) {
        assert.ok(tries < 500, "the replica's mirror gets in sync");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    await waitInSync();
    await first.write(9 * MiB, pattern(71, 2 * MiB), { fua: true });
    const lsnSecond = (await source.store.showDisk("d")).lsnLast;
    await target.store.replicaBatch("r", await exported({ disk: "d", fromLsn: made.ackedLsn, to: `lsn:${lsnSecond}`, cutTo: false }));
    await waitInSync();
    const volume = await target.store.resolve("r").read(0, DISK_BYTES);
    assert.ok(volume.equals(await fs.readFile(mirrorPath)), "the replica's mirror equals it after a batch");
    assert.ok(volume.subarray(9 * MiB, 11 * MiB).equals(pattern(71, 2 * MiB)), "the batch arrived");
  } finally {
    await source.store.close();
    await target.store.close();
  }
});
