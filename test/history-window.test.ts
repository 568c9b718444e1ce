/**
 * Goal: the history window's rules (src/engine/history/history-window.ts) at their edges — which
 * views can be attached by LSN (checkViewAvailable) and by time (viewAtTime), and what the window
 * says it is (historyWindow): a zero window, the recorded horizon, snapshot cuts and pins outside
 * the window, times in the future and before the window, the boundaries themselves.
 *
 * Method: examples on a disk's tables built by hand — thirty entries in three batches ten seconds
 * apart (LSNs 1–10 at T, 11–20 at T+10 s, 21–30 at T+20 s) — with the clock, the window, the
 * horizon, the cuts and the pins set per case; each answer and each refusal (its code and what
 * its message names) is checked.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkViewAvailable, historyWindow, viewAtTime, type WindowInput } from "../src/engine/history/history-window.js";
import { DiskState } from "../src/engine/tables/disk-state.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";

const DISK = "d0";
const T = Date.UTC(2026, 0, 2, 3, 0, 0);
const SECOND = 1000;

/** Entries 1–10 at T, 11–20 at T+10 s, 21–30 at T+20 s; LSN 30 is the current volume. */
function disk(): DiskState {
  const state = new DiskState(false, false);
  for (let lsn = 1; lsn <= 30; lsn++) state.append(lsn % 7, lsn, 0);
  state.times.add(1, T);
  state.times.add(11, T + 10 * SECOND);
  state.times.add(21, T + 20 * SECOND);
  return state;
}

function input(state: DiskState, historySeconds: number, nowMs: number, lsnVisible = 30): WindowInput {
  return { diskName: DISK, state, lsnVisible, historySeconds, nowMs };
}

/** `action` must throw a SnaplogError of `code` whose message matches `message`. */
function assertRefused(action: () => unknown, code: string, message: RegExp): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof SnaplogError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

const outside = (what: RegExp) => (action: () => unknown) => assertRefused(action, ErrorCodes.OUTSIDE_WINDOW, what);

test("window 0: only the current view, the baseline and the cuts and pins can be attached", () => {
  const state = disk();
  state.insertSnapshot({ name: "s", lun: 1, lsn: 12, timeMs: T + 10 * SECOND });
  state.pin(5);
  const now = input(state, 0, T + 25 * SECOND);
  assert.deepEqual(historyWindow(now), { historySeconds: 0, lsnFirst: 30, timeMsFirst: T + 20 * SECOND, lsnLast: 30 });
  for (const lsn of [30, 0, 12, 5]) checkViewAvailable(now, lsn);
  for (const lsn of [29, 1, 11, 13])
    outside(/its history window is 0 \(only the current volume, LSN 30, and its snapshots\)/)(() => checkViewAvailable(now, lsn));
  assert.equal(viewAtTime(now, T + 25 * SECOND), 30, "now is the current view");
  outside(/is outside the history window/)(() => viewAtTime(now, T + 25 * SECOND - 1));
  state.unpin(5);
  outside(/outside the history window/)(() => checkViewAvailable(now, 5));
});

test("a window reaches back historySeconds from now: its first view is the disk as it was then", () => {
  const state = disk();
  // now − 15 s = T+10 s: the last entry written by then is 20.
  const now = input(state, 15, T + 25 * SECOND);
  assert.deepEqual(historyWindow(now), { historySeconds: 15, lsnFirst: 20, timeMsFirst: T + 10 * SECOND, lsnLast: 30 });
  checkViewAvailable(now, 20);
  checkViewAvailable(now, 30);
  checkViewAvailable(now, 0);
  outside(/LSN 19 is outside the history window of disk d0: it keeps every write from .* \(LSN 20\) to now \(LSN 30\), a 15 s window/)(() =>
    checkViewAvailable(now, 19),
  );

  // One millisecond earlier, the window starts one batch earlier only once its time has passed.
  assert.equal(historyWindow(input(state, 15, T + 25 * SECOND - 1)).lsnFirst, 10);
  assert.equal(historyWindow(input(state, 15, T + 25 * SECOND + 10 * SECOND)).lsnFirst, 30, "T+20 s: the newest batch");
});

