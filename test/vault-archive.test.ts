/**
 * Goal: archives to vaults are complete or absent, resumable without re-sending what the vault
 * holds, never collide between stores, and restore byte-exact or not at all (issue 10, SPEC
 * §5.3, docs/vaults.md). Method: real stores, the real CLI (the archive through a running
 * `snaplog serve`, and as a child process SIGKILLed at random moments), real targets — a
 * directory, a directory on a tmpfs that fills up, a throwaway Ceph RGW that is killed
 * mid-archive, another appliance over its API. Every restore is compared with the source,
 * volume against volume, byte for byte through the Store API (or `restore --to` files while
 * the source is served). Bytes sent are counted from the `--json` results and from the vault
 * itself (a part re-sent is a new file: a new inode under the same key).
 */
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs, readFileSync } from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CreateBucketCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { Store } from "../src/store/store.js";
import type { ArchiveResult, VaultChainInfo } from "../src/store/operations/index.js";
import { TEMP_FILE_PREFIX } from "../src/vault/index.js";
import { startCephRgwOrSkip, type CephRgw } from "./support/ceph-rgw.js";
import { pattern } from "./support/data-pattern.js";
import { killServeChildren, snaplogMainPath, startApiServeChild, startServeChild, type CliRun } from "./support/serve-child.js";
import { readVolume } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

const BLOCK = 4096;
const MiB = 1024 * 1024;
const SMALL_DISK = 4 * MiB;
const children = new Set<ReturnType<typeof spawn>>();
after(() => {
  for (const child of children) child.kill("SIGKILL");
  killServeChildren();
});

// ---- helpers ------------------------------------------------------------------------------

