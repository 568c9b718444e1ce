/**
 * Goal: the time index (src/engine/tables/time-index.ts) answers "when was LSN x written" and
 * "which LSN was current at time t" as a per-entry record of times would, exactly inside the
 * window and to within the resolution before the bound it was thinned at — points in time and
 * the history window rest on it (docs/history.md).
 *
 * Method: fast-check drives the index with the calls the engine makes — batches (add, with a
 * clock that may step back), rolled-back batches (truncateAfter) and thinning (thinBefore at any
 * bound, one resolution per run, as the engine uses one) — next to a tiny model: the time of
 * every entry, each marked exact or "coarse" (it lay before a thinning bound). After every step
 * timeOf, lsnAtTime, lastTimeMs and the points themselves are checked against the model; then a
 * few examples pin the edges (empty index, the first point, a point replaced at the same LSN).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { TimeIndex } from "../src/engine/tables/time-index.js";
import { withCauseShown } from "./support/fast-check-report.js";

/** Every entry's time as the engine stamped it (index = LSN − 1), and whether thinning may have coarsened it. */
class TimeModel {
  readonly times: number[] = [];
  readonly coarse: boolean[] = [];

  get lsnLast(): number {
    return this.times.length;
  }

  /** A batch of `count` entries at `timeMs`, held at the last time when the clock stepped back. */
  batch(count: number, timeMs: number): void {
    const held = Math.max(timeMs, this.times[this.times.length - 1] ?? -Infinity);
    for (let index = 0; index < count; index++) {
      this.times.push(held);
      this.coarse.push(false);
    }
  }

  truncateAfter(lsnLast: number): void {
    this.times.length = Math.min(this.times.length, lsnLast);
    this.coarse.length = this.times.length;
  }

  thinBefore(lsnBound: number): void {
    for (let lsn = 1; lsn < Math.min(lsnBound, this.lsnLast + 1); lsn++) this.coarse[lsn - 1] = true;
  }

  timeOf(lsn: number): number {
    return this.times[lsn - 1];
  }

  /** The last entry written at or before `timeMs` (0 when every entry is younger). */
  lsnAtTime(timeMs: number): number {
    let lsn = 0;
    while (lsn < this.times.length && this.times[lsn] <= timeMs) lsn++;
    return lsn;
  }
}

type Step =
  { kind: "batch"; count: number; clockStepMs: number } | { kind: "rollback"; count: number } | { kind: "thin"; boundPick: number };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      count: fc.integer({ min: 1, max: 6 }),
      clockStepMs: fc.integer({ min: -40, max: 400 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("rollback" as const), count: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("thin" as const), boundPick: fc.double({ min: 0, max: 1.1, noNaN: true }) }) },
);

function check(index: TimeIndex, model: TimeModel, resolutionMs: number): void {
  const lsnLast = model.lsnLast;
  // The points: LSNs and times strictly increasing, never more than the entries.
  for (let point = 1; point < index.count; point++) {
    assert.ok(index.lsnAt(point) > index.lsnAt(point - 1), `point LSNs increase at ${point}`);
    assert.ok(index.timeMsAt(point) > index.timeMsAt(point - 1), `point times increase at ${point}`);
  }
  assert.ok(index.count <= lsnLast, `${index.count} points for ${lsnLast} entries`);
  if (index.count > 0) assert.ok(index.lsnAt(index.count - 1) <= lsnLast, "no point past the last entry");
  // The newest entry's time: exact unless a rollback went back into what was thinned.
  if (lsnLast === 0 || !model.coarse[lsnLast - 1]) assert.equal(index.lastTimeMs, lsnLast === 0 ? 0 : model.timeOf(lsnLast), "lastTimeMs");
  else assert.equal(index.lastTimeMs, index.timeOf(lsnLast), "lastTimeMs (coarse)");

  // timeOf: exact, or (coarse) at most one resolution early, never late.
  assert.equal(index.timeOf(0), 0);
  for (let lsn = 1; lsn <= lsnLast; lsn++) {
    const reported = index.timeOf(lsn);
    const truth = model.timeOf(lsn);
    if (!model.coarse[lsn - 1]) assert.equal(reported, truth, `timeOf(${lsn})`);
    else assert.ok(reported <= truth && truth - reported < resolutionMs, `timeOf(${lsn}) = ${reported}, written at ${truth} (coarse)`);
  }

  // lsnAtTime at every time that matters: each entry's time and its neighbours, before and after all.
  const times = new Set<number>([0, Number.MAX_SAFE_INTEGER]);
  for (const time of model.times) for (const near of [time - resolutionMs, time - 1, time, time + 1]) times.add(near);
  for (const timeMs of times) {
    const answer = index.lsnAtTime(timeMs, lsnLast);
    const truth = model.lsnAtTime(timeMs);
    assert.ok(answer >= truth && answer <= lsnLast, `lsnAtTime(${timeMs}) = ${answer}: not before ${truth}, not past ${lsnLast}`);
    if (truth === lsnLast || !model.coarse[truth]) assert.equal(answer, truth, `lsnAtTime(${timeMs}) with the next entry exact`);
    if (answer > truth)
      assert.ok(model.timeOf(answer) < timeMs + resolutionMs, `lsnAtTime(${timeMs}) = ${answer} is within the resolution`);
    // The same answer as timeOf gives: the last entry whose known time is at or before timeMs.
    if (answer < lsnLast) assert.ok(index.timeOf(answer + 1) > timeMs, `timeOf(${answer + 1}) is after ${timeMs}`);
    if (answer > 0) assert.ok(index.timeOf(answer) <= timeMs, `timeOf(${answer}) is at or before ${timeMs}`);
  }
}

