/**
 * Wall-clock time of log entries without a timestamp per entry: a sorted list of
 * (first LSN, time ms) points, one per group-commit batch whose millisecond differs from the
 * previous point's. An entry's time is the time of the last point at or before its LSN.
 * Times never decrease (a clock stepped back is held at the last time), so LSN order is
 * time order and a time maps to one LSN (lsnAtTime).
 */
export class TimeIndex {
  private lsns = new Float64Array(1024);
  private times = new Float64Array(1024);
  private pointCount = 0;

  get count(): number {
    return this.pointCount;
  }

  add(lsnFirst: number, timeMs: number): void {
    if (this.pointCount > 0) {
      const last = this.pointCount - 1;
      if (timeMs < this.times[last]) timeMs = this.times[last];
      if (this.times[last] === timeMs) return;
      if (this.lsns[last] >= lsnFirst) {
        // Recovery replays records in LSN order; a point at the same LSN is replaced.
        this.pointCount = this.upperBound(lsnFirst - 1);
      }
    }
    if (this.pointCount === this.lsns.length) this.grow();
    this.lsns[this.pointCount] = lsnFirst;
    this.times[this.pointCount] = timeMs;
    this.pointCount++;
  }

  /** Time (ms since the epoch) of the entry with this LSN; 0 when before every point. */
  timeOf(lsn: number): number {
    const index = this.upperBound(lsn) - 1;
    return index < 0 ? 0 : this.times[index];
  }

  /**
   * The LSN of the volume as it was at `timeMs`: the last entry written at or before that
   * time (0 when every entry is younger).
   */
  lsnAtTime(timeMs: number, lsnLast: number): number {
    let low = 0;
    let high = this.pointCount;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.times[middle] <= timeMs) low = middle + 1;
      else high = middle;
    }
    return low === this.pointCount ? lsnLast : this.lsns[low] - 1;
  }

  /** Time of the newest point (0 when empty). */
  get lastTimeMs(): number {
    return this.pointCount === 0 ? 0 : this.times[this.pointCount - 1];
  }

  /**
   * Keeps at most one point per `resolutionMs` among the points before `lsnBound` (history
   * before the window's horizon): the index stays bounded however long the disk lives, and
   * old entries' times are then known to within that resolution. The last point at or before
   * the bound always stays, so a time whose view is at or after the bound still maps exactly,
   * and a time before it still maps before it.
   */
  thinBefore(lsnBound: number, resolutionMs: number): void {
    const boundary = this.upperBound(lsnBound) - 1;
    let kept = 0;
    for (let index = 0; index < this.pointCount; index++) {
      const thinnable = index < boundary && kept > 0 && this.times[index] - this.times[kept - 1] < resolutionMs;
      if (thinnable) continue;
      this.lsns[kept] = this.lsns[index];
      this.times[kept] = this.times[index];
      kept++;
    }
    this.pointCount = kept;
  }

  /** Drops points past `lsnLast` (after a rolled-back batch). */
  truncateAfter(lsnLast: number): void {
    this.pointCount = this.upperBound(lsnLast);
  }

  lsnAt(index: number): number {
    return this.lsns[index];
  }

  timeMsAt(index: number): number {
    return this.times[index];
  }

  get memoryBytes(): number {
    return this.lsns.byteLength + this.times.byteLength;
  }

  /** Index of the first point with lsn > `lsn`. */
  private upperBound(lsn: number): number {
    let low = 0;
    let high = this.pointCount;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.lsns[middle] <= lsn) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private grow(): void {
    const lsns = new Float64Array(this.lsns.length * 2);
    lsns.set(this.lsns);
    this.lsns = lsns;
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    this.times = times;
  }
}
