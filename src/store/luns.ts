/**
 * LUNs (SPEC §4.5): one volume per LUN store-wide. The sequential policy: a LUN asked for when
 * it is free, else one above the highest ever handed out (store.json's lunNext, persisted
 * before the LUN is used, so a crash never hands one out twice).
 */
import { ErrorCodes, invalidArgument, SnaplogError } from "../util/errors.js";
import { maxOf } from "../util/max-of.js";
import type { Catalog } from "./catalog.js";

export const LUN_MIN = 1;
export const LUN_MAX = 0xffff_ffff;

/** Every LUN held now: each disk's current volume and each snapshot. */
export function* lunsInUse(catalog: Catalog): Iterable<number> {
  for (const disk of catalog.disks.values()) {
    yield disk.meta.lun;
    for (const snapshot of disk.engine.snapshots) yield snapshot.lun;
  }
}

/** Takes a LUN: the requested one if free, else the next never used. Persisted before use. */
export async function assignLun(catalog: Catalog, requested: number | undefined): Promise<number> {
  const storeFile = catalog.storeFile;
  if (requested === undefined) {
    await catalog.saveStoreFile({ ...storeFile, lunNext: storeFile.lunNext + 1 });
    return storeFile.lunNext;
  }
  if (!Number.isInteger(requested) || requested < LUN_MIN || requested > LUN_MAX)
    throw invalidArgument(`LUN ${requested} is not an integer from ${LUN_MIN} to ${LUN_MAX}`);
  if (new Set(lunsInUse(catalog)).has(requested)) throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `LUN ${requested} is already assigned`);
  if (requested >= storeFile.lunNext) await catalog.saveStoreFile({ ...storeFile, lunNext: requested + 1 });
  return requested;
}

/** Once the disks are open: lunNext above every LUN in use (a store file older than its disks). */
export async function raiseLunNext(catalog: Catalog): Promise<void> {
  const lunHighest = maxOf(lunsInUse(catalog), 0);
  if (lunHighest >= catalog.storeFile.lunNext) await catalog.saveStoreFile({ ...catalog.storeFile, lunNext: lunHighest + 1 });
}

/**
 * Who holds or reserves `lun` for another volume than a snapshot of `diskName`: a disk's
 * current volume, another disk's snapshot, or another disk's constant LUN policy; undefined
 * when it is free for that disk's snapshots.
 */
export function lunHolderFor(catalog: Catalog, lun: number, diskName: string): string | undefined {
  for (const disk of catalog.disks.values()) {
    if (disk.meta.lun === lun) return `disk ${disk.meta.name}`;
    if (disk.meta.name === diskName) continue;
    if (disk.meta.policy?.lunPolicy === "constant" && disk.meta.policy.lun === lun)
      return `the constant LUN policy of disk ${disk.meta.name}`;
    for (const snapshot of disk.engine.snapshots) if (snapshot.lun === lun) return `snapshot ${snapshot.name} of disk ${disk.meta.name}`;
  }
  return undefined;
}
