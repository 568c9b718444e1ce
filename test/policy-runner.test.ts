/**
 * Goal: the server's policy runner (src/policy/runner.ts) makes scheduled snapshots and applies
 * retention as SPEC §4.1 says, over long stretches of time and through what goes wrong: DST
 * changes in a named zone, the server down for days (exactly one catch-up snapshot at start,
 * never a burst), the clock stepped back (nothing twice) and forward (one catch-up), policies
 * changed while it runs, retention rules changed while it is down (retention runs at start), a
 * manual snapshot (never pruned), a disk deleted while its slot runs, a full disk.
 *
 * Method: a real Store in a temp directory and the runner on it, both driven by one ManualClock
 * (test/support/manual-clock.ts): the test moves the clock to every moment where something is
 * due — the runner's own wake-ups and, independently, every slot of a model of the schedule — waits
 * for the runner to settle, and compares the scheduled snapshots on the disk with a model. The
 * model is written here from the SPEC's words: its slots are computed from wall-clock times in
 * the zone (not by croner or schedule.ts), a visit runs the latest slot passed if it is after the
 * last one run, and retention is the independent model of test/support/retention-model.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DirectoryMedium } from "../src/engine/index.js";
import { PolicyRunner } from "../src/policy/runner.js";
import type { RetainedSnapshot, Retention } from "../src/store/policy/retention.js";
import type { StoreEvent } from "../src/store/event-log.js";
import type { PolicyUpdate } from "../src/store/operations/index.js";
import { Store } from "../src/store/store.js";
import { ManualClock } from "./support/manual-clock.js";
import { collect } from "./support/ndjson.js";
import { Quota, QuotaMedium } from "./support/quota-medium.js";
import { modelKept, wallClock } from "./support/retention-model.js";
import { tempDir } from "./support/temp-dir.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const DISK = "vm1";
const iso = (ms: number) => new Date(ms).toISOString().replace(".000", "");

// ---- The model ------------------------------------------------------------------------------

/** Slots, sorted, over the simulated range: computed from wall-clock times, not by the code under test. */
type Slots = number[];

/** The instant a wall-clock time first happens on a local date, or undefined when the date skips it. */
function firstInstantOf(date: string, time: string, timezone: string): number | undefined {
  const [year, month, day] = date.split("-").map(Number);
  const [hour, minute] = time.split(":").map(Number);
  const guess = Date.UTC(year, month - 1, day, hour, minute);
  let first: number | undefined;
  for (let offset = -15 * HOUR; offset <= 15 * HOUR; offset += 15 * MINUTE) {
    const candidate = guess - offset;
    if (wallClock(candidate, timezone) === `${date} ${time}:00` && (first === undefined || candidate < first)) first = candidate;
  }
  return first;
}

/** `MM HH * * *` as cron users expect: once a day, at the first pass of that time, or after the gap when DST skips it. */
function dailySlots(time: string, timezone: string, fromMs: number, toMs: number): Slots {
  const slots: Slots = [];
  for (let dayMs = fromMs - DAY; dayMs <= toMs + DAY; dayMs += DAY) {
    const date = new Date(dayMs).toISOString().slice(0, 10);
    let slot = firstInstantOf(date, time, timezone);
    // In the gap: the first wall-clock minute after it, the same day.
    for (let later = 1; slot === undefined && later <= 120; later++) {
      const [hour, minute] = time.split(":").map(Number);
      const shifted = hour * 60 + minute + later;
      slot = firstInstantOf(
        date,
        `${String(Math.floor(shifted / 60)).padStart(2, "0")}:${String(shifted % 60).padStart(2, "0")}`,
        timezone,
      );
    }
    if (slot !== undefined) slots.push(slot);
  }
  return [...new Set(slots)].sort((a, b) => a - b);
}

