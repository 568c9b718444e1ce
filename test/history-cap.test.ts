/**
 * Goal: `--history-max` in the engine (src/engine/history/history-cap.ts, SPEC §4.1): after
 * capHistory the log bytes held only for the window are within the cap; the window's oldest part
 * went first (the horizon is the smallest LSN that brings them within it, no further); every
 * snapshot, every pinned view and the current volume read as before, and so does every view
 * from the new horizon on; the running bound that spares the write path a walk never says "not
 * due" while the window-only bytes are past the cap plus half a segment.
 *
 * Method: fast-check drives the engine and a small model side by side with whole-block writes
 * (so each block's LSN is known: a write of k blocks takes the next k LSNs in block order),
 * snapshots, deletes, pins, clock ticks, compactions, caps of any size and reopens. The model
 * keeps every version of every block and computes the window-only versions by the rule of
 * ENGINE.md — a version p with next version q is held only by the window when no snapshot or pin
 * lies in [lsn(p), lsn(q)) and lsn(q) is past the window's first view — never asking the engine.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DiskEngine } from "../src/engine/disk-engine.js";
import { DirectoryMedium } from "../src/engine/medium.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { pattern } from "./support/data-pattern.js";
import { withCauseShown } from "./support/fast-check-report.js";
import { tempDir } from "./support/temp-dir.js";
import * as path from "node:path";
import { mkdirSync } from "node:fs";

const BLOCK_BYTES = 512;
const BLOCK_COUNT = 16;
const SEGMENT_BYTES = 8 * BLOCK_BYTES;
const START_MS = Date.parse("2026-11-25T10:00:00Z");

type Op =
  | { t: "write"; lba: number; blocks: number; seed: number }
  | { t: "snapshot" }
  | { t: "delete"; pick: number }
  | { t: "pin"; pick: number }
  | { t: "unpin"; pick: number }
  | { t: "tick"; ms: number }
  | { t: "compact" }
  | { t: "cap"; maxBlocks: number }
  | { t: "reopen"; clean: boolean };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: BLOCK_COUNT - 1 }), fc.integer({ min: 1, max: 4 }), fc.integer())
      .map(([lba, blocks, seed]) => ({ t: "write" as const, lba, blocks: Math.min(blocks, BLOCK_COUNT - lba), seed })),
  },
  { weight: 2, arbitrary: fc.constant({ t: "snapshot" as const }) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ t: "delete" as const, pick })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ t: "pin" as const, pick })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ t: "unpin" as const, pick })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3000 }).map((ms) => ({ t: "tick" as const, ms })) },
  { weight: 1, arbitrary: fc.constant({ t: "compact" as const }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }).map((maxBlocks) => ({ t: "cap" as const, maxBlocks })) },
  { weight: 1, arbitrary: fc.boolean().map((clean) => ({ t: "reopen" as const, clean })) },
);

interface Version {
  lsn: number;
  data: Buffer;
}

/** Every version of every block, the cuts, pins and the window: what the engine must show. */
class CapModel {
  readonly versions: Version[][] = Array.from({ length: BLOCK_COUNT }, () => []);
  /** LSN → clock when written (the engine stamps a batch with the clock at commit). */
  readonly times: { lsn: number; timeMs: number }[] = [];
  snapshots: { name: string; lsn: number }[] = [];
  pins: { lsn: number; release: () => void }[] = [];
  lsnLast = 0;
  horizon = 0;
  nowMs = START_MS;

  constructor(readonly windowSeconds: number) {}

  write(lba: number, blocks: number, seed: number): void {
    const data = pattern(seed, blocks * BLOCK_BYTES);
    for (let index = 0; index < blocks; index++) {
      this.versions[lba + index].push({ lsn: ++this.lsnLast, data: data.subarray(index * BLOCK_BYTES, (index + 1) * BLOCK_BYTES) });
    }
    this.times.push({ lsn: this.lsnLast - blocks + 1, timeMs: this.nowMs });
  }

  lsnAtTime(timeMs: number): number {
    let lsn = 0;
    for (const point of this.times) if (point.timeMs <= timeMs) lsn = Math.max(lsn, this.lastLsnOfBatchAt(point.lsn));
    return lsn;
  }

