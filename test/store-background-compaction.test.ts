/**
 * Goal: background compaction (policy auto-compact, on by default) frees history that left
 * the window without anyone asking — when the disk is idle, or at once when the store's file
 * system is short of space — hands wholly free segment files back, changes no kept view, and
 * leaves disks with auto-compact off alone.
 * Method: an in-process Store on real files, disks with a 1 s window overwritten in place many
 * times through the Volume interface, the clock let run past the window, background
 * compaction started with short intervals; "short of space" is forced by a free-space
 * threshold above 100 %.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Store } from "../src/store/store.js";
import { tempDir } from "./support/temp-dir.js";
import { waitFor } from "./support/wait-for.js";

const MiB = 1024 * 1024;
const SIZE = 8 * MiB;
const SEGMENT_BYTES = 32 * MiB;

async function overwrite(store: Store, disk: string, passes: number): Promise<void> {
  const volume = store.resolve(disk);
  for (let pass = 0; pass < passes; pass++) {
    for (let offset = 0; offset < SIZE; offset += MiB) await volume.write(offset, randomBytes(MiB), { fua: false });
  }
  await volume.flush();
  volume.release();
}

async function hash(store: Store, exportName: string): Promise<string> {
  const volume = store.resolve(exportName);
  try {
    return createHash("sha256")
      .update(await volume.read(0, SIZE))
      .digest("hex");
  } finally {
    volume.release();
  }
}

test("idle disks are compacted in the background once history leaves the window; auto-compact off is left alone; kept views unchanged", async () => {
  const directory = tempDir("background");
  const storePath = join(directory, "store");
  await Store.init(storePath);
  const store = await Store.open(storePath, { mode: "server" });
  try {
    await store.createDisk({ name: "auto", sizeBytes: SIZE, historySeconds: 1 });
    await store.createDisk({ name: "manual", sizeBytes: SIZE, historySeconds: 1 });
    await store.setPolicy({ disk: "manual", autoCompact: false });
    await overwrite(store, "auto", 2);
    await store.createSnapshot({ disk: "auto", name: "kept" });
    // 32 passes of 8 MiB: 256 MiB of log, eight 32 MiB segment files, nearly all of it older than the window soon.
    await overwrite(store, "auto", 30);
    await overwrite(store, "manual", 8);
    const before = { current: await hash(store, "auto"), kept: await hash(store, "auto@kept") };
    const dead = async (disk: string) => (await store.showDisk(disk)).space.logDeadBytes;
    await sleep(1200); // the window (1 s) passes
    assert.ok((await dead("auto")) >= 4 * SIZE, "versions older than the window are dead before compaction");

    store.startBackgroundCompaction({ intervalMs: 100, idleMs: 200 });
    // Live data sits in the first segment (the snapshot) and the last (the current volume); two spares stay.
    // A pass frees entries step by step and hands segments back at its end: wait for both.
    const compacted = async () => {
      const space = (await store.showDisk("auto")).space;
      return space.logDeadBytes === 0 && space.segmentBytes <= 4 * SEGMENT_BYTES;
    };
    await waitFor("the idle disk to be compacted and its free segment files handed back", compacted);
    assert.deepEqual({ current: await hash(store, "auto"), kept: await hash(store, "auto@kept") }, before, "kept views unchanged");
    assert.ok((await dead("manual")) >= 6 * SIZE, "auto-compact off: nothing freed");
  } finally {
    await store.close();
  }
});

test("when space is short, a busy disk is compacted too", async () => {
  const directory = tempDir("background-short");
  const storePath = join(directory, "store");
  await Store.init(storePath);
  const store = await Store.open(storePath, { mode: "server" });
  try {
    await store.createDisk({ name: "busy", sizeBytes: SIZE, historySeconds: 1 });
    await overwrite(store, "busy", 6);
    await sleep(1200);
    // Never idle (a day), but a threshold no file system meets: space counts as short.
    store.startBackgroundCompaction({ intervalMs: 100, idleMs: 86_400_000, freeFractionMin: 1.01 });
    await waitFor("the busy disk to be compacted", async () => (await store.showDisk("busy")).space.logDeadBytes === 0);
  } finally {
    await store.close();
  }
});