test("a window longer than the disk's life starts at its creation (LSN 0, time 0)", () => {
  const now = input(disk(), 3600, T + 25 * SECOND);
  assert.deepEqual(historyWindow(now), { historySeconds: 3600, lsnFirst: 0, timeMsFirst: 0, lsnLast: 30 });
  for (const lsn of [0, 1, 15, 30]) checkViewAvailable(now, lsn);
  outside(/it keeps every write from its creation \(LSN 0\) to now \(LSN 30\)/)(() => viewAtTime(now, T + 25 * SECOND - 3601 * SECOND));
  assert.equal(viewAtTime(now, T - 1), 0, "before the first write: the empty disk");
});

test("the horizon cuts the window: views before it are gone even inside historySeconds", () => {
  const state = disk();
  state.lsnHorizon = 25;
  const now = input(state, 3600, T + 25 * SECOND);
  assert.deepEqual(historyWindow(now), { historySeconds: 3600, lsnFirst: 25, timeMsFirst: T + 20 * SECOND, lsnLast: 30 });
  checkViewAvailable(now, 25);
  outside(/LSN 24 is outside/)(() => checkViewAvailable(now, 24));
  outside(/is outside the history window/)(() => viewAtTime(now, T + 15 * SECOND));
  assert.equal(viewAtTime(now, T + 20 * SECOND), 30);

  // A horizon older than the time-based start does not widen the window.
  state.lsnHorizon = 5;
  assert.equal(historyWindow(input(state, 15, T + 25 * SECOND)).lsnFirst, 20);
});

test("cuts and pins outside the window stay attachable by LSN, never by time", () => {
  const state = disk();
  state.insertSnapshot({ name: "old", lun: 1, lsn: 3, timeMs: T });
  state.pin(15);
  const now = input(state, 15, T + 25 * SECOND);
  checkViewAvailable(now, 3);
  checkViewAvailable(now, 15);
  outside(/LSN 4 is outside/)(() => checkViewAvailable(now, 4));
  // T is the time of the cut at LSN 3, but it lies before the window: refused by time.
  outside(/is outside the history window of disk d0/)(() => viewAtTime(now, T + 5 * SECOND));
});

test("the future: a later LSN than the current view, a time after now", () => {
  const state = disk();
  const now = input(state, 3600, T + 25 * SECOND);
  outside(/LSN 31 of disk d0 is in the future: its newest LSN is 30/)(() => checkViewAvailable(now, 31));
  outside(/is in the future for disk d0/)(() => viewAtTime(now, T + 25 * SECOND + 1));
  assert.equal(viewAtTime(now, T + 25 * SECOND), 30);

  // Entries not yet published (lsnVisible 25) are the future too, and the window ends at them.
  const unpublished = input(state, 3600, T + 25 * SECOND, 25);
  assert.equal(historyWindow(unpublished).lsnLast, 25);
  outside(/LSN 26 of disk d0 is in the future: its newest LSN is 25/)(() => checkViewAvailable(unpublished, 26));
  assert.equal(viewAtTime(unpublished, T + 25 * SECOND), 25, "a time after the last batch maps to the current view");
  assert.equal(historyWindow(input(state, 15, T + 60 * SECOND, 25)).lsnFirst, 25);
});

test("views by time at the window's edges: its first millisecond is in, the one before is out", () => {
  const now = input(disk(), 15, T + 25 * SECOND);
  assert.equal(viewAtTime(now, T + 10 * SECOND), 20, "now − 15 s exactly");
  outside(/outside the history window/)(() => viewAtTime(now, T + 10 * SECOND - 1));
  assert.equal(viewAtTime(now, T + 15 * SECOND), 20, "between batches: the last one written by then");
  assert.equal(viewAtTime(now, T + 20 * SECOND - 1), 20);
  assert.equal(viewAtTime(now, T + 20 * SECOND), 30);
});

test("LSNs that are no LSN are invalid arguments", () => {
  const now = input(disk(), 3600, T + 25 * SECOND);
  for (const lsn of [-1, 1.5, Number.NaN, Infinity, 2 ** 53])
    assertRefused(() => checkViewAvailable(now, lsn), ErrorCodes.INVALID_ARGUMENT, /is not a valid LSN/);
  assertRefused(
    () => checkViewAvailable(now, -1, "point 'yesterday'"),
    ErrorCodes.INVALID_ARGUMENT,
    /^point 'yesterday' is not a valid LSN$/,
  );
});
