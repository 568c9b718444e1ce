/** `policy prune`: retention applied now (the scheduler applies it after every scheduled snapshot too). */
import type { Catalog } from "./catalog.js";
import { scheduledSnapshots } from "./disk-policy.js";
import type { PruneRequest, PruneResult } from "./operations/index.js";
import { settingsOf } from "./policy/policy-settings.js";
import { snapshotsToPrune } from "./policy/retention.js";
import { deleteSnapshotNow } from "./snapshots.js";

/** Retention now: the scheduled snapshots its rules do not keep are deleted (or listed, with dryRun). */
export function prunePolicy(catalog: Catalog, request: PruneRequest): Promise<PruneResult> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(request.disk);
    const settings = settingsOf(disk.meta);
    const doomed = snapshotsToPrune(scheduledSnapshots(disk), settings, settings.timezone).map((snapshot) => snapshot.name);
    if (request.dryRun !== true) {
      for (const name of doomed) await deleteSnapshotNow(catalog, disk, name, "retention");
    }
    return { disk: disk.meta.name, dryRun: request.dryRun === true, deleted: doomed };
  });
}
