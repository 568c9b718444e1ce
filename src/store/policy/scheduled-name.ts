/**
 * Scheduled snapshots are named `auto-YYYYMMDDTHHMMSSZ` after the slot they fill, in UTC (SPEC
 * §4.1): unique per slot (no DST collision), sortable, and readable back, so the newest one says
 * which slot the scheduler last ran even after a crash. The `auto-` prefix is the scheduler's:
 * other snapshots may not take it, which is also how retention knows its own.
 */
export const SCHEDULED_PREFIX = "auto-";
const SCHEDULED_NAME = /^auto-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export function scheduledSnapshotName(slotMs: number): string {
  const iso = new Date(Math.floor(slotMs / 1000) * 1000).toISOString(); // 2026-11-25T10:00:00.000Z
  return `${SCHEDULED_PREFIX}${iso.slice(0, 19).replace(/[-:]/g, "")}Z`;
}

/** The slot (ms) a scheduled snapshot's name records, or undefined for any other name. */
export function slotOfScheduledName(name: string): number | undefined {
  const match = SCHEDULED_NAME.exec(name);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  return scheduledSnapshotName(ms) === name ? ms : undefined;
}

export function isScheduledName(name: string): boolean {
  return slotOfScheduledName(name) !== undefined;
}
