/**
 * The power-loss simulator's driver: one seed is one run. A random workload — writes (aligned
 * or not, some FUA), zeroes, trims, bursts, flushes, snapshots, deletes, compactions, folds,
 * rollbacks, as-snapshot cuts, window changes, clock ticks, point-in-time reads, reopens — runs
 * against the real engine on a SimulatedMedium and against the history model
 * (test/support/history-model.ts). At random moments (after some number of medium calls, or at
 * a named crash point) the power is cut; the disk comes back from what the medium kept, and:
 *
 *   1. the recovered log is the model's log up to some state at or after the last durable one
 *      (an acknowledged FLUSH, FUA write, snapshot or history operation) — or with the
 *      operation that was under way, whole;
 *   2. every kept view (current, baseline, snapshots, points in the window) equals that state's,
 *      byte for byte — so no block reads bytes nobody wrote — except blocks whose stored bytes a
 *      fault the medium injected explains, and those must fail (EIO), never return data;
 *   3. the snapshot list is the model's, and the whole-disk check passes;
 *   4. scrub reports every corrupt live block a fault explains, and no other.
 *
 * Everything derives from the seed: the workload, the cut moments, what each cut keeps, the
 * faults. Running the same seed again replays it exactly (no timers, no real I/O, a hand clock).
 */
import { DiskEngine, BASELINE_FILE, type Sabotage, type CrashPoint, CrashPoints } from "../src/engine/index.js";
import { DiskVolume, VolumeLife } from "../src/store/disk-volume.js";
import { ErrorCodes, SnaplogError } from "../src/util/errors.js";
import { mix, Prng } from "../test/support/crash-model.js";
import { pattern } from "../test/support/data-pattern.js";
import { formatSnapshots, HistoryModel, snapshotLabel } from "../test/support/history-model.js";
import { MirrorLeg } from "../src/store/mirror/mirror-leg.js";
import { SimulatedLegFile } from "./simulated-leg-file.js";
import { NO_FAULTS, SimulatedMedium, type FaultRates, type InjectedFault } from "./simulated-medium.js";

const BLOCK_BYTES = 512;
const BLOCK_COUNT = 32;
const SIZE_BYTES = BLOCK_BYTES * BLOCK_COUNT;
const WINDOW_SECONDS = 5;
const START_MS = Date.parse("2026-11-25T10:00:00Z");
/** Chance, per operation, that a power cut is armed for it. */
const CUT_CHANCE = 0.12;

export interface SimOptions {
  seed: number;
  ops: number;
  faults: FaultRates;
  sabotage?: Sabotage;
  /**
   * A mirror leg on a second simulated medium sharing the power (SPEC §6): cuts fall between the
   * two legs' writes too, and whenever the leg says in-sync its file must equal the current volume.
   */
  mirror?: boolean;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  /** Why the run failed (the first broken rule). */
  failure?: string;
  /** The operations, cuts and recoveries, in order. */
  trace: string[];
  powerCuts: number;
  faults: number;
}

type Op =
  | { t: "write"; offset: number; length: number; seed: number; fua: boolean }
  | { t: "zero" | "trim"; offset: number; length: number }
  | { t: "burst"; writes: { offset: number; length: number; seed: number }[] }
  | { t: "flush" }
  | { t: "snapshot"; name: string }
  | { t: "delete"; pick: number }
  | { t: "compact" }
  | { t: "fold" }
  | { t: "rollback"; pick: number; name: string }
  | { t: "asSnapshot"; pick: number; name: string }
  | { t: "window"; seconds: number }
  | { t: "tick"; ms: number }
  | { t: "pointInTime"; pick: number }
  | { t: "reopen" };

class Failure extends Error {}

/** The run ends early, not failed: the disk refused to open because its metadata was damaged (detected, reported). */
class Detected extends Error {}

function fail(message: string): never {
  throw new Failure(message);
}

function randomRange(prng: Prng): { offset: number; length: number } {
  if (prng.chance(0.5)) {
    const lba = prng.below(BLOCK_COUNT);
    return { offset: lba * BLOCK_BYTES, length: Math.min(1 + prng.below(6), BLOCK_COUNT - lba) * BLOCK_BYTES };
  }
  const offset = prng.below(SIZE_BYTES);
  return { offset, length: Math.min(1 + prng.below(3 * BLOCK_BYTES), SIZE_BYTES - offset) };
}

