/**
 * LUNs (SPEC §4.5): integer volume ids, one volume per LUN store-wide, handed out to each new
 * snapshot by its disk's LUN policy (disks themselves always take the next new one).
 *
 * Who holds LUN N now, in this order:
 *   1. the disk whose disk.json has N (its current volume);
 *   2. when store.json's lunHolders has N: the snapshot it names, if that snapshot exists and
 *      recorded N, else nobody;
 *   3. else the snapshot that recorded N at its creation (SnapshotCut.lun, kept in the disk's journal).
 * A snapshot's creation records its LUN for good, so when a newer snapshot takes N over (constant
 * policy) the older one still records N: lunHolders says which one holds it. Invariant: whenever
 * two live snapshots recorded N, lunHolders has N; the entry is written before the second is cut.
 * A snapshot that recorded N but does not hold it has no LUN (shown as null, "no LUN").
 *
 * How a snapshot gets its LUN (assignSnapshotLun), by the disk's policy:
 *   sequential  lunNext (one above the highest LUN ever used or reserved), then lunNext + 1
 *   pool        the lowest LUN of the store's pool (lunPool), else as sequential
 *   constant N  N; the snapshot holding N before (of this disk) loses it and keeps its name
 *   explicit    the --lun given; refused without one
 * A --lun given under sequential or pool is taken when free (held by no volume, reserved by no
 * other disk's constant policy); under constant it must be N.
 *
 * How a LUN comes back (releaseSnapshotLun, releaseDiskLuns): deleting the volume that holds it
 * releases it; released by a disk with the pool policy, it joins the pool; otherwise it is never
 * handed out again by sequential or pool (a --lun may still ask for it). A constant LUN whose
 * holder is deleted stays reserved for its disk, held by nobody.
 *
 * Crash safety: store.json (lunNext, lunPool, lunHolders) is written before the volume that uses
 * a LUN exists, and after the volume that releases one is gone. A crash between the two steps
 * can leave a LUN unused, never hand it out twice.
 *
 * Cost: every lookup is O(disks), never O(snapshots): the engine indexes its snapshots by name
 * and by recorded LUN.
 */
import type { SnapshotCut } from "../engine/index.js";
import { ErrorCodes, invalidArgument, SnaplogError } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import { poolLowest, poolWith, poolWithout, type LunRange } from "./lun-pool.js";
import type { OpenDisk } from "./open-disk.js";
import type { LunHolderName, StoreFile } from "./store-file.js";

export const LUN_MIN = 1;
export const LUN_MAX = 0xffff_ffff;

export type LunHolder = { kind: "disk"; disk: OpenDisk } | { kind: "snapshot"; disk: OpenDisk; cut: SnapshotCut };

/** The volume that holds `lun` now, or undefined when none does. */
export function lunHolder(catalog: Catalog, lun: number): LunHolder | undefined {
  for (const disk of catalog.disks.values()) if (disk.meta.lun === lun) return { kind: "disk", disk };
  const entry = catalog.storeFile.lunHolders?.[lun];
  if (entry === null) return undefined;
  if (entry !== undefined) {
    const disk = catalog.disks.get(entry.disk);
    const cut = disk?.engine.findSnapshot(entry.snapshot);
    return disk !== undefined && cut !== undefined && cut.lun === lun ? { kind: "snapshot", disk, cut } : undefined;
  }
  for (const disk of catalog.disks.values()) {
    const recorded = disk.engine.snapshotsWithLun(lun);
    if (recorded.length > 0) return { kind: "snapshot", disk, cut: recorded[recorded.length - 1] };
  }
  return undefined;
}

/** The LUN a snapshot of `diskName` holds now: the one its creation recorded, or null when a newer snapshot took it. */
export function heldLun(storeFile: StoreFile, diskName: string, cut: Pick<SnapshotCut, "name" | "lun">): number | null {
  const entry = storeFile.lunHolders?.[cut.lun];
  if (entry === undefined) return cut.lun;
  return entry !== null && entry.disk === diskName && entry.snapshot === cut.name ? cut.lun : null;
}

