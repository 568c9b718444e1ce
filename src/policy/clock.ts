/**
 * The one clock of the policy scheduler: every decision (what is due, when to wake) reads the
 * time here, so tests drive months of schedule in milliseconds with a ManualClock
 * (test/support/manual-clock.ts) instead of waiting, and a clock step is just a new value.
 */
export interface Clock {
  nowMs(): number;
  /** Resolves at `wakeMs` by this clock (or at once if past), or when `signal` aborts. */
  sleepUntil(wakeMs: number, signal: AbortSignal): Promise<void>;
}

/** Wall-clock time. Sleeps are capped so a clock step is noticed within SLEEP_SLICE_MS. */
export class SystemClock implements Clock {
  static readonly SLEEP_SLICE_MS = 60_000;

  nowMs(): number {
    return Date.now();
  }

  sleepUntil(wakeMs: number, signal: AbortSignal): Promise<void> {
    const delayMs = Math.min(Math.max(0, wakeMs - Date.now()), SystemClock.SLEEP_SLICE_MS);
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, delayMs);
      timer.unref();
      signal.addEventListener("abort", done, { once: true });
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }
}