/** `snaplog --store STORE ARGS...`, asynchronously (a served store goes through its API). */
function cli(storePath: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [snaplogMainPath, "--store", storePath, ...args],
      { timeout: 180_000, env: { ...process.env, SNAPLOG_STORE: "", ...env }, maxBuffer: 16 * MiB },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function ok(storePath: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const run = await cli(storePath, args, env);
  assert.equal(run.code, 0, `snaplog ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

async function okJson<T>(storePath: string, args: string[], env: Record<string, string> = {}): Promise<T> {
  return JSON.parse(await ok(storePath, ["--json", ...args], env)) as T;
}

/** Fails with `pattern` on its first stderr line; returns stderr. */
async function refused(storePath: string, args: string[], pattern: RegExp, env: Record<string, string> = {}): Promise<string> {
  const run = await cli(storePath, args, env);
  assert.notEqual(run.code, 0, `snaplog ${args.join(" ")} must fail: ${run.stdout}`);
  assert.match(run.stderr, pattern, `snaplog ${args.join(" ")}`);
  assert.equal(run.stdout, "");
  return run.stderr;
}

async function newStore(prefix: string): Promise<string> {
  const storePath = path.join(tempDir(prefix), "store");
  await Store.init(storePath);
  return storePath;
}

async function withStore<T>(storePath: string, action: (store: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(storePath, { mode: "direct" });
  try {
    return await action(store);
  } finally {
    await store.close();
  }
}

function storeIdOf(storePath: string): string {
  const id = (JSON.parse(readFileSync(path.join(storePath, "store.json"), "utf8")) as { body: { storeId?: string } }).body.storeId;
  assert.ok(id, `${storePath} has a store id`);
  return id;
}

async function diskNames(storePath: string): Promise<string[]> {
  return withStore(storePath, async (store) => (await store.listDisks()).map((disk) => disk.name).sort());
}

function firstDifference(left: Buffer, right: Buffer): number {
  if (left.length !== right.length) return Math.min(left.length, right.length);
  for (let index = 0; index < left.length; index += 4096) {
    if (!left.subarray(index, index + 4096).equals(right.subarray(index, index + 4096))) return index;
  }
  return -1;
}

function assertSameBytes(left: Buffer, right: Buffer, label: string): void {
  const at = firstDifference(left, right);
  assert.equal(at, -1, `${label}: differs at byte ${at} (sizes ${left.length} and ${right.length})`);
}

/** Every pair [source export, restored export] reads the same, byte for byte (both stores opened directly). */
async function assertSameVolumes(sourcePath: string, targetPath: string, pairs: [string, string][]): Promise<void> {
  await withStore(sourcePath, (source) =>
    withStore(targetPath, async (target) => {
      for (const [left, right] of pairs)
        assertSameBytes(await readVolume(source, left), await readVolume(target, right), `${left} vs ${right}`);
    }),
  );
}

/** A disk with history: writes (some overwritten), zeros, a trim, snapshots s1..s4, writes after; returns a time strictly between s3 and s4. */
async function diskWithHistory(storePath: string, disk: string, seedBase: number): Promise<{ insideS3S4: string; insideS1S2: string }> {
  return withStore(storePath, async (store) => {
    await store.createDisk({ name: disk, sizeBytes: SMALL_DISK });
    const volume = store.resolve(disk);
    let seed = seedBase;
    const write = (blockFirst: number, blockCount: number) =>
      volume.write(blockFirst * BLOCK, pattern(seed++, blockCount * BLOCK), { fua: false });
    const pause = () => sleep(15);
    const moment = async () => {
      await pause();
      const text = new Date(Date.now()).toISOString();
      await pause();
      return text;
    };
    await write(0, 64);
    await write(200, 3);
    await store.createSnapshot({ disk, name: "s1" });
    await pause();
    await write(10, 5);
    const insideS1S2 = await moment();
    await write(12, 8);
    await volume.writeZeroes(300 * BLOCK, 16 * BLOCK, { fua: false, noHole: false });
    await store.createSnapshot({ disk, name: "s2" });
    await pause();
    await write(0, 2);
    await volume.trim(40 * BLOCK, 8 * BLOCK, { fua: false });
    await store.createSnapshot({ disk, name: "s3" });
    await pause();
    await write(500, 20);
    await write(505, 3);
    const insideS3S4 = await moment();
    await write(0, 1);
    await write(501, 2);
    await volume.writeZeroes(600 * BLOCK, 4 * BLOCK, { fua: false, noHole: false });
    await store.createSnapshot({ disk, name: "s4" });
    await pause();
    await write(1, 1);
    await write(700, 9);
    await volume.flush();
    volume.release();
    return { insideS3S4, insideS1S2 };
  });
}

/** A disk holding `bytes` of random (incompressible) data, and snapshot s1 of it. */
async function diskWithRandomData(storePath: string, disk: string, bytes: number, sizeBytes: number): Promise<void> {
  await withStore(storePath, async (store) => {
    await store.createDisk({ name: disk, sizeBytes });
    const volume = store.resolve(disk);
    for (let at = 0; at < bytes; at += MiB) await volume.write(at, randomBytes(Math.min(MiB, bytes - at)), { fua: false });
    await volume.flush();
    volume.release();
    await store.createSnapshot({ disk, name: "s1" });
  });
}

interface VaultFile {
  key: string;
  file: string;
  ino: number;
  size: number;
  temp: boolean;
}

/** Every file under a directory vault (temp files of unfinished puts included). */
async function vaultFiles(directory: string): Promise<VaultFile[]> {
  const entries = await fs.readdir(directory, { recursive: true, withFileTypes: true }).catch(() => []);
  const files: VaultFile[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat === undefined) continue;
    files.push({
      key: path.relative(directory, file),
      file,
      ino: stat.ino,
      size: stat.size,
      temp: entry.name.startsWith(TEMP_FILE_PREFIX),
    });
  }
  return files.sort((a, b) => a.key.localeCompare(b.key));
}

const isPart = (file: VaultFile) => !file.temp && /\/part-\d{6}\.slar$/.test(file.key);

/** Bytes a run put in the vault: parts that are new files (new key, or a new inode under an old key), and temp files it left. */
function bytesWritten(before: VaultFile[], after: VaultFile[]): number {
  const old = new Map(before.map((file) => [file.file, file.ino]));
  return after.filter((file) => (isPart(file) || file.temp) && old.get(file.file) !== file.ino).reduce((sum, file) => sum + file.size, 0);
}

/** `snaplog archive` as a child process; resolves with its exit and output. */
function spawnArchive(
  storePath: string,
  args: string[],
  env: Record<string, string> = {},
): { child: ReturnType<typeof spawn>; done: Promise<CliRun & { signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [snaplogMainPath, "--store", storePath, "--json", "archive", ...args], {
    env: { ...process.env, SNAPLOG_STORE: "", ...env },
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<CliRun & { signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      children.delete(child);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    }),
  );
  return { child, done };
}

function chainItems(chains: VaultChainInfo[]) {
  return chains.flatMap((chain) =>
    chain.items.map((item) => ({ ...item, chainId: chain.chainId, storeId: chain.storeId, disk: chain.disk })),
  );
}

// ---- 1. a file vault through a running server ---------------------------------------------

describe("file vault through the CLI and a running server", () => {
  test("full + incrementals, --compact off, vault ls, restore of every snapshot, @SNAPSHOT, --at, --full, refusals", async () => {
    const directory = tempDir("vault-archive-cli");
    const sourcePath = path.join(directory, "source");
    const targetPath = path.join(directory, "target");
    const vaultDir = path.join(directory, "vault");
    await Store.init(sourcePath);
    await Store.init(targetPath);
    const { insideS3S4, insideS1S2 } = await diskWithHistory(sourcePath, "vm", 1);
    const server = await startServeChild(sourcePath, path.join(directory, "nbd.sock"));
    let newest: string;
    try {
      await ok(sourcePath, ["vault", "add", "v", `file://${vaultDir}`]);
      const full = await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "v", "--snapshot", "s1"]);
      assert.deepEqual([full.kind, full.index, full.from, full.compacted, full.snapshot], ["full", 0, null, true, "s1"]);
      assert.equal(full.bytesSent, full.bytes, "a first run sends the whole stream");
      const second = await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "v", "--snapshot", "s2"]);
      assert.deepEqual(
        [second.kind, second.index, second.from, second.compacted, second.chainId],
        ["incremental", 1, "s1", true, full.chainId],
      );
      const third = await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "v", "--snapshot", "s4", "--compact", "off"]);
      assert.deepEqual(
        [third.kind, third.index, third.from, third.compacted, third.chainId],
        ["incremental", 2, "s2", false, full.chainId],
      );

      await refused(sourcePath, ["archive", "vm", "--vault", "v", "--snapshot", "s2"], /snapshot s2 of disk vm is in vault v already/);
      await refused(sourcePath, ["archive", "vm", "--vault", "v", "--snapshot", "s3"], /snapshot s3 of disk vm is in vault v already/);

      const chains = await okJson<VaultChainInfo[]>(sourcePath, ["vault", "ls", "v"]);
      assert.equal(chains.length, 1);
      const [chain] = chains;
      assert.equal(chain.storeId, storeIdOf(sourcePath));
      assert.equal(chain.disk, "vm");
      assert.deepEqual(
        chain.items.map((item) => [item.index, item.kind, item.snapshot, item.snapshots, item.compacted, item.complete]),
        [
          [0, "full", "s1", ["s1"], true, true],
          [1, "incremental", "s2", ["s2"], true, true],
          [2, "incremental", "s4", ["s3", "s4"], false, true],
        ],
      );
      assert.deepEqual(
        chain.items.map((item) => item.bytes),
        [full.bytes, second.bytes, third.bytes],
      );
      const text = await ok(sourcePath, ["vault", "ls", "v"]);
      assert.match(text, new RegExp(`store ${chain.storeId}\\s+disk vm`));

      // Restores into a second store (not served: the CLI runs it directly) while the first chain is the newest.
      await ok(targetPath, ["vault", "add", "v", `file://${vaultDir}`]);
      const whole = await okJson<{ disk: string; chainId: string; streams: number; snapshots: string[] }>(targetPath, [
        "vault",
        "restore",
        "v",
        "vm@s4",
        "--as",
        "all",
      ]);
      assert.deepEqual([whole.streams, whole.snapshots], [3, ["s1", "s2", "s3", "s4"]]);
      const upToS2 = await okJson<{ streams: number; snapshots: string[] }>(targetPath, ["vault", "restore", "v", "vm@s2", "--as", "two"]);
      assert.deepEqual([upToS2.streams, upToS2.snapshots], [2, ["s1", "s2"]]);
      const atTime = await okJson<{ streams: number }>(targetPath, ["vault", "restore", "v", "vm@s4", "--at", insideS3S4, "--as", "at"]);
      assert.equal(atTime.streams, 3);
      await refused(
        targetPath,
        ["vault", "restore", "v", "vm@s4", "--at", insideS1S2, "--as", "no"],
        /--at falls inside a compacted stream \(s1 \.\. s2\)/,
      );

      // --full: a new chain (the snapshot is a new one, cut by the archive).
      const fresh = await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "v", "--full"]);
      assert.equal(fresh.kind, "full");
      assert.equal(fresh.index, 0);
      assert.notEqual(fresh.chainId, full.chainId);
      assert.match(fresh.snapshot, /^archive-/);
      newest = fresh.snapshot;
      const after = await okJson<VaultChainInfo[]>(sourcePath, ["vault", "ls", "v", "vm"]);
      assert.deepEqual(
        after.map((one) => one.chainId),
        [full.chainId, fresh.chainId],
      );
    } finally {
      await server.stop();
    }

    const newestChain = await okJson<{ streams: number; snapshots: string[] }>(targetPath, ["vault", "restore", "v", "vm"]);
    // A full stream carries every snapshot before its end as a cut.
    assert.deepEqual([newestChain.streams, newestChain.snapshots], [1, ["s1", "s2", "s3", "s4", newest]]);
    await refused(targetPath, ["vault", "restore", "v", "vm"], /a disk named vm exists already/);

    await assertSameVolumes(sourcePath, targetPath, [
      ["vm@s1", "all@s1"],
      ["vm@s2", "all@s2"],
      ["vm@s3", "all@s3"],
      ["vm@s4", "all@s4"],
      ["vm@s4", "all"],
      ["vm@s1", "two@s1"],
      ["vm@s2", "two"],
      [`vm@${newest}`, `vm@${newest}`],
      ["vm", "vm"],
      [`vm@${insideS3S4}`, "at"],
    ]);
    // The point in time is a real one: it differs from both snapshots around it.
    await withStore(sourcePath, async (source) => {
      const atT = await readVolume(source, `vm@${insideS3S4}`);
      assert.ok(!atT.equals(await readVolume(source, "vm@s3")) && !atT.equals(await readVolume(source, "vm@s4")), "T is strictly inside");
    });
    assert.deepEqual(await diskNames(targetPath), ["all", "at", "two", "vm"]);
  });
});

