/**
 * Ids that travel with archives (docs/stream-format.md "Identity"). An incremental stream is
 * applied only onto the disk it came from and the snapshot it starts at, matched by id, never
 * by name alone: names are reused, ids are not.
 *
 *   store id     random, in store.json (given at first use to stores made before archives)
 *   disk id      random at create, in disk.json; an import's disk takes its source's id
 *   snapshot id  derived: SHA-256 of (disk id, name, cut time), so an imported snapshot (same
 *                disk id, name and time) has its source's id with nothing more to store
 */
import { createHash, randomUUID } from "node:crypto";
import type { SnapshotCut } from "../../engine/index.js";
import type { Catalog } from "../catalog.js";
import type { DiskFile } from "../disk-file.js";

export async function storeIdOf(catalog: Catalog): Promise<string> {
  const existing = catalog.storeFile.storeId;
  if (existing !== undefined) return existing;
  return catalog.control.run(async () => {
    const now = catalog.storeFile.storeId;
    if (now !== undefined) return now;
    const storeId = randomUUID();
    await catalog.saveStoreFile({ ...catalog.storeFile, storeId });
    return storeId;
  });
}

export function newDiskId(): string {
  return randomUUID();
}

/** A disk made before ids: derived from what never changes about it. */
export function diskIdOf(meta: Pick<DiskFile, "id" | "name" | "createdAt">): string {
  return meta.id ?? digest(`disk\0${meta.name}\0${meta.createdAt}`);
}

export function snapshotIdOf(diskId: string, cut: Pick<SnapshotCut, "name" | "timeMs">): string {
  return digest(`snapshot\0${diskId}\0${cut.name}\0${cut.timeMs}`);
}

/** A point that is no snapshot (lsn:N, a time, the current volume): its id names the disk and LSN. */
export function pointIdOf(diskId: string, lsn: number, timeMs: number): string {
  return digest(`point\0${diskId}\0${lsn}\0${timeMs}`);
}

function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}
