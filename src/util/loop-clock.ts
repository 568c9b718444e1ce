/**
 * The time a piece of background work (a replication sender) spends running on the event loop
 * it shares with hosts' I/O. It counts the work's own synchronous sections, each timed where it
 * starts after an await and ends before the next: not the time its reads and sends wait, and
 * not the hosts' requests served in between. Pacing by wall time instead charged a batch for
 * everything the loop did while the batch was under way — in a flood mostly the hosts' own
 * writes — so the busier the hosts, the less the sender shipped, and the lag grew for seconds.
 * Only what the work times is counted: its callers time its steps (for the sender, 86 % of its
 * busy time in a V8 profile; the rest is collection and closing files). With `sectionMsMax`, a
 * section counts at most that long: for work whose steps are bounded, time beyond is a garbage
 * collection (charged to whichever code allocated) or the thread waiting for a core.
 */
export class LoopClock {
  private totalMs = 0;
  private depth = 0;
  private startedAt = 0;

  /** `now` in milliseconds: performance.now unless a test drives the clock. */
  constructor(
    private readonly sectionMsMax = Infinity,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Runs `work` and counts the time of its synchronous part (sections timed inside it count once). */
  time<T>(work: () => T): T {
    if (this.depth++ === 0) this.startedAt = this.now();
    try {
      return work();
    } finally {
      if (--this.depth === 0) this.totalMs += Math.min(this.sectionMsMax, this.now() - this.startedAt);
    }
  }

  /** Milliseconds counted so far. */
  get ms(): number {
    return this.totalMs;
  }
}

/** `work` timed by `clock` when there is one (the code that takes an optional clock). */
export function timedBy<T>(clock: LoopClock | undefined, work: () => T): T {
  return clock === undefined ? work() : clock.time(work);
}
