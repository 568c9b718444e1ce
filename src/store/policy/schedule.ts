/**
 * When scheduled snapshots are due (SPEC §4.1). A schedule is `every` N seconds — slots at
 * multiples of N since the Unix epoch, in UTC, so they do not move with DST or restarts — or a
 * cron expression (5 or 6 fields) in a time zone, evaluated by croner. DST as cron users
 * expect: a time in the hour a change skips runs once after the gap (croner's Vixie rule), and a
 * wall-clock time the change repeats runs once — the second pass is not a slot here, whatever the
 * pattern (croner would run interval patterns in both). croner is used only as a calculator;
 * the scheduler (scheduler.ts) decides what to run from the slots and the last slot it ran, so
 * catch-up and clock steps are ours.
 */
import { Cron } from "croner";
import { invalidArgument } from "../../util/errors.js";
import { isRepeatedWallTime } from "./zoned-time.js";

export const SNAPSHOT_EVERY_SECONDS_MIN = 1;

export type Schedule = { kind: "every"; seconds: number } | { kind: "cron"; expression: string; timezone: string };

/** The server's own zone: the default for --timezone. */
export function localTimeZone(): string {
  // Building an Intl.DateTimeFormat costs about 0.1 ms, and every policy read asks for the
  // default zone (the space monitor several times a second: 1.4 % of the event loop under
  // sequential writes); the zone changes only with TZ.
  const tz = process.env.TZ;
  if (zoneCache === undefined || zoneCache.tz !== tz) zoneCache = { tz, zone: Intl.DateTimeFormat().resolvedOptions().timeZone };
  return zoneCache.zone;
}

let zoneCache: { tz: string | undefined; zone: string } | undefined;

/** Checks a time zone name (IANA); INVALID_ARGUMENT otherwise. */
export function checkTimeZone(timezone: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    throw invalidArgument(`--timezone "${timezone}" is not a time zone: use an IANA name such as Europe/Berlin or UTC`);
  }
  return timezone;
}

const crons = new Map<string, Cron>();
const CRON_CACHE_MAX = 256;

/** croner's calculator for a pattern, kept (parsing costs more than a lookup). */
function cronOf(expression: string, timezone: string): Cron {
  const key = `${timezone} ${expression}`;
  let cron = crons.get(key);
  if (cron === undefined) {
    cron = new Cron(expression, { timezone, paused: true, mode: "5-or-6-parts" });
    if (crons.size >= CRON_CACHE_MAX) crons.clear();
    crons.set(key, cron);
  }
  return cron;
}

/** A schedule from its parts, checked: INVALID_ARGUMENT with the reason when it cannot run. */
export function checkSchedule(schedule: Schedule): Schedule {
  if (schedule.kind === "every") {
    if (!Number.isFinite(schedule.seconds) || schedule.seconds < SNAPSHOT_EVERY_SECONDS_MIN) {
      throw invalidArgument(`--snapshot-every must be at least ${SNAPSHOT_EVERY_SECONDS_MIN}s`);
    }
    return schedule;
  }
  const fields = schedule.expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw invalidArgument(
      `--snapshot-cron "${schedule.expression}" has ${fields.length} fields: give 5 (minute hour day month weekday) or 6 (seconds first)`,
    );
  }
  checkTimeZone(schedule.timezone);
  try {
    const next = cronOf(schedule.expression, schedule.timezone).nextRun(new Date(0));
    if (next === null) throw new Error("it never runs");
  } catch (error) {
    throw invalidArgument(`--snapshot-cron "${schedule.expression}": ${error instanceof Error ? error.message : String(error)}`);
  }
  return schedule;
}

/** The latest slot at or before `nowMs` (ms), or undefined when there is none. */
export function latestSlotAtOrBefore(schedule: Schedule, nowMs: number): number | undefined {
  if (schedule.kind === "every") {
    const periodMs = schedule.seconds * 1000;
    return Math.floor(nowMs / periodMs) * periodMs;
  }
  const cron = cronOf(schedule.expression, schedule.timezone);
  let before = nowMs + 1;
  for (;;) {
    const [previous] = cron.previousRuns(1, new Date(before));
    if (previous === undefined) return undefined;
    if (!isRepeatedWallTime(previous.getTime(), schedule.timezone)) return previous.getTime();
    before = previous.getTime();
  }
}

/** The first slot strictly after `afterMs`, or undefined when the schedule never runs again. */
export function nextSlotAfter(schedule: Schedule, afterMs: number): number | undefined {
  if (schedule.kind === "every") {
    const periodMs = schedule.seconds * 1000;
    return (Math.floor(afterMs / periodMs) + 1) * periodMs;
  }
  const cron = cronOf(schedule.expression, schedule.timezone);
  let after = afterMs;
  for (;;) {
    const next = cron.nextRun(new Date(after));
    // croner answers the next run after the given time; guard against one that does not advance.
    if (next === null || next.getTime() <= after) return undefined;
    if (!isRepeatedWallTime(next.getTime(), schedule.timezone)) return next.getTime();
    after = next.getTime();
  }
}

/** How the schedule reads for people (`policy show`). */
export function describeSchedule(schedule: Schedule | undefined): string {
  if (schedule === undefined) return "off";
  if (schedule.kind === "every") return `every ${schedule.seconds}s`;
  return `cron "${schedule.expression}" (${schedule.timezone})`;
}
