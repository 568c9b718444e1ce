/**
 * Goal: real NBD clients — qemu-io, qemu-img, nbdinfo, nbdcopy, nbdsh (libnbd) and fio — work
 * against the REAL store served by `snaplog serve` (disks, snapshots, baselines, LUN exports),
 * not an in-memory volume: what they write is what every export reads back, across a clean
 * restart and a SIGKILL.
 *
 * Method: one store in a temp directory (on a real disk), `snaplog serve` spawned as a child on
 * an ephemeral TCP port and a temp unix socket (test/support/serve-child.ts); disks and
 * snapshots made through the API socket and the CLI. Every write a test sends with a client it
 * also applies to a reference raw file (RefImage); exports are compared with their reference by
 * `qemu-img compare` AND by hashing every byte read with `nbdcopy --no-extents` (block status
 * cannot hide wrong data). Each expectation is registered in `expectations`, so every restart
 * re-checks every export of every earlier test. A missing tool skips loudly, or fails under CI.
 *
 * Size of the large copy test: 1 GiB by default (SNAPLOG_INTEROP_BIG_MIB overrides).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomFillSync, randomInt } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { requireTool } from "./support/nbd-server.js";
import { tempDir } from "./support/temp-dir.js";
import { killServeChildren, snaplogCli, startServeChild, type ServeChild } from "./support/serve-child.js";
import {
  applyIo,
  assertExportEquals,
  exportDiffersFromFile,
  exportSha256,
  filesEqual,
  fileSha256,
  KiB,
  MiB,
  nbdMap,
  nbdsh,
  qemuImgCompare,
  qemuIo,
  RefImage,
  runOk,
  runTool,
  type IoOp,
} from "./support/interop-tools.js";
import type { SnapshotInfo } from "../src/store/operations/index.js";

/** What `nbdinfo --list --json` prints (the fields these tests read). */
interface NbdinfoList {
  exports: { "export-name": string; description: string }[];
}

// ---- cleanup first: children killed, then the temp directory removed (tempDir's own after) ----
let server: ServeChild | undefined;
const serverLogs: string[] = [];
let killCount = 0;
after(async () => {
  try {
    if (server !== undefined && server.child.exitCode === null) await server.stop();
  } finally {
    killServeChildren();
  }
});
const directory = tempDir("interop");
const storePath = join(directory, "store");
const nbdSocketPath = join(directory, "nbd.sock");
const scratch = join(directory, "scratch");
mkdirSync(scratch);

const tools = ["qemu-io", "qemu-img", "nbdinfo", "nbdcopy", "nbdsh", "fio"] as const;
const missing = tools.filter((tool) => !requireTool(tool));
const skip = missing.length > 0 ? `missing ${missing.join(", ")}` : false;

const BLOCK = 4 * KiB;
const HOLE = 1;
const ZERO = 2;
const bigMiB = Number(process.env.SNAPLOG_INTEROP_BIG_MIB ?? 1024);

/** Every export whose contents are known: re-checked after each restart. */
const expectations = new Map<string, RefImage>();

function live(): ServeChild {
  assert.ok(server !== undefined, "the server is running");
  return server;
}

function expect(exportName: string, ref: RefImage): void {
  expectations.set(exportName, ref);
}

/** Every registered export equals its reference (over TCP, and every third one over the unix socket too). */
async function checkAll(label: string): Promise<void> {
  let index = 0;
  for (const [exportName, ref] of expectations) {
    await assertExportEquals(live().uri(exportName), ref, `${label}: ${exportName}`);
    if (index++ % 3 === 0) await assertExportEquals(live().unixUri(exportName), ref, `${label}: ${exportName} (unix)`);
  }
}

async function restart(how: "SIGTERM" | "SIGKILL"): Promise<void> {
  const old = live();
  if (how === "SIGTERM") await old.stop();
  else {
    await old.kill();
    killCount++;
  }
  serverLogs.push(old.stderr());
  server = undefined;
  server = await startServeChild(storePath, nbdSocketPath);
}

function ref(name: string, sizeBytes: number): RefImage {
  return RefImage.zeros(join(scratch, `${name}.raw`), sizeBytes);
}

async function createDisk(
  name: string,
  sizeBytes: number,
  extra: { blockSizeBytes?: number; fromImage?: string; historySeconds?: number } = {},
) {
  return live().api.createDisk({ name, sizeBytes, ...extra });
}

/** Pairwise different contents: comparing an export with the wrong one of them must fail. */
async function assertAllDifferent(refs: RefImage[]): Promise<void> {
  const hashes = await Promise.all(refs.map((item) => fileSha256(item.path)));
  assert.equal(new Set(hashes).size, refs.length, `references are not pairwise different: ${refs.map((item) => item.path).join(", ")}`);
}

/** A small deterministic PRNG (mulberry32): the offsets, lengths and kinds of ops replay from a seed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `count` random ops inside [start, end): unaligned offsets and lengths, all four kinds. */
function randomOps(next: () => number, start: number, end: number, count: number, lengthMax = 256 * KiB): IoOp[] {
  const ops: IoOp[] = [];
  for (let index = 0; index < count; index++) {
    const length = 1 + Math.floor(next() * lengthMax);
    const offset = start + Math.floor(next() * (end - start - length));
    const kind = next();
    if (kind < 0.45) ops.push({ op: "random", offset, length });
    else if (kind < 0.75) ops.push({ op: "pattern", offset, length, byte: 1 + Math.floor(next() * 254) });
    else if (kind < 0.9) ops.push({ op: "zero", offset, length, unmap: next() < 0.5 });
    else ops.push({ op: "discard", offset, length });
  }
  return ops;
}

