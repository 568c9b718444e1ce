/**
 * Goal: `snaplog scrub [DISK]` (SPEC §3.2) says OK and exits 0 on a sound store; after a byte
 * of stored data is flipped it names the damaged block (number, byte offset, LSN, file) and
 * exits 9, the exit status kept for "damage found" (documented in --help and docs/errors.md,
 * and used by no error code); --json prints the result; the same holds through a running
 * `snaplog serve`, where the CLI goes through the API socket. Method: the real binary
 * (dist/src/cli/main.js) on a store made in a temp directory with the Store library; the
 * byte is flipped in segment-00000000.dat at slot 0, where the first block written lands.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exitCodeByCode, exitCodeDamageFound } from "../src/cli/exit-code.js";
import type { ScrubResult } from "../src/store/operations/index.js";
import { killServeChildren, snaplogCli, startServeChild } from "./support/serve-child.js";
import { firstSegmentPath, flipByte, storeWithDisk } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

after(killServeChildren);

const blockSizeBytes = 4096;
/** Block 7 is written first: it lands in slot 0 of the first segment file. */
const blockDamaged = 7;
const blocksWritten = [blockDamaged, 1, 2];

/** A closed store with disk "vm1" holding blocksWritten. */
function storeWithBlocks(prefix: string): Promise<string> {
  const writes = blocksWritten.map((block) => ({ offsetBytes: block * blockSizeBytes, data: Buffer.alloc(blockSizeBytes, block + 1) }));
  return storeWithDisk(join(tempDir(prefix), "store"), { name: "vm1", sizeBytes: 1 << 20 }, writes);
}

/** Inverts the byte at offset 10 of slot 0: block 7's data. */
function damageFirstBlock(storePath: string): void {
  flipByte(firstSegmentPath(storePath, "vm1"), 10);
}

function assertReportsDamage(stdout: string): void {
  assert.match(stdout, /^disk vm1: 3 entries \(12 KiB\) checked, DAMAGED: 1 damaged entry$/m);
  const row = stdout.split("\n").find((line) => line.includes("checksum mismatch"));
  assert.ok(row !== undefined, stdout);
  // block, byte offset in the disk, LSN, file, offset in the file, reason.
  assert.deepEqual(row.trim().split(/\s+/).slice(0, 5), [
    String(blockDamaged),
    String(blockDamaged * blockSizeBytes),
    "1",
    "disks/vm1/segment-00000000.dat",
    "0",
  ]);
  assert.match(stdout, /damage on vm1/);
}

test("exit status 9 means damage found: no error code uses it, --help and docs/errors.md say so", async () => {
  assert.equal(exitCodeDamageFound, 9);
  assert.ok(!(Object.values(exitCodeByCode) as number[]).includes(exitCodeDamageFound));
  const help = await snaplogCli(tempDir("scrub-help"), ["scrub", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^ {2}9 {3}damage found/m);
  const doc = readFileSync(fileURLToPath(new URL("../../docs/errors.md", import.meta.url)), "utf8");
  assert.match(doc, /`snaplog scrub`[^\n]*\b9\b/);
});

test("scrub on a sound store exits 0 and says OK; --json parses", async () => {
  const storePath = await storeWithBlocks("scrub-cli-clean");
  const human = await snaplogCli(storePath, ["scrub"]);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stderr, "", "no progress bar when stderr is not a terminal");
  assert.match(human.stdout, /^disk vm1: 3 entries \(12 KiB\) checked, OK$/m);
  assert.match(human.stdout, /^scrub: 1 disk, 3 entries \(12 KiB\) checked in \d+(\.\d)? m?s, all OK$/m);

  const json = await snaplogCli(storePath, ["--json", "scrub", "vm1"]);
  assert.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout) as ScrubResult;
  assert.equal(result.ok, true);
  assert.deepEqual(
    result.disks.map((disk) => [disk.disk, disk.entriesChecked, disk.ok]),
    [["vm1", 3, true]],
  );
});

test("scrub after a byte flip exits 9 and names the block; --json too; bad arguments are usage errors", async () => {
  const storePath = await storeWithBlocks("scrub-cli-damaged");
  damageFirstBlock(storePath);
  const human = await snaplogCli(storePath, ["scrub"]);
  assert.equal(human.code, exitCodeDamageFound, human.stderr);
  assert.equal(human.stderr, "");
  assertReportsDamage(human.stdout);

  const json = await snaplogCli(storePath, ["--json", "scrub", "vm1"]);
  assert.equal(json.code, exitCodeDamageFound, json.stderr);
  const result = JSON.parse(json.stdout) as ScrubResult;
  assert.equal(result.ok, false);
  assert.deepEqual(
    result.disks[0].corrupt.map((damage) => [damage.block, damage.offsetBytes, damage.lsn, damage.file, damage.reason]),
    [[blockDamaged, blockDamaged * blockSizeBytes, 1, "disks/vm1/segment-00000000.dat", "checksum mismatch"]],
  );

  const missing = await snaplogCli(storePath, ["scrub", "nothere"]);
  assert.equal(missing.code, 3, missing.stderr);
  assert.match(missing.stderr, /^snaplog: .*nothere/);
  const badName = await snaplogCli(storePath, ["scrub", "a b"]);
  assert.equal(badName.code, 2, badName.stderr);
});

test("scrub through a running snaplog serve goes over the API socket and reports the same", async () => {
  const storePath = await storeWithBlocks("scrub-cli-serve");
  damageFirstBlock(storePath);
  const server = await startServeChild(storePath, join(storePath, "..", "nbd.sock"));
  try {
    // The server holds the store's lock: a direct open would fail (exit 5), so an answer means the API.
    const damaged = await snaplogCli(storePath, ["scrub"]);
    assert.equal(damaged.code, exitCodeDamageFound, damaged.stderr);
    assertReportsDamage(damaged.stdout);
    const json = await snaplogCli(storePath, ["--json", "scrub", "vm1"]);
    assert.equal(json.code, exitCodeDamageFound, json.stderr);
    assert.deepEqual(
      (JSON.parse(json.stdout) as ScrubResult).disks[0].corrupt.map((damage) => damage.block),
      [blockDamaged],
    );
    const missing = await snaplogCli(storePath, ["scrub", "nothere"]);
    assert.equal(missing.code, 3, missing.stderr);
  } finally {
    await server.stop();
  }
});
