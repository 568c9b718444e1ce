/**
 * Wall-clock time in a named zone, for the scheduler (a repeated hour runs once) and retention
 * (hours, days, ISO weeks and months are the schedule zone's). One Intl formatter per zone.
 */
const formatters = new Map<string, Intl.DateTimeFormat>();

export interface ZonedParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function formatterOf(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** Conversions already made: retention looks at the same snapshots' times after every run. */
const partsCache = new Map<string, ZonedParts>();
const PARTS_CACHE_MAX = 16_384;

export function zonedParts(timeMs: number, timezone: string): ZonedParts {
  const key = `${timezone} ${timeMs}`;
  const cached = partsCache.get(key);
  if (cached !== undefined) return cached;
  const parts: Record<string, number> = {};
  for (const part of formatterOf(timezone).formatToParts(new Date(timeMs))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  const zoned = { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour, minute: parts.minute, second: parts.second };
  if (partsCache.size >= PARTS_CACHE_MAX) partsCache.clear();
  partsCache.set(key, zoned);
  return zoned;
}

/** The zone's offset from UTC at that instant, in ms (local = UTC + offset). */
export function zoneOffsetMs(timeMs: number, timezone: string): number {
  const local = zonedParts(Math.floor(timeMs / 1000) * 1000, timezone);
  const asUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
  return asUtc - Math.floor(timeMs / 1000) * 1000;
}

/**
 * Whether the wall-clock time at `timeMs` already happened once before, less than a day ago:
 * the second pass through the hour a DST change repeats.
 */
export function isRepeatedWallTime(timeMs: number, timezone: string): boolean {
  const backMs = zoneOffsetMs(timeMs - 86_400_000, timezone) - zoneOffsetMs(timeMs, timezone);
  if (backMs <= 0) return false;
  const earlier = zonedParts(timeMs - backMs, timezone);
  const now = zonedParts(timeMs, timezone);
  return (
    earlier.year === now.year &&
    earlier.month === now.month &&
    earlier.day === now.day &&
    earlier.hour === now.hour &&
    earlier.minute === now.minute &&
    earlier.second === now.second
  );
}

/** ISO 8601 week of a calendar date: the week's year and number (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  date.setUTCDate(date.getUTCDate() - weekday + 3); // the Thursday of this week
  const weekYear = date.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(weekYear, 0, 4));
  const firstWeekday = (firstThursday.getUTCDay() + 6) % 7;
  firstThursday.setUTCDate(firstThursday.getUTCDate() - firstWeekday + 3);
  return { year: weekYear, week: 1 + Math.round((date.getTime() - firstThursday.getTime()) / (7 * 86_400_000)) };
}
