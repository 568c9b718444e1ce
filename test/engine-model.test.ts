/**
 * Goal: the engine is exactly the model (test/support/history-model.ts), through writes and
 * every history operation. Method: fast-check generates sequences of writes (aligned and
 * not), zeroes, trims, bursts of concurrent overlapping writes (partial-block merges follow
 * queue order), flushes, snapshots, snapshot deletes (merging or not), compactions (whole or
 * one partition), folds into the baseline, rollbacks and as-snapshot cuts to any point (in
 * the window or not), point-in-time reads by LSN and by time, window changes (0 ↔ 5 s), the
 * policy operations the engine serves — merge-oldest (the oldest snapshot folded into the
 * baseline, then deleted: SPEC §4.6) and the history cap (--history-max, SPEC §4.1) —
 * clock ticks that move the window, and clean or crash-like reopens (no final checkpoint),
 * on a small disk with a tiny checkpoint threshold and tiny segments so rotation, segment
 * boundaries, segment reuse and segment release happen often.
 * After every history operation and reopen, every kept view — current, baseline, each
 * snapshot and each point in time the window holds — must equal the model byte for byte
 * (before/after equality of all kept views), and points outside the window must be refused
 * with OUTSIDE_WINDOW. After every step the whole-disk check must pass: each version chain
 * is sound and each slot is held by one live entry, retiring, or free.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import { DiskEngine, BASELINE_FILE } from "../src/engine/disk-engine.js";
import { DirectoryMedium } from "../src/engine/medium.js";
import { DiskVolume, VolumeLife } from "../src/store/disk-volume.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { pattern } from "./support/data-pattern.js";
import { formatSnapshots, HistoryModel } from "./support/history-model.js";
import { withCauseShown } from "./support/fast-check-report.js";
import { tempDir } from "./support/temp-dir.js";

const BLOCK_BYTES = 512;
const BLOCK_COUNT = 40;
const SIZE_BYTES = BLOCK_BYTES * BLOCK_COUNT;
const WINDOW_SECONDS = 5;
const START_MS = Date.parse("2026-11-25T10:00:00Z");

type Op =
  | { t: "write"; offset: number; length: number; seed: number; fua: boolean }
  | { t: "zero" | "trim"; offset: number; length: number }
  | { t: "burst"; writes: { offset: number; length: number; seed: number }[] }
  | { t: "snapshot" }
  | { t: "flush" }
  | { t: "read"; volume: number; offset: number; length: number }
  | { t: "reopen"; clean: boolean }
  | { t: "tick"; ms: number }
  | { t: "delete"; pick: number; free: boolean }
  | { t: "compact"; pick: number; wholeDisk: boolean }
  | { t: "fold" }
  | { t: "rollback"; pick: number }
  | { t: "asSnapshot"; pick: number }
  | { t: "window"; zero: boolean }
  | { t: "mergeOldest" }
  | { t: "cap"; maxBlocks: number }
  | { t: "pointInTime"; pick: number; byTime: boolean; offset: number; length: number };

const range = fc
  .tuple(fc.integer({ min: 0, max: SIZE_BYTES - 1 }), fc.integer({ min: 1, max: 5 * BLOCK_BYTES }))
  .map(([offset, length]) => ({ offset, length: Math.min(length, SIZE_BYTES - offset) }));
const alignedRange = fc
  .tuple(fc.integer({ min: 0, max: BLOCK_COUNT - 1 }), fc.integer({ min: 1, max: 6 }))
  .map(([lba, blocks]) => ({ offset: lba * BLOCK_BYTES, length: Math.min(blocks, BLOCK_COUNT - lba) * BLOCK_BYTES }));

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.oneof(range, alignedRange), fc.integer(), fc.boolean())
      .map(([r, seed, fua]) => ({ t: "write" as const, ...r, seed, fua })),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom("zero" as const, "trim" as const), fc.oneof(range, alignedRange)).map(([t, r]) => ({ t, ...r })),
  },
  {
    weight: 2,
    // Concurrent writes, aligned or not, often to the same blocks: queue order must win.
    arbitrary: fc
      .array(
        fc.tuple(
          fc.oneof(
            range,
            alignedRange,
            range.map((r) => ({ offset: r.offset % (4 * BLOCK_BYTES), length: Math.min(r.length, 300) })),
          ),
          fc.integer(),
        ),
        { minLength: 2, maxLength: 8 },
      )
      .map((writes) => ({ t: "burst" as const, writes: writes.map(([r, seed]) => ({ ...r, seed })) })),
  },
  { weight: 2, arbitrary: fc.constant({ t: "snapshot" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "flush" as const }) },
  { weight: 2, arbitrary: fc.tuple(fc.nat(), range).map(([volume, r]) => ({ t: "read" as const, volume, ...r })) },
  { weight: 1, arbitrary: fc.boolean().map((clean) => ({ t: "reopen" as const, clean })) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 3000 }).map((ms) => ({ t: "tick" as const, ms })) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.boolean()).map(([pick, free]) => ({ t: "delete" as const, pick, free })) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.boolean()).map(([pick, wholeDisk]) => ({ t: "compact" as const, pick, wholeDisk })) },
  { weight: 1, arbitrary: fc.constant({ t: "fold" as const }) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ t: "rollback" as const, pick })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ t: "asSnapshot" as const, pick })) },
  { weight: 1, arbitrary: fc.boolean().map((zero) => ({ t: "window" as const, zero })) },
  { weight: 1, arbitrary: fc.constant({ t: "mergeOldest" as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 24 }).map((maxBlocks) => ({ t: "cap" as const, maxBlocks })) },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.nat(), fc.boolean(), range).map(([pick, byTime, r]) => ({ t: "pointInTime" as const, pick, byTime, ...r })),
  },
);

class Harness {
  engine!: DiskEngine;
  private lunNext = 10;
  private nameNext = 0;

  constructor(
    readonly directory: string,
    readonly model: HistoryModel,
  ) {}

  async open(): Promise<void> {
    this.engine = await DiskEngine.open(
      new DirectoryMedium(this.directory),
      { name: "model", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, historySeconds: this.model.windowSeconds },
      {},
      // Tiny journal and segments (8 slots): rotation, segment boundaries, reuse and release happen often.
      { journalCheckpointBytes: 2048, segmentSizeBytes: 8 * BLOCK_BYTES, spareSegmentCount: 1, clock: () => this.model.nowMs },
    );
  }

  volume(lsn: number, readOnly: boolean): DiskVolume {
    return new DiskVolume(this.engine, "model", "model", lsn, readOnly, new VolumeLife());
  }

  names(): { name: string; lun: number } {
    return { name: `s${this.nameNext++}`, lun: this.lunNext++ };
  }

  /** Every kept view equals the model, whole. */
  async expectKeptViews(context: string): Promise<void> {
    for (const [label, lsn, image] of this.model.keptViews()) {
      const actual = await this.volume(lsn, true).read(0, SIZE_BYTES);
      assert.ok(actual.equals(image), `${context}: ${label} differs from the model`);
    }
    assert.equal(formatSnapshots(this.engine.snapshots), this.model.snapshotList(), `${context}: snapshot list`);
  }

  expectSound(context: string): void {
    const problems = this.engine.checkIntegrity();
    assert.deepEqual(problems, [], `${context}: whole-disk check`);
  }
}