/** The type of every block of a `nbdinfo --map` answer; checks that the extents tile the disk. */
function blockTypes(map: Array<[number, number, number]>, sizeBytes: number): number[] {
  const types: number[] = [];
  let position = 0;
  for (const [offset, length, type] of map) {
    assert.equal(offset, position, `extents are contiguous: ${JSON.stringify(map)}`);
    assert.ok(offset % BLOCK === 0 && length % BLOCK === 0, `extent [${offset}, +${length}) is whole blocks`);
    for (let index = 0; index < length / BLOCK; index++) types.push(type);
    position += length;
  }
  assert.equal(position, sizeBytes, "the extents cover the whole disk");
  return types;
}

/** Allowed types per block: `ranges` over a never-written disk (hole + zero). */
function expectedTypes(sizeBytes: number, ranges: Array<[number, number, number[]]>): number[][] {
  const allowed: number[][] = Array.from({ length: sizeBytes / BLOCK }, () => [HOLE | ZERO]);
  for (const [offset, length, types] of ranges)
    for (let block = offset / BLOCK; block < (offset + length) / BLOCK; block++) allowed[block] = types;
  return allowed;
}

function assertTypes(map: Array<[number, number, number]>, allowed: number[][], label: string): void {
  const types = blockTypes(map, allowed.length * BLOCK);
  const wrong = types.flatMap((type, block) =>
    allowed[block].includes(type) ? [] : [`block ${block} (offset ${block * BLOCK}): ${type}, expected ${allowed[block].join(" or ")}`],
  );
  assert.deepEqual(wrong.slice(0, 10), [], `${label}: ${wrong.length} blocks wrong; map ${JSON.stringify(map)}`);
}

before(async () => {
  if (skip !== false) return;
  const init = await snaplogCli(storePath, ["init"]);
  assert.equal(init.code, 0, init.stderr);
  server = await startServeChild(storePath, nbdSocketPath);
});

// ---- 1. qemu-io on DISK -----------------------------------------------------------------------

test(
  "qemu-io: aligned, unaligned, tail, >32 MiB, write -z and discard on DISK read back equal to a reference image",
  { skip },
  async () => {
    const sizeBytes = 40 * MiB + 8 * KiB; // not a power of two: the last bytes are not at a round offset
    await createDisk("io", sizeBytes);
    const image = ref("io", sizeBytes);
    const uri = live().uri("io");
    await applyIo(uri, image, [
      { op: "pattern", offset: 0, length: 64 * KiB, byte: 0xa1 },
      { op: "pattern", offset: 513, length: 1000, byte: 0x11 },
      { op: "pattern", offset: 4095, length: 2, byte: 0x22 },
      { op: "pattern", offset: 8191, length: 8194, byte: 0x23 },
      { op: "pattern", offset: 65537, length: 131071, byte: 0x33 },
      { op: "random", offset: MiB + 17, length: 300_000 },
      { op: "random", offset: 2 * MiB, length: MiB },
      // Larger than the 32 MiB maximum request: the client must split it.
      { op: "pattern", offset: 3 * MiB, length: 34 * MiB, byte: 0x5c },
      { op: "random", offset: sizeBytes - 5000, length: 4997 },
      { op: "pattern", offset: sizeBytes - 3, length: 3, byte: 0x44 },
    ]);
    await assertExportEquals(uri, image, "after data writes");

    await applyIo(live().unixUri("io"), image, [
      { op: "zero", offset: 16 * KiB, length: 8 * KiB },
      { op: "zero", offset: 100, length: 50 },
      { op: "zero", offset: MiB + 1000, length: 20_000, unmap: true },
      { op: "discard", offset: 2 * MiB + 4096, length: 8192 },
      { op: "discard", offset: 2 * MiB + 100_000, length: 10_001 },
      { op: "pattern", offset: 3 * MiB + 5, length: MiB, byte: 0x5d },
      { op: "zero", offset: 10 * MiB, length: 4 * MiB },
      { op: "discard", offset: 20 * MiB, length: 4 * MiB + 3 },
      { op: "zero", offset: sizeBytes - 4096, length: 4096, unmap: true },
      { op: "pattern", offset: sizeBytes - 1, length: 1, byte: 0x99 },
    ]);
    await assertExportEquals(uri, image, "after zeroes and discards");
    await qemuIo(uri, ["read -P 0x99 " + (sizeBytes - 1) + " 1", "read -P 0 10M 4M", `read -P 0 ${20 * MiB} ${4 * MiB + 3}`], {
      readOnly: true,
    });
    expect("io", image);
  },
);

// ---- 2. snapshots, baseline, LUNs, restarts ---------------------------------------------------

