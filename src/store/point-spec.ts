import type { DiskEngine } from "../engine/disk-engine.js";
import { invalidArgument, notFound } from "../util/errors.js";

/** What a point or volume given as text (`lsn:N`, an ISO time, `current`, `baseline`, a snapshot name) means. */
export type PointTarget =
  | { kind: "lsn"; lsn: number }
  | { kind: "time"; timeMs: number }
  | { kind: "current" }
  | { kind: "baseline" }
  | { kind: "snapshot"; name: string };

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Parses a point in time or a volume. `lsn:N` and ISO 8601 times are points; `current`,
 * `baseline` and other names are volumes (a snapshot name).
 */
export function parsePoint(text: string, what: string): PointTarget {
  const lsnMatch = /^lsn:(\d{1,15})$/.exec(text);
  if (lsnMatch) return { kind: "lsn", lsn: Number(lsnMatch[1]) };
  if (ISO_TIME.test(text)) {
    const timeMs = Date.parse(text);
    if (Number.isNaN(timeMs)) throw invalidArgument(`${what} ${JSON.stringify(text)} is not a valid ISO 8601 time`);
    return { kind: "time", timeMs };
  }
  if (/^\d/.test(text) && /^[\d:TZ.+-]+$/.test(text)) {
    throw invalidArgument(`${what} ${JSON.stringify(text)} is neither lsn:N nor an ISO 8601 time such as 2026-11-25T10:00:00Z`);
  }
  if (text === "current") return { kind: "current" };
  if (text === "baseline") return { kind: "baseline" };
  if (text.length === 0) throw invalidArgument(`${what} is empty`);
  return { kind: "snapshot", name: text };
}

/**
 * The LSN of a point or volume of this disk, checked: a point outside the history window is
 * refused (OUTSIDE_WINDOW, naming the window); a snapshot must exist.
 */
export function resolvePointLsn(engine: DiskEngine, text: string, what: string): number {
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
      if (cut === undefined) throw notFound(`disk ${engine.geometry.name} has no snapshot named ${JSON.stringify(target.name)} (${what})`, { disk: engine.geometry.name });
      return cut.lsn;
    }
  }
}