  /** The last LSN of the batch that starts at `lsnFirst`. */
  private lastLsnOfBatchAt(lsnFirst: number): number {
    const next = this.times.find((point) => point.lsn > lsnFirst);
    return next === undefined ? this.lsnLast : next.lsn - 1;
  }

  windowFirst(): number {
    return Math.max(this.horizon, Math.min(this.lsnAtTime(this.nowMs - this.windowSeconds * 1000), this.lsnLast));
  }

  private heldByCutOrPin(lsnFirst: number, lsnEnd: number): boolean {
    return (
      this.snapshots.some((snapshot) => snapshot.lsn >= lsnFirst && snapshot.lsn < lsnEnd) ||
      this.pins.some((pin) => pin.lsn >= lsnFirst && pin.lsn < lsnEnd)
    );
  }

  /** The LSN of each window-only version's next version, with the window starting at `lsnFirst`, sorted. */
  windowOnly(lsnFirst: number): number[] {
    const ends: number[] = [];
    for (const chain of this.versions) {
      for (let index = 0; index + 1 < chain.length; index++) {
        const lsnEnd = chain[index + 1].lsn;
        if (lsnEnd > lsnFirst && !this.heldByCutOrPin(chain[index].lsn, lsnEnd)) ends.push(lsnEnd);
      }
    }
    return ends.sort((a, b) => a - b);
  }

  imageAt(lsn: number): Buffer {
    const image = Buffer.alloc(BLOCK_COUNT * BLOCK_BYTES);
    this.versions.forEach((chain, lba) => {
      let seen: Version | undefined;
      for (const version of chain) if (version.lsn <= lsn) seen = version;
      seen?.data.copy(image, lba * BLOCK_BYTES);
    });
    return image;
  }

  /** Every view that must read as the model says: current, each snapshot, each pin, each LSN of the window. */
  keptViews(): { label: string; lsn: number }[] {
    const views = [{ label: "current", lsn: Infinity }];
    for (const snapshot of this.snapshots) views.push({ label: `snapshot ${snapshot.name}`, lsn: snapshot.lsn });
    for (const pin of this.pins) views.push({ label: `pin ${pin.lsn}`, lsn: pin.lsn });
    for (let lsn = this.windowFirst(); lsn <= this.lsnLast; lsn++) if (lsn > 0) views.push({ label: `LSN ${lsn}`, lsn });
    return views;
  }
}

class Harness {
  engine!: DiskEngine;
  capDueTold = 0;
  maxBytes: number | null = null;
  private nameNext = 0;

  constructor(
    readonly directory: string,
    readonly model: CapModel,
  ) {}

  async open(): Promise<void> {
    this.engine = await DiskEngine.open(
      new DirectoryMedium(this.directory),
      { name: "cap", sizeBytes: BLOCK_COUNT * BLOCK_BYTES, blockSizeBytes: BLOCK_BYTES, historySeconds: this.model.windowSeconds },
      { onHistoryCapDue: () => this.capDueTold++ },
      { journalCheckpointBytes: 4096, segmentSizeBytes: SEGMENT_BYTES, spareSegmentCount: 0, clock: () => this.model.nowMs },
    );
    if (this.maxBytes !== null) this.engine.setHistoryMax(this.maxBytes);
  }

  nextName(): string {
    return `s${this.nameNext++}`;
  }

  async expectViews(context: string): Promise<void> {
    for (const view of this.model.keptViews()) {
      const actual = await this.engine.readBlocks(0, BLOCK_COUNT, view.lsn);
      assert.ok(actual.equals(this.model.imageAt(view.lsn)), `${context}: ${view.label} differs from the model`);
    }
    assert.deepEqual(this.engine.checkIntegrity(), [], `${context}: whole-disk check`);
  }
}