function pickOp(prng: Prng, index: number): Op {
  const roll = prng.below(100);
  if (roll < 30) return { t: "write", ...randomRange(prng), seed: prng.next(), fua: prng.chance(0.15) };
  if (roll < 36) return { t: prng.chance(0.5) ? "zero" : "trim", ...randomRange(prng) };
  if (roll < 44)
    return { t: "burst", writes: Array.from({ length: 2 + prng.below(5) }, () => ({ ...randomRange(prng), seed: prng.next() })) };
  if (roll < 50) return { t: "flush" };
  if (roll < 57) return { t: "snapshot", name: `s${index}` };
  if (roll < 61) return { t: "delete", pick: prng.next() };
  if (roll < 66) return { t: "compact" };
  if (roll < 69) return { t: "fold" };
  if (roll < 73) return { t: "rollback", pick: prng.next(), name: `r${index}` };
  if (roll < 76) return { t: "asSnapshot", pick: prng.next(), name: `a${index}` };
  if (roll < 78) return { t: "window", seconds: prng.chance(0.5) ? 0 : WINDOW_SECONDS };
  if (roll < 86) return { t: "tick", ms: prng.below(3000) };
  if (roll < 95) return { t: "pointInTime", pick: prng.next() };
  return { t: "reopen" };
}

function describe(op: Op): string {
  switch (op.t) {
    case "write":
      return `write [${op.offset}, +${op.length})${op.fua ? " FUA" : ""}`;
    case "zero":
    case "trim":
      return `${op.t} [${op.offset}, +${op.length})`;
    case "burst":
      return `burst ${op.writes.map((w) => `[${w.offset}, +${w.length})`).join(" ")}`;
    case "snapshot":
      return `snapshot ${op.name}`;
    case "rollback":
    case "asSnapshot":
      return `${op.t} ${op.name} to state #${op.pick}`;
    case "window":
      return `window ${op.seconds} s`;
    case "tick":
      return `tick ${op.ms} ms`;
    case "delete":
    case "pointInTime":
      return `${op.t} #${op.pick}`;
    default:
      return op.t;
  }
}

/** Ops after which everything before is durable, when they answer. */
function isSyncOp(op: Op): boolean {
  return (
    ["flush", "snapshot", "delete", "compact", "fold", "rollback", "asSnapshot", "window"].includes(op.t) || (op.t === "write" && op.fua)
  );
}

