/**
 * The simulator's scale mode: one seed drives the engine, on the simulated medium, through
 * hundreds of thousands to millions of the smallest records the write path makes — one-block
 * writes, most followed by a FLUSH (an ENTRIES record of one entry and an empty SYNCED one:
 * 96 journal bytes per write) — with snapshots cut and deleted now and then, until the journal
 * reaches its full size (JOURNAL_CHECKPOINT_BYTES) and rotates. The power is cut once: at a
 * rotation step (the full journal must be replayed, perhaps with the next one), or at a random
 * medium call near the end. Then the disk is opened from what the medium kept and checked:
 *
 *   1. the recovered LSN lies between the last durable one and the last one issued;
 *   2. the current volume is exactly the model at that LSN (every block, byte for byte);
 *   3. the snapshot list is the model's (an operation under way at the cut may or may not have
 *      landed) and each snapshot reads exactly as it did when it was cut;
 *   4. the whole-disk check passes, and the disk closes and opens again cleanly.
 *
 * The small-scale driver (driver.ts) keeps every state of a tiny disk in its model; this one
 * keeps one value per block (the number of the write that put it there), so its model costs a
 * few kilobytes however many records the run makes. Issue 7 was a crash at 130,000 records
 * that no small run could reach: this mode exists so the next limit of that kind is found by a
 * seed. Deterministic from the seed, as the small driver.
 */
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { DiskEngine, JOURNAL_CHECKPOINT_BYTES, type CrashPoint } from "../src/engine/index.js";
import { mix, Prng } from "../test/support/crash-model.js";
import { SimulatedMedium } from "./simulated-medium.js";

const BLOCK_BYTES = 512;
const BLOCK_COUNT = 1024;
const START_MS = Date.parse("2026-11-25T10:00:00Z");
/** Snapshots kept at most; the oldest goes when a new one would pass it. */
const SNAPSHOTS_KEPT_MAX = 6;
/** Writes between yields to the event loop (the simulated medium never waits, so nothing else would run). */
const WRITES_PER_YIELD = 1024;
const ROTATION_POINTS: CrashPoint[] = ["rotation:synced", "rotation:journal-created", "checkpoint:written", "checkpoint:renamed"];

export interface ScaleOptions {
  seed: number;
  /** Writes at most; the run stops earlier when the power is cut. */
  writes: number;
  /** Instead of what the seed picks: the chance of a FLUSH after each write, and where the power goes. */
  flushChance?: number;
  cut?: CutPlan;
}

export interface ScaleResult {
  seed: number;
  ok: boolean;
  failure?: string;
  /** What the run did, for a report. */
  summary: string;
}

class ScaleFailure extends Error {}

function fail(message: string): never {
  throw new ScaleFailure(message);
}

/** The content of write number `value` (1-based); 0 is a block never written. */
function blockOf(value: number): Buffer {
  const block = Buffer.alloc(BLOCK_BYTES, value === 0 ? 0 : value & 0xff);
  if (value !== 0) block.writeUInt32LE(value, 0);
  return block;
}

interface ModelSnapshot {
  name: string;
  lsn: number;
  values: Uint32Array;
}

/** Where the power goes off: at a rotation step, or at a medium call after a number of writes. */
export type CutPlan = { kind: "rotation"; point: CrashPoint } | { kind: "call"; afterWrites: number; extraCalls: number };

