/**
 * The mirror legs of the store's disks (SPEC §6): attached at open and when the policy names a
 * path (`--mirror PATH`), detached by `--mirror off` (the file stays), closed with the store;
 * `mirror status` and `mirror resync` for the operations.
 */
import { ErrorCodes, SnaplogError } from "../../util/errors.js";
import type { Catalog } from "../catalog.js";
import type { OpenDisk } from "../open-disk.js";
import type { MirrorResyncResult, MirrorStatus, ProgressCallback } from "../operations/index.js";
import { settingsOf } from "../policy/policy-settings.js";
import * as path from "node:path";
import { MirrorFile } from "./mirror-file.js";
import { MirrorLeg, type ChangedRanges } from "./mirror-leg.js";

/** Attaches the leg the disk's policy names (if any); a leg that cannot open is degraded, not a failed disk. */
export async function attachMirror(catalog: Catalog, disk: OpenDisk): Promise<void> {
  const mirror = settingsOf(disk.meta).mirror;
  if (mirror === null || disk.mirror?.status().path === mirror) return;
  const name = disk.meta.name;
  disk.mirror = await MirrorLeg.attach({
    medium: disk.medium,
    engine: disk.engine,
    path: mirror,
    record: (type, message, details) => {
      catalog.events
        .record({ type, disk: name, reason: "mirror", message, details })
        .catch((error: unknown) => catalog.logger?.error(`event log: could not record an event: ${String(error)}`));
    },
    warn: (message) => catalog.logger?.warn(`disk ${name}: ${message}`),
    // Tests and impatient operators: SNAPLOG_MIRROR_RETRY_MS (default 30 s).
    retryMs: Number(process.env.SNAPLOG_MIRROR_RETRY_MS) || undefined,
  });
}

/** After the policy changed: the old leg detached (its file left in place), the new one attached. */
export async function applyMirrorPolicy(catalog: Catalog, disk: OpenDisk): Promise<void> {
  const wanted = settingsOf(disk.meta).mirror;
  const leg = disk.mirror;
  if (leg !== undefined && leg.status().path !== wanted) {
    disk.mirror = undefined;
    await leg.detach();
  }
  if (wanted !== null) await attachMirror(catalog, disk);
}

function legOf(catalog: Catalog, diskName: string): MirrorLeg {
  const leg = catalog.disk(diskName).mirror;
  if (leg === undefined) {
    throw new SnaplogError(ErrorCodes.NOT_FOUND, `disk ${diskName} has no mirror`, {
      disk: diskName,
      hint: `add one: snaplog policy set ${diskName} --mirror PATH`,
    });
  }
  return leg;
}

export function mirrorStatus(catalog: Catalog, diskName: string): MirrorStatus {
  return { disk: diskName, ...legOf(catalog, diskName).status() };
}

export async function resyncMirror(catalog: Catalog, diskName: string, onProgress?: ProgressCallback): Promise<MirrorResyncResult> {
  return { disk: diskName, ...(await legOf(catalog, diskName).resync(onProgress)) };
}

export async function closeMirrors(catalog: Catalog, abandon: boolean): Promise<void> {
  await Promise.allSettled(
    [...catalog.disks.values()].map(async (disk) => {
      const leg = disk.mirror;
      if (leg === undefined) return;
      disk.mirror = undefined;
      await (abandon ? leg.abandon() : leg.close());
    }),
  );
}

/**
 * Runs a change of the current volume that bypasses the write path (a rollback, an import, a
 * replica's batch) with the disk's mirror (if any) told first: the ranges marked durably before,
 * resynced after (MirrorLeg.aroundChange).
 */
export function aroundMirrorChange<T>(disk: OpenDisk, ranges: ChangedRanges, change: () => Promise<T>): Promise<T> {
  const leg = disk.mirror;
  return leg === undefined ? change() : leg.aroundChange(ranges, change);
}

/** Found at open (an interrupted import undone): the disk's mirror (if any) is resynced whole. */
export async function mirrorChangedWholesale(disk: OpenDisk): Promise<void> {
  await disk.mirror?.changedRanges("all");
}

/**
 * `policy set --mirror PATH` refuses a path that cannot be a leg: another disk's mirror, a file
 * inside the store, or one that cannot be opened or made (a missing directory, a directory, a
 * block device smaller than the disk). A file it had to make stays (the leg attaches to it).
 */
export async function checkMirrorUsable(catalog: Catalog, disk: OpenDisk, mirror: string): Promise<void> {
  const refuse = (why: string) => new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `--mirror ${mirror}: ${why}`, { disk: disk.meta.name });
  for (const other of catalog.disks.values()) {
    if (other !== disk && settingsOf(other.meta).mirror === mirror) throw refuse(`it is the mirror of disk ${other.meta.name}`);
  }
  const relative = path.relative(catalog.path, mirror);
  if (!relative.startsWith("..") && !path.isAbsolute(relative)) throw refuse("it lies inside the store (a leg must be apart from the log)");
  try {
    const file = await MirrorFile.open(mirror, disk.meta.sizeBytes);
    await file.close();
  } catch (error) {
    throw refuse(`cannot use it: ${error instanceof Error ? error.message : String(error)}`);
  }
}