/** `0 * * * *`: every hour on the hour, a wall-clock hour repeated by DST once (its second pass is no slot). */
function hourlySlots(timezone: string, fromMs: number, toMs: number): Slots {
  const slots: Slots = [];
  for (let hourMs = Math.floor(fromMs / HOUR) * HOUR - DAY; hourMs <= toMs + DAY; hourMs += HOUR) {
    const wall = wallClock(hourMs, timezone);
    if (!wall.endsWith(":00:00")) continue;
    if (wallClock(hourMs - HOUR, timezone) === wall || wallClock(hourMs - 2 * HOUR, timezone) === wall) continue;
    slots.push(hourMs);
  }
  return slots;
}

function everySlots(seconds: number, fromMs: number, toMs: number): Slots {
  const slots: Slots = [];
  const periodMs = seconds * 1000;
  for (let slot = Math.floor((fromMs - DAY) / periodMs) * periodMs; slot <= toMs + DAY; slot += periodMs) slots.push(slot);
  return slots;
}

function autoName(slotMs: number): string {
  return `auto-${iso(slotMs).replace(/[-:]/g, "")}`;
}

/** What must be on the disk: the scheduler and retention as SPEC §4.1 says, step by step. */
class PolicyModel {
  /** The last slot run, or when the schedule was set. */
  lastRunMs: number;
  kept: RetainedSnapshot[] = [];
  created: number[] = [];
  prunedCount = 0;

  constructor(
    public slots: Slots,
    public retention: Retention,
    public readonly timezone: string,
    setAtMs: number,
  ) {
    this.lastRunMs = setAtMs;
  }

  nextSlotAfter(ms: number): number | undefined {
    return this.slots.find((slot) => slot > ms);
  }

  /** The runner looked at `nowMs`: the latest slot passed runs if it is after the last one run, then retention. */
  visit(nowMs: number): void {
    let latest: number | undefined;
    for (const slot of this.slots) if (slot <= nowMs) latest = slot;
    if (latest === undefined || latest <= this.lastRunMs) return;
    this.lastRunMs = latest;
    this.created.push(latest);
    this.kept.push({ name: autoName(latest), timeMs: latest });
    this.prune();
  }

  prune(): void {
    const keep = modelKept(this.kept, this.retention, this.timezone);
    this.prunedCount += this.kept.filter((snapshot) => !keep.has(snapshot.name)).length;
    this.kept = this.kept.filter((snapshot) => keep.has(snapshot.name));
  }

  /** A new schedule: no slot before `nowMs` is owed. */
  reschedule(slots: Slots, nowMs: number): void {
    this.slots = slots;
    this.lastRunMs = Math.max(this.lastRunMs, nowMs);
  }
}

// ---- The harness ----------------------------------------------------------------------------

interface Server {
  store: Store;
  runner: PolicyRunner;
}

/** The server's part that matters here: the store opened on the clock, the runner started on both. */
async function startServer(storePath: string, clock: ManualClock, options: { quota?: Quota } = {}): Promise<Server> {
  const quota = options.quota;
  const store = await Store.open(storePath, {
    mode: "server",
    nowMs: () => clock.nowMs(),
    mediumFor: quota === undefined ? undefined : (directory) => new QuotaMedium(new DirectoryMedium(directory), directory, quota),
  });
  const runner = PolicyRunner.start(store, { clock });
  await runner.settled();
  return { store, runner };
}

async function stopServer(server: Server): Promise<void> {
  await server.runner.stop();
  await server.store.close();
}

async function scheduledOnDisk(store: Store, disk = DISK): Promise<string[]> {
  return (await store.listSnapshots(disk))
    .map((snapshot) => snapshot.name)
    .filter((name) => name.startsWith("auto-"))
    .sort();
}

/** Moves the clock to `ms`, lets the runner act, tells the model, and compares. */
async function visit(server: Server, clock: ManualClock, model: PolicyModel, ms: number): Promise<void> {
  clock.set(ms);
  await server.runner.settled();
  model.visit(ms);
  const expected = model.kept.map((snapshot) => snapshot.name).sort();
  assert.deepEqual(await scheduledOnDisk(server.store), expected, `at ${iso(ms)}`);
}

