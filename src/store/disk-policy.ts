/**
 * A disk's policy (SPEC §4): kept in its disk.json, shown and changed here. The policies still
 * to come (schedules, retention, space, events, LUN policies) get their own home (src/policy/);
 * what they set is persisted with the disk through this file.
 */
import { invalidArgument } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import { writeDiskFile, type DiskFile } from "./disk-file.js";
import type { OpenDisk } from "./open-disk.js";
import type { DiskPolicy, PolicyUpdate } from "./operations/index.js";

/** A new disk's window when none is given: an hour of every write. */
export const HISTORY_SECONDS_DEFAULT = 3600;

/** The disk's policy, with the defaults of the options its disk.json predates. */
export function policyOf(meta: DiskFile): DiskPolicy {
  return { historySeconds: meta.historySeconds, autoCompact: meta.autoCompact ?? true, compactOnDelete: meta.compactOnDelete ?? true };
}

/** INVALID_ARGUMENT unless `seconds` is a whole number of seconds >= 0. */
export function checkHistorySeconds(seconds: number): number {
  if (!Number.isSafeInteger(seconds) || seconds < 0)
    throw invalidArgument(`history window ${seconds} must be a whole number of seconds >= 0`);
  return seconds;
}

export async function showPolicy(catalog: Catalog, diskName: string): Promise<DiskPolicy> {
  return policyOf(catalog.disk(diskName).meta);
}

/**
 * Changes a disk's policies. The window is persisted in an order that keeps replay safe:
 * to zero, disk.json first (a replay with a zero window frees at least what the engine
 * frees); from zero, the engine first records its horizon (versions reclaimed meanwhile stay
 * gone), then disk.json.
 */
export function setPolicy(catalog: Catalog, update: PolicyUpdate): Promise<DiskPolicy> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(update.disk);
    const seconds = update.historySeconds === undefined ? undefined : checkHistorySeconds(update.historySeconds);
    const next: DiskFile = { ...disk.meta };
    if (seconds !== undefined) next.historySeconds = seconds;
    if (update.autoCompact !== undefined) next.autoCompact = update.autoCompact;
    if (update.compactOnDelete !== undefined) next.compactOnDelete = update.compactOnDelete;
    const windowChanges = seconds !== undefined && seconds !== disk.engine.historySeconds;
    if (windowChanges && seconds === 0) {
      await saveDiskFile(disk, next);
      await disk.engine.setHistory(0);
    } else {
      if (windowChanges) await disk.engine.setHistory(seconds);
      await saveDiskFile(disk, next);
    }
    return policyOf(disk.meta);
  });
}

async function saveDiskFile(disk: OpenDisk, next: DiskFile): Promise<void> {
  await writeDiskFile(disk.medium, next);
  disk.meta = next;
}