test(
  "snapshots: DISK@snapN, lun:N, DISK@baseline and DISK equal their references, across a clean restart and a SIGKILL",
  { skip },
  async () => {
    const sizeBytes = 12 * MiB;
    // Disk A: baseline from a random raw image smaller than the disk, not a whole number of blocks.
    const imagePath = join(scratch, "baseline-image.raw");
    writeFileSync(imagePath, randomBytes(9 * MiB + 1234));
    const diskA = await createDisk("snapfrom", sizeBytes, { fromImage: imagePath });
    assert.equal(diskA.hasBaseline, true);
    const baselineA = RefImage.copyOf(imagePath, join(scratch, "snapfrom-baseline.raw"), sizeBytes);
    // Disk B: empty (zeros), no history window: overwritten versions are reclaimed unless a snapshot needs them.
    const diskB = await createDisk("snapempty", sizeBytes, { historySeconds: 0 });
    const baselineB = ref("snapempty-baseline", sizeBytes);

    const disks = [
      {
        name: "snapfrom",
        info: diskA,
        current: RefImage.copyOf(imagePath, join(scratch, "snapfrom.raw"), sizeBytes),
        baseline: baselineA,
        via: "api" as const,
      },
      { name: "snapempty", info: diskB, current: ref("snapempty", sizeBytes), baseline: baselineB, via: "cli" as const },
    ];
    const next = prng(0x5eed0002);
    const snapshotVia = async (disk: (typeof disks)[number], name: string): Promise<SnapshotInfo> => {
      if (disk.via === "api") return live().api.createSnapshot({ disk: disk.name, name });
      const run = await snaplogCli(storePath, ["--json", "snapshot", "create", disk.name, "--name", name]);
      assert.equal(run.code, 0, run.stderr);
      return JSON.parse(run.stdout) as SnapshotInfo;
    };

    for (const disk of disks) {
      const uri = live().uri(disk.name);
      const refs: RefImage[] = [disk.baseline];
      expect(`${disk.name}@baseline`, disk.baseline);
      // Generation 1.
      await applyIo(uri, disk.current, [
        { op: "random", offset: 0, length: 3 * MiB + 100 },
        { op: "pattern", offset: 5 * MiB - 1, length: 2 * MiB + 2, byte: 0x71 },
        { op: "zero", offset: 9 * MiB - 10, length: 64 * KiB },
        { op: "discard", offset: 8 * MiB, length: 128 * KiB },
        ...randomOps(next, 0, sizeBytes, 12),
      ]);
      const s1 = await snapshotVia(disk, "s1");
      const ref1 = disk.current.copyTo(join(scratch, `${disk.name}-s1.raw`));
      // Generation 2 overlaps generation 1 everywhere it can.
      await applyIo(uri, disk.current, [
        { op: "random", offset: MiB - 513, length: 2 * MiB },
        { op: "pattern", offset: 4 * MiB, length: 2 * MiB, byte: 0x72 },
        { op: "discard", offset: 100, length: 200 * KiB },
        { op: "zero", offset: 6 * MiB, length: MiB, unmap: true },
        ...randomOps(next, 0, sizeBytes, 12),
      ]);
      const s2 = await snapshotVia(disk, "s2");
      const ref2 = disk.current.copyTo(join(scratch, `${disk.name}-s2.raw`));
      // Generation 3: the same ranges twice (versions that no view can see any more), and more.
      const twice: IoOp[] = [
        { op: "random", offset: 512 * KiB, length: 1536 * KiB },
        { op: "pattern", offset: 10 * MiB + 1, length: MiB, byte: 0x73 },
      ];
      await applyIo(uri, disk.current, [
        ...twice,
        ...twice,
        { op: "pattern", offset: sizeBytes - 7, length: 7, byte: 0x74 },
        ...randomOps(next, 0, sizeBytes, 12),
      ]);

      assert.ok(s1.lun !== s2.lun && s1.lun !== disk.info.lun && s2.lun !== disk.info.lun, "every volume has its own LUN");
      assert.ok(s1.lsn < s2.lsn, `s1 (LSN ${s1.lsn}) is older than s2 (LSN ${s2.lsn})`);
      refs.push(ref1, ref2, disk.current);
      await assertAllDifferent(refs);
      expect(disk.name, disk.current);
      expect(`${disk.name}@s1`, ref1);
      expect(`${disk.name}@s2`, ref2);
      expect(`lun:${disk.info.lun}`, disk.current);
      expect(`lun:${s1.lun}`, ref1);
      expect(`lun:${s2.lun}`, ref2);
      // A snapshot compared with the current reference must fail: the comparison discriminates.
      const wrong = await runTool("qemu-img", ["compare", "-f", "raw", "-F", "raw", disk.current.path, live().uri(`${disk.name}@s1`)]);
      assert.equal(wrong.code, 1, `${disk.name}@s1 differs from the current contents: ${wrong.stdout}`);
    }
    await checkAll("before restart");
    const listedBefore = await Promise.all(disks.map((disk) => live().api.listSnapshots(disk.name)));

    await restart("SIGTERM");
    await checkAll("after a clean restart");
    assert.deepEqual(
      await Promise.all(disks.map((disk) => live().api.listSnapshots(disk.name))),
      listedBefore,
      "snapshots survive a restart unchanged",
    );

    // Generation 4 (flushed), a snapshot right after it, then SIGKILL: both must survive.
    for (const disk of disks) {
      await applyIo(live().uri(disk.name), disk.current, [
        { op: "random", offset: 2 * MiB + 3, length: MiB },
        ...randomOps(next, 0, sizeBytes, 8),
      ]);
      const s3 = await snapshotVia(disk, "s3");
      const ref3 = disk.current.copyTo(join(scratch, `${disk.name}-s3.raw`));
      expect(`${disk.name}@s3`, ref3);
      expect(`lun:${s3.lun}`, ref3);
    }
    await restart("SIGKILL");
    await checkAll("after SIGKILL and restart");
    for (const [index, disk] of disks.entries()) {
      const listed = await live().api.listSnapshots(disk.name);
      assert.deepEqual(listed.slice(0, 2), listedBefore[index], "older snapshots unchanged by the crash");
      assert.deepEqual(
        listed.map((item) => item.name),
        ["s1", "s2", "s3"],
      );
    }
  },
);

