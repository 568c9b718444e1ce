/**
 * Goal: block status is honest and bounded. Method: a disk of alternating data, zeroed,
 * trimmed and never-written blocks; every answer must be a correct prefix of the truth,
 * stop early when asked for one extent (REQ_ONE) or past the run limit, and a NO_HOLE
 * WRITE_ZEROES of never-written blocks must leave them allocated (zero, not hole).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DiskEngine } from "../src/engine/disk-engine.js";
import { DirectoryMedium } from "../src/engine/medium.js";
import { DiskVolume, VolumeLife } from "../src/store/disk-volume.js";
import type { StatusExtent } from "../src/store/volume.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 4096;
type Allocation = Pick<StatusExtent, "hole" | "zero">;
const DATA: Allocation = { hole: false, zero: false };
const ZEROES: Allocation = { hole: false, zero: true };
const HOLE: Allocation = { hole: true, zero: true };
const BLOCK_COUNT = 2048;

async function openVolume() {
  const medium = new DirectoryMedium(tempDir("status"));
  await DiskEngine.create(medium);
  const engine = await DiskEngine.open(medium, {
    name: "s",
    sizeBytes: BLOCK_COUNT * BLOCK_BYTES,
    blockSizeBytes: BLOCK_BYTES,
    historySeconds: 0,
  });
  return { engine, volume: new DiskVolume(engine, "s", "s", Infinity, false, new VolumeLife()) };
}

test("block status answers correct prefixes, bounded, and honours NO_HOLE", async () => {
  const { engine, volume } = await openVolume();
  try {
    const truth: Allocation[] = new Array<Allocation>(BLOCK_COUNT).fill(HOLE);
    const work: Promise<void>[] = [];
    for (let lba = 0; lba < 1200; lba++) {
      const kind = lba % 4;
      if (kind === 0) {
        work.push(volume.write(lba * BLOCK_BYTES, Buffer.alloc(BLOCK_BYTES, 1), { fua: false }));
        truth[lba] = DATA;
      } else if (kind === 1) {
        work.push(volume.write(lba * BLOCK_BYTES, Buffer.alloc(BLOCK_BYTES, 2), { fua: false }));
        work.push(volume.writeZeroes(lba * BLOCK_BYTES, BLOCK_BYTES, { fua: false, noHole: false }));
        truth[lba] = ZEROES;
      } else if (kind === 2) {
        work.push(volume.writeZeroes(lba * BLOCK_BYTES, BLOCK_BYTES, { fua: false, noHole: true }));
        truth[lba] = ZEROES;
      }
    }
    await Promise.all(work);

    const checkPrefix = (extents: StatusExtent[], offsetBlocks: number) => {
      let lba = offsetBlocks;
      for (const extent of extents) {
        assert.equal(extent.lengthBytes % BLOCK_BYTES, 0);
        for (let block = 0; block < extent.lengthBytes / BLOCK_BYTES; block++, lba++)
          assert.deepEqual({ hole: extent.hole, zero: extent.zero }, truth[lba], `block ${lba}`);
      }
      return lba;
    };
    // Walk the whole disk as a client would: ask, take the prefix, ask again from its end.
    let lba = 0;
    let calls = 0;
    while (lba < BLOCK_COUNT) {
      const extents = await volume.blockStatus(lba * BLOCK_BYTES, (BLOCK_COUNT - lba) * BLOCK_BYTES);
      assert.ok(extents.length > 0 && extents.length <= 256, `answer of ${extents.length} extents`);
      lba = checkPrefix(extents, lba);
      calls++;
    }
    assert.ok(calls > 1, "the run limit splits a fragmented disk into several answers");
    const one = await volume.blockStatus(0, BLOCK_COUNT * BLOCK_BYTES, 1);
    assert.equal(one.length, 1);
    checkPrefix(one, 0);
  } finally {
    await engine.close();
  }
});
