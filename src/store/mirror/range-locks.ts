/**
 * Order between operations on overlapping byte ranges of the mirror: each waits for every
 * earlier one it overlaps (FIFO per overlap), so two overlapping host writes reach the log and
 * the mirror in the same order, and a resync's copy of a region never interleaves with a host
 * write to it. Non-overlapping operations never wait for each other.
 */
interface Held {
  start: number;
  end: number;
  done: Promise<void>;
}

export class RangeLocks {
  private readonly held = new Set<Held>();

  /** Waits for the earlier overlapping holders; answers the release. */
  async acquire(start: number, end: number): Promise<() => void> {
    const waits: Promise<void>[] = [];
    for (const other of this.held) if (other.start < end && start < other.end) waits.push(other.done);
    let release!: () => void;
    const entry: Held = { start, end, done: new Promise<void>((resolve) => (release = resolve)) };
    this.held.add(entry);
    if (waits.length > 0) await Promise.all(waits);
    return () => {
      this.held.delete(entry);
      release();
    };
  }
}