// ---- 3. nbdcopy of a large volume out and back -----------------------------------------------

test(
  `nbdcopy: a ${bigMiB} MiB volume copied in, out to a file (same bytes as the source) and into a second disk (qemu-img compare)`,
  { skip, timeout: 300_000 },
  async (t) => {
    const sizeBytes = bigMiB * MiB;
    const sourcePath = join(scratch, "big-source.raw");
    const outPath = join(scratch, "big-out.raw");
    let stepStart = Date.now();
    const step = (what: string): void => {
      t.diagnostic(`${what}: ${Date.now() - stepStart} ms`);
      stepStart = Date.now();
    };
    // Random 1 MiB chunks (each block distinct, so a misplaced block shows); every 16th chunk all
    // zeros and one zero 4 KiB block inside every 32nd, which nbdcopy sends as zeroes, not data.
    const zeroChunk = (chunk: number): boolean => chunk % 16 === 5;
    const zeroBlockAt = (chunk: number): number | undefined => (chunk % 32 === 9 ? ((chunk * 7) % 256) * BLOCK : undefined);
    const fd = openSync(sourcePath, "w");
    try {
      const chunk = Buffer.alloc(MiB);
      for (let index = 0; index < bigMiB; index++) {
        if (zeroChunk(index)) chunk.fill(0);
        else randomFillSync(chunk);
        const zeroBlock = zeroBlockAt(index);
        if (zeroBlock !== undefined) chunk.fill(0, zeroBlock, zeroBlock + BLOCK);
        writeSync(fd, chunk, 0, MiB, index * MiB);
      }
    } finally {
      closeSync(fd);
    }
    step("source file written");
    try {
      await createDisk("big", sizeBytes);
      await createDisk("big2", sizeBytes);
      await runOk("nbdcopy", ["--flush", sourcePath, live().uri("big")]);
      step("nbdcopy file -> big");
      await runOk("nbdcopy", [live().uri("big"), outPath]);
      step("nbdcopy big -> file");
      assert.ok(filesEqual(outPath, sourcePath), "the volume copied out holds the source's bytes");
      step("compare the copy with the source");
      await runOk("nbdcopy", ["--flush", outPath, live().unixUri("big2")]);
      step("nbdcopy file -> big2 (unix socket)");
      await qemuImgCompare(live().uri("big"), live().uri("big2"), "big vs big2");
      step("qemu-img compare big big2");
      // The zeroes nbdcopy sent are reported as zeros, the rest as data.
      const map = await nbdMap(live().uri("big2"));
      const typeAt = (offset: number): number =>
        (map.find(([start, length]) => offset >= start && offset < start + length) ?? [0, 0, -1])[2];
      for (let index = 0; index < bigMiB; index++) {
        const zeroBlock = zeroBlockAt(index);
        if (zeroChunk(index))
          assert.ok((typeAt(index * MiB) & ZERO) !== 0 && (typeAt(index * MiB + MiB - 1) & ZERO) !== 0, `chunk ${index} is reported zero`);
        else if (zeroBlock !== undefined)
          assert.ok((typeAt(index * MiB + zeroBlock) & ZERO) !== 0, `the zero block of chunk ${index} is reported zero`);
        else assert.equal(typeAt(index * MiB + ((index * 13) % 256) * BLOCK), 0, `chunk ${index} is reported data`);
      }
      step("map of big2");
      // Block status cannot hide anything: every byte of big2 read without it.
      assert.equal(
        await exportDiffersFromFile(live().unixUri("big2"), sourcePath),
        undefined,
        "big2 read without block status holds the source's bytes",
      );
      step("big2 read without block status");
    } finally {
      rmSync(sourcePath, { force: true });
      rmSync(outPath, { force: true });
    }
  },
);

// ---- 4. nbdinfo ------------------------------------------------------------------------------

