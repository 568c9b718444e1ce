/**
 * The name of a snapshot being made (create, restore --as-snapshot, the snapshot a rollback
 * keeps) must, beyond the name rule (names.ts), read as itself wherever volumes are named
 * (`DISK@NAME`, `--at NAME`, diff's FROM and TO): names the point grammar (point-spec.ts) reads
 * as something else (`baseline`, `current`, `2026-11-25`, `1`) are refused. Looking up an
 * existing snapshot needs the name rule only: no snapshot can have such a name. The `auto-`
 * prefix is the scheduler's (policy/scheduled-name.ts): retention deletes what carries it.
 */
import { invalidArgument } from "../util/errors.js";
import { checkName } from "./names.js";
import { readPoint } from "./point-spec.js";
import { SCHEDULED_PREFIX } from "./policy/scheduled-name.js";

/** Returns `name` when a new snapshot may have it; INVALID_ARGUMENT with why otherwise. */
export function checkNewSnapshotName(name: string, options: { scheduled?: boolean } = {}): string {
  checkName("snapshot", name);
  if (options.scheduled !== true && name.startsWith(SCHEDULED_PREFIX)) {
    throw invalidArgument(
      `snapshot names starting with "${SCHEDULED_PREFIX}" are the scheduler's (retention deletes them): choose another name`,
    );
  }
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

/** `prefix-YYYYMMDDTHHMMSSZ` of a time (UTC). */
export function stampedName(prefix: string, timeMs: number): string {
  const stamp = new Date(timeMs)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${prefix}-${stamp}`;
}
