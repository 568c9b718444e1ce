import { invalidArgument } from "../util/errors.js";
import { readPoint } from "./point-spec.js";

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