/** Walks the clock to `untilMs` through every moment the runner or the model has something due. */
async function walk(server: Server, clock: ManualClock, model: PolicyModel, untilMs: number): Promise<void> {
  for (;;) {
    const runnerWake = clock.nextWakeMs();
    const modelSlot = model.nextSlotAfter(clock.nowMs());
    const candidates = [runnerWake, modelSlot].filter((ms): ms is number => ms !== undefined && ms > clock.nowMs());
    const next = candidates.length === 0 ? undefined : Math.min(...candidates);
    if (next === undefined || next > untilMs) break;
    await visit(server, clock, model, next);
  }
  await visit(server, clock, model, untilMs);
}

async function eventsOf(store: Store, type: string): Promise<StoreEvent[]> {
  return (await collect(store.readEvents({}))).filter((event) => event.type === type);
}

async function newStore(prefix: string, clock: ManualClock, update: Omit<PolicyUpdate, "disk">): Promise<Server> {
  const storePath = tempDir(prefix);
  await Store.init(storePath);
  const server = await startServer(storePath, clock);
  await server.store.createDisk({ name: DISK, sizeBytes: 1024 * 1024 });
  await server.store.setPolicy({ disk: DISK, ...update });
  await server.runner.settled();
  return server;
}

// ---- The tests ------------------------------------------------------------------------------

