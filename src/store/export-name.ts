import { invalidArgument } from "../util/errors.js";

/** Names of disks and snapshots: safe as file names and in NBD export names. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Snapshot names that mean something else in an export name. */
const RESERVED_SNAPSHOT_NAMES = new Set(["baseline", "current"]);

export function checkName(kind: "disk" | "snapshot", name: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw invalidArgument(`invalid ${kind} name ${JSON.stringify(name)}: use 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)`);
  }
  if (kind === "snapshot" && (RESERVED_SNAPSHOT_NAMES.has(name) || name.startsWith("lsn:"))) {
    throw invalidArgument(`snapshot name ${JSON.stringify(name)} is reserved`);
  }
}

/** What an NBD export name asks for (SPEC §3.1). */
export type ExportTarget =
  | { kind: "current"; disk: string }
  | { kind: "snapshot"; disk: string; snapshot: string }
  | { kind: "baseline"; disk: string }
  | { kind: "lun"; lun: number }
  | { kind: "lsn"; disk: string; lsn: number }
  | { kind: "time"; disk: string; timeMs: number };

export function parseExportName(exportName: string): ExportTarget {
  const lunMatch = /^lun:(\d{1,9})$/.exec(exportName);
  if (lunMatch) return { kind: "lun", lun: Number(lunMatch[1]) };
  const at = exportName.indexOf("@");
  if (at < 0) return { kind: "current", disk: exportName };
  const disk = exportName.slice(0, at);
  const selector = exportName.slice(at + 1);
  if (selector === "baseline") return { kind: "baseline", disk };
  const lsnMatch = /^lsn:(\d{1,15})$/.exec(selector);
  if (lsnMatch) return { kind: "lsn", disk, lsn: Number(lsnMatch[1]) };
  if (/^\d{4}-\d{2}-\d{2}T/.test(selector)) {
    const timeMs = Date.parse(selector);
    if (Number.isNaN(timeMs)) throw invalidArgument(`export ${JSON.stringify(exportName)}: ${JSON.stringify(selector)} is not an ISO 8601 time`);
    return { kind: "time", disk, timeMs };
  }
  if (selector.length === 0) throw invalidArgument(`export ${JSON.stringify(exportName)}: nothing after "@"`);
  return { kind: "snapshot", disk, snapshot: selector };
}
