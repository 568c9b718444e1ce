/**
 * Goal: `restore` keeps SPEC §2 "Bad input gets a clear answer and changes nothing" and never
 * harms a user's file: --to writes only a new file (never one named `<to>.partial`, never one
 * that appears while it runs), reads only the data a volume has (holes stay holes); a request
 * the CLI refuses is refused by the store too; a restore that fails changes no LUN counter,
 * and a rollback that would change nothing is refused. Method: a real store in a temp
 * directory, through the library; DiskEngine.readBlocks is watched with node:test's mock.
 */
import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DiskEngine } from "../src/engine/disk-engine.js";
import { Store } from "../src/store/store.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { pattern } from "./support/data-pattern.js";
import { storeWithDisk, withStore } from "./support/store-fixtures.js";
import { tempDir } from "./support/temp-dir.js";

const blockSizeBytes = 4096;
const MiB = 1024 * 1024;

function hasCode(code: string, message?: RegExp): (error: unknown) => boolean {
  return (error: unknown) => error instanceof SnaplogError && error.code === code && (message === undefined || message.test(error.message));
}

test("restore --to reads only the data runs, and the image is sparse where the volume reads as zeros", async () => {
  const sizeBytes = 64 * MiB;
  const writes = [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
    { offsetBytes: 32 * MiB, data: pattern(2, 2 * blockSizeBytes) },
  ];
  const storePath = await storeWithDisk(tempDir("restore-runs"), { name: "d", sizeBytes }, writes);
  const target = join(tempDir("restore-runs-out"), "d.raw");
  await withStore(storePath, async (store) => {
    // A zeroed range: an entry, but no data to read.
    await store.resolve("d").writeZeroes(8 * MiB, MiB, { fua: true, noHole: false });
    const readBlocks = mock.method(DiskEngine.prototype, "readBlocks");
    try {
      const result = await store.restore({ disk: "d", at: "current", to: target });
      assert.deepEqual(result.file, { path: target, sizeBytes, bytesWritten: 3 * blockSizeBytes });
      const blocksRead = readBlocks.mock.calls.reduce((sum, call) => sum + (call.arguments[1] as number), 0);
      assert.equal(blocksRead, 3, "only the three written blocks are read");
    } finally {
      readBlocks.mock.restore();
    }
  });
  const expected = Buffer.alloc(sizeBytes);
  for (const { offsetBytes, data } of writes) data.copy(expected, offsetBytes);
  assert.ok(readFileSync(target).equals(expected), "the image holds the volume's bytes");
  assert.ok(statSync(target).blocks * 512 < 4 * MiB, `sparse: ${statSync(target).blocks * 512} bytes allocated`);
  assert.equal(existsSync(`${target}.partial`), false);
});

test("restore --to of a disk with a baseline copies the baseline's data too", async () => {
  const directory = tempDir("restore-baseline");
  const image = join(directory, "image.raw");
  const imageData = Buffer.alloc(MiB);
  pattern(7, 3 * blockSizeBytes).copy(imageData, 5 * blockSizeBytes);
  writeFileSync(image, imageData);
  const storePath = join(directory, "store");
  await Store.init(storePath);
  const target = join(directory, "b.raw");
  await withStore(storePath, async (store) => {
    await store.createDisk({ name: "b", sizeBytes: MiB, fromImage: image });
    await store.resolve("b").write(6 * blockSizeBytes, pattern(8, blockSizeBytes), { fua: true });
    await store.restore({ disk: "b", at: "current", to: target });
  });
  const expected = Buffer.from(imageData);
  pattern(8, blockSizeBytes).copy(expected, 6 * blockSizeBytes);
  assert.ok(readFileSync(target).equals(expected));
});

test("restore --to never touches an existing <to>.partial: ALREADY_EXISTS, and the file is left as it was", async () => {
  const storePath = await storeWithDisk(tempDir("restore-partial"), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
  ]);
  const target = join(tempDir("restore-partial-out"), "d.raw");
  writeFileSync(`${target}.partial`, "the user's own file");
  await withStore(storePath, async (store) => {
    await assert.rejects(
      store.restore({ disk: "d", at: "current", to: target }),
      hasCode(ErrorCodes.ALREADY_EXISTS, /d\.raw\.partial already exists/),
    );
  });
  assert.equal(readFileSync(`${target}.partial`, "utf8"), "the user's own file");
  assert.equal(existsSync(target), false);
});