function expectOutsideWindow(error: unknown): true {
  assert.ok(error instanceof SnaplogError && error.code === ErrorCodes.OUTSIDE_WINDOW, `expected OUTSIDE_WINDOW, got ${String(error)}`);
  return true;
}

async function runOp(h: Harness, op: Op): Promise<void> {
  const model = h.model;
  const writable = h.volume(Infinity, false);
  switch (op.t) {
    case "write": {
      const data = pattern(op.seed, op.length);
      await writable.write(op.offset, data, { fua: op.fua });
      data.copy(model.current, op.offset);
      break;
    }
    case "zero":
      await writable.writeZeroes(op.offset, op.length, { fua: false, noHole: false });
      model.current.fill(0, op.offset, op.offset + op.length);
      break;
    case "trim":
      await writable.trim(op.offset, op.length, { fua: false });
      model.current.fill(0, op.offset, op.offset + op.length);
      break;
    case "burst": {
      // Issued in one turn of the event loop: one batch, applied in call order.
      const work = op.writes.map((w) => {
        const data = pattern(w.seed, w.length);
        const promise = writable.write(w.offset, data, { fua: false });
        data.copy(model.current, w.offset);
        return promise;
      });
      await Promise.all(work);
      break;
    }
    case "snapshot": {
      const { name, lun } = h.names();
      const cut = await h.engine.cutSnapshot(name, lun);
      assert.equal(cut.lsn, model.lsnCurrent, "a snapshot cuts at the log's end");
      model.snapshots.push({ name, lsn: cut.lsn, image: Buffer.from(model.current) });
      break;
    }
    case "flush":
      await writable.flush();
      break;
    case "read": {
      const views = model.keptViews();
      const [label, lsn, image] = views[op.volume % views.length];
      const actual = await h.volume(lsn, true).read(op.offset, op.length);
      assert.ok(actual.equals(image.subarray(op.offset, op.offset + op.length)), `${label} differs at [${op.offset}, +${op.length})`);
      return;
    }
    case "reopen":
      if (op.clean) await h.engine.close();
      else await h.engine.abandon();
      await h.open();
      await h.expectKeptViews(`after a ${op.clean ? "clean" : "crash-like"} reopen`);
      break;
    case "tick":
      model.nowMs += op.ms;
      return;
    case "delete": {
      if (model.snapshots.length === 0) {
        await assert.rejects(
          h.engine.deleteSnapshot("nothing-here"),
          (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.NOT_FOUND,
        );
        return;
      }
      const [gone] = model.snapshots.splice(op.pick % model.snapshots.length, 1);
      const result = await h.engine.deleteSnapshot(gone.name, { free: op.free });
      assert.equal(result.cut.lsn, gone.lsn);
      await h.expectKeptViews(`after deleting ${gone.name}`);
      break;
    }
    case "compact": {
      const snapshot = op.wholeDisk || model.snapshots.length === 0 ? undefined : model.snapshots[op.pick % model.snapshots.length].name;
      model.advanceHorizon();
      const result = await h.engine.compact({ snapshot });
      assert.equal(result.bytesMoved, 0, "in-place compaction moves no data");
      await h.expectKeptViews(`after compaction${snapshot === undefined ? "" : ` of ${snapshot}`}`);
      if (snapshot === undefined) assert.equal((await h.engine.space()).deadEntries, 0, "nothing dead after a whole compaction");
      break;
    }
    case "fold": {
      if (!foldPointKnown(model)) return;
      const lsnFold = model.fold();
      const result = await h.engine.foldIntoBaseline();
      assert.equal(result.lsnFold, lsnFold, "the fold point is the oldest kept view");
      await h.expectKeptViews(`after folding LSN ${lsnFold} into the baseline`);
      break;
    }
    case "rollback": {
      const state = model.states[op.pick % model.states.length];
      const { name, lun } = h.names();
      if (!model.isAvailable(state.lsn)) {
        await assert.rejects(h.engine.rollback(state.lsn, name, lun), expectOutsideWindow);
        return;
      }
      const target = Buffer.from(model.imageAt(state.lsn));
      const result = await h.engine.rollback(state.lsn, name, lun);
      assert.equal(result.cut.lsn, model.lsnCurrent, "the state before is cut at the log's end");
      model.snapshots.push({ name, lsn: model.lsnCurrent, image: Buffer.from(model.current) });
      model.current = target;
      break;
    }
    case "asSnapshot": {
      const state = model.states[op.pick % model.states.length];
      const { name, lun } = h.names();
      if (!model.isAvailable(state.lsn)) {
        await assert.rejects(h.engine.cutSnapshot(name, lun, state.lsn), expectOutsideWindow);
        return;
      }
      const cut = await h.engine.cutSnapshot(name, lun, state.lsn);
      assert.equal(cut.lsn, state.lsn);
      model.snapshots.push({ name, lsn: state.lsn, image: Buffer.from(model.imageAt(state.lsn)) });
      break;
    }
    case "window": {
      const seconds = op.zero ? 0 : WINDOW_SECONDS;
      await h.engine.setHistory(seconds);
      model.setWindow(seconds);
      await h.expectKeptViews(`after setting the window to ${seconds} s`);
      break;
    }
    case "mergeOldest":
      if (!(await mergeOldest(h))) return;
      break;
    case "cap":
      await capHistory(h, op.maxBlocks * BLOCK_BYTES);
      break;
    case "pointInTime":
      await pointInTime(h, op);
      return;
  }
  model.recordStep(h.engine.lsnLast);
}

/**
 * Whether the model knows the image a fold would copy now. A history cap may leave the horizon
 * inside a step (between two states the model recorded): the view there is the engine's to
 * know, so a fold to it is left out (folds to every other point are checked).
 */
function foldPointKnown(model: HistoryModel): boolean {
  const probe = model.clone();
  probe.advanceHorizon();
  const lsn = probe.foldPoint();
  return lsn === 0 || model.states.some((state) => state.lsn === lsn) || model.snapshots.some((snapshot) => snapshot.lsn === lsn);
}

/**
 * `--merge-oldest-into-baseline`: the store folds, then deletes the oldest snapshot. The fold is
 * at the oldest kept view — the snapshot itself unless the window keeps an older view — and the
 * baseline then reads what that view read. False when there is no snapshot.
 */
async function mergeOldest(h: Harness): Promise<boolean> {
  const model = h.model;
  if (model.snapshots.length === 0 || !foldPointKnown(model)) return false;
  const oldest = [...model.snapshots].sort((a, b) => a.lsn - b.lsn)[0];
  const lsnFold = model.fold();
  const fold = await h.engine.foldIntoBaseline();
  assert.equal(fold.lsnFold, lsnFold, "merge-oldest folds at the oldest kept view");
  if (lsnFold === oldest.lsn) assert.ok(model.baseline.equals(oldest.image), "the baseline becomes the oldest snapshot");
  model.snapshots.splice(model.snapshots.indexOf(oldest), 1);
  await h.engine.deleteSnapshot(oldest.name);
  await h.expectKeptViews(`after merging ${oldest.name} into the baseline`);
  return true;
}

/**
 * `--history-max`: the window's oldest part goes until the bytes held only for it are within the
 * cap; snapshots and the current volume stay, and every view from the new horizon on. The new
 * horizon is the engine's (test/history-cap.test.ts checks it is the smallest that meets the cap).
 */
async function capHistory(h: Harness, maxBytes: number): Promise<void> {
  const model = h.model;
  h.engine.setHistoryMax(maxBytes);
  const result = await h.engine.capHistory();
  if (model.windowSeconds === 0) {
    assert.equal(result, undefined, "no window, nothing to cap");
    return;
  }
  assert.ok(result !== undefined);
  assert.equal(result.lsnFirstBefore, model.windowFirst(), "the window's first view before the cap");
  assert.ok(result.windowOnlyBytesAfter <= maxBytes, `${result.windowOnlyBytesAfter} window-only bytes after a cap of ${maxBytes}`);
  if (result.shrank) {
    assert.ok(result.lsnFirstAfter > result.lsnFirstBefore && result.lsnFirstAfter <= model.lsnCurrent);
    model.horizon = h.engine.stats().lsnHorizon;
    assert.equal(model.windowFirst(), result.lsnFirstAfter, "the window now starts at the new horizon");
  }
  assert.equal(await h.engine.windowOnlyBytes(), result.windowOnlyBytesAfter);
  await h.expectKeptViews(`after capping the window at ${maxBytes} bytes`);
}

async function pointInTime(h: Harness, op: Extract<Op, { t: "pointInTime" }>): Promise<void> {
  const model = h.model;
  const state = model.states[op.pick % model.states.length];
  let lsn = state.lsn;
  if (op.byTime && state.timeMs !== -Infinity) {
    const expected = model.viewAtTime(state.timeMs);
    if (expected === undefined) {
      assert.throws(() => h.engine.viewAtTime(state.timeMs), expectOutsideWindow);
      return;
    }
    assert.equal(h.engine.viewAtTime(state.timeMs), expected, `time ${new Date(state.timeMs).toISOString()} names LSN ${expected}`);
    lsn = expected;
  } else if (!model.isAvailable(lsn)) {
    assert.throws(() => h.engine.checkViewAvailable(lsn), expectOutsideWindow);
    return;
  }
  const release = h.engine.pinView(lsn);
  try {
    const actual = await h.volume(lsn, true).read(op.offset, op.length);
    assert.ok(
      actual.equals(model.imageAt(lsn).subarray(op.offset, op.offset + op.length)),
      `point in time LSN ${lsn} differs at [${op.offset}, +${op.length})`,
    );
  } finally {
    release();
  }
}

async function runCase(ops: Op[], withBaseline: boolean, windowSeconds: number, caseIndex: number, root: string): Promise<void> {
  const directory = path.join(root, `case-${caseIndex}`);
  mkdirSync(directory, { recursive: true });
  const baseline = withBaseline ? pattern(caseIndex + 7, SIZE_BYTES) : Buffer.alloc(SIZE_BYTES);
  if (withBaseline) writeFileSync(path.join(directory, BASELINE_FILE), baseline);
  await DiskEngine.create(new DirectoryMedium(directory));
  const h = new Harness(directory, new HistoryModel(baseline, windowSeconds, START_MS));
  await h.open();
  try {
    for (const [index, op] of ops.entries()) {
      await runOp(h, op);
      h.expectSound(`step ${index} (${op.t})`);
    }
    await h.expectKeptViews("at the end");
  } finally {
    await h.engine.close();
  }
}

test("engine matches the history model (fast-check)", async () => {
  const root = tempDir("model");
  let caseIndex = 0;
  await withCauseShown(() =>
    fc.assert(
      // A zero window reclaims overwritten versions at once; 5 s keeps every write for 5 s of the test's clock.
      fc.asyncProperty(
        fc.array(opArbitrary, { minLength: 1, maxLength: 80, size: "max" }),
        fc.boolean(),
        fc.constantFrom(0, WINDOW_SECONDS),
        async (ops, withBaseline, windowSeconds) => {
          await runCase(ops, withBaseline, windowSeconds, caseIndex++, root);
        },
      ),
      {
        numRuns: Number(process.env.SNAPLOG_MODEL_RUNS ?? 150),
        ...(process.env.SNAPLOG_MODEL_SEED === undefined ? {} : { seed: Number(process.env.SNAPLOG_MODEL_SEED) }),
      },
    ),
  );
});
