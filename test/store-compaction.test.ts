/**
 * Goal: what `compact` reports is what it did, and background compaction passes over every
 * disk it should. A fold into the baseline reports the log bytes it freed (every version it
 * dropped, not only the blocks it copied) and the blocks it left in the log because their data
 * was damaged; the scheduler gives a disk created again under a deleted disk's name its first
 * pass. Method: a real store for the fold (a flipped byte in a segment file for the damage);
 * fake engines, driven pass by pass, for the scheduler.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { DiskEngine } from "../src/engine/disk-engine.js";
import { CompactionScheduler, type CompactionTarget } from "../src/store/compaction-scheduler.js";
import { pattern } from "./support/data-pattern.js";
import { firstSegmentPath, flipByte, storeWithDisk, withStore } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const blockSizeBytes = 4096;
const MiB = 1024 * 1024;

test("a fold into the baseline reports the bytes of every version it freed, which can exceed the bytes it copied", async () => {
  // Block 0 twice and block 1 once, then a snapshot: the fold copies 2 blocks and frees 3 versions.
  const storePath = await storeWithDisk(tempDir("fold-freed"), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
    { offsetBytes: 0, data: pattern(2, blockSizeBytes) },
    { offsetBytes: blockSizeBytes, data: pattern(3, blockSizeBytes) },
  ]);
  await withStore(storePath, async (store) => {
    await store.createSnapshot({ disk: "d", name: "s" });
    await store.setPolicy({ disk: "d", historySeconds: 0 });
    const fold = await store.compact({ disk: "d", intoBaseline: true });
    assert.deepEqual(
      {
        mode: fold.mode,
        lsnFold: fold.lsnFold,
        entriesFreed: fold.entriesFreed,
        bytesFreed: fold.bytesFreed,
        bytesMoved: fold.bytesMoved,
        corruptBlocks: fold.corruptBlocks,
      },
      {
        mode: "into-baseline",
        lsnFold: 3,
        entriesFreed: 3,
        bytesFreed: 3 * blockSizeBytes,
        bytesMoved: 2 * blockSizeBytes,
        corruptBlocks: [],
      },
    );
    assert.deepEqual(
      await store.resolve("d@s").read(0, 2 * blockSizeBytes),
      Buffer.concat([pattern(2, blockSizeBytes), pattern(3, blockSizeBytes)]),
    );
    const inPlace = await store.compact({ disk: "d" });
    assert.deepEqual(inPlace.corruptBlocks, []);
  });
});

test("a fold that meets damaged data reports those blocks in corruptBlocks and folds the rest", async () => {
  // Block 5 is written first: its data is at offset 0 of the first segment file.
  const storePath = await storeWithDisk(
    tempDir("fold-corrupt"),
    { name: "d", sizeBytes: MiB, historySeconds: 0 },
    [5, 0, 9].map((block) => ({ offsetBytes: block * blockSizeBytes, data: pattern(block + 1, blockSizeBytes) })),
  );
  flipByte(firstSegmentPath(storePath, "d"), 0);
  await withStore(storePath, async (store) => {
    const fold = await store.compact({ disk: "d", intoBaseline: true });
    assert.ok(fold.lsnFold > 0, "the fold ran");
    assert.deepEqual(fold.corruptBlocks, [5]);
    assert.equal(fold.bytesMoved, 2 * blockSizeBytes, "blocks 0 and 9 were folded");
    assert.equal(fold.bytesFreed, 2 * blockSizeBytes, "block 5's entry stays in the log");
  });
});

/** Just what the scheduler reads of an engine; counts its compactions. */
function fakeEngine(lsnLast: number): DiskEngine & { compactCount: number } {
  const engine = {
    compactCount: 0,
    lastWriteMs: 0,
    lsnLast,
    historySeconds: 0,
    historyWindow: () => ({ historySeconds: 0, lsnFirst: lsnLast, timeMsFirst: 0, lsnLast }),
    stats: () => ({ lsnHorizon: lsnLast }),
    compact: async () => {
      engine.compactCount++;
      return { entriesFreed: 0, bytesFreed: 0, segmentsReleased: 0 };
    },
  };
  return engine as unknown as DiskEngine & { compactCount: number };
}

test("background compaction: a disk is passed over once nothing changed, and a disk created again under the same name gets its pass", async () => {
  let targets: CompactionTarget[] = [];
  const scheduler = new CompactionScheduler(() => targets, {
    intervalMs: 60_000,
    idleMs: 0,
    freeFractionMin: 0,
    space: async () => ({ freeBytes: 1, totalBytes: 1 }),
  });
  const first = fakeEngine(5);
  targets = [{ name: "d", engine: first, autoCompact: true }];
  await scheduler.pass();
  await scheduler.pass();
  assert.equal(first.compactCount, 1, "nothing was written since the first pass");

  // Deleted, created again and written as far, all between two passes: a new disk, never compacted.
  const again = fakeEngine(5);
  targets = [{ name: "d", engine: again, autoCompact: true }];
  await scheduler.pass();
  assert.equal(again.compactCount, 1, "the new disk of the same name was compacted");
});
