/**
 * The specification of a disk's history, in code: what every kept view must contain, and
 * which points in time may be attached. Tests drive the engine and this model side by side.
 *
 * A state of the current volume is recorded after each step that appended entries, with the
 * engine's LSN and the (hand-driven) clock: the engine stamps a batch with the clock at
 * commit, and the clock only moves between steps. Everything below follows SPEC §1 and
 * ENGINE.md's liveness rule; it never asks the engine what the answer should be.
 */
export interface ModelState {
  lsn: number;
  timeMs: number;
  image: Buffer;
}

export interface ModelSnapshot {
  name: string;
  lsn: number;
  image: Buffer;
}

/** A snapshot as the checks name it: NAME@LSN. */
export function snapshotLabel(snapshot: { name: string; lsn: number }): string {
  return `${snapshot.name}@${snapshot.lsn}`;
}

/** A snapshot list as the checks compare it: the labels in the order given, space-separated. */
export function formatSnapshots(snapshots: readonly { name: string; lsn: number }[]): string {
  return snapshots.map(snapshotLabel).join(" ");
}

export class HistoryModel {
  baseline: Buffer;
  current: Buffer;
  /** Every state the current volume had at a step boundary, oldest first (the first is LSN 0). */
  readonly states: ModelState[];
  snapshots: ModelSnapshot[] = [];
  /** The recorded horizon: views before it (but snapshots) are gone for good. */
  horizon = 0;
  nowMs: number;

  constructor(
    baseline: Buffer,
    public windowSeconds: number,
    startMs: number,
  ) {
    this.baseline = Buffer.from(baseline);
    this.current = Buffer.from(baseline);
    this.nowMs = startMs;
    this.states = [{ lsn: 0, timeMs: -Infinity, image: Buffer.from(baseline) }];
  }

  /** An independent copy (recorded images are never changed, so they are shared). */
  clone(): HistoryModel {
    const copy = new HistoryModel(this.baseline, this.windowSeconds, this.nowMs);
    copy.current = Buffer.from(this.current);
    copy.states.length = 0;
    copy.states.push(...this.states);
    copy.snapshots = this.snapshots.map((snapshot) => ({ ...snapshot }));
    copy.horizon = this.horizon;
    return copy;
  }

  /**
   * The model after a power cut that kept the log up to `lsn` (a state boundary): later states
   * are gone and the current volume is the state at `lsn`. Undefined when no state has that LSN.
   */
  truncatedTo(lsn: number): HistoryModel | undefined {
    const index = this.states.findIndex((state) => state.lsn === lsn);
    if (index < 0) return undefined;
    const copy = this.clone();
    copy.states.length = index + 1;
    copy.current = Buffer.from(this.states[index].image);
    return copy;
  }

  /** The snapshots the engine must list, oldest cut first (formatSnapshots). */
  snapshotList(): string {
    return formatSnapshots([...this.snapshots].sort((a, b) => a.lsn - b.lsn));
  }

  get lsnCurrent(): number {
    return this.states[this.states.length - 1].lsn;
  }

  /** After a step: the engine's last LSN; a new state when it moved. */
  recordStep(lsnLast: number): void {
    if (lsnLast === this.lsnCurrent) return;
    if (lsnLast < this.lsnCurrent) throw new Error(`LSN went back from ${this.lsnCurrent} to ${lsnLast}`);
    this.states.push({ lsn: lsnLast, timeMs: this.nowMs, image: Buffer.from(this.current) });
  }

  /** The LSN of the volume as it was at `timeMs`: the newest state stamped at or before it. */
  lsnAtTime(timeMs: number): number {
    let lsn = 0;
    for (const state of this.states) if (state.timeMs <= timeMs) lsn = state.lsn;
    return lsn;
  }

  /** The first LSN of the history window now (the current one with a zero window). */
  windowFirst(): number {
    if (this.windowSeconds === 0) return this.lsnCurrent;
    return Math.max(this.horizon, Math.min(this.lsnAtTime(this.nowMs - this.windowSeconds * 1000), this.lsnCurrent));
  }

  /** Whether the view at `lsn` may be attached: the baseline (LSN 0), in the window, or a snapshot's cut. */
  isAvailable(lsn: number): boolean {
    if (lsn > this.lsnCurrent) return false;
    return lsn === 0 || lsn >= this.windowFirst() || this.snapshots.some((snapshot) => snapshot.lsn === lsn);
  }

  /**
   * The view a time names, or undefined when the time is refused: it must lie in the last
   * windowSeconds, and its view inside the window (snapshots are named, not timed).
   */
  viewAtTime(timeMs: number): number | undefined {
    const lsn = this.lsnAtTime(timeMs);
    if (timeMs < this.nowMs - this.windowSeconds * 1000) return undefined;
    return lsn >= this.windowFirst() ? lsn : undefined;
  }

  /** The image of the view at `lsn` (LSN 0 is the baseline, which a fold moves). */
  imageAt(lsn: number): Buffer {
    if (lsn === 0) return this.baseline;
    const snapshot = this.snapshots.find((candidate) => candidate.lsn === lsn);
    if (snapshot !== undefined) return snapshot.image;
    const state = this.states.find((candidate) => candidate.lsn === lsn);
    if (state === undefined) throw new Error(`the model has no state at LSN ${lsn}`);
    return state.image;
  }

  /** Compaction and folds first move the horizon to the window's start. */
  advanceHorizon(): void {
    if (this.windowSeconds > 0) this.horizon = Math.max(this.horizon, this.windowFirst());
  }

  /** The view a fold copies into the baseline: the oldest one any snapshot or the window needs. */
  foldPoint(): number {
    let lsn = this.windowSeconds === 0 ? this.lsnCurrent : Math.min(this.horizon, this.lsnCurrent);
    for (const snapshot of this.snapshots) lsn = Math.min(lsn, snapshot.lsn);
    return lsn;
  }

  fold(): number {
    this.advanceHorizon();
    const lsn = this.foldPoint();
    if (lsn > 0) this.baseline = Buffer.from(this.imageAt(lsn));
    return lsn;
  }

  setWindow(seconds: number): void {
    if (this.windowSeconds === 0 && seconds > 0) this.horizon = Math.max(this.horizon, this.lsnCurrent);
    this.windowSeconds = seconds;
  }

  /** Every view that must still read exactly as the model says: [label, LSN, image]. */
  keptViews(): [string, number, Buffer][] {
    const views: [string, number, Buffer][] = [
      ["current", Infinity, this.current],
      ["baseline", 0, this.baseline],
    ];
    for (const snapshot of this.snapshots) views.push([`snapshot ${snapshot.name} (LSN ${snapshot.lsn})`, snapshot.lsn, snapshot.image]);
    for (const state of this.states) {
      if (state.lsn > 0 && this.isAvailable(state.lsn)) views.push([`point in time LSN ${state.lsn}`, state.lsn, state.image]);
    }
    return views;
  }
}
