/** The intent file of an incremental import under way, and what the next open does with it (import-stream.ts). */
import type { Catalog } from "../catalog.js";
import { readJsonOn } from "../medium-json.js";
import type { OpenDisk } from "../open-disk.js";
import { defaultSnapshotName } from "../snapshots.js";

/** In the disk's directory while an incremental import applies: the LSN before it. */
export const IMPORT_INTENT_FILE = "import.json";

/**
 * At open: an incremental import that a crash interrupted is undone — the current volume goes
 * back to the LSN before it (the partial state kept as snapshot import-interrupted-…), so no
 * host ever sees a half-applied stream as the disk.
 */
export async function undoInterruptedImport(catalog: Catalog, disk: OpenDisk): Promise<string | undefined> {
  if (!(await disk.medium.exists(IMPORT_INTENT_FILE))) return undefined;
  const intent = await readJsonOn<{ lsnBefore: number }>(disk.medium, IMPORT_INTENT_FILE, `${disk.meta.name}/${IMPORT_INTENT_FILE}`);
  let kept: string | undefined;
  if (disk.engine.lsnLast > intent.lsnBefore) {
    kept = defaultSnapshotName(disk, "import-interrupted", catalog.nowMs());
    await disk.engine.rollback(intent.lsnBefore, kept, 0);
  }
  await disk.medium.remove(IMPORT_INTENT_FILE);
  return kept;
}
