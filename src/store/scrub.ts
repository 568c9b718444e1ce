/**
 * The integrity check (`snaplog scrub`): every live entry's data read back and checked against
 * its CRC32C, per disk; disks that failed to open are reported with why. Damage is a finding in
 * the result, not an error. Progress counts index pages of every disk scrubbed.
 */
import * as path from "node:path";
import { INDEX_PAGE_BLOCKS } from "../engine/index.js";
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import type { Catalog } from "./catalog.js";
import type { DiskFile } from "./disk-file.js";
import type { OpenDisk } from "./open-disk.js";
import type { ProgressCallback, ScrubDamage, ScrubDiskResult, ScrubRequest, ScrubResult } from "./operations/index.js";
import { diskPath } from "./paths.js";

/** A disk to scrub, or one that failed to open (reported, not scrubbed). */
type ScrubTarget = { name: string; disk: OpenDisk } | { name: string; disk: undefined; offlineReason: string };

export async function scrub(catalog: Catalog, request: ScrubRequest, onProgress?: ProgressCallback): Promise<ScrubResult> {
  const startedMs = performance.now();
  const targets = scrubTargets(catalog, request.disk);
  // Progress counts every index page each disk's size allows, known before anything starts, so
  // the total is fixed and done only grows: the engine reports pages up to the highest one
  // written, and the pages past it (never written) count as done once the disk is.
  const pageCounts = targets.map((target) => (target.disk === undefined ? 0 : indexPageCount(target.disk.meta)));
  const pageTotal = pageCounts.reduce((sum, pages) => sum + pages, 0);
  let pagesBefore = 0;
  const disks: ScrubDiskResult[] = [];
  for (const [index, target] of targets.entries()) {
    const pages = pageCounts[index];
    const onDiskProgress = (pagesDone: number) => onProgress?.(pagesBefore + Math.min(pagesDone, pages), pageTotal);
    disks.push(
      target.disk === undefined
        ? offlineScrubResult(target.name, target.offlineReason)
        : await scrubDisk(catalog.path, target.disk, onDiskProgress),
    );
    pagesBefore += pages;
    if (pageTotal > 0) onProgress?.(pagesBefore, pageTotal);
  }
  for (const disk of disks) if (!disk.ok) await recordDamage(catalog, disk);
  return { disks, ok: disks.every((disk) => disk.ok), durationMs: performance.now() - startedMs };
}

/** A `scrub-damage` event (SPEC §4.3: actions can hang on it); failing to record it is logged, never the scrub's. */
async function recordDamage(catalog: Catalog, result: ScrubDiskResult): Promise<void> {
  const what =
    result.offlineReason !== undefined
      ? `is offline: ${result.offlineReason}`
      : `has ${result.corrupt.length} damaged entries and ${result.baselineUnknownBlocks.length} unknown baseline blocks`;
  await catalog.events
    .record({
      type: "scrub-damage",
      disk: result.disk,
      reason: "scrub",
      message: `scrub: disk ${result.disk} ${what}`,
      details: {
        corruptEntries: result.corrupt.length,
        baselineUnknownBlocks: result.baselineUnknownBlocks.length,
        offline: result.offlineReason ?? null,
      },
    })
    .catch((error: unknown) =>
      catalog.logger?.error(`event log: could not record a scrub-damage event: ${error instanceof Error ? error.message : String(error)}`),
    );
}

/** The disk asked for, or every disk by name; disks that failed to open come with their reason. */
function scrubTargets(catalog: Catalog, name: string | undefined): ScrubTarget[] {
  catalog.checkOpen();
  if (name !== undefined) {
    const failure = catalog.failedDisks.get(name);
    return [failure === undefined ? { name, disk: catalog.disk(name) } : { name, disk: undefined, offlineReason: failure }];
  }
  const open: ScrubTarget[] = [...catalog.disks.values()].map((disk) => ({ name: disk.meta.name, disk }));
  const offline: ScrubTarget[] = [...catalog.failedDisks].map(([failedName, reason]) => ({
    name: failedName,
    disk: undefined,
    offlineReason: reason,
  }));
  return [...open, ...offline].sort((a, b) => a.name.localeCompare(b.name));
}

async function scrubDisk(storePath: string, disk: OpenDisk, onProgress: (pagesDone: number) => void): Promise<ScrubDiskResult> {
  const name = disk.meta.name;
  const report = await disk.engine.scrub(onProgress);
  // The engine stops early, with what it saw so far, when it closes: that is no clean bill of health.
  if (disk.life.ended !== undefined) {
    throw new SnaplogError(ErrorCodes.CLOSED, `the scrub of disk ${name} was cut short: the disk was deleted or the store is closing`, {
      disk: name,
    });
  }
  const blockSizeBytes = disk.meta.blockSizeBytes;
  const directory = path.relative(storePath, diskPath(storePath, name));
  const corrupt = report.corrupt
    .map((entry) => ({
      block: entry.lba,
      lsn: entry.lsn,
      offsetBytes: entry.lba * blockSizeBytes,
      file: path.join(directory, entry.file),
      fileOffsetBytes: entry.offsetBytes,
      reason: entry.reason,
    }))
    .sort((a, b) => a.block - b.block || a.lsn - b.lsn);
  const { repaired, remaining } = await repairFromMirror(disk, corrupt);
  const baselineUnknownBlocks = [...disk.engine.baselineBadBlocks].sort((a, b) => a - b);
  return {
    disk: name,
    entriesChecked: report.entriesChecked,
    bytesChecked: report.bytesChecked,
    corrupt: remaining,
    repaired,
    baselineUnknownBlocks,
    ok: remaining.length === 0 && baselineUnknownBlocks.length === 0,
  };
}

/**
 * Damaged entries that are the current volume's version of their block, on a disk whose mirror
 * is in sync: each block is read through the mirror's self-healing read, which writes it again
 * into the log. What the mirror cannot vouch for stays damaged.
 */
async function repairFromMirror(disk: OpenDisk, corrupt: ScrubDamage[]): Promise<{ repaired: ScrubDamage[]; remaining: ScrubDamage[] }> {
  const mirror = disk.mirror;
  if (mirror === undefined || mirror.state !== "in-sync" || corrupt.length === 0) return { repaired: [], remaining: corrupt };
  const blockSizeBytes = disk.meta.blockSizeBytes;
  const repaired: ScrubDamage[] = [];
  const remaining: ScrubDamage[] = [];
  for (const damage of corrupt) {
    const current = disk.engine.versionsSeenBy(damage.block, 1, Infinity).lsns[0] === damage.lsn;
    const healed = current ? await mirror.healCurrent(disk.engine, damage.offsetBytes, blockSizeBytes) : undefined;
    (healed === undefined ? remaining : repaired).push(damage);
  }
  return { repaired, remaining };
}

/** Index pages a disk of this size can have: the scrub's unit of progress. */
function indexPageCount(meta: DiskFile): number {
  return Math.ceil(meta.sizeBytes / meta.blockSizeBytes / INDEX_PAGE_BLOCKS);
}

function offlineScrubResult(disk: string, offlineReason: string): ScrubDiskResult {
  return { disk, entriesChecked: 0, bytesChecked: 0, corrupt: [], repaired: [], baselineUnknownBlocks: [], offlineReason, ok: false };
}

/** The whole-disk check of every open disk (fsck): problems per disk, empty lists when sound. */
export function checkIntegrity(catalog: Catalog): Record<string, string[]> {
  const problems: Record<string, string[]> = {};
  for (const disk of catalog.disks.values()) problems[disk.meta.name] = disk.engine.checkIntegrity();
  return problems;
}