async function runOp(h: Harness, op: Op): Promise<void> {
  const { model } = h;
  switch (op.t) {
    case "write": {
      const before = h.engine.lsnLast;
      await h.engine.writeBytes(op.lba * BLOCK_BYTES, pattern(op.seed, op.blocks * BLOCK_BYTES), false);
      model.write(op.lba, op.blocks, op.seed);
      assert.equal(h.engine.lsnLast, before + op.blocks, "a write of k blocks takes k LSNs");
      break;
    }
    case "snapshot": {
      const name = h.nextName();
      const cut = await h.engine.cutSnapshot(name, 1);
      model.snapshots.push({ name, lsn: cut.lsn });
      break;
    }
    case "delete": {
      if (model.snapshots.length === 0) return;
      const [gone] = model.snapshots.splice(op.pick % model.snapshots.length, 1);
      await h.engine.deleteSnapshot(gone.name);
      break;
    }
    case "pin": {
      const first = model.windowFirst();
      const lsn = first + (op.pick % (model.lsnLast - first + 1));
      if (lsn === 0) return;
      model.pins.push({ lsn, release: h.engine.pinView(lsn) });
      return;
    }
    case "unpin": {
      if (model.pins.length === 0) return;
      const [pin] = model.pins.splice(op.pick % model.pins.length, 1);
      pin.release();
      return;
    }
    case "tick":
      model.nowMs += op.ms;
      return;
    case "compact":
      model.horizon = Math.max(model.horizon, model.windowFirst());
      await h.engine.compact();
      break;
    case "cap":
      await cap(h, op.maxBlocks * BLOCK_BYTES || 1);
      break;
    case "reopen":
      for (const pin of model.pins) pin.release();
      model.pins = [];
      if (op.clean) await h.engine.close();
      else await h.engine.abandon();
      await h.open();
      break;
  }
  await h.expectViews(`after ${op.t}`);
}

/** How many caps moved the horizon, over the whole run (the property must reach that case). */
let capsThatShrank = 0;