export async function runSeed(options: SimOptions): Promise<SimResult> {
  const run = new Run(options);
  try {
    await run.go();
    return run.result(undefined);
  } catch (error) {
    if (error instanceof Detected) {
      run.trace.push(`   ${error.message}`);
      return run.result(undefined);
    }
    const message =
      error instanceof Failure ? error.message : `unexpected ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    return run.result(message);
  } finally {
    await run.engine?.abandon().catch(() => undefined);
    await run.leg?.abandon().catch(() => undefined);
  }
}

/** The mirror leg's delayed work (clearing bits, retries), run on the simulation's clock, never on a timer. */
class SimulatedScheduler {
  private readonly due: { atMs: number; run: () => void; cancelled: boolean }[] = [];

  constructor(private readonly nowMs: () => number) {}

  readonly schedule = (run: () => void, delayMs: number): (() => void) => {
    const task = { atMs: this.nowMs() + delayMs, run, cancelled: false };
    this.due.push(task);
    return () => void (task.cancelled = true);
  };

  /** Runs what is due by now, in the order it was asked for. */
  runDue(): void {
    const now = this.nowMs();
    const ready = this.due.filter((task) => task.atMs <= now);
    for (const task of ready) this.due.splice(this.due.indexOf(task), 1);
    for (const task of ready) if (!task.cancelled) task.run();
  }

  clear(): void {
    this.due.length = 0;
  }
}

const LEG_FILE = "leg.img";

class Run {
  readonly trace: string[] = [];
  readonly prng: Prng;
  medium: SimulatedMedium;
  engine: DiskEngine | undefined;
  /** The mirror leg and its medium, when the run has one (SimOptions.mirror). */
  leg: MirrorLeg | undefined;
  mirrorMedium: SimulatedMedium | undefined;
  private readonly scheduler: SimulatedScheduler;
  model: HistoryModel;
  /** Every entry up to this LSN was acknowledged durable. */
  lsnDurable = 0;
  powerCuts = 0;
  /** A fold that stopped after FOLD_BEGIN (no space): its view, and the baseline it will leave. */
  private pendingFold: { lsn: number; baseline: Buffer } | undefined;
  /** The view of the fold last started (a fold the power cut is finished at the next open). */
  private foldLsnUnderWay = 0;
  /** Damaged data blocks (file@offset) the readers of this check met. */
  private readonly damageSeen = new Set<string>();
  /**
   * Every snapshot a delete took away, with its image: when rot in the journal cuts the log back
   * before a delete's record, the snapshot is there again, as it was (a known limit).
   */
  private readonly deletedSnapshots: HistoryModel["snapshots"] = [];
  /** Baseline blocks a fold could not write (their folded version was damaged by an injected fault). */
  private readonly baselineUnknown = new Set<number>();
  /** The engine's LSN when it last answered (a sync op answered just before a cut is durable). */
  private lastLsnSeen = 0;
  private crashPoint: { point: CrashPoint; count: number } | undefined;

  constructor(private readonly options: SimOptions) {
    this.prng = new Prng(options.seed);
    this.medium = new SimulatedMedium(new Prng(mix(options.seed, 1)), options.faults);
    const windowSeconds = this.prng.chance(0.5) ? 0 : WINDOW_SECONDS;
    this.model = new HistoryModel(Buffer.alloc(SIZE_BYTES), windowSeconds, START_MS);
    this.scheduler = new SimulatedScheduler(() => this.model.nowMs);
    // Its own generator: a run with a mirror draws the same workload as one without.
    if (options.mirror === true) this.mirrorMedium = new SimulatedMedium(new Prng(mix(options.seed, 3)), NO_FAULTS, this.medium.power);
  }

  result(failure: string | undefined): SimResult {
    return {
      seed: this.options.seed,
      ok: failure === undefined,
      failure,
      trace: this.trace,
      powerCuts: this.powerCuts,
      faults: this.medium.faults.length,
    };
  }

  async go(): Promise<void> {
    await DiskEngine.create(this.medium);
    this.engine = await this.open();
    this.trace.push(
      `disk: ${BLOCK_COUNT} blocks of ${BLOCK_BYTES} B, window ${this.model.windowSeconds} s${this.mirrorMedium === undefined ? "" : ", mirrored"}`,
    );
    for (let index = 0; index < this.options.ops; index++) {
      const op = pickOp(this.prng, index);
      this.armCut();
      this.trace.push(`${index}: ${describe(op)}${this.cutDescription()}`);
      await this.step(op);
    }
    this.crashPoint = undefined;
    this.medium.cutAtCall = Infinity;
    // Background work (a mirror's resync) may have met the last armed cut after its op answered.
    if (this.medium.isPoweredOff) {
      this.trace.push("end: the power went off under background work");
      await this.recover({ t: "tick", ms: 0 }, this.model.clone(), false);
    }
    await this.checkAll("at the end");
  }

  private cutDescription(): string {
    if (this.crashPoint !== undefined) return ` (power cut armed at ${this.crashPoint.point} #${this.crashPoint.count})`;
    if (this.medium.cutAtCall !== Infinity) return ` (power cut armed at medium call ${this.medium.cutAtCall})`;
    return "";
  }

  private armCut(): void {
    this.crashPoint = undefined;
    this.medium.cutAtCall = Infinity;
    if (!this.prng.chance(CUT_CHANCE)) return;
    if (this.prng.chance(0.5)) this.medium.cutAtCall = this.medium.callCount + 1 + this.prng.below(40);
    else this.crashPoint = { point: CrashPoints[this.prng.below(CrashPoints.length)], count: 1 + this.prng.below(2) };
  }

  private async open(): Promise<DiskEngine> {
    const engine = await this.openEngine();
    if (this.mirrorMedium !== undefined) {
      const mirrorMedium = this.mirrorMedium;
      this.scheduler.clear();
      try {
        this.leg = await MirrorLeg.attach({
          medium: this.medium,
          engine,
          path: LEG_FILE,
          record: (type, message) => this.trace.push(`   mirror: ${type}: ${message}`),
          warn: (message) => this.trace.push(`   mirror: ${message}`),
          openFile: (name, sizeBytes) => SimulatedLegFile.open(mirrorMedium, name, sizeBytes),
          schedule: this.scheduler.schedule,
        });
      } catch (error) {
        await engine.abandon().catch(() => undefined);
        throw error;
      }
      // A leg that cannot open its file degrades rather than fail: a cut during the attach shows only here.
      if (this.medium.isPoweredOff) {
        await this.leg.abandon();
        await engine.abandon().catch(() => undefined);
        throw new Error("the power went off while the mirror leg attached");
      }
    }
    return engine;
  }

  private async openEngine(): Promise<DiskEngine> {
    return DiskEngine.open(
      this.medium,
      { name: "sim", sizeBytes: SIZE_BYTES, blockSizeBytes: BLOCK_BYTES, historySeconds: this.model.windowSeconds },
      {},
      {
        journalCheckpointBytes: 4096,
        segmentSizeBytes: 8 * BLOCK_BYTES,
        spareSegmentCount: 1,
        journalReserveBytes: 1024,
        clock: () => this.model.nowMs,
        backgroundSyncTimer: false,
        sabotage: this.options.sabotage,
        crashHook: (point) => {
          if (this.crashPoint === undefined || this.crashPoint.point !== point) return;
          if (--this.crashPoint.count === 0) this.medium.powerCut();
        },
      },
    );
  }

  private volume(lsn: number, readOnly: boolean): DiskVolume {
    // The current volume writes through the mirror leg, as the store's does.
    const holder = lsn === Infinity && !readOnly ? { mirror: this.leg } : undefined;
    return new DiskVolume(this.engine!, "sim", "sim", lsn, readOnly, new VolumeLife(), undefined, holder);
  }

  /** A disk that refuses to open: right only when rot in its metadata explains it (then the run ends). */
  private refusedToOpen(error: unknown, when: string): never {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof SnaplogError && error.code === ErrorCodes.CORRUPT && this.medium.metadataDamaged) {
      throw new Detected(`the disk refused to open ${when}, its metadata damaged by an injected fault: ${message}`);
    }
    fail(`the disk did not open ${when}: ${message}`);
  }

  /** A fold finished at open may have met damaged blocks: each must be explained. */
  private adoptFoldSkips(lsnFold: number): void {
    const skipped = this.engine!.baselineBadBlocks.filter((lba) => !this.baselineUnknown.has(lba));
    if (skipped.length > 0) this.noteFoldSkips(lsnFold, skipped, false);
  }

  /** A fold left damaged blocks in the log: each must be explained by a fault; the baseline does not know them. */
  private noteFoldSkips(lsnFold: number, corruptLbas: number[], complete = true): void {
    for (let lba = 0; lba < BLOCK_COUNT; lba++) {
      if (!corruptLbas.includes(lba)) {
        if (complete && lsnFold > 0) this.baselineUnknown.delete(lba);
        continue;
      }
      const where = this.engine!.locateBlock(lba, lsnFold);
      if (where === undefined || !this.explained(where.file, where.offsetBytes, true))
        fail(`fold found block ${lba} damaged with no fault to explain it`);
      this.baselineUnknown.add(lba);
    }
  }

  /** Runs one op against the engine and the model; recovers if the power went off. */
  private async step(op: Op): Promise<void> {
    if (this.medium.isPoweredOff) {
      // Background work (a mirror's resync) met the cut armed for the op before, after that op answered.
      this.trace.push("   the power went off under background work");
      await this.recover({ t: "tick", ms: 0 }, this.model.clone(), false);
    }
    const before = this.model.clone();
    let error: unknown;
    let answered = false;
    // Window changes are not cut: which window the disk reopens with is the store's business (disk.json).
    if (op.t === "window") {
      this.crashPoint = undefined;
      this.medium.cutAtCall = Infinity;
    }
    this.medium.faultsEnabled = true;
    try {
      answered = await this.execute(op);
      if (answered && this.engine !== undefined) this.lastLsnSeen = this.engine.lsnLast;
    } catch (caught) {
      if (caught instanceof Detected || caught instanceof Failure) throw caught;
      error = caught;
    }
    this.medium.faultsEnabled = false;
    if (this.medium.isPoweredOff) return this.recover(op, before, answered);
    if (error !== undefined) {
      // Nothing of a failed op landed — but compaction and folds record the window's horizon first.
      const horizon = this.engine?.stats().lsnHorizon ?? before.horizon;
      if (horizon !== before.horizon && horizon !== this.model.horizon)
        fail(
          `${describe(op)} failed, and left the horizon at ${horizon}: neither before (${before.horizon}) nor after (${this.model.horizon})`,
        );
      this.model = before;
      this.model.horizon = horizon;
      this.explainError(op, error);
      return;
    }
    if (answered) {
      if (this.engine!.lsnLast !== before.lsnCurrent) this.trace.push(`   → LSN ${this.engine!.lsnLast}`);
      this.model.recordStep(this.engine!.lsnLast);
      if (isSyncOp(op)) this.lsnDurable = this.engine!.lsnLast;
    }
  }

  /** An op that failed with the power on: only faults the medium injected may explain it. */
  private explainError(op: Op, error: unknown): void {
    const code = error instanceof SnaplogError ? error.code : undefined;
    const injected = this.medium.faults.length > 0;
    if (code === ErrorCodes.OUTSIDE_WINDOW && (op.t === "rollback" || op.t === "asSnapshot")) return;
    if (
      code === ErrorCodes.CONFLICT &&
      this.pendingFold !== undefined &&
      (op.t === "rollback" || op.t === "asSnapshot" || op.t === "pointInTime")
    )
      return;
    if (code === ErrorCodes.NOT_FOUND && op.t === "delete") return;
    if (injected && (code === ErrorCodes.IO || code === ErrorCodes.CORRUPT || code === ErrorCodes.NO_SPACE)) {
      this.trace.push(`   failed as explained by an injected fault: ${(error as Error).message}`);
      // A failed sync leaves the engine offline until reopened, as after a real EIO.
      return;
    }
    fail(`${describe(op)} failed: ${error instanceof Error ? error.message : String(error)}`);
  }

  /**
   * Applies `op` to the model first (what it will be if the op lands), then to the engine;
   * true when the engine answered it. The caller puts the model back if the engine refused.
   */
  private async execute(op: Op): Promise<boolean> {
    const model = this.model;
    const engine = this.engine!;
    const writable = this.volume(Infinity, false);
    switch (op.t) {
      case "write": {
        const data = pattern(op.seed, op.length);
        data.copy(model.current, op.offset);
        await writable.write(op.offset, data, { fua: op.fua });
        return true;
      }
      case "zero":
      case "trim":
        model.current.fill(0, op.offset, op.offset + op.length);
        if (op.t === "zero") await writable.writeZeroes(op.offset, op.length, { fua: false, noHole: false });
        else await writable.trim(op.offset, op.length, { fua: false });
        return true;
      case "burst": {
        if (this.leg !== undefined) {
          // Through a mirror a burst is no single batch (a write may wait for its region's bit to be
          // durable), so no one state: its writes go one after another, each a state of its own.
          for (const w of op.writes) {
            const data = pattern(w.seed, w.length);
            const base = Buffer.from(model.current);
            data.copy(model.current, w.offset);
            try {
              await writable.write(w.offset, data, { fua: false });
            } catch (error) {
              if (this.medium.isPoweredOff) throw error;
              model.current = base;
              this.explainError(op, error);
              continue;
            }
            this.model.recordStep(engine.lsnLast);
          }
          return true;
        }
        // Issued in one turn of the event loop: one batch, applied in call order. A write whose
        // edge read fails (an injected read error) lands not at all; the others land.
        const base = Buffer.from(model.current);
        const datas = op.writes.map((w) => pattern(w.seed, w.length));
        datas.forEach((data, index) => data.copy(model.current, op.writes[index].offset));
        const outcomes = await Promise.allSettled(op.writes.map((w, index) => writable.write(w.offset, datas[index], { fua: false })));
        if (this.medium.isPoweredOff) throw new Error("the power went off during the burst");
        if (outcomes.every((outcome) => outcome.status === "fulfilled")) return true;
        model.current = base;
        outcomes.forEach((outcome, index) => {
          if (outcome.status === "fulfilled") datas[index].copy(model.current, op.writes[index].offset);
          else this.explainError(op, outcome.reason);
        });
        return true;
      }
      case "flush":
        await writable.flush();
        return true;
      case "snapshot": {
        model.snapshots.push({ name: op.name, lsn: model.lsnCurrent, image: Buffer.from(model.current) });
        const cut = await engine.cutSnapshot(op.name, 1);
        if (cut.lsn !== model.lsnCurrent) fail(`snapshot ${op.name} cut at LSN ${cut.lsn}, the log ends at ${model.lsnCurrent}`);
        return true;
      }
      case "delete": {
        if (model.snapshots.length === 0) return false;
        const [gone] = model.snapshots.splice(op.pick % model.snapshots.length, 1);
        this.deletedSnapshots.push({ ...gone });
        await engine.deleteSnapshot(gone.name, { free: true });
        return true;
      }
      case "compact":
        model.advanceHorizon();
        await engine.compact({});
        return true;
      case "fold": {
        // A fold under way (stopped for lack of space) is what the next fold finishes first.
        const expected = this.pendingFold?.lsn ?? model.fold();
        if (this.pendingFold !== undefined) model.baseline = Buffer.from(this.pendingFold.baseline);
        this.foldLsnUnderWay = expected;
        let result;
        try {
          result = await engine.foldIntoBaseline();
        } catch (error) {
          if (this.medium.isPoweredOff || engine.foldLsn === 0) throw error;
          // Stopped after FOLD_BEGIN: under way until a fold (or an open) finishes it; the baseline refuses reads meanwhile.
          this.explainError(op, error);
          this.pendingFold = { lsn: engine.foldLsn, baseline: Buffer.from(model.baseline) };
          this.trace.push(`   the fold at LSN ${engine.foldLsn} is under way, stopped`);
          return false;
        }
        if (result.lsnFold !== expected) fail(`fold folded LSN ${result.lsnFold}, the model says ${expected}`);
        this.pendingFold = undefined;
        this.noteFoldSkips(result.lsnFold, result.corruptLbas);
        return true;
      }
      case "rollback": {
        const state = model.states[op.pick % model.states.length];
        if (!model.isAvailable(state.lsn)) return false;
        model.snapshots.push({ name: op.name, lsn: model.lsnCurrent, image: Buffer.from(model.current) });
        model.current = Buffer.from(model.imageAt(state.lsn));
        // As the store does: the mirror's regions marked before the change, resynced after.
        if (this.leg === undefined) await engine.rollback(state.lsn, op.name, 2);
        else await this.leg.aroundChange("all", () => engine.rollback(state.lsn, op.name, 2));
        return true;
      }
      case "asSnapshot": {
        const state = model.states[op.pick % model.states.length];
        if (!model.isAvailable(state.lsn)) return false;
        model.snapshots.push({ name: op.name, lsn: state.lsn, image: Buffer.from(model.imageAt(state.lsn)) });
        await engine.cutSnapshot(op.name, 3, state.lsn);
        return true;
      }
      case "window":
        model.setWindow(op.seconds);
        await engine.setHistory(op.seconds);
        return true;
      case "tick":
        model.nowMs += op.ms;
        this.scheduler.runDue();
        return false;
      case "pointInTime": {
        const state = model.states[op.pick % model.states.length];
        if (!model.isAvailable(state.lsn)) return false;
        await this.expectView(`point in time LSN ${state.lsn}`, state.lsn, model.imageAt(state.lsn));
        return false;
      }
      case "reopen":
        await engine.close();
        this.engine = undefined;
        // After the engine synced, as the store closes: an in-sync leg synced, its bits cleared.
        // (a failure there is the leg's, never the store's: the store closes its legs settled)
        await this.leg?.close().catch((error: unknown) => {
          if (this.medium.isPoweredOff) throw error;
          this.trace.push(`   mirror: close failed: ${error instanceof Error ? error.message : String(error)}`);
        });
        this.leg = undefined;
        this.medium.faultsEnabled = false;
        try {
          this.engine = await this.open();
        } catch (error) {
          if (this.medium.isPoweredOff) throw error;
          this.refusedToOpen(error, "after a clean close");
        }
        // A clean close checkpoints everything: all of it is durable now.
        this.lsnDurable = this.engine.lsnLast;
        if (this.pendingFold !== undefined && this.engine.foldLsn === 0) {
          this.model.baseline = Buffer.from(this.pendingFold.baseline);
          this.adoptFoldSkips(this.pendingFold.lsn);
          this.pendingFold = undefined;
        }
        await this.checkAll("after a clean reopen");
        return false;
    }
  }

  /**
   * The power went off during `op`. The disk comes back from what the medium kept. What it
   * recovered must be the model before `op` (its log cut at a state boundary at or after the
   * last durable one) or after it — and, as the engine's records show which of `op`'s
   * synced records landed, the snapshot list, the horizon and the baseline each as before or as
   * after (a rollback may keep only the snapshot of the state before).
   */
  private async recover(op: Op, before: HistoryModel, answered: boolean): Promise<void> {
    this.powerCuts++;
    const after = this.model;
    const lsnDurable = answered && isSyncOp(op) ? Math.max(this.lsnDurable, this.lastLsnSeen) : this.lsnDurable;
    this.crashPoint = undefined;
    await this.leg?.abandon();
    this.leg = undefined;
    this.medium = this.medium.afterPowerCut(new Prng(mix(this.options.seed, 2, this.powerCuts)));
    this.mirrorMedium = this.mirrorMedium?.afterPowerCut(new Prng(mix(this.options.seed, 4, this.powerCuts)), this.medium.power);
    this.engine = undefined;
    try {
      this.engine = await this.open();
    } catch (error) {
      this.refusedToOpen(error, "after the power cut");
    }
    const engine = this.engine;
    const lsn = engine.lsnLast;
    if (this.pendingFold !== undefined && engine.foldLsn === 0) {
      before.baseline = Buffer.from(this.pendingFold.baseline);
      after.baseline = Buffer.from(this.pendingFold.baseline);
      this.adoptFoldSkips(this.pendingFold.lsn);
      this.pendingFold = undefined;
    }
    this.trace.push(`   power cut; recovered at LSN ${lsn} (durable ${lsnDurable}, last answered ${before.lsnCurrent})`);
    // Rot in the journal's last record cannot be told from a torn append: it may cost what was durable, never more.
    if (lsn < lsnDurable && !this.medium.metadataDamaged)
      fail(`recovery lost durable writes: recovered LSN ${lsn} < durable LSN ${lsnDurable}`);

    let content: HistoryModel | undefined;
    // Part of an op whose steps the model recorded one by one (a mirrored burst): that step.
    const step = lsn > before.lsnCurrent ? after.truncatedTo(lsn) : undefined;
    if (step !== undefined) {
      content = step;
    } else if (lsn > before.lsnCurrent) {
      content = after.clone();
      content.recordStep(lsn);
    } else {
      content = before.truncatedTo(lsn);
    }
    if (content === undefined)
      fail(`recovered LSN ${lsn} is no state the model knows (states: ${before.states.map((state) => state.lsn).join(", ")})`);
    const listed = formatSnapshots(engine.snapshots);
    const snapshotChoices = [before, after].filter((model) => model.snapshotList() === listed);
    if (op.t === "rollback" && lsn === before.lsnCurrent) {
      // The cut of the state before landed, its new versions did not: nothing lost.
      const partial = before.clone();
      partial.snapshots.push({ ...after.snapshots[after.snapshots.length - 1] });
      if (partial.snapshotList() === listed) snapshotChoices.push(partial);
    }
    const horizon = engine.stats().lsnHorizon;
    if (this.medium.metadataDamaged && lsn < lsnDurable) {
      // Rot in the journal's unproven tail cut it there (docs/testing.md, "Known limits"): what
      // was recorded after is gone — snapshots, deletes, horizons too. What is left must still
      // be what the model had: its snapshots among the model's, its views exact.
      const kept = before.clone();
      const possible = [...before.snapshots, ...after.snapshots, ...this.deletedSnapshots.filter((snapshot) => snapshot.lsn <= lsn)];
      const known = new Set(possible.map(snapshotLabel));
      for (const cut of engine.snapshots)
        if (!known.has(snapshotLabel(cut))) fail(`after the power cut a snapshot ${snapshotLabel(cut)} appeared that the model never had`);
      kept.snapshots = possible.filter(
        (snapshot, index, all) =>
          all.findIndex((other) => other.name === snapshot.name) === index && listed.split(" ").includes(snapshotLabel(snapshot)),
      );
      snapshotChoices.length = 0;
      snapshotChoices.push(kept);
      this.trace.push(`   metadata rot cost durable records (a known limit): kept LSN ${lsn} of ${lsnDurable}`);
    } else if (horizon !== before.horizon && horizon !== after.horizon) {
      fail(`after the power cut the horizon is ${horizon}: neither before (${before.horizon}) nor after (${after.horizon})`);
    }
    if (snapshotChoices.length === 0)
      fail(
        `after the power cut the snapshots are [${listed}]: neither before [${before.snapshotList()}] nor after [${after.snapshotList()}]`,
      );
    // A fold under way at the cut was finished at open; blocks it met damaged must be explained.
    if (op.t === "fold") this.adoptFoldSkips(this.foldLsnUnderWay);

    const problems: string[] = [];
    for (const snapshots of snapshotChoices) {
      for (const baseline of before.baseline.equals(after.baseline) ? [before.baseline] : [before.baseline, after.baseline]) {
        const candidate = content.clone();
        candidate.snapshots = snapshots.snapshots.map((snapshot) => ({ ...snapshot }));
        candidate.horizon = horizon;
        candidate.baseline = Buffer.from(baseline);
        this.model = candidate;
        const problem = await this.checkAll("after the power cut").then(
          () => undefined,
          (error: unknown) => (error instanceof Failure ? error.message : String(error)),
        );
        if (problem === undefined) {
          this.trace.push(`   matches the model ${lsn > before.lsnCurrent ? "with" : "without"} the operation's entries`);
          this.lsnDurable = Math.min(lsnDurable, lsn);
          return;
        }
        problems.push(problem);
      }
    }
    fail(problems.join(" / "));
  }

  /** Every kept view equals the model; snapshots listed; whole-disk check; scrub. Faults rest meanwhile. */
  private async checkAll(context: string): Promise<void> {
    const faultsEnabled = this.medium.faultsEnabled;
    const cutAtCall = this.medium.cutAtCall;
    const crashPoint = this.crashPoint;
    this.medium.faultsEnabled = false;
    this.medium.cutAtCall = Infinity;
    this.crashPoint = undefined;
    try {
      await this.checkAllNow(context);
      // Under the same truce: the leg's resync (started at open) runs to its end with no cut armed.
      await this.checkMirror(context);
    } finally {
      this.medium.faultsEnabled = faultsEnabled;
      this.medium.cutAtCall = cutAtCall;
      this.crashPoint = crashPoint;
    }
  }

  private async checkAllNow(context: string): Promise<void> {
    const engine = this.engine!;
    this.damageSeen.clear();
    const listed = formatSnapshots(engine.snapshots);
    const expected = this.model.snapshotList();
    if (listed !== expected) fail(`${context}: snapshots are [${listed}], the model says [${expected}]`);
    for (const [label, lsn, image] of this.model.keptViews()) await this.expectView(`${context}: ${label}`, lsn, image);
    const problems = engine.checkIntegrity();
    if (problems.length > 0) fail(`${context}: whole-disk check: ${problems.slice(0, 3).join("; ")}`);
    const scrub = await engine.scrub();
    for (const bad of scrub.corrupt) {
      if (!this.explained(bad.file, bad.offsetBytes))
        fail(`${context}: scrub found block ${bad.lba} (LSN ${bad.lsn}) damaged in ${bad.file} at ${bad.offsetBytes} with no fault there`);
    }
    // And every damaged block a reader met is a scrub finding.
    const found = new Set(scrub.corrupt.map((bad) => `${bad.file}@${bad.offsetBytes}`));
    for (const damage of this.damageSeen)
      if (!found.has(damage)) fail(`${context}: a read met damage at ${damage}, but scrub did not report it`);
  }

  /**
   * The mirror leg, once its resync (after an open, a rollback, a degrade) is done, holds the
   * current volume byte for byte. Without injected faults it must get there; with them, a resync
   * that met damaged log data may leave the leg degraded, and only a leg in sync is compared.
   */
  private async checkMirror(context: string): Promise<void> {
    const leg = this.leg;
    const mirrorMedium = this.mirrorMedium;
    if (leg === undefined || mirrorMedium === undefined) return;
    const resync = await leg.resync().then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    );
    if (leg.state !== "in-sync") {
      if (this.medium.faults.length === 0 && this.options.faults.capacityBytes === Infinity)
        fail(`${context}: the mirror leg did not get in sync (${leg.state}): ${resync ?? leg.status().reason}`);
      this.trace.push(`   mirror ${leg.state} ${context}, with injected faults: not compared`);
      return;
    }
    const file = await mirrorMedium.open(LEG_FILE, { create: false });
    const held = Buffer.alloc(SIZE_BYTES);
    try {
      held.fill(0, await file.read(held, 0));
    } finally {
      await file.close();
    }
    for (let lba = 0; lba < BLOCK_COUNT; lba++) {
      let data: Buffer;
      try {
        data = await this.engine!.readBlocks(lba, 1, Infinity);
      } catch {
        continue; // damaged in the log (checkAll explained it): the mirror cannot be held to it
      }
      if (!data.equals(held.subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES)))
        fail(`${context}: the mirror leg says in-sync, yet its block ${lba} differs from the current volume's`);
    }
  }

  /** The view at `lsn` reads as `image`, block by block; a block may fail only where a fault explains it. */
  private async expectView(label: string, lsn: number, image: Buffer): Promise<void> {
    const volume = this.volume(lsn, true);
    if (this.pendingFold !== undefined && lsn < this.pendingFold.lsn) {
      // Half folded: refused, never shown.
      const refused = await volume.read(0, BLOCK_BYTES).then(
        () => false,
        (error: unknown) => error instanceof SnaplogError && error.code === ErrorCodes.CONFLICT,
      );
      if (!refused) fail(`${label}: the baseline is half folded (fold at LSN ${this.pendingFold.lsn} stopped) yet a read was not refused`);
      return;
    }
    for (let lba = 0; lba < BLOCK_COUNT; lba++) {
      let data: Buffer;
      try {
        data = await volume.read(lba * BLOCK_BYTES, BLOCK_BYTES);
      } catch (error) {
        if (this.medium.isPoweredOff) throw error;
        const where = this.engine!.locateBlock(lba, lsn);
        const code = error instanceof SnaplogError ? error.code : undefined;
        if (
          (code === ErrorCodes.CORRUPT || code === ErrorCodes.IO) &&
          where !== undefined &&
          this.explained(where.file, where.offsetBytes, code === ErrorCodes.IO)
        ) {
          if (code === ErrorCodes.CORRUPT && where.file !== BASELINE_FILE) this.damageSeen.add(`${where.file}@${where.offsetBytes}`);
          continue;
        }
        // A fold met this block's data damaged (by a fault explained when it folded): the baseline does not know it.
        if (code === ErrorCodes.CORRUPT && this.baselineUnknown.has(lba) && this.engine!.baselineBadBlocks.includes(lba)) continue;
        fail(
          `${label}: block ${lba} failed to read (${error instanceof Error ? error.message : String(error)}) with no fault to explain it`,
        );
      }
      if (!data.equals(image.subarray(lba * BLOCK_BYTES, (lba + 1) * BLOCK_BYTES))) {
        fail(`${label}: block ${lba} reads other bytes than the model's${this.hint(lba, lsn)}`);
      }
    }
  }

  private hint(lba: number, lsn: number): string {
    const where = this.engine!.locateBlock(lba, lsn);
    return where === undefined ? " (no data: zeros)" : ` (from ${where.file} at ${where.offsetBytes}, entry LSN ${where.lsn})`;
  }

  /** Whether an injected fault touched the block stored at `file`/`offsetBytes`. */
  private explained(file: string, offsetBytes: number, readErrorsCount = false): boolean {
    const end = offsetBytes + BLOCK_BYTES;
    const inside = (start: number, length: number) => start < end && start + length > offsetBytes;
    return this.medium.faults.some((fault: InjectedFault) => {
      if (fault.file !== file) return false;
      if (fault.kind === "bit-flip") return inside(fault.offsetBytes, 1);
      if (fault.kind === "misdirect") return inside(fault.intendedBytes, fault.lengthBytes) || inside(fault.actualBytes, fault.lengthBytes);
      if (fault.kind === "read-error") return readErrorsCount;
      return false;
    });
  }
}