// ---- 2. two stores, one vault ----------------------------------------------------------------

describe("two stores archiving disks of one name to one vault", () => {
  test("chains do not collide; DISK alone is refused naming the store ids; STOREID/DISK restores only that store's disk", async () => {
    const vaultDir = path.join(tempDir("vault-archive-two"), "vault");
    const first = await newStore("vault-archive-a");
    const second = await newStore("vault-archive-b");
    const third = await newStore("vault-archive-c");
    await diskWithHistory(first, "vm", 100);
    await diskWithHistory(second, "vm", 200);
    for (const store of [first, second, third]) await ok(store, ["vault", "add", "v", `file://${vaultDir}`]);
    const a = await okJson<ArchiveResult>(first, ["archive", "vm", "--vault", "v", "--snapshot", "s2"]);
    const b = await okJson<ArchiveResult>(second, ["archive", "vm", "--vault", "v", "--snapshot", "s2"]);
    // Same disk name, same snapshot name: the second store's archive is its own full stream, not "already there".
    assert.equal(b.kind, "full");
    await okJson<ArchiveResult>(first, ["archive", "vm", "--vault", "v", "--snapshot", "s4"]);
    const [idA, idB] = [storeIdOf(first), storeIdOf(second)];
    const chains = await okJson<VaultChainInfo[]>(third, ["vault", "ls", "v"]);
    assert.deepEqual(
      chains.map((chain) => [chain.storeId, chain.disk, chain.items.length]).sort(),
      [
        [idA, "vm", 2],
        [idB, "vm", 1],
      ].sort(),
    );
    assert.notEqual(chains[0].chainId, chains[1].chainId);
    assert.ok(chains.find((chain) => chain.storeId === idA)?.chainId === a.chainId);
    const files = await vaultFiles(vaultDir);
    assert.ok(files.some((file) => file.key.startsWith(`stores/${idA}/`)) && files.some((file) => file.key.startsWith(`stores/${idB}/`)));

    const message = await refused(third, ["vault", "restore", "v", "vm"], /from 2 stores: name one, as STOREID\/vm/);
    assert.ok(message.includes(idA) && message.includes(idB), message);
    assert.deepEqual(await diskNames(third), []);
    const onlyB = await okJson<{ snapshots: string[]; storeId: string }>(third, ["vault", "restore", "v", `${idB}/vm`, "--as", "b"]);
    assert.deepEqual([onlyB.storeId, onlyB.snapshots], [idB, ["s1", "s2"]]);
    const onlyA = await okJson<{ snapshots: string[]; storeId: string }>(third, ["vault", "restore", "v", `${idA}/vm`, "--as", "a"]);
    assert.deepEqual([onlyA.storeId, onlyA.snapshots], [idA, ["s1", "s2", "s3", "s4"]]);
    const aAtS2 = await okJson<{ storeId: string }>(third, ["vault", "restore", "v", `${idA}/vm@s2`, "--as", "a2"]);
    assert.equal(aAtS2.storeId, idA);
    await assertSameVolumes(first, third, [
      ["vm@s2", "a@s2"],
      ["vm@s4", "a"],
      ["vm@s2", "a2"],
    ]);
    await assertSameVolumes(second, third, [
      ["vm@s1", "b@s1"],
      ["vm@s2", "b"],
    ]);
    await withStore(first, (store) =>
      withStore(third, async (target) =>
        assert.ok(!(await readVolume(store, "vm@s2")).equals(await readVolume(target, "b")), "the data differ"),
      ),
    );
  });
});