/** Caps at `maxBytes` and checks the result against the model's own count. */
async function cap(h: Harness, maxBytes: number): Promise<void> {
  const { model, engine } = h;
  h.maxBytes = maxBytes;
  engine.setHistoryMax(maxBytes);
  const lsnFirst = model.windowFirst();
  const ends = model.windowOnly(lsnFirst);
  const keep = Math.floor(maxBytes / BLOCK_BYTES);
  const expectedFirst = ends.length > keep ? Math.max(lsnFirst, ends[ends.length - keep - 1]) : lsnFirst;
  const result = await engine.capHistory();
  assert.ok(result !== undefined, "a cap with a window gives a result");
  assert.equal(result.windowOnlyBytesBefore, ends.length * BLOCK_BYTES, "window-only bytes before, as the model counts them");
  assert.equal(result.lsnFirstBefore, lsnFirst, "the window's first view before");
  assert.equal(engine.historyWindow().lsnFirst, expectedFirst, "the window starts at the smallest LSN that meets the cap");
  assert.equal(result.shrank, expectedFirst > lsnFirst);
  if (result.shrank) capsThatShrank++;
  if (expectedFirst > lsnFirst) model.horizon = expectedFirst;
  const after = model.windowOnly(model.windowFirst()).length * BLOCK_BYTES;
  assert.equal(result.windowOnlyBytesAfter, after, "window-only bytes after, as the model counts them");
  assert.ok(after <= maxBytes, `window-only bytes ${after} within the cap ${maxBytes}`);
  assert.equal(await engine.windowOnlyBytes(), after, "the engine's walk agrees with the model");
  // Views before the new window are gone unless a snapshot or pin holds them.
  for (let lsn = 1; lsn < model.windowFirst(); lsn++) {
    if (model.snapshots.some((snapshot) => snapshot.lsn === lsn) || model.pins.some((pin) => pin.lsn === lsn)) continue;
    assert.throws(
      () => engine.checkViewAvailable(lsn),
      (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.OUTSIDE_WINDOW,
    );
  }
}

async function runCase(ops: Op[], windowSeconds: number, caseIndex: number, root: string): Promise<void> {
  const directory = path.join(root, `case-${caseIndex}`);
  mkdirSync(directory);
  await DiskEngine.create(new DirectoryMedium(directory));
  const h = new Harness(directory, new CapModel(windowSeconds));
  await h.open();
  try {
    for (const op of ops) {
      await runOp(h, op);
      // The bound behind historyCapDue is never below the truth by more than half a segment.
      if (h.maxBytes !== null && !h.engine.historyCapDue) {
        const windowOnly = h.model.windowOnly(h.model.windowFirst()).length * BLOCK_BYTES;
        assert.ok(windowOnly <= h.maxBytes + SEGMENT_BYTES / 2, `not due, yet ${windowOnly} window-only bytes pass ${h.maxBytes}`);
      }
    }
  } finally {
    for (const pin of h.model.pins) pin.release();
    await h.engine.close();
  }
}

test("capHistory keeps the window-only bytes within the cap, the oldest first, and every kept view (fast-check)", async () => {
  const root = tempDir("history-cap");
  let caseIndex = 0;
  await withCauseShown(() =>
    fc.assert(
      // A long window (time never moves it) and a short one (ticks do).
      fc.asyncProperty(
        fc.array(opArbitrary, { minLength: 1, maxLength: 60, size: "max" }),
        fc.constantFrom(3600, 5),
        async (ops, windowSeconds) => {
          await runCase(ops, windowSeconds, caseIndex++, root);
        },
      ),
      { numRuns: Number(process.env.SNAPLOG_MODEL_RUNS ?? 100) },
    ),
  );
  assert.ok(capsThatShrank > 10, `only ${capsThatShrank} caps shrank the window`);
});

test("the write path tells when the cap may be passed, once, and a cap makes it quiet again", async () => {
  const root = tempDir("history-cap-due");
  await DiskEngine.create(new DirectoryMedium(root));
  const h = new Harness(root, new CapModel(3600));
  await h.open();
  try {
    const maxBytes = 4 * BLOCK_BYTES;
    h.maxBytes = maxBytes;
    h.engine.setHistoryMax(maxBytes);
    assert.equal(h.engine.historyCapDue, true, "unknown until the first walk");
    await h.engine.capHistory();
    assert.equal(h.engine.historyCapDue, false);
    // Each overwrite makes one block window-only (the first write is none): due past the cap plus half a segment.
    for (let round = 0; round < 1 + (maxBytes + SEGMENT_BYTES / 2) / BLOCK_BYTES; round++) {
      await h.engine.writeBytes(0, pattern(round, BLOCK_BYTES), false);
      h.model.write(0, 1, round);
    }
    assert.equal(h.capDueTold, 0, "not yet: exactly the cap plus half a segment");
    await h.engine.writeBytes(0, pattern(99, BLOCK_BYTES), false);
    h.model.write(0, 1, 99);
    assert.equal(h.capDueTold, 1, "told once when the bound passes the cap plus half a segment");
    await h.engine.writeBytes(0, pattern(100, BLOCK_BYTES), false);
    h.model.write(0, 1, 100);
    assert.equal(h.capDueTold, 1, "told only once until a cap runs");
    const result = await h.engine.capHistory();
    assert.ok(result?.shrank);
    // Block 0 has versions at LSNs 1–11: the four newest older versions stay (ended at 8–11).
    assert.equal(result.lsnFirstAfter, 7);
    h.model.horizon = 7;
    assert.equal(result.windowOnlyBytesAfter, maxBytes);
    assert.equal(h.engine.historyCapDue, false);
    await h.expectViews("after the cap");
    // Deleting a snapshot can make more window-only without a write: the bound is dropped.
    await h.engine.cutSnapshot("s", 1);
    h.model.snapshots.push({ name: "s", lsn: h.engine.lsnLast });
    await h.engine.writeBytes(0, pattern(101, BLOCK_BYTES), false);
    h.model.write(0, 1, 101);
    await h.engine.capHistory();
    assert.equal(h.engine.historyCapDue, false);
    await h.engine.deleteSnapshot("s");
    h.model.snapshots = [];
    assert.equal(h.engine.historyCapDue, true, "a dropped snapshot makes the bound unknown");
  } finally {
    await h.engine.close();
  }
});
