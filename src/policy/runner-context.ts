/**
 * What every part of the policy runner shares: the store it works on (the library, in-process),
 * the one clock, the server's log, the limits of event actions, and the signal that stops it all.
 */
import type { NewEvent } from "../store/event-log.js";
import type { Store } from "../store/store.js";
import type { Clock } from "./clock.js";

/** What the runner uses of the store: its library, never the API. */
export type RunnerStore = Pick<
  Store,
  | "path"
  | "listDisks"
  | "policyState"
  | "createScheduledSnapshot"
  | "recordScheduledSlot"
  | "prunePolicy"
  | "compact"
  | "archive"
  | "events"
>;

/** The server's log (the appliance adapts pino to it). */
export interface RunnerLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A command hook's limit (SPEC §4.3): then its whole process group is killed. */
export const HOOK_EXEC_TIMEOUT_MS = 60_000;
/** A webhook that has not answered by then has failed. */
export const HOOK_WEBHOOK_TIMEOUT_MS = 10_000;
/** A command's output kept for the server log (its tail; the rest is counted, not kept). */
export const HOOK_OUTPUT_BYTES_MAX = 64 * 1024;
/** Runs waiting per disk (actions run one at a time per disk); past it a run is dropped, and that is an event. */
export const HOOK_RUNS_QUEUED_MAX = 256;

export interface HookLimits {
  execTimeoutMs: number;
  webhookTimeoutMs: number;
  outputBytesMax: number;
  runsQueuedMax: number;
}

export const HOOK_LIMITS_DEFAULT: HookLimits = {
  execTimeoutMs: HOOK_EXEC_TIMEOUT_MS,
  webhookTimeoutMs: HOOK_WEBHOOK_TIMEOUT_MS,
  outputBytesMax: HOOK_OUTPUT_BYTES_MAX,
  runsQueuedMax: HOOK_RUNS_QUEUED_MAX,
};

export interface RunnerContext {
  readonly store: RunnerStore;
  readonly clock: Clock;
  readonly logger: RunnerLogger;
  readonly limits: HookLimits;
  /** Aborted when the runner stops: sleeps end, commands are killed, requests are cancelled. */
  readonly signal: AbortSignal;
  /** Records an event; a failure to record is logged, never thrown (the runner goes on). */
  record(event: NewEvent): Promise<void>;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
