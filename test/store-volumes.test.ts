/**
 * Goal: a volume a host attached stops answering once what it shows is gone, and costs no
 * lookup per request while it is there. A snapshot's volume fails (CLOSED) once the snapshot
 * is deleted, even when a new snapshot takes its name; every volume of a deleted disk fails
 * (CLOSED); the current volume's connections made before a rollback fail (CONFLICT) while new
 * ones work; closing the store fails them all (CLOSED). Reads and writes of a live volume do
 * not search the disk's snapshots. Method: a real store in a temp directory, volumes resolved
 * as the NBD server resolves them; DiskEngine.findSnapshot watched with node:test's mock.
 */
import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { DiskEngine } from "../src/engine/disk-engine.js";
import { Store } from "../src/store/store.js";
import type { Volume } from "../src/store/volume.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { pattern } from "./support/data-pattern.js";
import { storeWithDisk } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const blockSizeBytes = 4096;
const MiB = 1024 * 1024;

function hasCode(code: string, message?: RegExp): (error: unknown) => boolean {
  return (error: unknown) => error instanceof SnaplogError && error.code === code && (message === undefined || message.test(error.message));
}

async function openStore(prefix: string): Promise<Store> {
  const storePath = await storeWithDisk(tempDir(prefix), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
  ]);
  return Store.open(storePath);
}

/** Every kind of request fails with `code` (a write only where the volume takes writes). */
async function assertGone(volume: Volume, code: string, message: RegExp): Promise<void> {
  await assert.rejects(volume.read(0, blockSizeBytes), hasCode(code, message), `read of ${volume.name}`);
  await assert.rejects(volume.blockStatus(0, blockSizeBytes), hasCode(code, message), `block status of ${volume.name}`);
  await assert.rejects(volume.flush(), hasCode(code, message), `flush of ${volume.name}`);
  if (!volume.readOnly)
    await assert.rejects(volume.write(0, pattern(9, blockSizeBytes), { fua: false }), hasCode(code, message), `write of ${volume.name}`);
}

test("a snapshot's volume fails once the snapshot is deleted, also when a new snapshot takes its name", async () => {
  const store = await openStore("volumes-snapshot");
  try {
    await store.createSnapshot({ disk: "d", name: "s" });
    const attached = store.resolve("d@s");
    assert.deepEqual(await attached.read(0, blockSizeBytes), pattern(1, blockSizeBytes));
    await store.deleteSnapshot("d", "s");
    await assertGone(attached, ErrorCodes.CLOSED, /snapshot s of disk d was deleted/);

    await store.resolve("d").write(0, pattern(2, blockSizeBytes), { fua: true });
    await store.createSnapshot({ disk: "d", name: "s" });
    const again = store.resolve("d@s");
    assert.deepEqual(await again.read(0, blockSizeBytes), pattern(2, blockSizeBytes), "the new snapshot of that name is served");
    await assertGone(attached, ErrorCodes.CLOSED, /was deleted/);
  } finally {
    await store.close();
  }
});

test("every volume of a deleted disk fails with CLOSED", async () => {
  const store = await openStore("volumes-disk");
  try {
    await store.createSnapshot({ disk: "d", name: "s" });
    const volumes = ["d", "d@s", "d@baseline", "d@lsn:1"].map((name) => store.resolve(name));
    for (const volume of volumes) await volume.read(0, blockSizeBytes);
    await store.deleteDisk("d");
    for (const volume of volumes) await assertGone(volume, ErrorCodes.CLOSED, /disk d was deleted/);
  } finally {
    await store.close();
  }
});

test("a rollback fails the current volume's connections made before it (CONFLICT); later ones and snapshots work", async () => {
  const store = await openStore("volumes-rollback");
  try {
    await store.createSnapshot({ disk: "d", name: "s" });
    const before = store.resolve("d");
    const snapshot = store.resolve("d@s");
    await before.write(0, pattern(2, blockSizeBytes), { fua: true });
    await store.restore({ disk: "d", at: "s", rollback: true, name: "pre" });
    await assertGone(before, ErrorCodes.CONFLICT, /rolled back after this connection was made/);
    const after = store.resolve("d");
    assert.deepEqual(await after.read(0, blockSizeBytes), pattern(1, blockSizeBytes), "the rolled-back disk");
    await after.write(0, pattern(3, blockSizeBytes), { fua: true });
    assert.deepEqual(await snapshot.read(0, blockSizeBytes), pattern(1, blockSizeBytes));
    assert.deepEqual(await store.resolve("d@pre").read(0, blockSizeBytes), pattern(2, blockSizeBytes));
  } finally {
    await store.close();
  }
});

test("closing the store fails every attached volume with CLOSED", async () => {
  const store = await openStore("volumes-close");
  await store.createSnapshot({ disk: "d", name: "s" });
  const volumes = ["d", "d@s", "d@baseline"].map((name) => store.resolve(name));
  await store.close();
  for (const volume of volumes) await assertGone(volume, ErrorCodes.CLOSED, /the store is closing/);
});

test("requests to a snapshot's volume do not look the snapshot up", async () => {
  const store = await openStore("volumes-hot-path");
  try {
    await store.createSnapshot({ disk: "d", name: "s" });
    const volume = store.resolve("d@s");
    const current = store.resolve("d");
    const findSnapshot = mock.method(DiskEngine.prototype, "findSnapshot");
    try {
      for (let index = 0; index < 10; index++) {
        await volume.read(0, blockSizeBytes);
        await volume.blockStatus(0, MiB);
        await current.write(blockSizeBytes, pattern(index, blockSizeBytes), { fua: false });
      }
      await assert.rejects(volume.write(0, pattern(1, blockSizeBytes), { fua: false }), hasCode(ErrorCodes.READ_ONLY));
      assert.equal(findSnapshot.mock.callCount(), 0);
    } finally {
      findSnapshot.mock.restore();
    }
  } finally {
    await store.close();
  }
});
