/**
 * The scheduler's one decision, pure: given the schedule, the last slot it ran and the time,
 * which slot is due now (at most one: after downtime or a clock step forward it is the latest
 * slot passed, one catch-up, never a burst) and when to look again. A slot at or before the last
 * one run is never due again, so a clock stepped back waits for time to pass it.
 */
import { latestSlotAtOrBefore, nextSlotAfter, type Schedule } from "./schedule.js";

export interface SlotDecision {
  /** The slot to run now, if any. */
  dueMs: number | undefined;
  /** When the next slot comes (undefined: never). */
  wakeMs: number | undefined;
}

/**
 * `lastRunMs`: the last slot run, or the moment the schedule was set (slots before it are not
 * owed). The caller records `dueMs` as the new lastRunMs once its snapshot exists.
 */
export function decideSlot(schedule: Schedule, lastRunMs: number, nowMs: number): SlotDecision {
  const latest = latestSlotAtOrBefore(schedule, nowMs);
  const dueMs = latest !== undefined && latest > lastRunMs ? latest : undefined;
  return { dueMs, wakeMs: nextSlotAfter(schedule, Math.max(nowMs, lastRunMs, dueMs ?? -Infinity)) };
}
