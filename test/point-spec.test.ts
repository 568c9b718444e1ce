/**
 * Goal: one grammar of points and volumes (src/store/point-spec.ts) for the CLI, the API and
 * NBD export names (SPEC §3.1, §3.2): the same text means the same thing everywhere; a time
 * needs its zone; out-of-range fields are refused rather than rolled over; a snapshot name
 * that would read as anything but itself cannot be created.
 * Method: direct calls of parsePoint, parseExportName, checkName and checkNewSnapshotName.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseExportName } from "../src/store/export-name.js";
import { checkName } from "../src/store/names.js";
import { checkNewSnapshotName } from "../src/store/new-snapshot-name.js";
import { describePoint, parsePoint } from "../src/store/point-spec.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";

function refused(action: () => unknown, pattern: RegExp): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof SnaplogError, String(error));
    assert.equal(error.code, ErrorCodes.INVALID_ARGUMENT);
    assert.match(error.message, pattern);
    return true;
  });
}

test("points: lsn:N, times with Z or an offset (fraction cut to ms), a date alone as midnight UTC", () => {
  assert.deepEqual(parsePoint("lsn:0", "--at"), { kind: "lsn", lsn: 0 });
  assert.deepEqual(parsePoint("lsn:1200", "--at"), { kind: "lsn", lsn: 1200 });
  const at = (text: string) => parsePoint(text, "--at", "point");
  assert.deepEqual(at("2026-11-25T10:00:00Z"), { kind: "time", timeMs: Date.UTC(2026, 10, 25, 10) });
  assert.deepEqual(at("2026-11-25T10:00Z"), { kind: "time", timeMs: Date.UTC(2026, 10, 25, 10) });
  assert.deepEqual(at("2026-11-25T10:00:00.1239Z"), { kind: "time", timeMs: Date.UTC(2026, 10, 25, 10, 0, 0, 123) });
  assert.deepEqual(at("2026-11-25T11:30:00+01:30"), { kind: "time", timeMs: Date.UTC(2026, 10, 25, 10) });
  assert.deepEqual(at("2026-11-25T05:00:00-0500"), { kind: "time", timeMs: Date.UTC(2026, 10, 25, 10) });
  assert.deepEqual(at("2026-11-25"), { kind: "time", timeMs: Date.UTC(2026, 10, 25) });
  assert.deepEqual(at(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)).toISOString()), {
    kind: "time",
    timeMs: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
  });
});

test("volumes: current, baseline and snapshot names; a place that takes points only refuses them", () => {
  assert.deepEqual(parsePoint("current", "FROM"), { kind: "current" });
  assert.deepEqual(parsePoint("baseline", "FROM"), { kind: "baseline" });
  assert.deepEqual(parsePoint("before-upgrade", "FROM"), { kind: "snapshot", name: "before-upgrade" });
  assert.deepEqual(parsePoint("snap-20261125T100000Z", "FROM"), { kind: "snapshot", name: "snap-20261125T100000Z" });
  for (const text of ["current", "baseline", "daily"])
    refused(() => parsePoint(text, "--since", "point"), new RegExp(`^invalid --since "${text}": not a point in time`));
});

test("bad points get one clear reason: no zone, a space or lower case, fields out of range, digits alone, malformed lsn", () => {
  const at = (text: string) => () => parsePoint(text, "--at");
  refused(at("2026-11-25T10:00:00"), /^invalid --at "2026-11-25T10:00:00": a time needs its zone: Z \(UTC\) or an offset/);
  refused(at("2026-11-25 10:00:00Z"), /write it as 2026-11-25T10:00:00Z/);
  refused(at("2026-11-25t10:00:00z"), /write it as 2026-11-25T10:00:00Z/);
  for (const text of ["2026-02-30", "2026-13-01T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T10:60:00Z", "2026-11-25T10:00:00+24:00"]) {
    refused(at(text), /a field is out of range/);
  }
  for (const text of ["12:00", "20261125", "1", "1.5", "2026-11"]) refused(at(text), /neither lsn:N nor an ISO 8601 time/);
  for (const text of ["lsn:", "lsn:x", "lsn:-1", "lsn:1.5"]) refused(at(text), /lsn:N takes a whole number/);
  refused(at(""), /^invalid --at "": empty/);
  refused(at("a b"), /not lsn:N, an ISO 8601 time .*, current, baseline or a snapshot name/);
});

test("export names read their selector with the same grammar as the CLI", () => {
  assert.deepEqual(parseExportName("vm1"), { kind: "current", disk: "vm1" });
  assert.deepEqual(parseExportName("vm1@current"), { kind: "current", disk: "vm1" });
  assert.deepEqual(parseExportName("lun:7"), { kind: "lun", lun: 7 });
  assert.deepEqual(parseExportName("vm1@baseline"), { kind: "baseline", disk: "vm1" });
  assert.deepEqual(parseExportName("vm1@daily"), { kind: "snapshot", disk: "vm1", snapshot: "daily" });
  assert.deepEqual(parseExportName("vm1@lsn:42"), { kind: "lsn", disk: "vm1", lsn: 42 });
  for (const selector of ["2026-11-25T10:00:00Z", "2026-11-25T11:00:00+01:00", "2026-11-25T10:00:00.000Z"]) {
    assert.deepEqual(parseExportName(`vm1@${selector}`), { kind: "time", disk: "vm1", timeMs: Date.UTC(2026, 10, 25, 10) }, selector);
  }
  // What the CLI takes, an export takes, and the other way round.
  assert.deepEqual(parseExportName("vm1@2026-11-25"), { kind: "time", disk: "vm1", timeMs: Date.UTC(2026, 10, 25) });
  refused(() => parseExportName("vm1@2026-11-25T10:00:00"), /^invalid export "vm1@2026-11-25T10:00:00": after "@": a time needs its zone/);
  refused(() => parseExportName("vm1@2026-02-30T10:00:00Z"), /out of range/);
  refused(() => parseExportName("vm1@20261125"), /neither lsn:N nor an ISO 8601 time/);
  refused(() => parseExportName("vm1@"), /after "@": empty/);
});

test("snapshot names must address their snapshot: names the point grammar reads otherwise are refused when created", () => {
  for (const name of ["daily", "before-upgrade", "snap-2026-11-25", "v1", "1a", "2026-11-25-nightly", "x2026-11-25"]) {
    assert.equal(checkNewSnapshotName(name), name);
    assert.deepEqual(parsePoint(name, "--at"), { kind: "snapshot", name }, `${name} reads as itself`);
  }
  refused(
    () => checkNewSnapshotName("2026-11-25"),
    /^invalid snapshot name "2026-11-25": DISK@2026-11-25 and --at 2026-11-25 would read it as a point in time; .*snap-2026-11-25/,
  );
  for (const name of ["20261125", "1", "1.5", "2026-11-25T10Z", "1-2-3"])
    refused(() => checkNewSnapshotName(name), /would read it as a malformed point in time/);
  refused(() => checkNewSnapshotName("baseline"), /reserved: .*baseline/);
  refused(() => checkNewSnapshotName("current"), /reserved: .*current volume/);
  refused(() => checkNewSnapshotName("a:b"), /invalid snapshot name/);
  // Disks are never parsed as points: any valid name will do.
  assert.equal(checkName("disk", "2026-11-25"), "2026-11-25");
});

test("a resolved point for people: its LSN and its time, or the baseline", () => {
  assert.equal(describePoint(12, "2026-11-25T10:00:00.000Z"), "LSN 12 (2026-11-25T10:00:00.000Z)");
  assert.equal(describePoint(0, null), "LSN 0 (the baseline)");
});