test("a simulated year of a daily schedule in Europe/Berlin: DST, downtime, clock steps and policy changes; retention as the model says", async () => {
  const timezone = "Europe/Berlin";
  const startMs = Date.parse("2025-01-01T00:00:00Z");
  const endMs = Date.parse("2026-01-01T00:00:00Z");
  const daily = dailySlots("02:30", timezone, startMs, endMs);
  const clock = new ManualClock(startMs);
  const retention: Retention = { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 6 };
  let server = await newStore("runner-year", clock, { snapshotCron: "30 2 * * *", timezone, ...retention });
  const storePath = server.store.path;
  const model = new PolicyModel(daily, retention, timezone, startMs);

  await walk(server, clock, model, Date.parse("2025-02-10T12:00:00Z"));
  await server.store.createSnapshot({ disk: DISK, name: "manual-keep" });

  // Down for four and a half days: at start, exactly one catch-up snapshot (the latest slot missed).
  await stopServer(server);
  clock.set(Date.parse("2025-02-15T09:00:00Z"));
  server = await startServer(storePath, clock);
  model.visit(clock.nowMs());
  assert.deepEqual(model.created.slice(-2).map(iso), ["2025-02-10T01:30:00Z", "2025-02-15T01:30:00Z"], "one catch-up, not five");
  assert.deepEqual(await scheduledOnDisk(server.store), model.kept.map((snapshot) => snapshot.name).sort());

  // Down for an hour, no slot missed, retention changed meanwhile: retention runs at start.
  await walk(server, clock, model, Date.parse("2025-03-10T10:00:00Z"));
  await stopServer(server);
  await Store.open(storePath, { nowMs: () => clock.nowMs() }).then(async (direct) => {
    await direct.setPolicy({ disk: DISK, keepDaily: 2, keepWeekly: 2 });
    await direct.close();
  });
  clock.set(Date.parse("2025-03-10T11:00:00Z"));
  model.retention = { ...retention, keepDaily: 2, keepWeekly: 2 };
  model.prune();
  server = await startServer(storePath, clock);
  assert.deepEqual(await scheduledOnDisk(server.store), model.kept.map((snapshot) => snapshot.name).sort(), "pruned at start");

  // Through the spring change (02:30 does not exist on 2025-03-30: 03:00 CEST, 01:00Z).
  await walk(server, clock, model, Date.parse("2025-06-01T12:00:00Z"));
  assert.ok(model.created.includes(Date.parse("2025-03-30T01:00:00Z")));

  // The clock steps back three days: nothing runs twice; it waits for time to pass the last slot run.
  const createdBeforeStep = model.created.length;
  clock.set(Date.parse("2025-05-29T12:00:00Z"));
  await server.runner.settled();
  await walk(server, clock, model, Date.parse("2025-06-02T12:00:00Z"));
  assert.equal(model.created.length, createdBeforeStep + 1, "after the step back, only 2025-06-02's slot");

  // The clock steps forward ten days: one catch-up.
  await walk(server, clock, model, Date.parse("2025-07-01T12:00:00Z"));
  const createdBeforeJump = model.created.length;
  await visit(server, clock, model, Date.parse("2025-07-11T12:00:00Z"));
  assert.equal(model.created.length, createdBeforeJump + 1, "one catch-up after a step forward");

  // Policy changed at runtime: every 6 hours for three weeks, then the daily cron again.
  await walk(server, clock, model, Date.parse("2025-08-01T07:00:00Z"));
  await server.store.setPolicy({ disk: DISK, snapshotEverySeconds: 6 * 3600 });
  model.reschedule(everySlots(6 * 3600, startMs, endMs), clock.nowMs());
  await server.runner.settled();
  await walk(server, clock, model, Date.parse("2025-08-21T07:00:00Z"));
  await server.store.setPolicy({ disk: DISK, snapshotCron: "30 2 * * *" });
  model.reschedule(daily, clock.nowMs());
  await server.runner.settled();

  // Through the autumn change (02:30 comes twice on 2025-10-26: once, at 00:30Z) to the year's end.
  await walk(server, clock, model, endMs);
  assert.ok(model.created.includes(Date.parse("2025-10-26T00:30:00Z")));
  assert.ok(!model.created.includes(Date.parse("2025-10-26T01:30:00Z")));

  const created = await eventsOf(server.store, "snapshot-created");
  const deleted = await eventsOf(server.store, "snapshot-deleted");
  assert.equal(created.filter((event) => event.reason === "scheduled").length, model.created.length);
  assert.deepEqual(
    created.filter((event) => event.reason === "scheduled").map((event) => event.snapshot),
    model.created.map(autoName),
    "every slot once, in order",
  );
  assert.deepEqual(
    created.filter((event) => event.details?.catchUp === true).map((event) => event.snapshot),
    [autoName(Date.parse("2025-02-15T01:30:00Z")), autoName(Date.parse("2025-07-11T00:30:00Z"))],
    "the catch-ups (after downtime, after the step forward) say so; no other run does",
  );
  assert.equal(deleted.filter((event) => event.reason === "retention").length, model.prunedCount);
  assert.equal(deleted.length, model.prunedCount, "nothing deleted but by retention");
  assert.ok(
    (await server.store.listSnapshots(DISK)).some((snapshot) => snapshot.name === "manual-keep"),
    "manual snapshots stay",
  );
  assert.deepEqual(await eventsOf(server.store, "schedule-failed"), []);
  assert.ok(model.created.length > 330, `${model.created.length} scheduled snapshots in the year`);
  await stopServer(server);
});

