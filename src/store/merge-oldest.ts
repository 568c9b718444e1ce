/**
 * `--merge-oldest-into-baseline on` (SPEC §4.6): deleting a disk's oldest snapshot (by hand, by
 * retention or by a space action) first folds the oldest kept view into the baseline, so the
 * baseline becomes that snapshot's content and the log no longer holds what it saw; the delete
 * follows. The fold is the engine's (compact --into-baseline): views at the fold point or later
 * read as before, so no kept volume changes but the baseline.
 *
 * The fold point is the oldest view anything keeps. That is the snapshot itself unless the
 * history window or an attached point in time still keeps an older view: then the fold stops
 * there (the baseline becomes that older view) rather than take a view someone keeps, and the
 * event says so.
 */
import type { FoldResult } from "../engine/index.js";
import type { Catalog } from "./catalog.js";
import type { OpenDisk } from "./open-disk.js";
import { settingsOf } from "./policy/policy-settings.js";

/** Folds before the delete of `name` when the policy asks and `name` is the oldest snapshot; undefined when not. */
export async function mergeIfOldest(catalog: Catalog, disk: OpenDisk, name: string, reason: string): Promise<FoldResult | undefined> {
  const snapshots = disk.engine.snapshots;
  const cut = disk.engine.findSnapshot(name);
  // Snapshots are in LSN order; several may share the oldest cut.
  if (!settingsOf(disk.meta).mergeOldestIntoBaseline || cut === undefined || cut.lsn !== snapshots[0].lsn) return undefined;
  const fold = await disk.engine.foldIntoBaseline();
  const whole = fold.lsnFold === cut.lsn;
  const diskName = disk.meta.name;
  await catalog.events
    .record({
      type: "baseline-merged",
      disk: diskName,
      snapshot: name,
      lsn: fold.lsnFold,
      reason,
      message: whole
        ? `snapshot ${name} of disk ${diskName} folded into the baseline before its delete (LSN ${fold.lsnFold}, ${fold.bytesMoved} bytes copied)`
        : `snapshot ${name} of disk ${diskName}: the baseline folded up to LSN ${fold.lsnFold} only, an older view is still kept (the history window or an attached point in time)`,
      details: {
        lsnSnapshot: cut.lsn,
        lsnFold: fold.lsnFold,
        blocksCopied: fold.blockCount,
        bytesMoved: fold.bytesMoved,
        bytesFreed: fold.bytesFreed,
        corruptBlocks: fold.corruptLbas.length,
      },
    })
    .catch((error: unknown) =>
      catalog.logger?.error(`event log: could not record an event: ${error instanceof Error ? error.message : String(error)}`),
    );
  return fold;
}