// ---- 3. resume after SIGKILL ----------------------------------------------------------------

describe("resume after SIGKILL", () => {
  test("24 MiB of random data in 1 MiB parts, killed at random moments: each run resumes, at most one part re-sent per kill", async () => {
    const directory = tempDir("vault-archive-kill");
    const sourcePath = path.join(directory, "source");
    const targetPath = path.join(directory, "target");
    const vaultDir = path.join(directory, "vault");
    await Store.init(sourcePath);
    await Store.init(targetPath);
    await diskWithRandomData(sourcePath, "big", 24 * MiB, 32 * MiB);
    await ok(sourcePath, ["vault", "add", "v", `file://${vaultDir}`]);
    await ok(targetPath, ["vault", "add", "v", `file://${vaultDir}`]);
    const args = ["big", "--vault", "v", "--snapshot", "s1", "--part-size", "1M"];
    const plans = () => fs.readdir(path.join(sourcePath, "archives", "v")).catch(() => [] as string[]);

    let totalWritten = 0;
    let runs = 0;
    let killedAt = 0;
    const kills: string[] = [];
    let result: ArchiveResult | undefined;
    let checkedIncomplete = false;
    while (result === undefined) {
      const before = await vaultFiles(vaultDir);
      const heldParts = before.filter(isPart).length;
      // Kill after 2..6 more parts than the vault holds, at most four times; then let it finish.
      const killAfter = kills.length < 4 ? heldParts + 2 + Math.floor(Math.random() * 5) : Number.POSITIVE_INFINITY;
      const run = spawnArchive(sourcePath, args);
      runs++;
      let killed = false;
      const watch = (async () => {
        while (run.child.exitCode === null && run.child.signalCode === null) {
          if ((await vaultFiles(vaultDir)).filter(isPart).length >= killAfter) {
            run.child.kill("SIGKILL");
            killed = true;
            return;
          }
          await sleep(5);
        }
      })();
      const exit = await run.done;
      await watch;
      const afterRun = await vaultFiles(vaultDir);
      const written = bytesWritten(before, afterRun);
      totalWritten += written;
      if (killed && exit.signal === "SIGKILL") {
        killedAt = afterRun.filter(isPart).length;
        kills.push(`run ${runs}: killed with ${killedAt} parts in the vault, ${written} bytes written by it`);
        assert.equal(
          (await plans()).filter((name) => name.endsWith(".json")).length,
          1,
          "the plan (STORE/archives/VAULT/DISKID.json) stays for the next run",
        );
        assert.ok(!afterRun.some((file) => file.key.endsWith("manifest.json")), "no manifest before every part is in");
        if (!checkedIncomplete) {
          checkedIncomplete = true;
          const listed = chainItems(await okJson<VaultChainInfo[]>(sourcePath, ["vault", "ls", "v"]));
          assert.deepEqual(
            listed.map((item) => [item.storeId, item.disk, item.index, item.complete, item.snapshot]),
            [[storeIdOf(sourcePath), "big", 0, false, "(incomplete)"]],
          );
          assert.ok(listed[0].bytes > 0);
          await refused(targetPath, ["vault", "restore", "v", "big"], /no complete archive of disk big/);
          assert.deepEqual(await diskNames(targetPath), []);
          assert.deepEqual(await fs.readdir(path.join(targetPath, "imports")).catch(() => []), [], "no spool left");
        }
        continue;
      }
      assert.equal(exit.code, 0, `run ${runs}: ${exit.stderr}`);
      result = JSON.parse(exit.stdout) as ArchiveResult;
      assert.equal(written, result.bytesSent, "the vault got exactly what the run says it sent");
      if (kills.length > 0) {
        assert.ok(result.partsResumed >= killedAt - 1, `parts resumed ${result.partsResumed}, vault held ${killedAt}`);
      }
    }
    const partBytes = MiB;
    process.stdout.write(
      `# SIGKILL resume: ${kills.join("; ")}; final run sent ${result.bytesSent} bytes, resumed ${result.partsResumed} parts; ` +
        `${totalWritten} bytes sent over ${runs} runs for a stream of ${result.bytes} bytes (${result.parts} parts)\n`,
    );
    assert.ok(kills.length >= 1, "at least one run was killed");
    assert.ok(result.bytes > 24 * MiB, "incompressible data");
    assert.ok(
      totalWritten <= result.bytes + runs * partBytes,
      `sent ${totalWritten} bytes over ${runs} runs for a ${result.bytes}-byte stream: more than one part re-sent per run`,
    );
    assert.ok(totalWritten >= result.bytes);
    assert.deepEqual(await plans(), [], "the plan is gone once the manifest is in");
    const listed = chainItems(await okJson<VaultChainInfo[]>(sourcePath, ["vault", "ls", "v"]));
    assert.deepEqual(
      listed.map((item) => [item.index, item.complete, item.snapshot, item.bytes]),
      [[0, true, "s1", result.bytes]],
    );
    await ok(targetPath, ["vault", "restore", "v", "big"]);
    await assertSameVolumes(sourcePath, targetPath, [
      ["big@s1", "big@s1"],
      ["big", "big"],
    ]);
  });
});

