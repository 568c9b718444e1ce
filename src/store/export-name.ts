import { invalidArgument } from "../util/errors.js";
import { NAME_PATTERN, readPoint } from "./point-spec.js";

/**
 * Disk names, and snapshot names that address their snapshot: a snapshot name must read as
 * itself wherever volumes are named (`DISK@NAME`, `--at NAME`, diff's FROM and TO), so names
 * the point grammar reads as something else (`baseline`, `current`, `2026-11-25`, `1`) are
 * refused. Returns the name.
 */
export function checkName(kind: "disk" | "snapshot", name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw invalidArgument(`invalid ${kind} name ${JSON.stringify(name)}: use 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)`);
  }
  if (kind === "disk") return name;
  const reading = readPoint(name);
  if (reading.kind === "snapshot") return name;
  if (reading.kind === "current" || reading.kind === "baseline") {
    throw invalidArgument(
      `snapshot name ${JSON.stringify(name)} is reserved: DISK@${name} and --at ${name} mean the disk's ${name === "current" ? "current volume" : "baseline"}`,
    );
  }
  throw invalidArgument(
    `invalid snapshot name ${JSON.stringify(name)}: DISK@${name} and --at ${name} would read it as a ${reading.kind === "time" ? "" : "malformed "}point in time; ` +
      `a name that starts with a digit needs a letter other than T and Z (e.g. snap-${name})`,
  );
}

/** What an NBD export name asks for (SPEC §3.1). */
export type ExportTarget =
  | { kind: "current"; disk: string }
  | { kind: "snapshot"; disk: string; snapshot: string }
  | { kind: "baseline"; disk: string }
  | { kind: "lun"; lun: number }
  | { kind: "lsn"; disk: string; lsn: number }
  | { kind: "time"; disk: string; timeMs: number };

/**
 * `lun:N`, `DISK`, or `DISK@SELECTOR` where SELECTOR is read by the point grammar of
 * point-spec.ts (readPoint, the core of parsePoint), as in the CLI and the API: a snapshot name, `baseline`, `current`, `lsn:N` or an ISO 8601
 * time with its zone.
 */
export function parseExportName(exportName: string): ExportTarget {
  const lunMatch = /^lun:(\d{1,9})$/.exec(exportName);
  if (lunMatch) return { kind: "lun", lun: Number(lunMatch[1]) };
  const at = exportName.indexOf("@");
  if (at < 0) return { kind: "current", disk: exportName };
  const disk = exportName.slice(0, at);
  const target = readPoint(exportName.slice(at + 1));
  switch (target.kind) {
    case "invalid":
      throw invalidArgument(`invalid export ${JSON.stringify(exportName)}: after "@": ${target.reason}`);
    case "snapshot":
      return { kind: "snapshot", disk, snapshot: target.name };
    case "lsn":
      return { kind: "lsn", disk, lsn: target.lsn };
    case "time":
      return { kind: "time", disk, timeMs: target.timeMs };
    case "current":
    case "baseline":
      return { kind: target.kind, disk };
  }
}