export async function runScaleSeed(options: ScaleOptions): Promise<ScaleResult> {
  const prng = new Prng(mix(options.seed, 77));
  const flushChance = options.flushChance ?? [1, 1, 0.5, 0.02][prng.below(4)];
  const picked: CutPlan = prng.chance(0.5)
    ? { kind: "rotation", point: ROTATION_POINTS[prng.below(ROTATION_POINTS.length)] }
    : { kind: "call", afterWrites: Math.floor(options.writes * (0.9 + 0.1 * prng.float())), extraCalls: prng.below(6) };
  const plan = options.cut ?? picked;
  const medium = new SimulatedMedium(new Prng(mix(options.seed, 78)));
  let nowMs = START_MS;
  let rotations = 0;
  const open = (on: SimulatedMedium): Promise<DiskEngine> =>
    DiskEngine.open(
      on,
      { name: "scale", sizeBytes: BLOCK_COUNT * BLOCK_BYTES, blockSizeBytes: BLOCK_BYTES, historySeconds: 0 },
      {},
      {
        clock: () => nowMs,
        backgroundSyncTimer: false,
        crashHook: (point) => {
          if (point === "rotation:synced") rotations++;
          if (plan.kind === "rotation" && point === plan.point && rotations === 1) medium.powerCut();
        },
      },
    );

  // The model: the number of the write each block holds, as durable and as issued since.
  const durable = new Uint32Array(BLOCK_COUNT);
  let lsnDurable = 0;
  const tail: { lsn: number; lba: number; value: number }[] = [];
  const snapshots: ModelSnapshot[] = [];
  const current = new Uint32Array(BLOCK_COUNT);
  /** The snapshot lists a delete and cut under way at the cut may leave (the one before, too). */
  let snapshotsInFlight: ModelSnapshot[][] = [];
  let lsnIssued = 0;
  let writes = 0;
  let journalBytesAtCut = 0;
  const makeDurable = (): void => {
    for (const step of tail) durable[step.lba] = step.value;
    tail.length = 0;
    lsnDurable = lsnIssued;
  };

  await DiskEngine.create(medium);
  const engine = await open(medium);
  try {
    for (; writes < options.writes && !medium.isPoweredOff; writes++) {
      if (plan.kind === "call" && writes === plan.afterWrites) medium.cutAtCall = medium.callCount + 1 + plan.extraCalls;
      if (writes % WRITES_PER_YIELD === 0) await yieldToLoop();
      nowMs += 1;
      const value = writes + 1;
      const lba = prng.below(BLOCK_COUNT);
      lsnIssued++;
      tail.push({ lsn: lsnIssued, lba, value });
      current[lba] = value;
      journalBytesAtCut = engine.stats().journalBytes;
      await engine.writeBytes(lba * BLOCK_BYTES, blockOf(value), false);
      if (prng.chance(flushChance)) {
        await engine.flush();
        makeDurable();
      }
      if (prng.chance(1 / 50_000)) {
        const name = `s${value}`;
        const kept = snapshots.length < SNAPSHOTS_KEPT_MAX ? [...snapshots] : snapshots.slice(1);
        const after = [...kept, { name, lsn: lsnIssued, values: Uint32Array.from(current) }];
        snapshotsInFlight = [kept, after];
        if (kept.length < snapshots.length) await engine.deleteSnapshot(snapshots[0].name, { free: true });
        await engine.cutSnapshot(name, 1);
        snapshots.length = 0;
        for (const snapshot of after) snapshots.push(snapshot);
        snapshotsInFlight = [];
        makeDurable();
      }
    }
  } catch (error) {
    if (!medium.isPoweredOff)
      return { seed: options.seed, ok: false, failure: `the workload failed with the power on: ${describeError(error)}`, summary: "" };
  }
  await engine.abandon().catch(() => undefined);
  const summary = `${writes} writes (flush chance ${flushChance}), cut ${plan.kind === "rotation" ? `at ${plan.point}` : `after write ${plan.afterWrites} + ${plan.extraCalls} calls`}, journal ${journalBytesAtCut} B, ${rotations} rotation(s)`;

  const rebooted = medium.afterPowerCut(new Prng(mix(options.seed, 79)));
  try {
    const recovered = await open(rebooted);
    try {
      await checkRecovered(recovered, { durable, tail, lsnDurable, lsnIssued, snapshotChoices: [snapshots, ...snapshotsInFlight] });
      await recovered.close();
    } finally {
      await recovered.abandon().catch(() => undefined);
    }
    const reopened = await open(rebooted);
    const problems = reopened.checkIntegrity();
    await reopened.close();
    if (problems.length > 0) fail(`after a clean reopen: ${problems.join("; ")}`);
    return { seed: options.seed, ok: true, summary };
  } catch (error) {
    return { seed: options.seed, ok: false, failure: describeError(error), summary };
  }
}

function describeError(error: unknown): string {
  if (error instanceof ScaleFailure) return error.message;
  return `unexpected ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
}

async function checkRecovered(
  engine: DiskEngine,
  model: {
    durable: Uint32Array;
    tail: { lsn: number; lba: number; value: number }[];
    lsnDurable: number;
    lsnIssued: number;
    /** The model's snapshot list, then those an operation under way at the cut may have left. */
    snapshotChoices: ModelSnapshot[][];
  },
): Promise<void> {
  const lsn = engine.lsnLast;
  if (lsn < model.lsnDurable) fail(`recovery lost durable writes: LSN ${lsn} < durable ${model.lsnDurable}`);
  if (lsn > model.lsnIssued) fail(`recovery found LSN ${lsn}, past the last write issued (${model.lsnIssued})`);
  const expected = Uint32Array.from(model.durable);
  for (const step of model.tail) if (step.lsn <= lsn) expected[step.lba] = step.value;
  await expectView(engine, Infinity, expected, `the current volume at LSN ${lsn}`);

  const listed = engine.snapshots.map((cut) => `${cut.name}@${cut.lsn}`).join(" ");
  const label = (list: ModelSnapshot[]): string => list.map((snapshot) => `${snapshot.name}@${snapshot.lsn}`).join(" ");
  const match = model.snapshotChoices.find((list) => label(list) === listed);
  if (match === undefined) fail(`snapshots after recovery [${listed}] are not the model's [${label(model.snapshotChoices[0])}]`);
  for (const snapshot of match) await expectView(engine, snapshot.lsn, snapshot.values, `snapshot ${snapshot.name}`);
  const problems = engine.checkIntegrity();
  if (problems.length > 0) fail(`whole-disk check after recovery: ${problems.join("; ")}`);
  if (engine.stats().journalBytes > JOURNAL_CHECKPOINT_BYTES * 2) fail(`the journal holds ${engine.stats().journalBytes} B after recovery`);
}

async function expectView(engine: DiskEngine, lsnView: number, values: Uint32Array, what: string): Promise<void> {
  const bytes = await engine.readBlocks(0, BLOCK_COUNT, lsnView);
  for (let lba = 0; lba < BLOCK_COUNT; lba++) {
    const got = bytes.subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES);
    if (!got.equals(blockOf(values[lba]))) {
      const gotValue = got.readUInt32LE(0);
      fail(`${what}: block ${lba} holds write ${gotValue}, the model says ${values[lba]}`);
    }
  }
}