for (const timezone of ["America/New_York", "Europe/Berlin"]) {
  test(`hourly in ${timezone} through both DST changes: the repeated hour once, the skipped hour skipped, retention in the zone`, async () => {
    const spring = timezone === "America/New_York" ? "2025-03-09" : "2025-03-30";
    const autumn = timezone === "America/New_York" ? "2025-11-02" : "2025-10-26";
    const startMs = Date.parse(`${spring}T00:00:00Z`) - 2 * DAY;
    const clock = new ManualClock(startMs);
    const retention: Retention = { keepLast: 4, keepHourly: 30, keepDaily: 3, keepWeekly: 2 };
    let server = await newStore("runner-dst", clock, { snapshotCron: "0 * * * *", timezone, ...retention });
    const storePath = server.store.path;
    const slots = hourlySlots(timezone, startMs, Date.parse(`${autumn}T00:00:00Z`) + 3 * DAY);
    const model = new PolicyModel(slots, retention, timezone, startMs);
    await walk(server, clock, model, Date.parse(`${spring}T00:00:00Z`) + 3 * DAY);
    // The spring day has 23 hours, so 23 slots.
    const onDay = (date: string) => model.created.filter((slot) => wallClock(slot, timezone).startsWith(date)).length;
    assert.equal(onDay(spring), 23);

    // Down from spring to autumn: one catch-up, then the autumn change.
    await stopServer(server);
    clock.set(Date.parse(`${autumn}T00:00:00Z`) - 2 * DAY + 30 * MINUTE);
    server = await startServer(storePath, clock);
    const before = model.created.length;
    model.visit(clock.nowMs());
    assert.equal(model.created.length, before + 1, "one catch-up after months down");
    await walk(server, clock, model, Date.parse(`${autumn}T00:00:00Z`) + 3 * DAY);
    // The autumn day has 25 hours; the repeated hour runs once: 24 slots.
    assert.equal(onDay(autumn), 24);
    for (let index = 1; index < model.created.length; index++)
      assert.notEqual(wallClock(model.created[index], timezone), wallClock(model.created[index - 1], timezone));
    assert.deepEqual(await eventsOf(server.store, "schedule-failed"), []);
    await stopServer(server);
  });
}

test("a slot whose run outlasts two periods: the slot due when it ends is on time (no catch-up), the one in between is skipped", async () => {
  const startMs = Date.parse("2025-05-01T00:00:00Z");
  const clock = new ManualClock(startMs);
  const storePath = tempDir("runner-overrun");
  await Store.init(storePath);
  // The store reads the clock while it takes the snapshot: once armed, that read finds 2.5 hours gone.
  let overrunOnce = false;
  const store = await Store.open(storePath, {
    mode: "server",
    nowMs: () => {
      if (overrunOnce) {
        overrunOnce = false;
        clock.set(clock.nowMs() + 2.5 * HOUR);
      }
      return clock.nowMs();
    },
  });
  const runner = PolicyRunner.start(store, { clock });
  try {
    await store.createDisk({ name: DISK, sizeBytes: 1024 * 1024 });
    await store.setPolicy({ disk: DISK, snapshotEverySeconds: 3600 });
    await runner.settled();
    overrunOnce = true;
    clock.set(startMs + HOUR);
    await runner.settled();
    const created = (await eventsOf(store, "snapshot-created")).filter((event) => event.reason === "scheduled");
    assert.deepEqual(
      created.map((event) => event.snapshot),
      [autoName(startMs + HOUR), autoName(startMs + 3 * HOUR)],
    );
    assert.deepEqual(
      created.map((event) => event.details?.catchUp === true),
      [false, false],
      "neither is a catch-up: the first was awaited, the second came due while the first ran",
    );
  } finally {
    await runner.stop();
    await store.close();
  }
});