test(
  "nbdinfo: --list shows every disk, baseline and snapshot with its LUN; --json size and preferred block size; --map is honest, per snapshot",
  { skip },
  async () => {
    const small = await createDisk("bs512", MiB, { blockSizeBytes: 512 });
    const large = await createDisk("bs64k", 4 * MiB, { blockSizeBytes: 64 * KiB });
    const mapDisk = await createDisk("map", 4 * MiB);
    for (const disk of [small, large, mapDisk]) {
      const { stdout } = await runOk("nbdinfo", ["--json", live().uri(disk.name)]);
      const item = JSON.parse(stdout).exports[0];
      assert.equal(item["export-size"], disk.sizeBytes, disk.name);
      assert.equal(item.block_size_preferred, disk.blockSizeBytes, `${disk.name}: preferred block size is the disk's`);
      assert.equal(item.is_read_only, false);
      assert.equal(item.can_trim, true);
      assert.equal(item.can_zero, true);
      assert.equal(item.description, `disk ${disk.name}, LUN ${disk.lun}, read-write`);
    }

    // Map, per 4 KiB block: data, zeroed over data, trimmed over data, zeroed where nothing was
    // ever written, never written; then a snapshot, and the current map changes under it.
    const mapBytes = 4 * MiB;
    const image = ref("map", mapBytes);
    const uri = live().uri("map");
    await applyIo(uri, image, [
      { op: "random", offset: 0, length: 512 * KiB },
      { op: "zero", offset: 256 * KiB, length: 128 * KiB },
      { op: "discard", offset: 384 * KiB, length: 64 * KiB },
      { op: "zero", offset: 448 * KiB, length: 64 * KiB, unmap: true },
      { op: "zero", offset: MiB, length: 64 * KiB },
      { op: "random", offset: 2 * MiB, length: 64 * KiB },
    ]);
    const typesThen = expectedTypes(mapBytes, [
      [0, 256 * KiB, [0]],
      [256 * KiB, 128 * KiB, [ZERO]],
      [384 * KiB, 64 * KiB, [HOLE | ZERO]],
      // WRITE_ZEROES may unmap (qemu-io -u): zero, or a hole that reads as zeros.
      [448 * KiB, 64 * KiB, [ZERO, HOLE | ZERO]],
      // WRITE_ZEROES (NO_HOLE) where nothing was ever written: must read as zeros (see the report on NO_HOLE).
      [MiB, 64 * KiB, [ZERO, HOLE | ZERO]],
      [2 * MiB, 64 * KiB, [0]],
    ]);
    assertTypes(await nbdMap(uri), typesThen, "map before the snapshot");
    const snapshot = await live().api.createSnapshot({ disk: "map", name: "m1" });
    const imageThen = image.copyTo(join(scratch, "map-m1.raw"));
    await applyIo(uri, image, [
      { op: "random", offset: 256 * KiB, length: 256 * KiB },
      { op: "discard", offset: 0, length: 128 * KiB },
      { op: "zero", offset: 2 * MiB, length: 64 * KiB },
      // Unaligned zeroes over data: whole blocks become zeros, the partial edge blocks stay data.
      { op: "random", offset: 3 * MiB - 8 * KiB, length: 24 * KiB },
      { op: "zero", offset: 3 * MiB - 100, length: 8 * KiB + 200 },
    ]);
    const typesNow = expectedTypes(mapBytes, [
      [0, 128 * KiB, [HOLE | ZERO]],
      [128 * KiB, 384 * KiB, [0]],
      [MiB, 64 * KiB, [ZERO, HOLE | ZERO]],
      [2 * MiB, 64 * KiB, [ZERO]],
      [3 * MiB - 8 * KiB, 2 * BLOCK, [0]],
      [3 * MiB, 2 * BLOCK, [ZERO]],
      [3 * MiB + 2 * BLOCK, 2 * BLOCK, [0]],
    ]);
    assertTypes(await nbdMap(uri), typesNow, "the current map");
    assertTypes(await nbdMap(live().uri("map@m1")), typesThen, "the snapshot's map is the snapshot's, not the current one");
    assertTypes(await nbdMap(live().unixUri(`lun:${snapshot.lun}`)), typesThen, "the snapshot's map through its LUN");
    await assertExportEquals(uri, image, "map");
    await assertExportEquals(live().uri("map@m1"), imageThen, "map@m1");
    expect("map", image);
    expect("map@m1", imageThen);
    // A disk with a baseline: never-written blocks are the baseline's data, not holes; a trim is a hole.
    if (expectations.has("snapfrom@baseline")) assert.deepEqual(await nbdMap(live().uri("snapfrom@baseline")), [[0, 12 * MiB, 0]]);
    const baselineImage = join(scratch, "map-baseline.raw");
    writeFileSync(baselineImage, randomBytes(MiB));
    await createDisk("mapfrom", 2 * MiB, { fromImage: baselineImage });
    const fromImage = RefImage.copyOf(baselineImage, join(scratch, "mapfrom.raw"), 2 * MiB);
    await applyIo(live().uri("mapfrom"), fromImage, [{ op: "discard", offset: 64 * KiB, length: 64 * KiB }]);
    assert.deepEqual(await nbdMap(live().uri("mapfrom")), [
      [0, 64 * KiB, 0],
      [64 * KiB, 64 * KiB, HOLE | ZERO],
      [128 * KiB, 2 * MiB - 128 * KiB, 0],
    ]);
    assert.deepEqual(await nbdMap(live().uri("mapfrom@baseline")), [[0, 2 * MiB, 0]]);
    await assertExportEquals(live().uri("mapfrom"), fromImage, "mapfrom");
    expect("mapfrom", fromImage);

    // --list: exactly the disks, their baselines and their snapshots, each disk and snapshot with its LUN.
    const expected = new Map<string, string>();
    for (const disk of await live().api.listDisks()) {
      expected.set(disk.name, `disk ${disk.name}, LUN ${disk.lun}, read-write`);
      expected.set(`${disk.name}@baseline`, `baseline of disk ${disk.name}, read-only`);
      for (const cut of await live().api.listSnapshots(disk.name)) {
        expected.set(
          `${disk.name}@${cut.name}`,
          `snapshot ${cut.name} of disk ${disk.name}, LUN ${cut.lun}, LSN ${cut.lsn}, ${cut.createdAt}, read-only`,
        );
      }
    }
    for (const base of [live().uri(""), live().unixUri("")]) {
      const { stdout } = await runOk("nbdinfo", ["--list", "--json", base]);
      const listed = new Map<string, string>(
        (JSON.parse(stdout) as NbdinfoList).exports.map((item) => [item["export-name"], item.description]),
      );
      assert.deepEqual(listed, expected);
    }
    assert.ok(expected.has("map@m1") && expected.get("map@m1")!.includes(`LUN ${snapshot.lun},`));
    const { stdout } = await runOk("nbdinfo", ["--json", live().uri("map@m1")]);
    const item = JSON.parse(stdout).exports[0];
    assert.equal(item.is_read_only, true);
    assert.equal(item["export-size"], 4 * MiB);
    assert.equal(item.block_size_preferred, 4 * KiB);
  },
);