export function describeLunHolder(holder: LunHolder): string {
  return holder.kind === "disk" ? `disk ${holder.disk.meta.name}` : `snapshot ${holder.cut.name} of disk ${holder.disk.meta.name}`;
}

/** The disk (other than `exceptDisk`) whose constant LUN policy reserves `lun`, if any. */
function reservingDisk(catalog: Catalog, lun: number, exceptDisk?: string): OpenDisk | undefined {
  for (const disk of catalog.disks.values()) {
    const policy = disk.meta.policy;
    if (disk.meta.name !== exceptDisk && policy?.lunPolicy === "constant" && policy.lun === lun) return disk;
  }
  return undefined;
}

/**
 * Who holds or reserves `lun` for another volume than a snapshot of `diskName`: a disk's current
 * volume, another disk's snapshot, or another disk's constant LUN policy; undefined when it is
 * free for that disk's snapshots (a snapshot of that disk holding it would lose it to the next).
 */
export function lunHolderFor(catalog: Catalog, lun: number, diskName: string): string | undefined {
  const holder = lunHolder(catalog, lun);
  if (holder !== undefined && (holder.kind === "disk" || holder.disk.meta.name !== diskName)) return describeLunHolder(holder);
  const reserving = reservingDisk(catalog, lun, diskName);
  return reserving === undefined ? undefined : `the constant LUN policy of disk ${reserving.meta.name}`;
}

/** Whether any live snapshot of any disk recorded `lun` (held or not). */
function isRecorded(catalog: Catalog, lun: number): boolean {
  for (const disk of catalog.disks.values()) if (disk.engine.snapshotsWithLun(lun).length > 0) return true;
  return false;
}

// ---- handing out -------------------------------------------------------------------------------

/**
 * The LUN for a new snapshot `snapshotName` of `disk`, by its policy (see the top), persisted in
 * store.json before it is returned. Every refusal comes before anything is written. Inside control.
 */
export async function assignSnapshotLun(
  catalog: Catalog,
  disk: OpenDisk,
  snapshotName: string,
  requested: number | undefined,
): Promise<number> {
  const name = disk.meta.name;
  const policy = disk.meta.policy;
  const lunPolicy = policy?.lunPolicy ?? "sequential";
  if (lunPolicy === "constant") {
    const lun = policy?.lun ?? null;
    if (lun === null) throw new SnaplogError(ErrorCodes.INTERNAL, `disk ${name} has the constant LUN policy without a LUN`);
    if (requested !== undefined && requested !== lun) {
      throw invalidArgument(`disk ${name} has LUN policy constant ${lun}: every snapshot takes LUN ${lun}; leave out --lun`, {
        disk: name,
      });
    }
    return takeLun(catalog, checkFree(catalog, lun, name, true), { disk: name, snapshot: snapshotName });
  }
  if (requested !== undefined) {
    return takeLun(catalog, checkFree(catalog, checkLunRange(requested), name, false), { disk: name, snapshot: snapshotName });
  }
  if (lunPolicy === "explicit") {
    throw invalidArgument(`disk ${name} has LUN policy explicit: give the snapshot its LUN with --lun N`, {
      disk: name,
      hint: `or choose another policy: snaplog policy set ${name} --lun-policy sequential`,
    });
  }
  if (lunPolicy === "pool") {
    const pooled = takeFromPool(catalog);
    if (pooled.lun !== undefined) return takeLun(catalog, pooled.lun, { disk: name, snapshot: snapshotName }, pooled.pool);
    return takeNextLun(catalog, pooled.pool);
  }
  return takeNextLun(catalog);
}

/** A new disk's LUN: always the next new one (a disk has no LUN policy of its own for itself). */
export function assignDiskLun(catalog: Catalog): Promise<number> {
  return takeNextLun(catalog);
}

