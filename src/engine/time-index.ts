/**
 * Wall-clock time of log entries without a timestamp per entry: a sorted list of
 * (first LSN, time ms) points, one per group-commit batch whose millisecond differs from the
 * previous point's. An entry's time is the time of the last point at or before its LSN.
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

  /** Drops points past `lsnLast` (after a rolled-back batch). */
  truncateAfter(lsnLast: number): void {
    this.pointCount = this.upperBound(lsnLast);
  }

  pointAt(index: number): { lsn: number; timeMs: number } {
    return { lsn: this.lsns[index], timeMs: this.times[index] };
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
