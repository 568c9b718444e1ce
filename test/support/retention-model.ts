/**
 * An independent model of retention (SPEC §4.1), written from the SPEC's words and not from
 * src/store/policy/retention.ts: keep-last keeps the newest N; keep-hourly/daily/weekly/monthly
 * keep the newest snapshot of each of the N most recent buckets that have one, buckets in the
 * schedule's zone (wall clock by Intl's sv-SE format, ISO weeks by the ordinal-date rule).
 * Rules combine with OR; with no rule set, everything is kept. Used by the pure test
 * (policy-schedule.test.ts) and the runner's (policy-runner.test.ts).
 */
import type { RetainedSnapshot, Retention } from "../../src/store/policy/retention.js";

const DAY = 86_400_000;

/** The model's wall clock: sv-SE formats as "YYYY-MM-DD HH:MM:SS" (memoized: the model sees each time many times). */
const wallClocks = new Map<string, string>();
export function wallClock(timeMs: number, timezone: string): string {
  const key = `${timezone} ${timeMs}`;
  let text = wallClocks.get(key);
  if (text === undefined) wallClocks.set(key, (text = new Date(timeMs).toLocaleString("sv-SE", { timeZone: timezone, hour12: false })));
  return text;
}

/** ISO week by the ordinal-date rule (week = floor((ordinal − weekday + 10) / 7)), independent of the code's. */
export function modelIsoWeek(date: string): string {
  const [year, month, day] = date.split("-").map(Number);
  const ordinal = (Date.UTC(year, month - 1, day) - Date.UTC(year, 0, 1)) / DAY + 1;
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay() || 7;
  let week = Math.floor((ordinal - weekday + 10) / 7);
  let weekYear = year;
  const weeksIn = (y: number) => {
    const jan1 = new Date(Date.UTC(y, 0, 1)).getUTCDay();
    const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
    return jan1 === 4 || (leap && jan1 === 3) ? 53 : 52;
  };
  if (week < 1) {
    weekYear = year - 1;
    week = weeksIn(weekYear);
  } else if (week > weeksIn(year)) {
    weekYear = year + 1;
    week = 1;
  }
  return `${weekYear}-W${week}`;
}

/** The names the rules keep (all of them when no rule is set). */
export function modelKept(snapshots: RetainedSnapshot[], retention: Retention, timezone: string): Set<string> {
  if (!Object.values(retention).some((count) => (count ?? 0) > 0)) return new Set(snapshots.map((snapshot) => snapshot.name));
  const kept = new Set<string>();
  const byTime = [...snapshots].sort((a, b) => b.timeMs - a.timeMs);
  byTime.slice(0, retention.keepLast ?? 0).forEach((snapshot) => kept.add(snapshot.name));
  const buckets: [number | undefined, (snapshot: RetainedSnapshot) => string][] = [
    [retention.keepHourly, (s) => wallClock(s.timeMs, timezone).slice(0, 13)],
    [retention.keepDaily, (s) => wallClock(s.timeMs, timezone).slice(0, 10)],
    [retention.keepWeekly, (s) => modelIsoWeek(wallClock(s.timeMs, timezone).slice(0, 10))],
    [retention.keepMonthly, (s) => wallClock(s.timeMs, timezone).slice(0, 7)],
  ];
  for (const [count, bucketOf] of buckets) {
    if (!count) continue;
    // Group, newest bucket first (by its newest snapshot), keep each group's newest, for the first `count` groups.
    const groups = new Map<string, RetainedSnapshot>();
    for (const snapshot of byTime) if (!groups.has(bucketOf(snapshot))) groups.set(bucketOf(snapshot), snapshot);
    [...groups.values()].slice(0, count).forEach((snapshot) => kept.add(snapshot.name));
  }
  return kept;
}