test("the time index matches a per-entry model through batches, rollbacks and thinning (fast-check)", async () => {
  await withCauseShown(async () =>
    fc.assert(
      fc.property(fc.constantFrom(1, 7, 100, 1000), fc.array(stepArbitrary, { maxLength: 80, size: "max" }), (resolutionMs, steps) => {
        const index = new TimeIndex();
        const model = new TimeModel();
        let clockMs = 1_700_000_000_000;
        for (const step of steps) {
          if (step.kind === "batch") {
            clockMs += step.clockStepMs;
            index.add(model.lsnLast + 1, clockMs);
            model.batch(step.count, clockMs);
          } else if (step.kind === "rollback") {
            const lsnLast = Math.max(0, model.lsnLast - step.count);
            index.truncateAfter(lsnLast);
            model.truncateAfter(lsnLast);
          } else {
            const lsnBound = Math.floor(step.boundPick * (model.lsnLast + 1));
            index.thinBefore(lsnBound, resolutionMs);
            model.thinBefore(lsnBound);
            // Before the point at or before the bound, kept points are a resolution apart.
            for (let point = 1; point < index.count && index.lsnAt(point) <= lsnBound; point++) {
              const last = point === index.count - 1 || index.lsnAt(point + 1) > lsnBound;
              if (!last)
                assert.ok(index.timeMsAt(point) - index.timeMsAt(point - 1) >= resolutionMs, `points ${point - 1} and ${point} thinned`);
            }
          }
          check(index, model, resolutionMs);
        }
      }),
      { numRuns: 300 },
    ),
  );
});

test("thinning bounds the index: a thousand batches a millisecond apart before the bound keep one point per resolution", () => {
  const index = new TimeIndex();
  for (let lsn = 1; lsn <= 1000; lsn++) index.add(lsn, 10_000 + lsn);
  index.add(1001, 50_000);
  index.thinBefore(1001, 100);
  assert.ok(index.count <= 12, `${index.count} points`);
  assert.equal(index.lsnAtTime(50_000, 1001), 1001, "the view at or after the bound maps exactly");
  assert.equal(index.lsnAtTime(49_999, 1001), 1000);
  assert.equal(index.timeOf(1001), 50_000);
});

test("edges: the empty index, before the first point, a clock stepped back, a point replaced at the same LSN", () => {
  const index = new TimeIndex();
  assert.equal(index.count, 0);
  assert.equal(index.timeOf(5), 0, "no point: time 0");
  assert.equal(index.lsnAtTime(123, 7), 7, "no point: every entry counts as written at or before any time");
  assert.equal(index.lastTimeMs, 0);

  index.add(1, 1000);
  assert.equal(index.lsnAtTime(999, 3), 0, "before the first point: no entry yet");
  assert.equal(index.lsnAtTime(1000, 3), 3);

  index.add(4, 900);
  assert.equal(index.count, 1, "a clock stepped back holds the last time: no new point");
  assert.equal(index.timeOf(4), 1000);
  index.add(5, 1000);
  assert.equal(index.count, 1, "the same millisecond: no new point");

  index.add(8, 2000);
  index.add(8, 3000);
  assert.deepEqual([index.count, index.lsnAt(1), index.timeMsAt(1)], [2, 8, 3000], "a point at the same LSN is replaced");
  index.add(6, 4000);
  assert.deepEqual([index.count, index.lsnAt(1), index.timeMsAt(1)], [2, 6, 4000], "a point at an earlier LSN replaces the later ones");

  index.truncateAfter(5);
  assert.equal(index.count, 1);
  index.truncateAfter(0);
  assert.equal(index.count, 0);
});
