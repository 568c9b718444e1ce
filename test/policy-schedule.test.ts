/**
 * Goal: scheduled snapshots come when SPEC §4.1 says — DST as cron users expect in a named
 * zone, one catch-up after downtime or a clock step forward and never a burst, nothing again
 * for a slot already run when the clock steps back — and retention keeps exactly what its rules
 * say. Method: the pure parts (schedule.ts, due-slot.ts, retention.ts) driven through months of
 * simulated time in milliseconds; retention checked over a simulated year of hourly snapshots
 * (fast-check picks the rules, the zone and outages) against an independent model written here
 * from the SPEC's words, with its own bucket and ISO-week arithmetic (test/support/retention-model.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decideSlot } from "../src/store/policy/due-slot.js";
import { checkSchedule, latestSlotAtOrBefore, nextSlotAfter, type Schedule } from "../src/store/policy/schedule.js";
import { scheduledSnapshotName, slotOfScheduledName } from "../src/store/policy/scheduled-name.js";
import { snapshotsToPrune, type RetainedSnapshot } from "../src/store/policy/retention.js";
import { isoWeek } from "../src/store/policy/zoned-time.js";
import { modelIsoWeek, modelKept } from "./support/retention-model.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const iso = (ms: number | undefined) => (ms === undefined ? "none" : new Date(ms).toISOString().replace(".000", ""));

function slotsBetween(schedule: Schedule, fromMs: number, toMs: number): string[] {
  const slots: string[] = [];
  for (let slot = nextSlotAfter(schedule, fromMs); slot !== undefined && slot <= toMs; slot = nextSlotAfter(schedule, slot))
    slots.push(iso(slot));
  return slots;
}

test("hourly in Europe/Berlin: the repeated hour of 2025-10-26 runs once, the skipped hour of 2025-03-30 is skipped once", () => {
  const hourly: Schedule = { kind: "cron", expression: "0 * * * *", timezone: "Europe/Berlin" };
  // Local 01:00 CEST … 04:00 CET; local 02:00 happens twice (00:00Z and 01:00Z): one slot.
  assert.deepEqual(slotsBetween(hourly, Date.parse("2025-10-25T22:30:00Z"), Date.parse("2025-10-26T03:00:00Z")), [
    "2025-10-25T23:00:00Z",
    "2025-10-26T00:00:00Z",
    "2025-10-26T02:00:00Z",
    "2025-10-26T03:00:00Z",
  ]);
  // Local 01:00 CET, then 03:00 CEST: 02:00 does not exist.
  assert.deepEqual(slotsBetween(hourly, Date.parse("2025-03-29T23:30:00Z"), Date.parse("2025-03-30T02:00:00Z")), [
    "2025-03-30T00:00:00Z",
    "2025-03-30T01:00:00Z",
    "2025-03-30T02:00:00Z",
  ]);
});

test("a fixed time in the DST gap runs once after it; in the repeated hour, once (America/New_York and Europe/Berlin)", () => {
  const daily: Schedule = { kind: "cron", expression: "30 2 * * *", timezone: "America/New_York" };
  assert.deepEqual(slotsBetween(daily, Date.parse("2025-03-08T12:00:00Z"), Date.parse("2025-03-10T12:00:00Z")), [
    "2025-03-09T07:00:00Z", // 02:30 does not exist: 03:00 EDT, the same day
    "2025-03-10T06:30:00Z",
  ]);
  assert.deepEqual(slotsBetween(daily, Date.parse("2025-11-01T12:00:00Z"), Date.parse("2025-11-03T12:00:00Z")), [
    "2025-11-02T07:30:00Z", // 02:30 EST, once (01:00-02:00 repeats; 02:30 comes once)
    "2025-11-03T07:30:00Z",
  ]);
  const berlin: Schedule = { kind: "cron", expression: "30 2 * * *", timezone: "Europe/Berlin" };
  assert.deepEqual(slotsBetween(berlin, Date.parse("2025-10-25T12:00:00Z"), Date.parse("2025-10-26T12:00:00Z")), ["2025-10-26T00:30:00Z"]);
});

test("--snapshot-every slots are multiples of the interval since the epoch, in UTC", () => {
  const every: Schedule = { kind: "every", seconds: 15 * 60 };
  assert.equal(iso(latestSlotAtOrBefore(every, Date.parse("2025-10-26T00:52:10Z"))), "2025-10-26T00:45:00Z");
  assert.equal(iso(nextSlotAfter(every, Date.parse("2025-10-26T00:45:00Z"))), "2025-10-26T01:00:00Z");
  assert.deepEqual(
    slotsBetween({ kind: "every", seconds: DAY / 1000 }, Date.parse("2025-10-25T12:00:00Z"), Date.parse("2025-10-27T12:00:00Z")),
    ["2025-10-26T00:00:00Z", "2025-10-27T00:00:00Z"],
  );
});

test("after three days down, one catch-up slot, then the schedule's own slots; a clock step back runs nothing twice", () => {
  const hourly: Schedule = { kind: "cron", expression: "0 * * * *", timezone: "UTC" };
  const lastRun = Date.parse("2025-06-01T10:00:00Z");
  const back = Date.parse("2025-06-04T13:20:00Z");
  const decision = decideSlot(hourly, lastRun, back);
  assert.equal(iso(decision.dueMs), "2025-06-04T13:00:00Z", "the latest missed slot, once");
  assert.equal(iso(decision.wakeMs), "2025-06-04T14:00:00Z");
  const after = decideSlot(hourly, decision.dueMs!, back + 1000);
  assert.equal(after.dueMs, undefined, "no second catch-up");
  // The clock steps back two hours: the slots before the last one run are not due again.
  const stepped = decideSlot(hourly, decision.dueMs!, back - 2 * HOUR);
  assert.equal(stepped.dueMs, undefined);
  assert.equal(iso(stepped.wakeMs), "2025-06-04T14:00:00Z", "it waits for time to pass the last slot run");
  // A step forward of a week: one slot, not 168.
  assert.equal(iso(decideSlot(hourly, decision.dueMs!, back + 7 * DAY).dueMs), "2025-06-11T13:00:00Z");
});

test("a schedule driven every five minutes through a simulated month with DST changes and clock steps never bursts", () => {
  for (const timezone of ["Europe/Berlin", "America/New_York", "UTC"]) {
    const schedule: Schedule = { kind: "cron", expression: "*/20 * * * *", timezone };
    let lastRun = Date.parse("2025-10-20T00:00:00Z");
    let now = lastRun;
    const runs: number[] = [];
    const end = Date.parse("2025-11-20T00:00:00Z");
    const steps = new Map([
      [Date.parse("2025-11-01T00:00:00Z"), -3 * HOUR], // NTP steps back
      [Date.parse("2025-11-10T00:00:00Z"), 2 * DAY], // and forward
    ]);
    while (now < end) {
      now += 5 * 60_000;
      const step = steps.get(now);
      steps.delete(now);
      if (step !== undefined) now += step;
      const { dueMs } = decideSlot(schedule, lastRun, now);
      if (dueMs === undefined) continue;
      assert.ok(dueMs > lastRun && dueMs <= now, `${timezone}: due ${iso(dueMs)} after ${iso(lastRun)} at ${iso(now)}`);
      runs.push(dueMs);
      lastRun = dueMs;
    }
    const names = new Set(runs.map(scheduledSnapshotName));
    assert.equal(names.size, runs.length, `${timezone}: every scheduled name is unique`);
    for (let index = 1; index < runs.length; index++)
      assert.ok(runs[index] - runs[index - 1] >= 20 * 60_000, `${timezone}: two runs closer than the schedule`);
    // 31 days of 72 slots, less the 48 h jumped over (one catch-up for them), less the hour stepped back.
    assert.ok(runs.length > 31 * 72 - 2 * 72 - 10 && runs.length <= 31 * 72, `${timezone}: ${runs.length} runs`);
  }
});