export function checkLunRange(lun: number): number {
  if (!Number.isInteger(lun) || lun < LUN_MIN || lun > LUN_MAX)
    throw invalidArgument(`LUN ${lun} is not an integer from ${LUN_MIN} to ${LUN_MAX}`);
  return lun;
}

/**
 * `lun` when a snapshot of `diskName` may take it: held by no volume (or, with `takeOver`, by a
 * snapshot of that disk, the constant policy's previous holder) and reserved by no other disk's
 * constant policy. ALREADY_EXISTS naming who holds or reserves it.
 */
function checkFree(catalog: Catalog, lun: number, diskName: string, takeOver: boolean): number {
  const holder = lunHolder(catalog, lun);
  const ownSnapshot = holder?.kind === "snapshot" && holder.disk.meta.name === diskName;
  if (holder !== undefined && !(takeOver && ownSnapshot)) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `LUN ${lun} is already held by ${describeLunHolder(holder)}`, { disk: diskName });
  }
  const reserving = reservingDisk(catalog, lun, diskName);
  if (reserving !== undefined) {
    throw new SnaplogError(ErrorCodes.ALREADY_EXISTS, `LUN ${lun} is reserved by the constant LUN policy of disk ${reserving.meta.name}`, {
      disk: diskName,
    });
  }
  return lun;
}

/** The lowest pooled LUN still free (pooled LUNs a volume or a constant policy took since are dropped), and the pool after. */
function takeFromPool(catalog: Catalog): { lun: number | undefined; pool: LunRange[] } {
  let pool = [...(catalog.storeFile.lunPool ?? [])];
  for (let lun = poolLowest(pool); lun !== undefined; lun = poolLowest(pool)) {
    pool = poolWithout(pool, lun);
    if (lunHolder(catalog, lun) === undefined && reservingDisk(catalog, lun) === undefined) return { lun, pool };
  }
  return { lun: undefined, pool };
}

/** lunNext, past any LUN a volume or a constant policy has (a LUN asked for explicitly may lie ahead of it). */
async function takeNextLun(catalog: Catalog, pool = catalog.storeFile.lunPool): Promise<number> {
  let lun = catalog.storeFile.lunNext;
  while (lunHolder(catalog, lun) !== undefined || reservingDisk(catalog, lun) !== undefined) lun++;
  await saveLunState(catalog, { lunNext: lun + 1, lunPool: pool });
  return lun;
}

/**
 * Persists that `lun` goes to the snapshot `taker`: lunNext above it, out of the pool, and named
 * in lunHolders when another live snapshot recorded it too (it takes the LUN over).
 */
async function takeLun(catalog: Catalog, lun: number, taker: LunHolderName, pool = catalog.storeFile.lunPool): Promise<number> {
  const storeFile = catalog.storeFile;
  const holders = { ...storeFile.lunHolders };
  if (isRecorded(catalog, lun)) holders[lun] = taker;
  else delete holders[lun];
  await saveLunState(catalog, {
    lunNext: Math.max(storeFile.lunNext, lun + 1),
    lunPool: poolWithout(pool ?? [], lun),
    lunHolders: holders,
  });
  return lun;
}

/** Reserves a constant policy's LUN before the policy is saved: sequential and pool never hand it out. */
export async function reserveConstantLun(catalog: Catalog, lun: number): Promise<void> {
  const storeFile = catalog.storeFile;
  await saveLunState(catalog, { lunNext: Math.max(storeFile.lunNext, lun + 1), lunPool: poolWithout(storeFile.lunPool ?? [], lun) });
}

// ---- giving back -------------------------------------------------------------------------------

/**
 * After a snapshot is deleted (the engine has removed it): the LUN it held (`held`, read before
 * the delete) is released, into the pool when its disk has the pool policy; lunHolders forgets
 * what no longer decides anything. Inside control.
 */
