/**
 * One disk's schedule in the running server (SPEC §4.1): at each slot a scheduled snapshot
 * named for the slot, the slot recorded, then retention (`policy prune`, reason "retention").
 *
 * Lifecycle: the runner starts one per disk with a schedule (at start also per disk with
 * retention rules only, for the prune SPEC runs at start); it reads the disk's policy afresh at
 * every wake, so nothing it holds goes stale; `poke()` wakes it to read a change now; it ends
 * when the disk has no schedule, is gone (deleted: NOT_FOUND) or the store closes, or at `stop()`.
 *
 * Which slot runs is decideSlot's (store/policy/due-slot.ts): at most one per wake, the latest
 * slot passed and never one at or before the last slot run. So a start after downtime or a
 * clock stepped forward gives one catch-up snapshot, never a burst, and a clock stepped back
 * runs nothing twice: it waits for time to pass the last slot run. A slot run that is not the
 * one the loop slept until is a catch-up, and its snapshot-created event says so.
 *
 * A snapshot that fails (disk full, disk failing) is an event ("schedule-failed") and is tried
 * again after a delay that doubles from SCHEDULE_RETRY_MS_MIN to SCHEDULE_RETRY_MS_MAX, never
 * past the next slot (which then is the one due): never a crash, never a loop that spins.
 */
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { decideSlot } from "../store/policy/due-slot.js";
import { scheduledSnapshotName } from "../store/policy/scheduled-name.js";
import type { PolicyState } from "../store/store.js";
import { errorMessage, type RunnerContext } from "./runner-context.js";

export const SCHEDULE_RETRY_MS_MIN = 10_000;
export const SCHEDULE_RETRY_MS_MAX = 3_600_000;

type SlotOutcome = "done" | "failed" | "gone";

export class DiskSchedule {
  /** Sleeping on the clock (or done) means nothing of this schedule is under way (PolicyRunner.settled). */
  private phase: "working" | "sleeping" | "done" = "working";
  /** Counts pokes, so one that comes while the loop works is not lost when it then sleeps. */
  private pokeCount = 0;
  private wake = new AbortController();
  private stopped = false;
  readonly done: Promise<void>;

  constructor(
    private readonly context: RunnerContext,
    readonly disk: string,
    pruneAtStart: boolean,
  ) {
    this.done = this.run(pruneAtStart).catch((error: unknown) => {
      // run() catches what the store throws; anything else is a bug, logged, not a crash of the server.
      context.logger.error(`policy: the schedule of disk ${disk} stopped: ${errorMessage(error)}`);
    });
  }

  get idle(): boolean {
    return this.phase !== "working";
  }

  /** The loop has ended (set as it returns, so a poke is never sent to an ended loop unnoticed). */
  get finished(): boolean {
    return this.phase === "done";
  }

  /** Read the disk's policy again now (it changed). */
  poke(): void {
    this.pokeCount++;
    this.wake.abort();
  }

  stop(): void {
    this.stopped = true;
    this.wake.abort();
  }

  /** Marks itself finished in the same step it decides to end: a poke is never sent to an ended loop unnoticed. */
  private async run(pruneAtStart: boolean): Promise<void> {
    try {
      let pruneOwed = pruneAtStart;
      let retryDelayMs = SCHEDULE_RETRY_MS_MIN;
      // Whether a slot due now is on time, else a catch-up for one missed: the slot the loop slept
      // until, the one it retries, or any that came due while the previous slot ran — also when
      // that run took longer than a period and the slot in between is skipped.
      let isOnTime: (dueMs: number) => boolean = () => false;
      while (!this.stopped) {
        const pokesSeen = this.pokeCount;
        const state = await this.readState();
        if (state === undefined) return;
        if (state.schedule === undefined) {
          if (pruneOwed && (await this.prune()) === "gone") return;
          pruneOwed = false;
          // No schedule: done, unless a change came meanwhile (then read it).
          if (this.pokeCount === pokesSeen) return;
          continue;
        }
        const nowMs = this.context.clock.nowMs();
        const decision = decideSlot(state.schedule, state.lastSlotMs, nowMs);
        if (decision.dueMs !== undefined) {
          const outcome = await this.runSlot(decision.dueMs, !isOnTime(decision.dueMs));
          pruneOwed = false;
          if (outcome === "gone") return;
          if (outcome === "failed") {
            const retried = decision.dueMs;
            isOnTime = (dueMs) => dueMs === retried;
            await this.sleep(Math.min(nowMs + retryDelayMs, decision.wakeMs ?? Infinity), pokesSeen);
            retryDelayMs = Math.min(retryDelayMs * 2, SCHEDULE_RETRY_MS_MAX);
          } else {
            retryDelayMs = SCHEDULE_RETRY_MS_MIN;
            isOnTime = (dueMs) => dueMs > nowMs;
          }
          continue;
        }
        if (pruneOwed && (await this.prune()) === "gone") return;
        pruneOwed = false;
        const awaited = decision.wakeMs;
        isOnTime = (dueMs) => dueMs === awaited;
        await this.sleep(decision.wakeMs ?? Infinity, pokesSeen);
      }
    } finally {
      this.phase = "done";
    }
  }