test("schedules that cannot run are refused with a reason", () => {
  assert.throws(() => checkSchedule({ kind: "every", seconds: 0.5 }), /at least 1s/);
  assert.throws(() => checkSchedule({ kind: "cron", expression: "* * * *", timezone: "UTC" }), /4 fields/);
  assert.throws(() => checkSchedule({ kind: "cron", expression: "* * * * * * *", timezone: "UTC" }), /7 fields/);
  assert.throws(() => checkSchedule({ kind: "cron", expression: "61 * * * *", timezone: "UTC" }), /snapshot-cron/);
  assert.throws(() => checkSchedule({ kind: "cron", expression: "0 2 * * *", timezone: "Mars/Olympus" }), /not a time zone/);
  checkSchedule({ kind: "cron", expression: "0 */5 2 * * *", timezone: "Asia/Kolkata" });
});

test("scheduled names: auto-YYYYMMDDTHHMMSSZ in UTC, read back exactly, nothing else reads as one", () => {
  const slot = Date.parse("2026-11-25T10:00:00Z");
  assert.equal(scheduledSnapshotName(slot), "auto-20261125T100000Z");
  assert.equal(slotOfScheduledName("auto-20261125T100000Z"), slot);
  for (const name of ["auto-20261125T100000", "auto-20261132T100000Z", "auto-x", "daily", "auto-20261125T100000Z-1"])
    assert.equal(slotOfScheduledName(name), undefined, name);
});

