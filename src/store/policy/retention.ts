/**
 * Which scheduled snapshots retention keeps (SPEC §4.1). Rules combine with OR: a snapshot is
 * kept when any rule keeps it. keep-last keeps the newest N; keep-hourly keeps the newest
 * snapshot of each of the N most recent hours that have one, and keep-daily, keep-weekly (ISO
 * weeks) and keep-monthly likewise, with hours, days, weeks and months in the schedule's zone.
 * Counting buckets that have a snapshot (not the last N calendar hours) means an outage never
 * empties the set. Only scheduled snapshots are considered: manual ones are never deleted here.
 * With no rule set, retention keeps everything. Any rule keeps the newest scheduled snapshot,
 * which is what tells the scheduler its last slot after a restart.
 */
import { isoWeek, zonedParts, type ZonedParts } from "./zoned-time.js";

export interface Retention {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
}

export const RETENTION_RULES = ["keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly"] as const;

export interface RetainedSnapshot {
  name: string;
  /** The time that places it in hours, days, weeks and months: its slot. */
  timeMs: number;
}

export function hasRetention(retention: Retention): boolean {
  return RETENTION_RULES.some((rule) => (retention[rule] ?? 0) > 0);
}

type BucketOf = (timeMs: number) => string;

function bucketRules(timezone: string): [keyof Retention, BucketOf][] {
  const pad = (value: number) => String(value).padStart(2, "0");
  const partsOf = (timeMs: number): ZonedParts => zonedParts(timeMs, timezone);
  const day = (timeMs: number) => {
    const parts = partsOf(timeMs);
    return `${parts.year}-${pad(parts.month)}-${pad(parts.day)}`;
  };
  return [
    ["keepHourly", (timeMs) => `${day(timeMs)}T${pad(partsOf(timeMs).hour)}`],
    ["keepDaily", day],
    [
      "keepWeekly",
      (timeMs) => {
        const parts = partsOf(timeMs);
        const week = isoWeek(parts.year, parts.month, parts.day);
        return `${week.year}-W${pad(week.week)}`;
      },
    ],
    ["keepMonthly", (timeMs) => `${partsOf(timeMs).year}-${pad(partsOf(timeMs).month)}`],
  ];
}

/**
 * The snapshots retention deletes now, oldest first, with the rules that would have kept the
 * others (for `policy prune --dry-run` and the event log).
 */
export function snapshotsToPrune(snapshots: readonly RetainedSnapshot[], retention: Retention, timezone: string): RetainedSnapshot[] {
  if (!hasRetention(retention)) return [];
  const newestFirst = [...snapshots].sort((a, b) => b.timeMs - a.timeMs || (a.name < b.name ? 1 : -1));
  const kept = new Set<string>();
  for (const snapshot of newestFirst.slice(0, retention.keepLast ?? 0)) kept.add(snapshot.name);
  for (const [rule, bucketOf] of bucketRules(timezone)) {
    const count = retention[rule] ?? 0;
    const seen = new Set<string>();
    for (const snapshot of newestFirst) {
      if (seen.size >= count) break;
      const bucket = bucketOf(snapshot.timeMs);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      kept.add(snapshot.name);
    }
  }
  return newestFirst.filter((snapshot) => !kept.has(snapshot.name)).reverse();
}