test("disks deleted while their slot runs and before it, one made again: the runner goes on; a schedule stopped and set again at runtime", async () => {
  const startMs = Date.parse("2025-05-01T00:00:00Z");
  const clock = new ManualClock(startMs);
  const server = await newStore("runner-delete", clock, { snapshotEverySeconds: 3600, keepLast: 2 });
  for (const name of ["early", "other"]) {
    await server.store.createDisk({ name, sizeBytes: 1024 * 1024 });
    await server.store.setPolicy({ disk: name, snapshotEverySeconds: 3600 });
  }
  await server.runner.settled();
  assert.deepEqual(server.runner.scheduledDisks, ["early", "other", DISK]);

  // The slot comes. "early" is deleted before its schedule wakes; vm1 once its snapshot is under way.
  clock.set(startMs + HOUR);
  const earlyDeleted = server.store.deleteDisk("early");
  await new Promise((resolve) => setImmediate(resolve));
  await Promise.all([earlyDeleted, server.store.deleteDisk(DISK)]);
  await server.runner.settled();
  assert.deepEqual(server.runner.scheduledDisks, ["other"]);
  assert.deepEqual(await eventsOf(server.store, "schedule-failed"), []);
  assert.deepEqual(await eventsOf(server.store, "retention-failed"), []);
  assert.deepEqual(await scheduledOnDisk(server.store, "other"), [autoName(startMs + HOUR)]);
  const vm1Events = (await collect(server.store.readEvents({}))).filter((event) => event.disk === DISK).map((event) => event.type);
  assert.deepEqual(vm1Events.slice(-2), ["snapshot-created", "disk-deleted"], "the run under way completed, then the delete");

  // Made again under the same name, with a schedule: it runs from its next slot.
  await server.store.createDisk({ name: DISK, sizeBytes: 1024 * 1024 });
  await server.store.setPolicy({ disk: DISK, snapshotEverySeconds: 1800 });
  await server.runner.settled();
  clock.set(startMs + HOUR + 30 * MINUTE);
  await server.runner.settled();
  assert.deepEqual(await scheduledOnDisk(server.store), [autoName(startMs + HOUR + 30 * MINUTE)]);

  // Stopped at runtime: no more slots; set again: slots from then on, none owed for the time it was off.
  await server.store.setPolicy({ disk: DISK, snapshotEverySeconds: null });
  await server.runner.settled();
  assert.deepEqual(server.runner.scheduledDisks, ["other"]);
  clock.set(startMs + 5 * HOUR + 10 * MINUTE);
  await server.runner.settled();
  assert.deepEqual(await scheduledOnDisk(server.store), [autoName(startMs + HOUR + 30 * MINUTE)]);
  await server.store.setPolicy({ disk: DISK, snapshotEverySeconds: 3600 });
  await server.runner.settled();
  assert.deepEqual(await scheduledOnDisk(server.store), [autoName(startMs + HOUR + 30 * MINUTE)], "nothing owed from before it was set");
  clock.set(startMs + 6 * HOUR);
  await server.runner.settled();
  assert.deepEqual(await scheduledOnDisk(server.store), [autoName(startMs + HOUR + 30 * MINUTE), autoName(startMs + 6 * HOUR)]);
  await stopServer(server);
});

test("a full disk: the scheduled snapshot fails as an event, is tried again with a growing delay (no spin), and runs once space is back", async () => {
  const startMs = Date.parse("2025-05-01T00:00:00Z");
  const clock = new ManualClock(startMs);
  const storePath = tempDir("runner-full");
  await Store.init(storePath);
  const quota = new Quota(Infinity);
  const server = await startServer(storePath, clock, { quota });
  await server.store.createDisk({ name: DISK, sizeBytes: 1024 * 1024 });
  await server.store.setPolicy({ disk: DISK, snapshotEverySeconds: 24 * 3600 });
  await server.runner.settled();

  quota.limitBytes = quota.usedBytes;
  clock.set(startMs + DAY);
  await server.runner.settled();
  const failures = await eventsOf(server.store, "schedule-failed");
  assert.equal(failures.length, 1, "one failure event, then a wait");
  assert.equal(failures[0].snapshot, autoName(startMs + DAY));
  assert.match(failures[0].message, /no space|ENOSPC/i);
  // Retries at 10 s, then 20 s, 40 s after: each one event, nothing in between.
  const wakes: number[] = [];
  for (let retry = 0; retry < 3; retry++) {
    const wake = clock.nextWakeMs()!;
    wakes.push(wake - clock.nowMs());
    clock.set(wake);
    await server.runner.settled();
  }
  assert.deepEqual(wakes, [10_000, 20_000, 40_000]);
  assert.equal((await eventsOf(server.store, "schedule-failed")).length, 4);
  quota.limitBytes = Infinity;
  clock.set(clock.nextWakeMs()!);
  await server.runner.settled();
  assert.deepEqual(await scheduledOnDisk(server.store), [autoName(startMs + DAY)], "the slot runs once space is back");
  assert.equal(clock.nextWakeMs(), startMs + 2 * DAY, "then the schedule's own next slot");
  await stopServer(server);
});
