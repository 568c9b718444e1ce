/**
 * Goal: creating and deleting a disk go through the medium (StoreOpenOptions.mediumFor), as
 * its reads and writes do, so a failing medium can be injected there too (issue 8); and a
 * failure on the way leaves the store as it was: no half disk, no disk half gone.
 * Method: a real store on a medium that records every directory it is asked for and fails the
 * operations a test arms (ENOSPC, as a full file system answers); the store is then checked
 * through the library: the disks listed, the directory under disks/, a volume's bytes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { DirectoryMedium } from "../src/engine/medium.js";
import type { Medium, MediumFile } from "../src/engine/medium.js";
import { Store } from "../src/store/store.js";
import { ErrorCodes, fromSystemError, SnaplogError } from "../src/util/errors.js";
import { pattern } from "./support/data-pattern.js";
import { tempDir } from "./support/temp-dir.js";

const MiB = 1024 * 1024;
const blockSizeBytes = 4096;

type Operation = "open" | "rename" | "remove" | "copyIn" | "syncDirectory";

/** What the media of one store saw and what they are to fail: shared by every FaultMedium of the store. */
class Faults {
  /** Each medium asked for, by its directory's base name, in order. */
  readonly directories: string[] = [];
  private armed: { operation: Operation; directory: RegExp } | undefined;

  /** The next `operation` in a directory whose base name matches fails (once) with ENOSPC. */
  arm(operation: Operation, directory: RegExp): void {
    this.armed = { operation, directory };
  }

  check(operation: Operation, directory: string, name: string): void {
    const armed = this.armed;
    if (armed === undefined || armed.operation !== operation || !armed.directory.test(basename(directory))) return;
    this.armed = undefined;
    const error = Object.assign(new Error(`ENOSPC: no space left on device, ${operation} '${name}'`), { code: "ENOSPC" });
    throw fromSystemError(error, { path: join(directory, name) });
  }
}

class FaultMedium implements Medium {
  private readonly inner: DirectoryMedium;

  constructor(
    private readonly directory: string,
    private readonly faults: Faults,
  ) {
    this.inner = new DirectoryMedium(directory);
    faults.directories.push(basename(directory));
  }

  async open(name: string, options: { create: boolean }): Promise<MediumFile> {
    this.faults.check("open", this.directory, name);
    return this.inner.open(name, options);
  }
  exists(name: string): Promise<boolean> {
    return this.inner.exists(name);
  }
  async remove(name: string): Promise<void> {
    this.faults.check("remove", this.directory, name);
    return this.inner.remove(name);
  }
  async rename(source: string, target: string): Promise<void> {
    this.faults.check("rename", this.directory, source);
    return this.inner.rename(source, target);
  }
  list(): Promise<string[]> {
    return this.inner.list();
  }
  async syncDirectory(): Promise<void> {
    this.faults.check("syncDirectory", this.directory, ".");
    return this.inner.syncDirectory();
  }
  async copyIn(sourcePath: string, name: string): Promise<void> {
    this.faults.check("copyIn", this.directory, name);
    return this.inner.copyIn(sourcePath, name);
  }
}

async function openStore(prefix: string): Promise<{ store: Store; faults: Faults; storePath: string }> {
  const storePath = join(tempDir(prefix), "store");
  await Store.init(storePath);
  const faults = new Faults();
  const store = await Store.open(storePath, { mediumFor: (directory) => new FaultMedium(directory, faults) });
  return { store, faults, storePath };
}

function noSpace(error: unknown): boolean {
  return error instanceof SnaplogError && error.code === ErrorCodes.NO_SPACE;
}

async function diskNames(store: Store): Promise<string[]> {
  return (await store.listDisks()).map((disk) => disk.name);
}

test("a create goes through the medium: the disk is built in a hidden directory and renamed into place in the disks directory", async () => {
  const { store, faults } = await openStore("medium-create");
  try {
    await store.createDisk({ name: "d", sizeBytes: MiB });
    assert.deepEqual(faults.directories, [`.creating-d-${process.pid}`, "disks", "d"]);
    assert.deepEqual(await diskNames(store), ["d"]);
  } finally {
    await store.close();
  }
});

test("a create that fails at any step leaves no disk and nothing under disks/, and can be run again", async () => {
  const { store, faults, storePath } = await openStore("medium-create-fails");
  const image = join(tempDir("medium-image"), "image.raw");
  await import("node:fs/promises").then((fs) => fs.writeFile(image, pattern(5, 2 * blockSizeBytes)));
  try {
    const steps: Array<[Operation, RegExp]> = [
      ["copyIn", /^\.creating-/], // the baseline image
      ["open", /^\.creating-/], // the engine's first file
      ["rename", /^disks$/], // into place
      ["syncDirectory", /^disks$/], // made durable
    ];
    for (const [operation, directory] of steps) {
      faults.arm(operation, directory);
      await assert.rejects(store.createDisk({ name: "d", sizeBytes: MiB, fromImage: image }), noSpace, `${operation} fails`);
      assert.deepEqual(await diskNames(store), [], `after a failed ${operation}: no disk`);
      assert.deepEqual(readdirSync(join(storePath, "disks")), [], `after a failed ${operation}: nothing under disks/`);
    }
    await store.createDisk({ name: "d", sizeBytes: MiB, fromImage: image });
    assert.deepEqual(await store.resolve("d").read(0, 2 * blockSizeBytes), pattern(5, 2 * blockSizeBytes));
  } finally {
    await store.close();
  }
});

test("a delete whose rename fails leaves the disk as it was, served again; one that cannot remove the files is done all the same", async () => {
  const { store, faults, storePath } = await openStore("medium-delete");
  try {
    await store.createDisk({ name: "d", sizeBytes: MiB });
    await store.resolve("d").write(0, pattern(7, blockSizeBytes), { fua: true });
    const before = store.resolve("d");

    faults.arm("rename", /^disks$/);
    await assert.rejects(store.deleteDisk("d"), noSpace);
    assert.deepEqual(await diskNames(store), ["d"]);
    await assert.rejects(
      before.read(0, blockSizeBytes),
      (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CLOSED,
    );
    const again = store.resolve("d");
    assert.deepEqual(await again.read(0, blockSizeBytes), pattern(7, blockSizeBytes), "attached again, with its data");
    await again.write(blockSizeBytes, pattern(8, blockSizeBytes), { fua: true });

    faults.arm("remove", /^\.deleting-d-/);
    await store.deleteDisk("d");
    assert.deepEqual(await diskNames(store), []);
    assert.equal(
      faults.directories.filter((directory) => directory.startsWith(".deleting-d-")).length,
      1,
      "files removed through the medium",
    );
  } finally {
    await store.close();
  }
  // What the failed removal left is hidden, and goes at the next open.
  assert.equal(readdirSync(join(storePath, "disks")).length, 1);
  const reopened = await Store.open(storePath);
  await reopened.close();
  assert.deepEqual(readdirSync(join(storePath, "disks")), []);
});
