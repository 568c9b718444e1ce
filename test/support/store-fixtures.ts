/**
 * Stores made, changed and read through the library (Store) in-process, for tests that then look
 * at them from outside (the CLI, a running server) or damage their files on purpose: a store
 * with a disk and known blocks (storeWithDisk), one store session (withStore), an export's bytes
 * (readExport), and a flipped byte in a file (flipByte) — the first block written to a fresh
 * disk lands in slot 0, at offset 0 of its first segment file (firstSegmentPath).
 */
import assert from "node:assert/strict";
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Store } from "../../src/store/store.js";

/** Opens the store, runs `action` on it, and closes it again however `action` ends. */
export async function withStore<T>(storePath: string, action: (store: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(storePath);
  try {
    return await action(store);
  } finally {
    await store.close();
  }
}

export interface DiskFixture {
  name: string;
  sizeBytes: number;
  historySeconds?: number;
}

/**
 * Creates a store at `storePath` with one disk holding `writes` (written in order, then
 * flushed), and closes it. Returns `storePath`.
 */
export async function storeWithDisk(
  storePath: string,
  disk: DiskFixture,
  writes: readonly { offsetBytes: number; data: Buffer }[],
): Promise<string> {
  await Store.init(storePath);
  await withStore(storePath, async (store) => {
    await store.createDisk(disk);
    const volume = store.resolve(disk.name);
    for (const { offsetBytes, data } of writes) await volume.write(offsetBytes, data, { fua: false });
    await volume.flush();
    volume.release();
  });
  return storePath;
}

/** Bytes of an export (DISK, DISK@SNAPSHOT, DISK@baseline, ...) read through the library; to its end by default. */
export async function readExport(storePath: string, exportName: string, offsetBytes = 0, lengthBytes?: number): Promise<Buffer> {
  return withStore(storePath, (store) => readVolume(store, exportName, offsetBytes, lengthBytes));
}

/** As readExport, on a store already open. */
export async function readVolume(store: Store, exportName: string, offsetBytes = 0, lengthBytes?: number): Promise<Buffer> {
  const volume = store.resolve(exportName);
  try {
    return Buffer.from(await volume.read(offsetBytes, lengthBytes ?? volume.sizeBytes - offsetBytes));
  } finally {
    volume.release();
  }
}

/** The first segment file of a disk: a fresh disk's first block written lands at its offset 0 (slot 0). */
export function firstSegmentPath(storePath: string, disk: string): string {
  return join(storePath, "disks", disk, "segment-00000000.dat");
}

/** Inverts one byte of a file in place. */
export function flipByte(filePath: string, offsetBytes: number): void {
  const fd = openSync(filePath, "r+");
  try {
    const byte = Buffer.alloc(1);
    assert.equal(readSync(fd, byte, 0, 1, offsetBytes), 1, `${filePath} has a byte at ${offsetBytes}`);
    byte[0] ^= 0xff;
    writeSync(fd, byte, 0, 1, offsetBytes);
  } finally {
    closeSync(fd);
  }
}
