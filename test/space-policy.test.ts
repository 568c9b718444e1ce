/**
 * Goal: the space policy on a real small file system (SPEC §4.2, issue 9): when the store's file
 * system passes a disk's --space-high mark (use as df shows it), its --space-action runs —
 * delete-oldest deletes the oldest snapshot (reason "space") and compacts, compact frees what no
 * view needs — until use is 5 points below the mark; what it frees goes back to the file system
 * at once (use falls, as statfs sees it); every kept volume reads exactly what was written; each
 * step is in the event log, after a `space-high` event.
 *
 * Method: a 192 MiB tmpfs mounted by the test (root needed; skipped loudly otherwise, a failure
 * in CI), a store on it, a real `snaplog serve` child (its space monitor on the real statfs, every
 * 5 s and on each new segment file), a 32 MiB disk (one 32 MiB segment file per full pass) filled
 * through NBD by the test's own client, pass after pass of a known pattern, with snapshots in
 * between. Background compaction is off on the disks (--auto-compact off), so only the space
 * policy frees anything. Each volume is hashed over NBD and compared with the hash of the pattern
 * written into it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, promises as fs, rmSync } from "node:fs";
import { join } from "node:path";
import type { StoreEvent } from "../src/store/operations/index.js";
import { hashExport, NbdClient } from "./support/nbd-client.js";
import { parseNdjson } from "./support/ndjson.js";
import { killServeChildren, snaplogCli, startServeChild, type ServeChild } from "./support/serve-child.js";
import { pattern } from "./support/data-pattern.js";
import { waitFor } from "./support/wait-for.js";

const MiB = 1024 * 1024;
const FILE_SYSTEM_MIB = 192;
const DISK_BYTES = 32 * MiB;
const HIGH_PERCENT = 60;
/** A space check runs at least every 5 s: a few of them, and the steps. */
const ACTION_TIMEOUT_MS = 60_000;

after(killServeChildren);

let mountPoint: string | undefined;

/** Mounts a fresh tmpfs, or says loudly why not (a failure in CI). */
function mountSmallFileSystem(): string | undefined {
  const directory = mkdtempSync("/var/tmp/snaplog-space-");
  const refuse = (why: string): undefined => {
    rmSync(directory, { recursive: true, force: true });
    if (process.env.CI) throw new Error(`CI: the space policy test needs a small file system: ${why}`);
    console.error(`\n*** SKIP: the space policy test needs a small file system: ${why} ***\n`);
    return undefined;
  };
  if (process.getuid?.() !== 0) return refuse("mounting a tmpfs needs root");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${FILE_SYSTEM_MIB}m`, "tmpfs", directory], { stdio: "pipe" });
  } catch (error) {
    return refuse(`mount -t tmpfs failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return directory;
}

before(() => {
  mountPoint = mountSmallFileSystem();
});