test("restore --to never overwrites a target that appears while it runs: ALREADY_EXISTS, its partial file removed", async () => {
  const storePath = await storeWithDisk(tempDir("restore-race"), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
  ]);
  const target = join(tempDir("restore-race-out"), "d.raw");
  await withStore(storePath, async (store) => {
    // Progress is reported while the image is written: the target appears then.
    const onProgress = () => {
      if (!existsSync(target)) writeFileSync(target, "written meanwhile");
    };
    await assert.rejects(
      store.restore({ disk: "d", at: "current", to: target }, onProgress),
      hasCode(ErrorCodes.ALREADY_EXISTS, /d\.raw already exists/),
    );
  });
  assert.equal(readFileSync(target, "utf8"), "written meanwhile");
  assert.equal(existsSync(`${target}.partial`), false);
});

test("the store refuses what the CLI refuses: lun with to, name without rollback, a relative to, two targets", async () => {
  const storePath = await storeWithDisk(tempDir("restore-check"), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
  ]);
  const target = join(tempDir("restore-check-out"), "d.raw");
  await withStore(storePath, async (store) => {
    for (const [request, message] of [
      [{ to: target, lun: 9 }, /^--lun \(API: lun\) is the LUN of a new snapshot/],
      [{ asSnapshot: "x", name: "y" }, /^--name \(API: name\) is the snapshot a rollback keeps/],
      [{ to: "d.raw" }, /^--to \(API: to\) d\.raw must be an absolute path/],
      [{ to: target, rollback: true }, /^restore needs exactly one of --to FILE, --as-snapshot NAME, --rollback/],
      [{}, /^restore needs exactly one of --to FILE, --as-snapshot NAME, --rollback/],
    ] as const) {
      await assert.rejects(
        store.restore({ disk: "d", at: "current", ...request }),
        hasCode(ErrorCodes.INVALID_ARGUMENT, message),
        JSON.stringify(request),
      );
    }
    await assert.rejects(
      store.compact({ disk: "d", snapshot: "s", intoBaseline: true }),
      hasCode(ErrorCodes.INVALID_ARGUMENT, /^--into-baseline .* takes no --snapshot/),
    );
    assert.deepEqual(await store.listSnapshots("d"), []);
  });
  assert.equal(existsSync(target), false);
});

test("restore --as-snapshot of a point that left the window meanwhile uses up no LUN", async () => {
  const storePath = await storeWithDisk(tempDir("restore-lun"), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
    { offsetBytes: 0, data: pattern(2, blockSizeBytes) },
  ]);
  await withStore(storePath, async (store) => {
    const diskLun = (await store.showDisk("d")).lun;
    // LSN 1 is inside the 1 h window when the restore starts; the window change queued before it
    // runs first, and then LSN 1 is gone.
    const windowClosed = store.setPolicy({ disk: "d", historySeconds: 0 });
    const restored = store.restore({ disk: "d", at: "lsn:1", asSnapshot: "old" });
    await windowClosed;
    await assert.rejects(restored, hasCode(ErrorCodes.OUTSIDE_WINDOW));
    const next = await store.createSnapshot({ disk: "d", name: "next" });
    assert.equal(next.lun, diskLun + 1, "the failed restore took no LUN");
  });
});

test("a rollback to the current point is refused (CONFLICT) and changes nothing: no snapshot, no LUN, connections go on", async () => {
  const storePath = await storeWithDisk(tempDir("restore-noop"), { name: "d", sizeBytes: MiB }, [
    { offsetBytes: 0, data: pattern(1, blockSizeBytes) },
    { offsetBytes: 0, data: pattern(2, blockSizeBytes) },
  ]);
  await withStore(storePath, async (store) => {
    const before = await store.showDisk("d");
    const connected = store.resolve("d");
    for (const at of ["current", `lsn:${before.lsnLast}`]) {
      await assert.rejects(
        store.restore({ disk: "d", at, rollback: true }),
        hasCode(ErrorCodes.CONFLICT, /a rollback to it would change nothing/),
        at,
      );
    }
    assert.deepEqual(await connected.read(0, blockSizeBytes), pattern(2, blockSizeBytes), "a connection made before still works");
    await connected.write(blockSizeBytes, pattern(3, blockSizeBytes), { fua: true });
    connected.release();
    const after = await store.showDisk("d");
    assert.deepEqual(after.snapshots, []);
    assert.equal((await store.createSnapshot({ disk: "d", name: "next" })).lun, before.lun + 1, "no LUN was taken");

    // An earlier point still rolls back.
    const rolled = await store.restore({ disk: "d", at: "lsn:1", rollback: true, name: "before" });
    assert.equal(rolled.mode, "rollback");
    assert.equal(rolled.before?.name, "before");
  });
});
