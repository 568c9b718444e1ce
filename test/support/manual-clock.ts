/**
 * A Clock (src/policy/clock.ts) that moves only when the test moves it: `set` jumps to a time
 * (forward, or back as NTP may step it), waking every sleeper whose time has come; `nextWakeMs`
 * says when the earliest sleeper wants to wake, so a test walks a year of schedule slot by slot
 * in milliseconds: set(nextWakeMs), wait for the runner to settle, repeat.
 */
import type { Clock } from "../../src/policy/clock.js";

interface Sleeper {
  wakeMs: number;
  wake: () => void;
}

export class ManualClock implements Clock {
  private now: number;
  private readonly sleepers = new Set<Sleeper>();

  constructor(startMs: number) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  sleepUntil(wakeMs: number, signal: AbortSignal): Promise<void> {
    if (wakeMs <= this.now || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper: Sleeper = {
        wakeMs,
        wake: () => {
          this.sleepers.delete(sleeper);
          signal.removeEventListener("abort", sleeper.wake);
          resolve();
        },
      };
      this.sleepers.add(sleeper);
      signal.addEventListener("abort", sleeper.wake, { once: true });
    });
  }

  /** Jumps to `ms` (a step back is allowed): sleepers whose time has come wake. */
  set(ms: number): void {
    this.now = ms;
    for (const sleeper of [...this.sleepers]) if (sleeper.wakeMs <= ms) sleeper.wake();
  }

  advance(ms: number): void {
    this.set(this.now + ms);
  }

  /** When the earliest sleeper wakes (undefined: none sleeps, or none ever wakes by time). */
  nextWakeMs(): number | undefined {
    let next: number | undefined;
    for (const sleeper of this.sleepers)
      if (Number.isFinite(sleeper.wakeMs) && (next === undefined || sleeper.wakeMs < next)) next = sleeper.wakeMs;
    return next;
  }

  get sleeperCount(): number {
    return this.sleepers.size;
  }
}