// ---- Retention against an independent model ------------------------------------------------

test("ISO weeks: the code agrees with the ordinal-date rule for every day of 2020-2030", () => {
  for (let ms = Date.UTC(2020, 0, 1); ms < Date.UTC(2031, 0, 1); ms += DAY) {
    const date = new Date(ms).toISOString().slice(0, 10);
    const [year, month, day] = date.split("-").map(Number);
    const week = isoWeek(year, month, day);
    assert.equal(`${week.year}-W${week.week}`, modelIsoWeek(date), date);
  }
});

test("retention over a simulated year of hourly snapshots keeps exactly what the SPEC's rules keep", () => {
  const start = Date.parse("2025-01-01T00:00:00Z");
  fc.assert(
    fc.property(
      fc.record({
        keepLast: fc.nat({ max: 30 }),
        keepHourly: fc.nat({ max: 48 }),
        keepDaily: fc.nat({ max: 40 }),
        keepWeekly: fc.nat({ max: 12 }),
        keepMonthly: fc.nat({ max: 14 }),
      }),
      fc.constantFrom("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"),
      fc.array(fc.tuple(fc.nat({ max: 365 * 24 }), fc.integer({ min: 1, max: 24 * 20 })), { maxLength: 4 }),
      fc.integer({ min: 3, max: 12 }),
      (retention, timezone, outages, everyHours) => {
        // A year of slots every `everyHours` hours, minus outages; retention runs after each one.
        let kept: RetainedSnapshot[] = [];
        for (let hour = 0; hour < 365 * 24; hour += everyHours) {
          if (outages.some(([from, length]) => hour >= from && hour < from + length)) continue;
          const timeMs = start + hour * HOUR;
          kept.push({ name: scheduledSnapshotName(timeMs), timeMs });
          const pruned = new Set(snapshotsToPrune(kept, retention, timezone).map((snapshot) => snapshot.name));
          const expected = modelKept(kept, retention, timezone);
          const anyRule = Object.values(retention).some((count) => count > 0);
          for (const snapshot of kept) {
            const keep = !anyRule || expected.has(snapshot.name);
            assert.equal(!pruned.has(snapshot.name), keep, `${snapshot.name} in ${timezone} with ${JSON.stringify(retention)}`);
          }
          kept = kept.filter((snapshot) => !pruned.has(snapshot.name));
        }
        if (Object.values(retention).some((count) => count > 0)) assert.ok(kept.length > 0, "the newest is always kept");
      },
    ),
    { numRuns: 10 },
  );
});
