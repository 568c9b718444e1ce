/**
 * Background compaction for a running server (SPEC §4.6 `--auto-compact`): the scheduler
 * (compaction-scheduler.ts) over the store's open disks, with their policies, the store's file
 * system space, and what it did in the store's log.
 */
import type { Catalog } from "./catalog.js";
import { CompactionScheduler } from "./compaction-scheduler.js";
import { settingsOf } from "./policy/policy-settings.js";
import { fileSystemSpace } from "./file-system-space.js";
import type { StoreLogger } from "./store-options.js";

/** Look every 10 s; a disk is idle after 5 s without writes; space is short under 10 % free. */
const COMPACTION_INTERVAL_MS = 10_000;
const COMPACTION_IDLE_MS = 5_000;
const COMPACTION_FREE_FRACTION_MIN = 0.1;

export interface BackgroundCompactionOptions {
  intervalMs?: number;
  idleMs?: number;
  freeFractionMin?: number;
}

export function startBackgroundCompaction(
  catalog: Catalog,
  logger: StoreLogger | undefined,
  options: BackgroundCompactionOptions,
): CompactionScheduler {
  const scheduler = new CompactionScheduler(
    () =>
      [...catalog.disks.values()].map((disk) => ({
        name: disk.meta.name,
        engine: disk.engine,
        autoCompact: settingsOf(disk.meta).autoCompact,
      })),
    {
      intervalMs: options.intervalMs ?? COMPACTION_INTERVAL_MS,
      idleMs: options.idleMs ?? COMPACTION_IDLE_MS,
      freeFractionMin: options.freeFractionMin ?? COMPACTION_FREE_FRACTION_MIN,
      space: () => fileSystemSpace(catalog.path),
      // While a space policy is past its mark, what compaction frees goes back at once (SPEC §4.2).
      spareSegmentCount: () => (catalog.spaceHigh ? 0 : undefined),
      onCompacted: (disk, result) =>
        logger?.info?.(
          `compacted disk ${disk} (${result.reason}): ${result.entriesFreed} entries, ${result.bytesFreed} bytes freed, ${result.segmentsReleased} segment files released`,
        ),
      onError: (disk, error) =>
        logger?.error(`background compaction of disk ${disk} failed: ${error instanceof Error ? error.message : String(error)}`),
    },
  );
  scheduler.start();
  return scheduler;
}