// ---- 4. a full target file system ------------------------------------------------------------

// Made at load: tempDir's after() must belong to the file (it runs after the suite's umount).
const tmpfsParent = tempDir("vault-archive-tmpfs");

describe("a full target file system", () => {
  const mountPoint = path.join(tmpfsParent, "mnt");
  let mounted = false;
  let skip: string | undefined;
  before(async () => {
    await fs.mkdir(mountPoint);
    const mount = spawnSync("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint], { encoding: "utf8" });
    if (mount.status === 0) mounted = true;
    else {
      skip = `mount -t tmpfs failed (${(mount.stderr || mount.error?.message || "").trim()})`;
      if (process.env.CI) throw new Error(`CI: ${skip}`);
      process.stderr.write(`\n*** SKIPPING the full-file-system archive test: ${skip} ***\n\n`);
    }
  });
  after(() => {
    if (mounted) spawnSync("umount", [mountPoint]);
  });

  test("NO_SPACE, listed incomplete, and after space is freed the re-run resumes and completes", async (context) => {
    if (skip !== undefined) {
      context.skip(skip);
      return;
    }
    const sourcePath = await newStore("vault-archive-full-src");
    const targetPath = await newStore("vault-archive-full-dst");
    const vaultDir = path.join(mountPoint, "vault");
    await diskWithRandomData(sourcePath, "big", 16 * MiB, 16 * MiB);
    await ok(sourcePath, ["vault", "add", "v", `file://${vaultDir}`]);
    const args = ["archive", "big", "--vault", "v", "--snapshot", "s1", "--part-size", "1M"];
    await refused(sourcePath, args, /^snaplog: vault file:\/\/\S+: cannot .*no space left/);
    const held = (await vaultFiles(vaultDir)).filter(isPart);
    assert.ok(held.length >= 3, `some parts went in before the file system filled (${held.length})`);
    assert.equal((await vaultFiles(vaultDir)).filter((file) => file.temp).length, 0, "no temp file left");
    const listed = chainItems(await okJson<VaultChainInfo[]>(sourcePath, ["vault", "ls", "v"]));
    assert.deepEqual(
      listed.map((item) => [item.disk, item.complete, item.snapshot]),
      [["big", false, "(incomplete)"]],
    );
    const remount = spawnSync("mount", ["-o", "remount,size=64m", mountPoint], { encoding: "utf8" });
    assert.equal(remount.status, 0, remount.stderr);
    const before = await vaultFiles(vaultDir);
    const result = await okJson<ArchiveResult>(sourcePath, args);
    const written = bytesWritten(before, await vaultFiles(vaultDir));
    process.stdout.write(
      `# full file system: ${held.length} parts held before; re-run resumed ${result.partsResumed}, sent ${result.bytesSent} of ${result.bytes} stream bytes\n`,
    );
    assert.ok(result.partsResumed > 0);
    assert.ok(result.partsResumed >= held.length - 1);
    assert.equal(written, result.bytesSent);
    assert.ok(result.bytesSent <= result.bytes - before.filter(isPart).reduce((sum, file) => sum + file.size, 0) + MiB);
    await ok(targetPath, ["vault", "add", "v", `file://${vaultDir}`]);
    await ok(targetPath, ["vault", "restore", "v", "big"]);
    await assertSameVolumes(sourcePath, targetPath, [["big@s1", "big@s1"]]);
  });
});

// ---- 5. S3 on a throwaway Ceph RGW -----------------------------------------------------------

const s3Files = tempDir("vault-archive-s3");

describe("s3 vault (Ceph RGW)", () => {
  let rgw: CephRgw | undefined;
  before(async () => {
    rgw = await startCephRgwOrSkip();
  });
  after(async () => {
    await rgw?.stop();
  });

  test("archive and restore byte-exact; the endpoint dropped mid-archive is UNREACHABLE; the re-run resumes, re-sending at most one part", async (context) => {
    if (rgw === undefined) {
      context.skip("Ceph RGW not installed");
      return;
    }
    const { client } = rgw;
    const bucket = "archives";
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const credentials = path.join(s3Files, "credentials");
    await fs.writeFile(credentials, `[default]\naws_access_key_id = ${rgw.accessKeyId}\naws_secret_access_key = ${rgw.secretAccessKey}\n`);
    const url = `s3://${bucket}/site-a?endpoint=${rgw.endpoint}&region=${rgw.region}`;
    const sourcePath = await newStore("vault-archive-s3-src");
    const targetPath = await newStore("vault-archive-s3-dst");
    // No credentials in the environment: the file given at `vault add` is kept by the store.
    const noAws = {
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_PROFILE: "",
      AWS_SHARED_CREDENTIALS_FILE: path.join(s3Files, "none"),
    };
    await ok(sourcePath, ["vault", "add", "s3", url, "--credentials", credentials], noAws);
    // The target uses the standard AWS variables instead.
    const awsEnv = { AWS_ACCESS_KEY_ID: rgw.accessKeyId, AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey };
    await ok(targetPath, ["vault", "add", "s3", url], awsEnv);

    await diskWithHistory(sourcePath, "vm", 300);
    await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "s3", "--snapshot", "s2"], noAws);
    const incremental = await okJson<ArchiveResult>(
      sourcePath,
      ["archive", "vm", "--vault", "s3", "--snapshot", "s4", "--compact", "off"],
      noAws,
    );
    assert.equal(incremental.kind, "incremental");
    const restored = await okJson<{ snapshots: string[] }>(targetPath, ["vault", "restore", "s3", "vm"], awsEnv);
    assert.deepEqual(restored.snapshots, ["s1", "s2", "s3", "s4"]);
    await assertSameVolumes(sourcePath, targetPath, [
      ["vm@s1", "vm@s1"],
      ["vm@s2", "vm@s2"],
      ["vm@s3", "vm@s3"],
      ["vm@s4", "vm"],
    ]);

    // ~24 MiB of random data in 1 MiB parts; radosgw killed once a few parts are in.
    await diskWithRandomData(sourcePath, "big", 24 * MiB, 32 * MiB);
    const allParts = async () => {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "site-a/stores/" }));
      return (listed.Contents ?? []).filter((object) => /\/part-\d{6}\.slar$/.test(object.Key ?? ""));
    };
    const earlier = new Set((await allParts()).map((object) => object.Key));
    /** The parts of this archive (not vm's). */
    const listParts = async () => (await allParts()).filter((object) => !earlier.has(object.Key));
    const args = ["big", "--vault", "s3", "--snapshot", "s1", "--part-size", "1M"];
    const first = spawnArchive(sourcePath, args, noAws);
    await waitFor("5 parts in the bucket", async () => (await listParts()).length >= 5 || first.child.exitCode !== null, 120_000);
    await rgw.killRadosgw();
    const failed = await first.done;
    assert.notEqual(failed.code, 0, "the archive fails when the endpoint is gone");
    assert.match(failed.stderr, /^snaplog: vault s3:\/\/archives\/site-a\?endpoint=http:\/\/127\.0\.0\.1:\d+\S* unreachable: /m);
    await rgw.startRadosgw();
    const held = await listParts();
    const heldBytes = held.reduce((sum, object) => sum + (object.Size ?? 0), 0);
    const listed = chainItems(await okJson<VaultChainInfo[]>(targetPath, ["vault", "ls", "s3", "big"], awsEnv));
    assert.deepEqual(
      listed.map((item) => [item.disk, item.complete]),
      [["big", false]],
    );
    await refused(targetPath, ["vault", "restore", "s3", "big"], /no complete archive of disk big/, awsEnv);
    assert.deepEqual(await diskNames(targetPath), ["vm"]);

    const result = await okJson<ArchiveResult>(sourcePath, ["archive", ...args], noAws);
    process.stdout.write(
      `# S3 resume: ${held.length} parts (${heldBytes} bytes) in the bucket when radosgw was killed; ` +
        `the re-run resumed ${result.partsResumed} parts and sent ${result.bytesSent} bytes of a ${result.bytes}-byte stream ` +
        `(${heldBytes + result.bytesSent} bytes: the bucket before plus the re-run)\n`,
    );
    assert.ok(result.partsResumed >= held.length - 1, `resumed ${result.partsResumed} of ${held.length}`);
    assert.ok(
      result.bytesSent <= result.bytes - heldBytes + MiB,
      `re-sent more than one part: ${result.bytesSent} + ${heldBytes} > ${result.bytes} + 1 MiB`,
    );
    assert.ok(result.bytesSent < result.bytes);
    await ok(targetPath, ["vault", "restore", "s3", "big"], awsEnv);
    await assertSameVolumes(sourcePath, targetPath, [["big@s1", "big"]]);
  });
});

