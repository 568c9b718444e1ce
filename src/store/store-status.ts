/** The store's health and space (`snaplog status`), without what the process serves (the layers above add that). */
import { VERSION } from "../util/version.js";
import type { Catalog } from "./catalog.js";
import { diskInfo } from "./disk-info.js";
import { fileSystemSpace } from "./file-system-space.js";
import type { StoreStatus } from "./operations/index.js";

export async function storeStatus(
  catalog: Catalog,
  owner: { mode: StoreStatus["mode"]; openedAtMs: number },
): Promise<Omit<StoreStatus, "replication" | "mirrors">> {
  catalog.checkOpen();
  const open = catalog.disksByName();
  const disks = open.map(diskInfo);
  // 0 when the file system will not say.
  const { freeBytes } = await fileSystemSpace(catalog.path).catch(() => ({ freeBytes: 0 }));
  return {
    path: catalog.path,
    version: VERSION,
    pid: process.pid,
    mode: owner.mode,
    uptimeSeconds: Math.round((Date.now() - owner.openedAtMs) / 1000),
    diskCount: disks.length,
    snapshotCount: disks.reduce((sum, disk) => sum + disk.snapshotCount, 0),
    usedBytes: disks.reduce((sum, disk) => sum + disk.segmentBytes + disk.journalBytes, 0),
    freeBytes,
    checksumErrors: open.reduce((sum, disk) => sum + disk.engine.checksumErrorCount, 0),
    disks,
  };
}
