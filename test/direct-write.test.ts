/**
 * Goal: the log's segment files take large runs around the page cache (O_DIRECT) and small ones
 * through it, and either way every byte reads back: from source buffers at any memory offset,
 * across staging-chunk boundaries, over a range the page cache already held, and (a kernel that
 * refuses the alignment) written again buffered with no error. Method: DirectoryMedium on a
 * real file system, `fincore` (util-linux) to see which pages the kernel keeps cached, and a
 * file handle whose writes fail with EINVAL.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";
import { DirectoryMedium } from "../src/engine/index.js";
import { DIRECT_RUN_MIN_BYTES, directWritesRefused, writeDirect } from "../src/util/direct-write.js";
import { allocateAligned } from "../src/util/aligned-memory.js";
import { tempDir } from "./support/temp-dir.js";

const directory = tempDir("direct-write");

function pattern(lengthBytes: number, seed: number): Buffer {
  const buffer = Buffer.allocUnsafe(lengthBytes);
  let index = 0;
  for (; index + 4 <= lengthBytes; index += 4) buffer.writeUInt32LE((index * 2654435761 + seed) >>> 0, index);
  for (; index < lengthBytes; index += 1) buffer[index] = index & 0xff;
  return buffer;
}

/** Pages of the file the kernel holds in its page cache (fincore, from Debian's util-linux-extra; .ci/run installs it). */
function residentPages(filePath: string): number {
  const output = execFileSync("fincore", ["--bytes", "--noheadings", "--output", "PAGES", filePath], { encoding: "utf8" });
  return Number(output.trim());
}

/** Whether the file system under `directory` takes O_DIRECT at all (tmpfs before Linux 6.6 does not). */
async function directSupported(): Promise<boolean> {
  try {
    const handle = await fs.open(path.join(directory, "probe"), fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_DIRECT);
    await handle.close();
    return true;
  } catch {
    return false;
  }
}

test("a large run goes around the page cache and reads back whole; a small one is cached", async (t) => {
  if (!(await directSupported())) {
    t.skip(`LOUD SKIP: ${directory} refuses O_DIRECT; run with SNAPLOG_TEST_TMPDIR on ext4 or xfs`);
    return;
  }
  const medium = new DirectoryMedium(directory);
  const file = await medium.open("segment-00000000.dat", { create: true, writeAround: true });
  // 3.5 MiB in pieces of odd sizes at odd memory offsets: the staging copy realigns them and
  // splits them across 1 MiB chunks.
  const whole = pattern(3.5 * 1024 * 1024 + 3, 7).subarray(3);
  const cuts = [0, 4096 * 3 + 1, 700_001, 1_048_576 + 5, 2_000_000, whole.length];
  const pieces = cuts.slice(1).map((end, index) => whole.subarray(cuts[index], end));
  await file.writev(pieces, 8 * 4096);
  await file.sync();
  const filePath = path.join(directory, "segment-00000000.dat");
  assert.equal(residentPages(filePath), 0, "a direct write leaves no page of the run in the page cache");
  const back = Buffer.alloc(whole.length);
  assert.equal(await file.read(back, 8 * 4096), whole.length);
  assert.ok(back.equals(whole), "the run reads back byte for byte");

  // Cached old contents of a range, then a direct write over it: the read sees the new bytes.
  const newer = pattern(DIRECT_RUN_MIN_BYTES, 99);
  await file.writev([newer], 8 * 4096);
  const again = Buffer.alloc(DIRECT_RUN_MIN_BYTES);
  await file.read(again, 8 * 4096);
  assert.ok(again.equals(newer), "a direct write over cached pages is what a later read sees");

  // A small run (under DIRECT_RUN_MIN_BYTES) is an ordinary buffered write: its pages are cached.
  const small = pattern(64 * 1024, 3);
  await file.writev([small], 4096 * 4096);
  assert.ok(residentPages(filePath) >= small.length / 4096, "a small run is written through the page cache");
  const smallBack = Buffer.alloc(small.length);
  await file.read(smallBack, 4096 * 4096);
  assert.ok(smallBack.equals(small));
  await file.close();
  assert.equal(directWritesRefused(), false);
});

test("an aligned buffer (a pooled NBD payload) goes to the kernel as it is and reads back whole", async (t) => {
  if (!(await directSupported())) {
    t.skip(`LOUD SKIP: ${directory} refuses O_DIRECT`);
    return;
  }
  const medium = new DirectoryMedium(directory);
  const file = await medium.open("aligned.dat", { create: true, writeAround: true });
  const arena = allocateAligned(2 * 1024 * 1024);
  pattern(arena.length, 17).copy(arena);
  // Two page-aligned views of the arena, as the engine passes a payload's blocks.
  await file.writev([arena.subarray(0, 1024 * 1024), arena.subarray(1024 * 1024)], 4096);
  assert.equal(residentPages(path.join(directory, "aligned.dat")), 0, "written around the page cache");
  const back = Buffer.alloc(arena.length);
  await file.read(back, 4096);
  assert.ok(back.equals(arena));
  await file.close();
  assert.equal(directWritesRefused(), false, "the kernel took the arena's memory as aligned");
});

test("without the writeAround hint (or with SNAPLOG_DIRECT_WRITES=0) every write is cached", async () => {
  const cases = [
    { name: "no-hint.dat", medium: new DirectoryMedium(directory), writeAround: false },
    { name: "turned-off.dat", medium: new DirectoryMedium(directory, false), writeAround: true },
  ];
  for (const { name, medium, writeAround } of cases) {
    const file = await medium.open(name, { create: true, writeAround });
    const data = pattern(2 * 1024 * 1024, 5);
    await file.writev([data], 0);
    assert.equal(residentPages(path.join(directory, name)), data.length / 4096, name);
    await file.close();
  }
});

test("a kernel that refuses the alignment (EINVAL): the write reports it so the caller writes buffered, and direct writes stop", async () => {
  const refusing = {
    write: () => Promise.reject(Object.assign(new Error("invalid argument"), { code: "EINVAL" })),
    writev: () => Promise.reject(Object.assign(new Error("invalid argument"), { code: "EINVAL" })),
  } as unknown as fs.FileHandle;
  assert.equal(await writeDirect(refusing, [pattern(2 * 1024 * 1024, 1)], 0), false);
  assert.equal(directWritesRefused(), true);
  // Other errors are the caller's to see.
  const failing = {
    write: () => Promise.reject(Object.assign(new Error("no space"), { code: "ENOSPC" })),
  } as unknown as fs.FileHandle;
  await assert.rejects(writeDirect(failing, [pattern(1024 * 1024, 1)], 0), /no space/);

  // The medium now writes buffered and still lands every byte.
  const medium = new DirectoryMedium(directory);
  const file = await medium.open("after-refusal.dat", { create: true, writeAround: true });
  const data = pattern(1024 * 1024, 11);
  await file.writev([data], 0);
  const back = Buffer.alloc(data.length);
  await file.read(back, 0);
  assert.ok(back.equals(data));
  assert.equal(residentPages(path.join(directory, "after-refusal.dat")), data.length / 4096, "written through the page cache");
  await file.close();
});