// ---- 6. another appliance --------------------------------------------------------------------

const peerParent = tempDir("vault-archive-peer");

describe("appliance vault (snaplog://)", () => {
  test("archive to another appliance: objects under its STORE/vault/, restorable from a third store and on the receiver itself", async () => {
    const sourcePath = await newStore("vault-archive-peer-src");
    const thirdPath = await newStore("vault-archive-peer-third");
    const receiverPath = path.join(peerParent, "receiver");
    const receiver = await startApiServeChild(receiverPath);
    try {
      await diskWithHistory(sourcePath, "vm", 400);
      const token = path.join(receiverPath, "api.token");
      await ok(sourcePath, ["vault", "add", "peer", `snaplog://127.0.0.1:${receiver.port}`, "--token-file", token]);
      await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "peer", "--snapshot", "s2"]);
      const incremental = await okJson<ArchiveResult>(sourcePath, ["archive", "vm", "--vault", "peer", "--snapshot", "s4"]);
      assert.deepEqual([incremental.kind, incremental.index], ["incremental", 1]);
      const stored = await vaultFiles(path.join(receiverPath, "vault"));
      const sourceId = storeIdOf(sourcePath);
      assert.ok(stored.some((file) => file.key === "snaplog-vault.json"));
      for (const index of ["000000", "000001"]) {
        assert.ok(
          stored.some((file) => file.key.startsWith(`stores/${sourceId}/disks/`) && file.key.endsWith(`/${index}/manifest.json`)),
          `stream ${index} is stored in the receiving store`,
        );
      }
      await ok(thirdPath, ["vault", "add", "peer", `snaplog://127.0.0.1:${receiver.port}`, "--token-file", token]);
      await ok(thirdPath, ["vault", "restore", "peer", "vm"]);
      // On the receiver itself (served: the CLI goes through its API): its own vault area as a directory vault.
      await ok(receiverPath, ["vault", "add", "here", `file://${path.join(receiverPath, "vault")}`]);
      const here = await okJson<{ snapshots: string[] }>(receiverPath, ["vault", "restore", "here", "vm", "--as", "from-peer"]);
      assert.deepEqual(here.snapshots, ["s1", "s2", "s3", "s4"]);
    } finally {
      await receiver.stop();
    }
    const pairs: [string, string][] = [
      ["vm@s1", "vm@s1"],
      ["vm@s2", "vm@s2"],
      ["vm@s3", "vm@s3"],
      ["vm@s4", "vm"],
    ];
    await assertSameVolumes(sourcePath, thirdPath, pairs);
    await assertSameVolumes(
      sourcePath,
      receiverPath,
      pairs.map(([left, right]) => [left, right.replace(/^vm/, "from-peer")]),
    );
  });
});