after(() => {
  if (mountPoint === undefined) return;
  killServeChildren();
  execFileSync("umount", [mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

/** df's Use% of the file system at `path`: used / (used + available), rounded up. */
async function usePercent(path: string): Promise<number> {
  const stat = await fs.statfs(path);
  const used = (stat.blocks - stat.bfree) * stat.bsize;
  return Math.ceil((used * 100) / (used + stat.bavail * stat.bsize));
}

/** The content of a full pass: the disk's bytes as pass `index` writes them. */
function passContent(index: number): Buffer {
  return pattern(1000 + index, DISK_BYTES);
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes a whole pass over NBD, 1 MiB at a time, then a FLUSH. */
async function writePass(server: ServeChild, disk: string, index: number): Promise<void> {
  const client = await NbdClient.connect({ path: server.socketPath }, disk);
  try {
    const content = passContent(index);
    for (let offset = 0; offset < DISK_BYTES; offset += MiB) await client.write(offset, content.subarray(offset, offset + MiB));
    await client.flush();
  } finally {
    await client.disconnect();
  }
}

async function cli(storePath: string, ...args: string[]): Promise<string> {
  const result = await snaplogCli(storePath, args);
  assert.equal(result.code, 0, `snaplog ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

async function events(storePath: string, disk: string): Promise<StoreEvent[]> {
  return parseNdjson(await cli(storePath, "--json", "events", disk)) as StoreEvent[];
}

async function expectVolume(server: ServeChild, exportName: string, pass: number): Promise<void> {
  assert.equal(await hashExport({ path: server.socketPath }, exportName), sha256(passContent(pass)), `${exportName} reads pass ${pass}`);
}

test(
  "archive-then-delete: past the mark the oldest snapshot goes to the vault first, then is deleted; the vault restores it",
  { timeout: 300_000 },
  async (t) => {
    if (mountPoint === undefined) return t.skip("no small file system (see the SKIP line)");
    const storePath = join(mountPoint, "store-archive");
    // The vault lies outside the small file system (a backup device).
    const outside = mkdtempSync("/tmp/snaplog-space-vault-");
    await cli(storePath, "init");
    await cli(storePath, "disk", "create", "vm1", "--size", "32M", "--history", "0");
    const server = await startServeChild(storePath, join(mountPoint, "nbd-archive.sock"));
    try {
      await cli(storePath, "vault", "add", "offsite", `file://${join(outside, "vault")}`);
      await cli(
        storePath,
        "policy",
        "set",
        "vm1",
        "--auto-compact",
        "off",
        "--space-high",
        `${HIGH_PERCENT}%`,
        "--space-action",
        "archive-then-delete",
        "--space-vault",
        "offsite",
      );
      for (const pass of [1, 2, 3]) {
        await writePass(server, "vm1", pass);
        await cli(storePath, "snapshot", "create", "vm1", "--name", `s${pass}`);
      }
      await writePass(server, "vm1", 4);
      await waitFor(
        "the space action to end",
        async () => (await events(storePath, "vm1")).some((event) => event.type === "space-normal"),
        ACTION_TIMEOUT_MS,
      );
      const log = (await events(storePath, "vm1")).filter((event) => event.reason === "space");
      const steps = log.filter((event) => event.type === "space-action" && event.details?.action === "archive-then-delete");
      assert.deepEqual(
        steps.map((event) => event.snapshot),
        ["s1"],
      );
      assert.match(steps[0].message, /archived snapshot s1 to vault offsite, deleted snapshot s1/);
      const chains = JSON.parse(await cli(storePath, "--json", "vault", "ls", "offsite", "vm1")) as {
        items: { snapshot: string; complete: boolean }[];
      }[];
      assert.deepEqual(
        chains.flatMap((chain) => chain.items.map((item) => [item.snapshot, item.complete])),
        [["s1", true]],
      );
      const list = JSON.parse(await cli(storePath, "--json", "snapshot", "list", "vm1")) as { name: string }[];
      assert.deepEqual(
        list.map((snapshot) => snapshot.name),
        ["s2", "s3"],
      );
      // The archived snapshot comes back, byte-exact, in another store.
      const otherPath = join(outside, "other");
      await cli(otherPath, "init");
      await cli(otherPath, "vault", "add", "offsite", `file://${join(outside, "vault")}`);
      await cli(otherPath, "vault", "restore", "offsite", "vm1@s1", "--as", "back");
      const image = join(outside, "back.raw");
      await cli(otherPath, "restore", "back", "--at", "s1", "--to", image);
      assert.equal(sha256(await fs.readFile(image)), sha256(passContent(1)));
      await server.stop();
    } finally {
      await server.kill();
      await fs.rm(storePath, { recursive: true, force: true });
      await fs.rm(outside, { recursive: true, force: true });
    }
  },
);

test(
  "delete-oldest: past the mark the oldest snapshot goes and use falls below the mark − 5; every kept volume intact",
  { timeout: 300_000 },
  async (t) => {
    if (mountPoint === undefined) return t.skip("no small file system (see the SKIP line)");
    const storePath = join(mountPoint, "store-delete");
    await cli(storePath, "init");
    await cli(storePath, "disk", "create", "vm1", "--size", "32M", "--history", "0");
    const server = await startServeChild(storePath, join(mountPoint, "nbd-delete.sock"));
    try {
      await cli(
        storePath,
        "policy",
        "set",
        "vm1",
        "--auto-compact",
        "off",
        "--space-high",
        `${HIGH_PERCENT}%`,
        "--space-action",
        "delete-oldest",
      );
      // Three passes with a snapshot after each: each pass is a segment file only its snapshot needs.
      for (const pass of [1, 2, 3]) {
        await writePass(server, "vm1", pass);
        await cli(storePath, "snapshot", "create", "vm1", "--name", `s${pass}`);
        await expectVolume(server, `vm1@s${pass}`, pass);
      }
      const before = await usePercent(mountPoint);
      assert.ok(before < HIGH_PERCENT, `three passes use ${before}%, below the mark`);
      assert.equal((await events(storePath, "vm1")).filter((event) => event.type.startsWith("space")).length, 0, "nothing to do yet");

      // The fourth pass takes the file system past the mark.
      await writePass(server, "vm1", 4);
      await waitFor(
        "the space action to end",
        async () => (await events(storePath, "vm1")).some((event) => event.type === "space-normal"),
        ACTION_TIMEOUT_MS,
      );
      const after = await usePercent(mountPoint);
      assert.ok(after <= HIGH_PERCENT - 5, `use fell to ${after}%, at most ${HIGH_PERCENT - 5}%`);
      t.diagnostic(`use: ${before}% after three passes, ${after}% after the fourth pass and the space action`);

      const log = (await events(storePath, "vm1")).filter((event) => event.reason === "space");
      const types = log.map((event) => event.type);
      assert.equal(types[0], "space-high", `the episode starts with space-high: ${types.join(", ")}`);
      const peak = log[0].details?.usePercent as number;
      assert.ok(peak > HIGH_PERCENT, `space-high when use passed the mark (${peak}%)`);
      t.diagnostic(`use passed the mark at ${peak}%`);
      assert.equal(types[types.length - 1], "space-normal");
      const deletes = log.filter((event) => event.type === "space-action" && event.details?.action === "delete-oldest");
      assert.deepEqual(
        deletes.map((event) => event.snapshot),
        ["s1"],
        "the oldest snapshot only: one segment back is enough",
      );
      assert.ok((deletes[0].details?.usePercentAfter as number) <= HIGH_PERCENT - 5, "the step's event carries use after it");
      const deleted = (await events(storePath, "vm1")).filter((event) => event.type === "snapshot-deleted");
      assert.deepEqual(
        deleted.map((event) => [event.snapshot, event.reason]),
        [["s1", "space"]],
      );

      // Every kept volume reads what was written into it.
      const list = JSON.parse(await cli(storePath, "--json", "snapshot", "list", "vm1")) as { name: string }[];
      assert.deepEqual(
        list.map((snapshot) => snapshot.name),
        ["s2", "s3"],
      );
      await expectVolume(server, "vm1@s2", 2);
      await expectVolume(server, "vm1@s3", 3);
      await expectVolume(server, "vm1", 4);
      await server.stop();
    } finally {
      await server.kill();
      // The next test needs the file system to itself.
      await fs.rm(storePath, { recursive: true, force: true });
    }
  },
);

test(
  "compact: past the mark, what no view needs goes back to the file system at once; every kept volume intact",
  { timeout: 300_000 },
  async (t) => {
    if (mountPoint === undefined) return t.skip("no small file system (see the SKIP line)");
    const storePath = join(mountPoint, "store-compact");
    await cli(storePath, "init");
    await cli(storePath, "disk", "create", "vm2", "--size", "32M", "--history", "0");
    const server = await startServeChild(storePath, join(mountPoint, "nbd-compact.sock"));
    try {
      // Deletes free nothing by themselves here: the space action is what gives the space back.
      await cli(storePath, "policy", "set", "vm2", "--auto-compact", "off", "--compact-on-delete", "off");
      for (const pass of [1, 2, 3]) {
        await writePass(server, "vm2", pass);
        await cli(storePath, "snapshot", "create", "vm2", "--name", `s${pass}`);
      }
      await cli(storePath, "snapshot", "delete", "vm2", "s1");
      await cli(storePath, "snapshot", "delete", "vm2", "s2");
      await writePass(server, "vm2", 4);
      const full = await usePercent(mountPoint);
      assert.ok(full > HIGH_PERCENT, `four segment files use ${full}%, past the mark`);

      // The policy set now: the next check (at most 5 s) finds use past the mark.
      await cli(storePath, "policy", "set", "vm2", "--space-high", `${HIGH_PERCENT}%`, "--space-action", "compact");
      await waitFor(
        "the space action to end",
        async () => (await events(storePath, "vm2")).some((event) => event.type === "space-normal"),
        ACTION_TIMEOUT_MS,
      );
      const after = await usePercent(mountPoint);
      assert.ok(after <= HIGH_PERCENT - 5, `use fell from ${full}% to ${after}%`);
      t.diagnostic(`use: ${full}% with four segment files, ${after}% after the space action`);
      const log = (await events(storePath, "vm2")).filter((event) => event.reason === "space");
      assert.deepEqual(
        log.map((event) => [event.type, event.details?.action ?? null]),
        [
          ["space-high", "compact"],
          ["space-action", "compact"],
          ["space-normal", null],
        ],
      );
      assert.equal(log[1].details?.segmentsReleased, 2, "the two segment files only the deleted snapshots held went back");

      await expectVolume(server, "vm2@s3", 3);
      await expectVolume(server, "vm2", 4);
      await server.stop();
    } finally {
      await server.kill();
      // The next test needs the file system to itself.
      await fs.rm(storePath, { recursive: true, force: true });
    }
  },
);
