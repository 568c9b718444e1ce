/**
 * The one grammar of points in time and volumes given as text, shared by NBD export names
 * (`DISK@SELECTOR`, export-name.ts), the API and the CLI (`--at`, `--since`, `--until`, FROM,
 * TO), so a text means the same everywhere (SPEC §3.1, §3.2):
 *
 *   lsn:N                          the volume at LSN N
 *   2026-11-25T10:00:00Z           the volume at that time: ISO 8601 date and time with Z or an
 *   2026-11-25T10:00:00.5+01:00    offset (seconds and fraction optional); a time without a zone
 *                                  is refused, as the client's and the server's zones may differ
 *   2026-11-25                     a date alone: midnight UTC
 *   current, baseline              the disk's current volume, its baseline (volumes only)
 *   NAME                           a snapshot (volumes only)
 *
 * Text that starts with a digit and holds only the characters of times (digits, - : . + T Z
 * and space) is a time or an error, never a snapshot name: `20261125` and `12:00` are typos of
 * times. Snapshot names that would read as anything but themselves are refused when created
 * (new-snapshot-name.ts).
 */
import type { DiskEngine } from "../engine/index.js";
import { invalidArgument, notFound } from "../util/errors.js";
import { NAME_PATTERN } from "./names.js";

/** A point in time: what `log --since/--until` take. */
export type PointInTime = { kind: "lsn"; lsn: number } | { kind: "time"; timeMs: number };

/** What a point or volume given as text means. */
export type PointTarget = PointInTime | { kind: "current" } | { kind: "baseline" } | { kind: "snapshot"; name: string };

/** Where a text may name a point in time only (`log --since`), or any volume (`--at`, FROM, TO, export names). */
export type PointAccepts = "point" | "volume";

/** A text read without a place in mind: what it means, or why it means nothing. */
export type PointReading = PointTarget | { kind: "invalid"; reason: string };

const pointExample = "2026-11-25T10:00:00Z";
const LSN_TEXT = /^lsn:(\d{1,15})$/;
/** Starts with a digit and holds only what times are made of: a time, or a typo of one. */
const TIME_LIKE = /^\d[\d:.+\-TZtz ]*$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/;
const msPerMinute = 60_000;

/** What `text` means, without throwing (checkNewSnapshotName uses it to refuse names that read as something else). */
export function readPoint(text: string): PointReading {
  if (text.length === 0) return { kind: "invalid", reason: "empty" };
  if (text.startsWith("lsn:")) {
    const match = LSN_TEXT.exec(text);
    return match === null ? { kind: "invalid", reason: "lsn:N takes a whole number N" } : { kind: "lsn", lsn: Number(match[1]) };
  }
  if (TIME_LIKE.test(text)) return readTime(text);
  if (text === "current") return { kind: "current" };
  if (text === "baseline") return { kind: "baseline" };
  if (!NAME_PATTERN.test(text)) {
    return { kind: "invalid", reason: `not lsn:N, an ISO 8601 time such as ${pointExample}, current, baseline or a snapshot name` };
  }
  return { kind: "snapshot", name: text };
}

/**
 * Parses a point in time, or with accepts "volume" (the default) also a volume. Throws
 * INVALID_ARGUMENT naming `what` (`--at`, `export "vm1@x"`) with the reason.
 */
export function parsePoint(text: string, what: string, accepts: "point"): PointInTime;
export function parsePoint(text: string, what: string, accepts?: PointAccepts): PointTarget;
export function parsePoint(text: string, what: string, accepts: PointAccepts = "volume"): PointTarget {
  const reading = readPoint(text);
  if (reading.kind === "invalid") throw invalidArgument(`invalid ${what} ${JSON.stringify(text)}: ${reading.reason}`);
  if (accepts === "point" && reading.kind !== "lsn" && reading.kind !== "time") {
    throw invalidArgument(
      `invalid ${what} ${JSON.stringify(text)}: not a point in time: expected lsn:N or an ISO 8601 time such as ${pointExample}`,
    );
  }
  return reading;
}