// ---- 7. corruption ---------------------------------------------------------------------------

describe("a corrupt vault", () => {
  test("a flipped byte, a truncated part, a missing part, a missing manifest: restore fails naming the object and creates nothing", async () => {
    const directory = tempDir("vault-archive-corrupt");
    const sourcePath = path.join(directory, "source");
    const targetPath = path.join(directory, "target");
    const pristine = path.join(directory, "pristine");
    await Store.init(sourcePath);
    await Store.init(targetPath);
    // Three streams; the middle one (s1 -> s2) is 3 MiB of random data in 1 MiB parts.
    await withStore(sourcePath, async (store) => {
      await store.createDisk({ name: "vm", sizeBytes: 8 * MiB });
      const volume = store.resolve("vm");
      await volume.write(0, pattern(1, 64 * BLOCK), { fua: false });
      await store.createSnapshot({ disk: "vm", name: "s1" });
      await volume.write(MiB, randomBytes(3 * MiB), { fua: false });
      await store.createSnapshot({ disk: "vm", name: "s2" });
      await volume.write(5 * MiB, pattern(2, 16 * BLOCK), { fua: false });
      await store.createSnapshot({ disk: "vm", name: "s3" });
      volume.release();
      await store.addVault({ name: "v", url: `file://${pristine}` });
      for (const snapshot of ["s1", "s2", "s3"]) await store.archive({ disk: "vm", vault: "v", snapshot, partBytes: MiB });
    });
    const middle = (await vaultFiles(pristine)).filter((file) => file.key.includes("/000001/"));
    const middleParts = middle.filter(isPart);
    assert.ok(middleParts.length >= 3, `the middle stream has several parts (${middleParts.length})`);
    const manifestKey = middle.find((file) => file.key.endsWith("/manifest.json"))?.key ?? "";
    const [, secondPart] = middleParts;

    const cases: { name: string; damage: (vault: string) => Promise<void>; message: RegExp }[] = [
      {
        name: "flipped",
        damage: async (vault) => {
          const file = path.join(vault, secondPart.key);
          const bytes = await fs.readFile(file);
          bytes[1000] ^= 0x40;
          await fs.writeFile(file, bytes);
        },
        message: new RegExp(`vault object ${secondPart.key} does not match its manifest's SHA-256`),
      },
      {
        name: "truncated",
        damage: (vault) => fs.truncate(path.join(vault, secondPart.key), 4096),
        message: new RegExp(`vault object ${secondPart.key} holds 4096 bytes, its manifest says ${secondPart.size}`),
      },
      {
        name: "deleted",
        damage: (vault) => fs.rm(path.join(vault, secondPart.key)),
        message: new RegExp(`vault object ${secondPart.key} is missing`),
      },
      {
        name: "manifest",
        damage: (vault) => fs.rm(path.join(vault, manifestKey)),
        message: new RegExp(`vault object ${manifestKey} is missing: .* complete only up to stream 0 \\(snapshot s1\\)`),
      },
    ];
    for (const { name, damage, message } of cases) {
      const vault = path.join(directory, `vault-${name}`);
      await fs.cp(pristine, vault, { recursive: true });
      await damage(vault);
      await ok(targetPath, ["vault", "add", name, `file://${vault}`]);
      const before = await diskNames(targetPath);
      await refused(targetPath, ["vault", "restore", name, "vm", "--as", `vm-${name}`], message);
      assert.deepEqual(await diskNames(targetPath), before, `${name}: no disk made`);
      assert.deepEqual(await fs.readdir(path.join(targetPath, "imports")).catch(() => []), [], `${name}: no spool left`);
      // What lies before the damage is still restorable, and only that.
      const early = await okJson<{ streams: number; snapshots: string[] }>(targetPath, [
        "vault",
        "restore",
        name,
        "vm@s1",
        "--as",
        `early-${name}`,
      ]);
      assert.deepEqual([early.streams, early.snapshots], [1, ["s1"]]);
    }
    // The manifest case: vault ls shows the middle stream as incomplete, and a new archive does not build on the broken chain.
    const listed = chainItems(await okJson<VaultChainInfo[]>(targetPath, ["vault", "ls", "manifest"]));
    assert.deepEqual(
      listed.map((item) => [item.index, item.complete]),
      [
        [0, true],
        [1, false],
        [2, true],
      ],
    );
    await withStore(sourcePath, async (store) => {
      await store.addVault({ name: "broken", url: `file://${path.join(directory, "vault-manifest")}` });
      const volume = store.resolve("vm");
      await volume.write(6 * MiB, pattern(3, 4 * BLOCK), { fua: false });
      volume.release();
      await store.createSnapshot({ disk: "vm", name: "s4" });
      const next = await store.archive({ disk: "vm", vault: "broken", snapshot: "s4", partBytes: MiB });
      assert.deepEqual([next.kind, next.index], ["full", 0], "a new chain, not stream 3 of the broken one");
      assert.notEqual(next.chainId, listed[0].chainId);
    });
    await assertSameVolumes(sourcePath, targetPath, [
      ["vm@s1", "early-flipped"],
      ["vm@s1", "early-manifest"],
    ]);
    // Undamaged, the same vault restores whole.
    await ok(targetPath, ["vault", "add", "pristine", `file://${pristine}`]);
    await ok(targetPath, ["vault", "restore", "pristine", "vm"]);
    await assertSameVolumes(sourcePath, targetPath, [
      ["vm@s2", "vm@s2"],
      ["vm@s3", "vm"],
    ]);
  });
});
