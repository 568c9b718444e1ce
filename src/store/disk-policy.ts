/**
 * A disk's policy (SPEC §4): its settings kept in disk.json, shown with what they mean now
 * (the next scheduled run, what retention would delete), changed after the whole change is
 * checked (policy/policy-settings.ts), and retention applied on request (`policy prune`). The
 * server's policy runner (src/policy/) acts on the same settings unattended.
 */
import { listVaults } from "./archive/vault-registry.js";
import { applyMirrorPolicy, checkMirrorUsable } from "./mirror/disk-mirror.js";
import type { Catalog } from "./catalog.js";
import { writeDiskFile, type DiskFile } from "./disk-file.js";
import type { OpenDisk } from "./open-disk.js";
import type { DiskPolicy, PolicySettings, PolicyUpdate } from "./operations/index.js";
import { lunHolderFor, reserveConstantLun } from "./luns.js";
import { applyUpdate, scheduleOf, settingsOf } from "./policy/policy-settings.js";
import { decideSlot } from "./policy/due-slot.js";
import type { Schedule } from "./policy/schedule.js";
import { snapshotsToPrune, type RetainedSnapshot } from "./policy/retention.js";
import { slotOfScheduledName } from "./policy/scheduled-name.js";

export { checkHistorySeconds, HISTORY_SECONDS_DEFAULT, settingsOf } from "./policy/policy-settings.js";

/** The disk's scheduled snapshots, as retention sees them (placed by their slot). */
export function scheduledSnapshots(disk: OpenDisk): RetainedSnapshot[] {
  const scheduled: RetainedSnapshot[] = [];
  for (const cut of disk.engine.snapshots) {
    const slotMs = slotOfScheduledName(cut.name);
    if (slotMs !== undefined) scheduled.push({ name: cut.name, timeMs: slotMs });
  }
  return scheduled;
}

/**
 * The last slot the schedule ran: the newest scheduled snapshot's (it survives any crash with the
 * snapshot itself), or what disk.json recorded, or when the schedule was set (no slot before it is owed).
 */
export function lastScheduledSlotMs(disk: OpenDisk): number {
  let last = Math.max(disk.meta.scheduleState?.lastSlotMs ?? 0, disk.meta.scheduleState?.setAtMs ?? 0);
  for (const snapshot of scheduledSnapshots(disk)) last = Math.max(last, snapshot.timeMs);
  return last;
}

/** The policy with what it means at `nowMs`. */
export function policyOf(disk: OpenDisk, nowMs: number): DiskPolicy {
  const settings = settingsOf(disk.meta);
  const schedule = scheduleOf(settings);
  const decision = schedule === undefined ? undefined : decideSlot(schedule, lastScheduledSlotMs(disk), nowMs);
  const nextMs = decision === undefined ? undefined : (decision.dueMs ?? decision.wakeMs);
  return {
    ...settings,
    nextScheduledRun: nextMs === undefined ? null : new Date(nextMs).toISOString(),
    retentionWouldDelete: snapshotsToPrune(scheduledSnapshots(disk), settings, settings.timezone).map((snapshot) => snapshot.name),
  };
}

export async function showPolicy(catalog: Catalog, diskName: string): Promise<DiskPolicy> {
  return policyOf(catalog.disk(diskName), catalog.nowMs());
}

/** What the policy runner reads at each wake: cheap (no retention preview), always the settings now. */
export interface PolicyState {
  settings: PolicySettings;
  schedule: Schedule | undefined;
  /** The last slot the schedule ran, or when it was set (lastScheduledSlotMs). */
  lastSlotMs: number;
}

export function policyStateOf(catalog: Catalog, diskName: string): PolicyState {
  const disk = catalog.disk(diskName);
  const settings = settingsOf(disk.meta);
  return { settings, schedule: scheduleOf(settings), lastSlotMs: lastScheduledSlotMs(disk) };
}

/**
 * Changes a disk's policies, checked whole first. The window is persisted in an order that keeps
 * replay safe: to zero, disk.json first (a replay with a zero window frees at least what the
 * engine frees); from zero, the engine first records its horizon (versions reclaimed meanwhile
 * stay gone), then disk.json. A new or changed schedule owes no slot before now.
 */
export function setPolicy(catalog: Catalog, update: PolicyUpdate): Promise<DiskPolicy> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(update.disk);
    const current = settingsOf(disk.meta);
    const vaults = new Set((await listVaults(catalog)).map((vault) => vault.name));
    const settings = applyUpdate(current, update, {
      lunHolder: (lun) => lunHolderFor(catalog, lun, disk.meta.name),
      vaultExists: (name) => vaults.has(name),
    });
    // Before anything is saved: a mirror path that cannot serve is refused, not attached degraded.
    if (settings.mirror !== null && settings.mirror !== current.mirror) await checkMirrorUsable(catalog, disk, settings.mirror);
    const next = diskFileWith(disk.meta, settings);
    if (JSON.stringify(scheduleOf(settings)) !== JSON.stringify(scheduleOf(current))) {
      next.scheduleState = { setAtMs: catalog.nowMs(), lastSlotMs: 0 };
    }
    // Before disk.json names it: from now on no other volume is handed that LUN.
    if (settings.lunPolicy === "constant" && settings.lun !== null) await reserveConstantLun(catalog, settings.lun);
    const seconds = settings.historySeconds;
    const windowChanges = seconds !== disk.engine.historySeconds;
    if (windowChanges && seconds === 0) {
      await saveDiskFile(disk, next);
      await disk.engine.setHistory(0);
    } else {
      if (windowChanges) await disk.engine.setHistory(seconds);
      await saveDiskFile(disk, next);
    }
    if (settings.historyMaxBytes !== disk.engine.historyMaxBytes) {
      disk.engine.setHistoryMax(settings.historyMaxBytes);
      // A new cap applies now, not at the next write.
      if (disk.engine.historyCapDue) catalog.signals.emit("history-cap-due", disk.meta.name);
    }
    if (settings.mirror !== current.mirror) await applyMirrorPolicy(catalog, disk);
    await catalog.events.record({
      type: "policy-changed",
      disk: disk.meta.name,
      reason: "manual",
      message: `policy of ${disk.meta.name} changed: ${describeUpdate(update)}`,
    });
    return policyOf(disk, catalog.nowMs());
  });
}

/** Records the last slot the schedule ran (the scheduler calls it after each scheduled snapshot). */
export function recordScheduledSlot(catalog: Catalog, diskName: string, slotMs: number): Promise<void> {
  return catalog.control.run(async () => {
    const disk = catalog.disk(diskName);
    const state = disk.meta.scheduleState ?? { setAtMs: 0, lastSlotMs: 0 };
    if (slotMs <= state.lastSlotMs) return;
    await saveDiskFile(disk, { ...disk.meta, scheduleState: { ...state, lastSlotMs: slotMs } });
  });
}

function diskFileWith(meta: DiskFile, settings: PolicySettings): DiskFile {
  const { historySeconds, autoCompact, compactOnDelete, ...policy } = settings;
  return { ...meta, historySeconds, autoCompact, compactOnDelete, policy };
}

async function saveDiskFile(disk: OpenDisk, next: DiskFile): Promise<void> {
  await writeDiskFile(disk.medium, next);
  disk.meta = next;
}

function describeUpdate(update: PolicyUpdate): string {
  const { disk: _disk, ...fields } = update;
  return JSON.stringify(fields);
}
