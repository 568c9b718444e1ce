/**
 * Goal: Store.scrub finds damaged data and says where it is (SPEC §2 "Integrity": `snaplog
 * scrub` checks everything and reports per disk), and finds nothing on a sound store. Method:
 * a real store in a temp directory; write blocks through the current volume, close, flip one
 * byte of a segment file on disk (the first block written to a fresh disk lands in slot 0, at
 * offset 0 of segment-00000000.dat), reopen and scrub. Block 5 is written first, so its disk
 * offset (5 × 4096) and its file offset (0) differ and the test can tell them apart. Also:
 * disks that fail to open, baseline blocks a fold left unknown, progress, unknown disks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ScrubResult } from "../src/store/operations/index.js";
import { Store } from "../src/store/store.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { firstSegmentPath, flipByte, storeWithDisk, withStore } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const blockSizeBytes = 4096;
const diskSizeBytes = 1 << 20;
/** Written in this order: block 5 lands in slot 0, block 0 in slot 1, block 9 in slot 2. */
const blocksWritten = [5, 0, 9];

function pattern(block: number): Buffer {
  return Buffer.alloc(blockSizeBytes, 0x40 + block);
}

/** A store with disk `name` holding blocksWritten, closed again. */
function storeWithBlocks(prefix: string, name: string, options: { historySeconds?: number } = {}): Promise<string> {
  const writes = blocksWritten.map((block) => ({ offsetBytes: block * blockSizeBytes, data: pattern(block) }));
  return storeWithDisk(tempDir(prefix), { name, sizeBytes: diskSizeBytes, historySeconds: options.historySeconds }, writes);
}

test("a sound store scrubs OK: every entry checked, nothing damaged", async () => {
  const storePath = await storeWithBlocks("scrub-clean", "d");
  const result = await withStore(storePath, (store) => store.scrub({}));
  assert.equal(result.ok, true);
  assert.deepEqual(result.disks, [
    {
      disk: "d",
      entriesChecked: blocksWritten.length,
      bytesChecked: blocksWritten.length * blockSizeBytes,
      corrupt: [],
      repaired: [],
      baselineUnknownBlocks: [],
      ok: true,
    },
  ]);
  assert.ok(Number.isFinite(result.durationMs) && result.durationMs >= 0, `duration ${result.durationMs} ms`);
});