// ---- 5. fio with verification ----------------------------------------------------------------

interface FioJob {
  error: number;
  read: { io_bytes: number };
  write: { io_bytes: number };
}

async function fio(uri: string, args: string[], expectOk = true): Promise<{ code: number; job: FioJob | undefined; text: string }> {
  const output = join(scratch, `fio-${randomInt(1e9)}.json`);
  // Job options (--ioengine first: --uri belongs to it) after the job's --name.
  const [name, ...rest] = args;
  const result = await runTool(
    "fio",
    ["--output-format=json", `--output=${output}`, name, "--ioengine=nbd", `--uri=${uri}`, "--verify=crc32c", "--verify_fatal=1", ...rest],
    { cwd: scratch },
  );
  let text: string;
  try {
    text = readFileSync(output, "utf8");
  } catch {
    text = "";
  }
  const jsonStart = text.indexOf("{");
  const job = jsonStart >= 0 ? (JSON.parse(text.slice(jsonStart)).jobs[0] as FioJob) : undefined;
  if (expectOk) {
    assert.equal(
      result.code,
      0,
      `fio ${args.join(" ")} exited ${result.code}: ${result.stderr}\n${text.slice(0, jsonStart >= 0 ? jsonStart : 4000)}`,
    );
    assert.ok(job !== undefined, "fio wrote its JSON report");
    assert.equal(job.error, 0, "fio reports no error");
  }
  return { code: result.code, job, text: `${text}\n${result.stdout}\n${result.stderr}` };
}

test(
  "fio over NBD: 4k random and 1M sequential writes verified (crc32c), verified again after a clean restart and after SIGKILL",
  { skip, timeout: 300_000 },
  async () => {
    await createDisk("fio", 128 * MiB);
    await createDisk("fio-empty", 128 * MiB);
    const jobs = [
      {
        name: "rand4k",
        uri: () => live().uri("fio"),
        args: ["--name=rand4k", "--rw=randwrite", "--bs=4k", "--iodepth=32", "--size=64m", "--offset=0"],
      },
      {
        name: "seq1m",
        uri: () => live().unixUri("fio"),
        args: ["--name=seq1m", "--rw=write", "--bs=1m", "--iodepth=8", "--size=64m", "--offset=64m"],
      },
    ];
    for (const job of jobs) {
      const { job: report } = await fio(job.uri(), [...job.args, "--do_verify=1", "--end_fsync=1"]);
      assert.equal(report!.write.io_bytes, 64 * MiB, `${job.name} wrote 64 MiB`);
      assert.equal(report!.read.io_bytes, 64 * MiB, `${job.name} read 64 MiB back to verify`);
    }
    const verifyOnly = async (label: string): Promise<void> => {
      for (const job of jobs) {
        const { job: report } = await fio(job.uri(), [...job.args, "--verify_only"]);
        assert.equal(report!.read.io_bytes, 64 * MiB, `${label}: ${job.name} verified 64 MiB`);
      }
    };
    await verifyOnly("before restart");
    // Control: the same verify pass over a disk fio never wrote must fail (the pass really reads and checks).
    const control = await fio(live().uri("fio-empty"), [...jobs[0].args, "--verify_only"], false);
    assert.notEqual(control.code, 0, "verify_only over an unwritten disk fails");
    assert.match(control.text, /verify: bad magic header/);

    await restart("SIGTERM");
    await verifyOnly("after a clean restart");
    await restart("SIGKILL");
    await verifyOnly("after SIGKILL (end_fsync made every write durable)");
  },
);

// ---- 6. read-only exports --------------------------------------------------------------------