  /**
   * The disk's policy now; undefined ends the schedule: the disk is gone or the store closed, or
   * the disk cannot be read (offline: an event, and the next policy change or restart tries again).
   */
  private async readState(): Promise<PolicyState | undefined> {
    try {
      return this.context.store.policyState(this.disk);
    } catch (error) {
      if (isGone(error)) return undefined;
      this.context.logger.error(`policy: cannot read the policy of disk ${this.disk}: ${errorMessage(error)}`);
      await this.context.record({
        type: "schedule-failed",
        disk: this.disk,
        reason: "scheduled",
        message: `the schedule of disk ${this.disk} stopped: ${errorMessage(error)}`,
        details: { code: error instanceof SnaplogError ? error.code : null },
      });
      return undefined;
    }
  }

  /** The slot's snapshot, the slot recorded, then retention. A slot whose snapshot exists already (a crash came between) counts as run. */
  private async runSlot(slotMs: number, catchUp: boolean): Promise<SlotOutcome> {
    const name = scheduledSnapshotName(slotMs);
    let step = "snapshot";
    try {
      await this.context.store.createScheduledSnapshot(this.disk, slotMs, { catchUp });
      step = "record";
      await this.context.store.recordScheduledSlot(this.disk, slotMs);
    } catch (error) {
      if (isGone(error)) return "gone";
      const what =
        step === "snapshot"
          ? `scheduled snapshot ${name} of disk ${this.disk} failed`
          : `scheduled snapshot ${name} of disk ${this.disk} was made, but its slot was not recorded`;
      this.context.logger.warn(`policy: ${what}: ${errorMessage(error)}`);
      await this.context.record({
        type: "schedule-failed",
        disk: this.disk,
        snapshot: name,
        reason: "scheduled",
        message: `${what}: ${errorMessage(error)}`,
        details: { slot: new Date(slotMs).toISOString(), code: error instanceof SnaplogError ? error.code : null },
      });
      // A snapshot made counts as run (its name says so); only its retention waits for the next slot.
      return step === "snapshot" ? "failed" : "done";
    }
    // A retention that fails is its own event; the slot is run either way.
    return (await this.prune()) === "gone" ? "gone" : "done";
  }

  /** Retention now (the ordinary `policy prune`: each delete an event with reason "retention"). */
  private async prune(): Promise<SlotOutcome> {
    try {
      await this.context.store.prunePolicy({ disk: this.disk });
      return "done";
    } catch (error) {
      if (isGone(error)) return "gone";
      this.context.logger.warn(`policy: retention of disk ${this.disk} failed: ${errorMessage(error)}`);
      await this.context.record({
        type: "retention-failed",
        disk: this.disk,
        reason: "retention",
        message: `retention of disk ${this.disk} failed: ${errorMessage(error)}`,
        details: { code: error instanceof SnaplogError ? error.code : null },
      });
      return "failed";
    }
  }

  /** Until `wakeMs` by the clock, a poke or stop; not at all when a poke came since `pokesSeen`. */
  private async sleep(wakeMs: number, pokesSeen: number): Promise<void> {
    if (this.stopped || this.pokeCount !== pokesSeen) return;
    this.wake = new AbortController();
    this.phase = "sleeping";
    try {
      await this.context.clock.sleepUntil(wakeMs, this.wake.signal);
    } finally {
      this.phase = "working";
    }
  }
}

/** The disk was deleted (NOT_FOUND) or the store is closing (CLOSED): the schedule has nothing left to do. */
function isGone(error: unknown): boolean {
  return error instanceof SnaplogError && (error.code === ErrorCodes.NOT_FOUND || error.code === ErrorCodes.CLOSED);
}