function readTime(text: string): PointReading {
  const date = DATE.exec(text);
  if (date !== null) return timeFrom(date.slice(1, 4), "", "Z");
  const dateTime = DATE_TIME.exec(text);
  if (dateTime === null) {
    const written = text.replace(" ", "T").toUpperCase();
    if (written !== text && DATE_TIME.test(written))
      return { kind: "invalid", reason: `write it as ${written}: T between date and time, T and Z in upper case` };
    return { kind: "invalid", reason: `neither lsn:N nor an ISO 8601 time such as ${pointExample}` };
  }
  const [, year, month, day, hour, minute, second = "00", fraction = "", zone] = dateTime;
  if (zone === undefined)
    return { kind: "invalid", reason: `a time needs its zone: Z (UTC) or an offset such as +01:00, as in ${pointExample}` };
  return timeFrom([year, month, day, hour, minute, second], fraction, zone);
}

/**
 * The instant of the fields [year, month, day, hour?, minute?, second?] plus a fraction of a
 * second (cut to milliseconds) and a zone (Z, +HH:MM, +HHMM); a field out of its range (month
 * 13, February 30, 24:00) is refused.
 */
function timeFrom(fields: readonly string[], fraction: string, zone: string): PointReading {
  const [year, month, day, hour = 0, minute = 0, second = 0] = fields.map(Number);
  const zoneMinutes = zone === "Z" ? 0 : Number(zone.slice(-2));
  const offsetMinutes = zone === "Z" ? 0 : (zone.startsWith("-") ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + zoneMinutes);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, Number(fraction.slice(0, 3).padEnd(3, "0")));
  const inRange =
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    hour < 24 &&
    minute < 60 &&
    second < 60 &&
    zoneMinutes < 60 &&
    Math.abs(offsetMinutes) < 24 * 60;
  if (!inRange) return { kind: "invalid", reason: "not a valid ISO 8601 time: a field is out of range" };
  return { kind: "time", timeMs: date.getTime() - offsetMinutes * msPerMinute };
}

/**
 * The LSN of a point or volume of this disk, checked: a point outside the history window is
 * refused (OUTSIDE_WINDOW, naming the window); a snapshot must exist.
 */
export function lsnOfPoint(engine: DiskEngine, text: string, what: string): number {
  const target = parsePoint(text, what);
  switch (target.kind) {
    case "current":
      return engine.lsnLast;
    case "baseline":
      return 0;
    case "lsn":
      engine.checkViewAvailable(target.lsn);
      return target.lsn;
    case "time":
      return engine.viewAtTime(target.timeMs);
    case "snapshot": {
      const cut = engine.findSnapshot(target.name);
      if (cut === undefined)
        throw notFound(`disk ${engine.geometry.name} has no snapshot named ${JSON.stringify(target.name)} (${what})`, {
          disk: engine.geometry.name,
        });
      return cut.lsn;
    }
  }
}

/**
 * An LSN bound of `log --since/--until` (inclusive): `lsn:N` as given; a time T as the first
 * entry at or after T (first) or the last at or before T (last). Listing the log needs no
 * window: it shows what is still there.
 */
export function lsnOfBound(engine: DiskEngine, text: string, what: string, side: "first" | "last"): number {
  const point = parsePoint(text, what, "point");
  if (point.kind === "lsn") return point.lsn;
  return side === "last" ? engine.lsnAtTime(point.timeMs) : engine.lsnAtTime(point.timeMs - 1) + 1;
}

/** The time of the volume at `lsn` (ISO 8601), or null for the baseline (LSN 0) and when no time is known. */
export function timeOfPoint(engine: DiskEngine, lsn: number): string | null {
  if (lsn === 0) return null;
  const timeMs = engine.timeOfLsn(lsn);
  return timeMs === 0 ? null : new Date(timeMs).toISOString();
}

/** "LSN 12 (2026-11-25T10:00:00.000Z)", "LSN 0 (the baseline)": a resolved point for people. */
export function describePoint(lsn: number, time: string | null): string {
  return `LSN ${lsn} (${time ?? (lsn === 0 ? "the baseline" : "time unknown")})`;
}