test("a flipped byte in a segment file is reported with its block, disk offset, LSN and file; the other blocks are not", async () => {
  const storePath = await storeWithBlocks("scrub-flip", "d");
  flipByte(firstSegmentPath(storePath, "d"), 100);
  const result = await withStore(storePath, async (store) => {
    // The flip hit block 5's data (slot 0): reads of it refuse, the others still read.
    await assert.rejects(
      store.resolve("d").read(5 * blockSizeBytes, blockSizeBytes),
      (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CORRUPT,
    );
    assert.deepEqual(await store.resolve("d").read(0, blockSizeBytes), pattern(0));
    return store.scrub({ disk: "d" });
  });
  assert.equal(result.ok, false);
  const [disk] = result.disks;
  assert.equal(disk.ok, false);
  assert.equal(disk.entriesChecked, blocksWritten.length, "a damaged entry was still read and checked");
  assert.deepEqual(disk.corrupt, [
    {
      block: 5,
      lsn: 1,
      offsetBytes: 5 * blockSizeBytes,
      file: join("disks", "d", "segment-00000000.dat"),
      fileOffsetBytes: 0,
      reason: "checksum mismatch",
    },
  ]);
  assert.deepEqual(disk.baselineUnknownBlocks, []);
  // SPEC §4.3: the damage is an event (actions can hang on scrub-damage), in the store's log.
  const events = await withStore(storePath, async (store) => {
    const seen = [];
    for await (const event of store.readEvents({ disk: "d" })) seen.push(event);
    return seen;
  });
  const damage = events.filter((event) => event.type === "scrub-damage");
  assert.equal(damage.length, 1, JSON.stringify(events));
  assert.equal(damage[0].details?.corruptEntries, 1);
});

test("every disk is scrubbed by default; a disk that fails to open is reported, not ok, with its reason", async () => {
  const storePath = await storeWithBlocks("scrub-all", "d");
  await withStore(storePath, async (store) => {
    await store.createDisk({ name: "e", sizeBytes: diskSizeBytes });
    await store.resolve("e").write(0, pattern(1), { fua: true });
  });
  flipByte(firstSegmentPath(storePath, "d"), blockSizeBytes + 7);
  mkdirSync(join(storePath, "disks", "broken"));
  writeFileSync(join(storePath, "disks", "broken", "disk.json"), "{ not json");

  const progress: Array<[number, number]> = [];
  const result = await withStore(storePath, (store) => store.scrub({}, (done, total) => progress.push([done, total])));
  assert.deepEqual(
    result.disks.map((disk) => [disk.disk, disk.ok]),
    [
      ["broken", false],
      ["d", false],
      ["e", true],
    ],
  );
  assert.equal(result.ok, false);
  const [broken, d, e] = result.disks;
  assert.ok(broken.offlineReason !== undefined && broken.offlineReason.length > 0, JSON.stringify(broken));
  assert.equal(broken.entriesChecked, 0);
  assert.equal(d.offlineReason, undefined);
  assert.deepEqual(
    d.corrupt.map((damage) => [damage.block, damage.offsetBytes, damage.fileOffsetBytes]),
    [[0, 0, blockSizeBytes]],
  );
  assert.equal(e.entriesChecked, 1);

  // One index page per disk of this size, two disks checked: a fixed total, done only grows, and ends at the total.
  assert.ok(progress.length > 0);
  assert.ok(
    progress.every(([, total]) => total === 2),
    JSON.stringify(progress),
  );
  for (let index = 1; index < progress.length; index++) assert.ok(progress[index][0] >= progress[index - 1][0], JSON.stringify(progress));
  assert.deepEqual(progress.at(-1), [2, 2]);

  const offlineOnly = await withStore(storePath, (store) => store.scrub({ disk: "broken" }));
  assert.deepEqual(
    offlineOnly.disks.map((disk) => disk.disk),
    ["broken"],
  );
  assert.equal(offlineOnly.ok, false);
  const soundOnly = await withStore(storePath, (store) => store.scrub({ disk: "e" }));
  assert.equal(soundOnly.ok, true);
});

test("baseline blocks a fold could not write (damaged data) are reported as unknown", async () => {
  // With no history window the fold takes the current view; it meets block 5's damaged data.
  const storePath = await storeWithBlocks("scrub-fold", "d", { historySeconds: 0 });
  flipByte(firstSegmentPath(storePath, "d"), 0);
  const result: ScrubResult = await withStore(storePath, async (store) => {
    const fold = await store.compact({ disk: "d", intoBaseline: true });
    assert.ok(fold.lsnFold > 0, "the fold ran");
    return store.scrub({});
  });
  const [disk] = result.disks;
  assert.deepEqual(disk.baselineUnknownBlocks, [5]);
  assert.deepEqual(
    disk.corrupt.map((damage) => damage.block),
    [5],
    "the damaged entry stays in the log",
  );
  assert.equal(disk.ok, false);
  assert.equal(result.ok, false);
});

test("an unknown disk is NOT_FOUND", async () => {
  const storePath = await storeWithBlocks("scrub-missing", "d");
  await withStore(storePath, (store) =>
    assert.rejects(
      store.scrub({ disk: "nothere" }),
      (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND,
    ),
  );
});

test("an empty store scrubs OK", async () => {
  const storePath = tempDir("scrub-empty");
  await Store.init(storePath);
  const result = await withStore(storePath, (store) => store.scrub({}));
  assert.deepEqual(result.disks, []);
  assert.equal(result.ok, true);
});