export async function releaseSnapshotLun(catalog: Catalog, disk: OpenDisk, cut: SnapshotCut, held: number | null): Promise<void> {
  const storeFile = catalog.storeFile;
  const holders = { ...storeFile.lunHolders };
  if (held !== null && holders[cut.lun] !== undefined) holders[cut.lun] = null;
  forgetSettled(catalog, holders, cut.lun);
  let pool = storeFile.lunPool;
  if (held !== null && disk.meta.policy?.lunPolicy === "pool" && reservingDisk(catalog, held) === undefined)
    pool = poolWith(pool ?? [], held);
  await saveLunState(catalog, { lunPool: pool, lunHolders: holders });
}

/** After a disk is deleted (gone from the catalog): with the pool policy its LUNs join the pool; lunHolders forgets it. */
export async function releaseDiskLuns(catalog: Catalog, disk: OpenDisk): Promise<void> {
  const storeFile = catalog.storeFile;
  const holders = { ...storeFile.lunHolders };
  let pool = storeFile.lunPool ?? [];
  if (disk.meta.policy?.lunPolicy === "pool") {
    pool = poolWith(pool, disk.meta.lun);
    for (const cut of disk.engine.snapshots) {
      const held = heldLun(storeFile, disk.meta.name, cut);
      if (held !== null) pool = poolWith(pool, held);
    }
  }
  for (const key of Object.keys(holders)) {
    if (holders[key]?.disk === disk.meta.name) holders[key] = null;
    forgetSettled(catalog, holders, Number(key));
  }
  await saveLunState(catalog, { lunPool: pool, lunHolders: holders });
}

/** Drops lunHolders[lun] when rule 3 gives the same answer: no snapshot recorded it, or only the one it names. */
function forgetSettled(catalog: Catalog, holders: Record<string, LunHolderName | null>, lun: number): void {
  const entry = holders[lun];
  if (entry === undefined) return;
  const recorders: LunHolderName[] = [];
  for (const disk of catalog.disks.values()) {
    for (const cut of disk.engine.snapshotsWithLun(lun)) recorders.push({ disk: disk.meta.name, snapshot: cut.name });
  }
  const onlyTheHolder =
    recorders.length === 1 && entry !== null && recorders[0].disk === entry.disk && recorders[0].snapshot === entry.snapshot;
  if (recorders.length === 0 || onlyTheHolder) delete holders[lun];
}

// ---- store.json --------------------------------------------------------------------------------

/** Writes the LUN fields that changed (nothing when none did); empty ones are left out of the file. */
async function saveLunState(catalog: Catalog, change: Partial<Pick<StoreFile, "lunNext" | "lunPool" | "lunHolders">>): Promise<void> {
  const current = catalog.storeFile;
  const next: StoreFile = { ...current, ...change };
  if (next.lunPool !== undefined && next.lunPool.length === 0) delete next.lunPool;
  if (next.lunHolders !== undefined && Object.keys(next.lunHolders).length === 0) delete next.lunHolders;
  const unchanged =
    next.lunNext === current.lunNext &&
    JSON.stringify(next.lunPool) === JSON.stringify(current.lunPool) &&
    JSON.stringify(next.lunHolders) === JSON.stringify(current.lunHolders);
  if (!unchanged) await catalog.saveStoreFile(next);
}

/**
 * Once the disks are open: lunNext above every LUN recorded, pooled or reserved (a store file
 * older than its disks, or a crash between a policy's disk.json and store.json).
 */
export async function raiseLunNext(catalog: Catalog): Promise<void> {
  let highest = 0;
  for (const disk of catalog.disks.values()) {
    highest = Math.max(highest, disk.meta.lun, disk.meta.policy?.lun ?? 0);
    for (const cut of disk.engine.snapshots) highest = Math.max(highest, cut.lun);
  }
  for (const [, last] of catalog.storeFile.lunPool ?? []) highest = Math.max(highest, last);
  if (highest >= catalog.storeFile.lunNext) await saveLunState(catalog, { lunNext: highest + 1 });
}
