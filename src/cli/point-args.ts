/**
 * Checks the points in time and volumes people type (`--at`, `--since`, FROM, TO) before the
 * store is touched, with the store's own parser, so a typo is a usage error (exit 2) with one
 * line rather than "no snapshot named ..." from the store.
 */
import { parsePoint } from "../store/point-spec.js";
import { invalidArgument } from "../util/errors.js";
import { parseName } from "../util/parse.js";

/** A point or a volume: lsn:N, an ISO 8601 time, current, baseline or a snapshot name. */
export function checkVolumeArg(text: string, what: string): string {
  const target = parsePoint(text, what);
  if (target.kind === "snapshot") parseName(target.name, `${what} (a snapshot name)`);
  return text;
}

/** A point only: lsn:N or an ISO 8601 time (the bounds of `log --since/--until`). */
export function checkPointArg(text: string, what: string): string {
  const target = parsePoint(text, what);
  if (target.kind !== "lsn" && target.kind !== "time") {
    throw invalidArgument(`invalid ${what} "${text}": expected lsn:N or an ISO 8601 time such as 2026-11-25T10:00:00Z`);
  }
  return text;
}