test(
  "read-only exports (DISK@snap, lun:N of a snapshot, DISK@baseline) refuse writes with a permission error and stay unchanged",
  { skip },
  async () => {
    await createDisk("ro", 4 * MiB);
    const image = ref("ro", 4 * MiB);
    await applyIo(live().uri("ro"), image, [
      { op: "random", offset: 0, length: MiB + 17 },
      { op: "pattern", offset: 2 * MiB, length: 64 * KiB, byte: 0x5a },
    ]);
    const frozen = await live().api.createSnapshot({ disk: "ro", name: "frozen" });
    const frozenImage = image.copyTo(join(scratch, "ro-frozen.raw"));
    const readOnly = ["ro@frozen", `lun:${frozen.lun}`, "ro@baseline"];

    for (const exportName of readOnly) {
      for (const command of ["write 0 4k", "write -z 0 4k", "discard 0 4k"]) {
        const result = await runTool("qemu-io", ["-f", "raw", "-c", command, live().uri(exportName)]);
        assert.notEqual(result.code, 0, `qemu-io -c '${command}' on ${exportName} must fail`);
        assert.match(result.stderr, /Permission denied|read-only/i, `${exportName}: ${result.stderr}`);
      }
      // Ignoring the read-only flag, the server itself refuses with EPERM.
      const result = await nbdsh([
        `h.set_strict_mode(0)`,
        `h.connect_uri(${JSON.stringify(live().uri(exportName))})`,
        `errors = []`,
        `for op in (lambda: h.pwrite(b"x" * 4096, 0), lambda: h.pwrite(b"y" * 100, 4000), lambda: h.zero(8192, 0), lambda: h.trim(8192, 0), lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO)):`,
        `    try:`,
        `        op()`,
        `        errors.append(None)`,
        `    except nbd.Error as e:`,
        `        errors.append(e.errno)`,
        `h.flush()`,
        `print(json.dumps({"readOnly": h.is_read_only(), "errors": errors}))`,
      ]);
      assert.deepEqual(result, { readOnly: true, errors: ["EPERM", "EPERM", "EPERM", "EPERM", "EPERM"] }, exportName);
    }
    const copyInto = await runTool("nbdcopy", [frozenImage.path, live().uri("ro@frozen")]);
    assert.notEqual(copyInto.code, 0, "nbdcopy into a snapshot fails");
    await qemuIo(live().uri("ro@frozen"), ["read -P 0x5a 2M 64k"], { readOnly: true });
    await assertExportEquals(live().uri("ro@frozen"), frozenImage, "ro@frozen after refused writes");
    await assertExportEquals(live().uri(`lun:${frozen.lun}`), frozenImage, "lun of ro@frozen");
    await assertExportEquals(live().uri("ro"), image, "ro itself untouched");
    // The disk moves on; the snapshot does not.
    await applyIo(live().uri("ro"), image, [
      { op: "random", offset: 4096, length: 2 * MiB },
      { op: "discard", offset: 2 * MiB + 4096, length: 8192 },
    ]);
    await assertExportEquals(live().uri("ro"), image, "ro after new writes");
    await assertExportEquals(live().uri("ro@frozen"), frozenImage, "ro@frozen after the disk moved on");
    expect("ro", image);
    await assertExportEquals(live().uri("ro@baseline"), ref("ro-baseline", 4 * MiB), "ro@baseline");
    expect("ro@frozen", frozenImage);
  },
);

// ---- 7. several clients at once --------------------------------------------------------------

test(
  "four concurrent writers (2 qemu-io, 2 nbdsh) on disjoint ranges of one disk and readers of its snapshot are all correct",
  { skip, timeout: 300_000 },
  async () => {
    const region = 8 * MiB;
    const sizeBytes = 4 * region;
    await createDisk("multi", sizeBytes);
    const image = ref("multi", sizeBytes);
    await applyIo(live().uri("multi"), image, [{ op: "random", offset: 0, length: sizeBytes }]);
    await live().api.createSnapshot({ disk: "multi", name: "before" });
    const before = image.copyTo(join(scratch, "multi-before.raw"));
    const beforeSha = await fileSha256(before.path);

    const seed = process.env.SNAPLOG_INTEROP_SEED !== undefined ? Number(process.env.SNAPLOG_INTEROP_SEED) : randomInt(2 ** 31);
    const next = prng(seed);
    // Writers 0 and 1: qemu-io, unaligned ops of every kind inside their own region (one over TCP, one over unix).
    const qemuWriter = (index: number, uri: string): Promise<void> =>
      applyIo(uri, image, randomOps(next, index * region, (index + 1) * region, 60, 512 * KiB));
    // Writer 2: nbdsh, 64 KiB aligned writes in shuffled order, 16 in flight at once.
    const data2 = randomBytes(region);
    const file2 = join(scratch, "multi-2.bin");
    writeFileSync(file2, data2);
    image.write(2 * region, data2);
    const writer2 = nbdsh([
      `import random`,
      `h.connect_uri(${JSON.stringify(live().uri("multi"))})`,
      `data = open(${JSON.stringify(file2)}, "rb").read()`,
      `chunk = 65536`,
      `order = list(range(len(data) // chunk))`,
      `random.Random(${seed}).shuffle(order)`,
      `for i in order:`,
      `    while h.aio_in_flight() >= 16:`,
      `        h.poll(-1)`,
      `    h.aio_pwrite(data[i * chunk:(i + 1) * chunk], ${2 * region} + i * chunk)`,
      `while h.aio_in_flight() > 0:`,
      `    h.poll(-1)`,
      `h.flush()`,
      `print(json.dumps({"ok": True}))`,
    ]);
    // Writer 3: nbdsh over the unix socket, 1 MiB writes with FUA, then zeroes and a trim.
    const data3 = randomBytes(region);
    const file3 = join(scratch, "multi-3.bin");
    writeFileSync(file3, data3);
    image.write(3 * region, data3);
    image.fill(3 * region + 2 * MiB, MiB + 5, 0);
    image.fill(3 * region + 5 * MiB, 512 * KiB, 0);
    const writer3 = nbdsh([
      `h.connect_uri(${JSON.stringify(live().unixUri("multi"))})`,
      `data = open(${JSON.stringify(file3)}, "rb").read()`,
      `for i in range(8):`,
      `    h.pwrite(data[i * 1048576:(i + 1) * 1048576], ${3 * region} + i * 1048576, nbd.CMD_FLAG_FUA)`,
      `h.zero(${MiB + 5}, ${3 * region + 2 * MiB})`,
      `h.trim(${512 * KiB}, ${3 * region + 5 * MiB})`,
      `h.flush()`,
      `print(json.dumps({"ok": True}))`,
    ]);
    // Readers of the snapshot while the writers run: libnbd in 4 MiB reads, and nbdcopy over the unix socket.
    const reader = nbdsh([
      `import hashlib`,
      `h.connect_uri(${JSON.stringify(live().uri("multi@before"))})`,
      `hashes = []`,
      `for _ in range(4):`,
      `    s = hashlib.sha256()`,
      `    for off in range(0, ${sizeBytes}, 4194304):`,
      `        s.update(h.pread(4194304, off))`,
      `    hashes.append(s.hexdigest())`,
      `print(json.dumps(hashes))`,
    ]);
    const copyReader = exportSha256(live().unixUri("multi@before"));
    const [, , , , hashes, copied] = await Promise.all([
      qemuWriter(0, live().uri("multi")),
      qemuWriter(1, live().unixUri("multi")),
      writer2,
      writer3,
      reader,
      copyReader,
    ]);
    assert.deepEqual(hashes, [beforeSha, beforeSha, beforeSha, beforeSha], `the snapshot read the same during the writes (seed ${seed})`);
    assert.equal(copied.sha256, beforeSha, "nbdcopy read the snapshot intact during the writes");
    await assertExportEquals(live().uri("multi"), image, `multi after concurrent writers (seed ${seed})`);
    await assertExportEquals(live().uri("multi@before"), before, "multi@before");
    expect("multi", image);
    expect("multi@before", before);
  },
);

// ---- 8. sub-block writes in flight together ----------------------------------------------------

test(
  "sub-block writes to distinct bytes of the same blocks, in flight together on one and on two connections, all land",
  { skip },
  async () => {
    // The server advertises block_size_minimum 1: byte-granular writes that do not overlap must
    // all take effect, however many are in flight (a read-modify-write per request loses them).
    await createDisk("rmw", MiB);
    const result = await nbdsh([
      `h2 = nbd.NBD()`,
      `h.connect_uri(${JSON.stringify(live().uri("rmw"))})`,
      `h2.connect_uri(${JSON.stringify(live().unixUri("rmw"))})`,
      `def drain():`,
      `    for handle in (h, h2):`,
      `        while handle.aio_in_flight() > 0:`,
      `            handle.poll(-1)`,
      `expected = bytearray(${MiB})`,
      `for round in range(32):`,
      `    base = round * 16384`,
      `    if round % 2 == 0:`,
      `        # eight 512-byte writes into one 4 KiB block, one connection`,
      `        for i in range(8):`,
      `            piece = bytes([round * 8 + i + 1]) * 512`,
      `            h.aio_pwrite(piece, base + i * 512)`,
      `            expected[base + i * 512:base + (i + 1) * 512] = piece`,
      `    else:`,
      `        # 1000-byte writes straddling block edges, alternating connections, plus zeroes`,
      `        for i in range(12):`,
      `            piece = bytes([(round * 12 + i) % 255 + 1]) * 1000`,
      `            (h if i % 2 == 0 else h2).aio_pwrite(piece, base + i * 1000)`,
      `            expected[base + i * 1000:base + (i + 1) * 1000] = piece`,
      `        h2.aio_zero(300, base + 12000 + 100)`,
      `        h.aio_pwrite(b"\\xee" * 100, base + 12000)`,
      `        expected[base + 12000:base + 12100] = b"\\xee" * 100`,
      `        expected[base + 12100:base + 12400] = bytes(300)`,
      `    drain()`,
      `h.flush()`,
      `data = h.pread(${MiB}, 0)`,
      `bad = sorted({offset // 4096 for offset in range(0, ${MiB}, 512) if data[offset:offset + 512] != expected[offset:offset + 512]})`,
      `print(json.dumps({"blocksWithLostWrites": bad}))`,
    ]);
    assert.deepEqual(result, { blocksWithLostWrites: [] }, "every sub-block write reads back");
  },
);

// ---- last: everything again after one more restart, and a clean log ---------------------------

/** Error-level (>= 50) lines of pino logs; a line that is not JSON counts as an error. */
function errorLines(log: string): string[] {
  return log
    .split("\n")
    .filter((line) => line.trim().length > 0)
    .filter((line) => {
      try {
        return (JSON.parse(line).level as number) >= 50;
      } catch {
        return true;
      }
    });
}

test("every export equals its reference after a final clean restart; no checksum errors, no error logs", { skip }, async () => {
  await restart("SIGTERM");
  await checkAll("final");
  const status = await live().api.status();
  assert.equal(status.checksumErrors, 0);
  const logs = [...serverLogs, live().stderr()];
  // Starts after a SIGKILL replaced the stale NBD socket, and that is a warning, not an error.
  if (killCount > 0)
    assert.ok(
      logs.some((log) => log.includes("replacing stale unix socket")),
      "a start after SIGKILL replaced the stale NBD socket",
    );
  const errors = logs.flatMap(errorLines);
  assert.deepEqual(errors, [], "the server logged no error");
});
